//! POSIX shell quoting: every word we hand the remote shell is data, never code.
//!
//! ssh joins its command words with spaces and the remote login shell parses the result again
//! (`$SHELL -c "…"`), so an argument like `$(rm -rf ~)` would run there unless it is quoted.
//! Single quotes are the one POSIX quoting form in which no character is special, so each word
//! becomes `'…'`, and a `'` inside it becomes `'\''` (close, escaped quote, reopen). Bytes are
//! copied as they are: newlines, globs and non-UTF-8 bytes need nothing more.

/// Appends `word`, single-quoted, to `out`.
pub fn push_quoted(out: &mut Vec<u8>, word: &[u8]) {
    out.push(b'\'');
    for &b in word {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

/// A path on the node as a shell word: `~/x` becomes `"$HOME"/'x'` so the remote shell
/// expands the home directory (a quoted `~` would not be), anything else is quoted whole.
pub fn push_remote_path(out: &mut Vec<u8>, path: &[u8]) {
    if path == b"~" {
        out.extend_from_slice(b"\"$HOME\"");
    } else if let Some(rest) = path.strip_prefix(b"~/") {
        out.extend_from_slice(b"\"$HOME\"/");
        push_quoted(out, rest);
    } else {
        push_quoted(out, path);
    }
}

/// Whether `name` can be an environment variable name in a POSIX shell
/// (`[A-Za-z_][A-Za-z0-9_]*`), so that `export NAME=…` means what it says.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `printf '%s\0' WORDS` through a real `/bin/sh` and returns what it printed.
    fn through_sh(words: &[&[u8]]) -> Vec<u8> {
        use std::os::unix::ffi::OsStringExt;
        let mut script = b"printf '%s\\0'".to_vec();
        for w in words {
            script.push(b' ');
            push_quoted(&mut script, w);
        }
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(std::ffi::OsString::from_vec(script))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        out.stdout
    }

    #[test]
    fn nasty_words_survive_a_real_shell() {
        let words: Vec<&[u8]> = vec![
            b"",
            b"a b",
            b"'",
            b"''",
            b"it's",
            b"\"",
            b"$(echo pwned)",
            b"`echo pwned`",
            b"$HOME",
            b"*",
            b"a;b",
            b"&&",
            b"\n",
            b"line1\nline2",
            b"\\",
            b"-n",
            b"--",
            b"\xff\xfe non-utf8",
            b"~",
            b"!",
            b"#comment",
        ];
        let mut expected = Vec::new();
        for w in &words {
            expected.extend_from_slice(w);
            expected.push(0);
        }
        assert_eq!(through_sh(&words), expected);
    }

    fn quoted(word: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_quoted(&mut out, word);
        out
    }

    #[test]
    fn quoting_shape() {
        assert_eq!(quoted(b""), b"''");
        assert_eq!(quoted(b"it's"), b"'it'\\''s'");
    }

    #[test]
    fn home_paths_expand() {
        let mut out = Vec::new();
        push_remote_path(&mut out, b"~/.cache/fat bin");
        assert_eq!(out, b"\"$HOME\"/'.cache/fat bin'");
    }

    #[test]
    fn env_names() {
        assert!(is_env_name("LC_ALL"));
        assert!(is_env_name("_x1"));
        for bad in ["", "1A", "A-B", "A=B", "A B", "é"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }
}
