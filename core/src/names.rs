//! Validation of program names, which become directory names under `ROOT/bin` and `ROOT/shims`.

/// Why a program name cannot be used, or `None` when it can.
///
/// A name is one path component that a shell can type: no `/`, not `.` or `..`, no NUL, no
/// leading `-` (it would read as an option to every tool that handles it), and not empty.
pub fn program_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("`.` and `..` name directories, not programs")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name.contains('\0') {
        Some("it contains a NUL byte")
    } else if name.starts_with('-') {
        Some("it starts with `-`")
    } else if name.starts_with('.') {
        Some("it starts with `.` (names starting with `.` are kept for the layout's temporary files)")
    } else if name.len() > 255 {
        Some("it is longer than 255 bytes")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names() {
        for name in ["cat", "cargo-fatbin", "x86_64", "a.b", "ünï"] {
            assert_eq!(program_name_problem(name), None, "{name}");
        }
    }

    #[test]
    fn bad_names() {
        for name in [
            "", ".", "..", "a/b", "/cat", "a\0b", "-rf", ".hidden", "a\nb",
        ] {
            assert!(program_name_problem(name).is_some(), "{name:?}");
        }
    }
}
