//! The canonical shape of a manifest, one line at a time: exactly what `Manifest::to_toml`
//! writes, nothing more.
//!
//! One `key = value` a line, plain strings (no escapes), canonical integers, one-line arrays
//! of plain strings, a `[slots.NAME]` header a slot, comments and blank lines. Anything else
//! is `None`, and the caller falls back to the full TOML parser, which either reads the file
//! the same way or says precisely what is wrong with it.
//!
//! Core only (no allocation): both the library's quick reader (`quick.rs`) and the `no_std`
//! fast launcher (`fast/`) read manifests through this module, so they cannot disagree on
//! what a canonical manifest is.

/// One line of a canonical manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// A blank line or a comment.
    Blank,
    /// `[slots.NAME]`: NAME, made of bare-key bytes (not yet checked to be a slot name).
    Slot(&'a str),
    /// `key = value`.
    Field { key: &'a str, value: Value<'a> },
}

/// A value in the canonical shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(u64),
    StrArray(StrList<'a>),
}

/// A one-line array of plain strings, already checked; [`StrList::iter`] yields them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrList<'a> {
    /// The text between the brackets: `"a", "b"`, or empty.
    inner: &'a str,
}

impl<'a> StrList<'a> {
    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> {
        let inner = self.inner;
        inner
            .split(", ")
            .filter(move |_| !inner.is_empty())
            // Checked when the list was read, so every item is a plain string.
            .map(|item| plain_string(item).unwrap_or_default())
    }
}

/// Reads one line (without its `\n`), or `None` when it is not in the canonical shape.
pub fn line(text: &str) -> Option<Line<'_>> {
    if text.is_empty() || text.starts_with('#') {
        return Some(Line::Blank);
    }
    if let Some(header) = text.strip_prefix("[slots.") {
        let name = header.strip_suffix(']')?;
        let bare = !name.is_empty() && name.bytes().all(is_bare_key_byte);
        return bare.then_some(Line::Slot(name));
    }
    let eq = text.find('=')?;
    let key = text[..eq].strip_suffix(' ')?;
    if key.is_empty() || !key.bytes().all(is_bare_key_byte) {
        return None;
    }
    let value = value(text[eq + 1..].strip_prefix(' ')?)?;
    Some(Line::Field { key, value })
}

fn is_bare_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn value(text: &str) -> Option<Value<'_>> {
    if let Some(inner) = text.strip_prefix('[') {
        let inner = inner.strip_suffix(']')?;
        if !inner.is_empty() && !inner.split(", ").all(|item| plain_string(item).is_some()) {
            return None;
        }
        return Some(Value::StrArray(StrList { inner }));
    }
    if text.starts_with('"') {
        return plain_string(text).map(Value::Str);
    }
    let canonical_int = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical_int {
        return text.parse().ok().map(Value::Int);
    }
    None
}

/// The contents of `"..."` when it needs no unescaping.
fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let plain = !inner.contains(['"', '\\']) && !inner.chars().any(char::is_control);
    plain.then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_kind_of_line() {
        assert_eq!(line(""), Some(Line::Blank));
        assert_eq!(line("# fatbin manifest"), Some(Line::Blank));
        assert_eq!(line("[slots.x86_64-v3]"), Some(Line::Slot("x86_64-v3")));
        assert_eq!(
            line("bits = 64"),
            Some(Line::Field {
                key: "bits",
                value: Value::Int(64)
            })
        );
        let Some(Line::Field {
            value: Value::StrArray(list),
            ..
        }) = line(r#"features = ["avx2", "sse4.2"]"#)
        else {
            panic!("not an array");
        };
        assert_eq!(list.iter().collect::<Vec<_>>(), ["avx2", "sse4.2"]);
        let Some(Line::Field {
            value: Value::StrArray(empty),
            ..
        }) = line("features = []")
        else {
            panic!("not an array");
        };
        assert_eq!(empty.iter().count(), 0);
    }

    #[test]
    fn refuses_other_shapes() {
        for text in [
            "[slots.\"x86_64\"]",
            "[slots.]",
            "[other]",
            "bits=64",
            "bits = 064",
            "bits = 6_4",
            "bits = -1",
            "size = 1 # bytes",
            "a b = 1",
            " = 1",
            "x = 'single'",
            "x = \"esc\\u0041\"",
            "x = [1]",
            "x = [\"a\",\"b\"]",
            "x = [\n",
            "x = { a = 1 }",
        ] {
            assert_eq!(line(text), None, "accepted {text:?}");
        }
    }
}
