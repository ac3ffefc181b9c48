//! The canonical shape of a manifest, one line at a time: exactly what `Manifest::to_toml`
//! writes, nothing more.
//!
//! One `key = value` a line, plain strings (no escapes), canonical integers, one-line arrays
//! of plain strings, a `[slots.NAME]` header a slot, comments and blank lines. Anything else
//! is `None`, and the caller falls back to the full TOML parser, which either reads the file
//! the same way or says precisely what is wrong with it.
//!
//! No allocation: both the full launcher's quick reader (`quick.rs` there) and the `no_std`
//! fast launcher (through [`crate::pick`]) read manifests through this module, and
//! [`Table::slot`] applies the layout's rules to a slot, so they cannot disagree on what a
//! canonical manifest is or which of its slots to believe.

use crate::arch::{Arch, Endian};
use crate::manifest::{content_file_ok, glibc_version, is_sha256, slot_facts_agree, LIBC_NAMES};
use crate::slot::Slot;

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

/// The top-level fields of a canonical manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub format: u64,
    pub program: &'a str,
}

/// One `[slots.NAME]` table of a canonical manifest.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    /// NAME (bare-key bytes, not yet checked to be a slot name).
    pub name: &'a str,
    /// The lines after the header, up to the next table.
    body: &'a str,
}

impl<'a> Table<'a> {
    /// The table's fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (&'a str, Value<'a>)> {
        // Every line was read when the manifest was: only fields and blank lines are here.
        self.body.split('\n').filter_map(|l| match line(l) {
            Some(Line::Field { key, value }) => Some((key, value)),
            _ => None,
        })
    }
}

/// The fields of one `[slots.NAME]` table that passed the layout's rules for slot NAME: every
/// field known, none twice, each of its type; the required ones there; arch, bits and endian
/// those of the slot; a known libc, a glibc version, a sha256 of 64 lowercase hex digits, a
/// content file name that is the one its slot and sha256 give (`manifest::content_file_ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFields<'a> {
    pub slot: Slot,
    pub target: Option<&'a str>,
    pub arch: Arch,
    pub bits: u8,
    pub endian: Endian,
    pub libc: &'a str,
    pub glibc: Option<(u16, u16)>,
    pub cpu: Option<&'a str>,
    pub features: StrList<'a>,
    pub size: u64,
    pub sha256: &'a str,
    /// The slot's content file in the program's directory (`SLOT.<hex>`); `None` in a
    /// manifest written before content files, whose slot is the file `SLOT`.
    pub file: Option<&'a str>,
    pub krate: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// Every field a slot's table may hold, in the order the layout writes them.
pub const SLOT_KEYS: [&str; 13] = [
    "target", "arch", "bits", "endian", "libc", "glibc", "cpu", "features", "size", "sha256",
    "file", "crate", "version",
];

impl<'a> Table<'a> {
    /// The table's slot and fields, when NAME is a slot name and the fields pass the layout's
    /// rules for it (see [`SlotFields`]); `None` for anything else.
    pub fn slot(&self) -> Option<SlotFields<'a>> {
        let slot = Slot::parse(self.name).ok()?;
        let mut seen = 0u16;
        let mut strs: [Option<&'a str>; SLOT_KEYS.len()] = [None; SLOT_KEYS.len()];
        let (mut bits, mut size, mut features) = (None, None, None);
        for (key, value) in self.fields() {
            let index = SLOT_KEYS.iter().position(|k| *k == key)?;
            if seen & (1 << index) != 0 {
                return None;
            }
            seen |= 1 << index;
            match (key, value) {
                ("bits", Value::Int(n)) => bits = Some(n),
                ("size", Value::Int(n)) => size = Some(n),
                ("features", Value::StrArray(list)) => features = Some(list),
                ("bits" | "size" | "features", _) => return None,
                (_, Value::Str(s)) => strs[index] = Some(s),
                _ => return None,
            }
        }
        let [target, arch, _, endian, libc, glibc, cpu, _, _, sha256, file, krate, version] = strs;
        let arch: Arch = arch?.parse().ok()?;
        let endian = Endian::from_name(endian?)?;
        let bits = bits?;
        let libc = libc.filter(|l| LIBC_NAMES.contains(l))?;
        let sha256 = sha256.filter(|s| is_sha256(s))?;
        let glibc = match glibc {
            Some(v) => Some(glibc_version(v)?),
            None => None,
        };
        if file.is_some_and(|f| !content_file_ok(self.name, sha256, f)) {
            return None;
        }
        slot_facts_agree(slot, arch, bits, endian).then_some(SlotFields {
            slot,
            target,
            arch,
            bits: arch.bits(),
            endian,
            libc,
            glibc,
            cpu,
            features: features.unwrap_or_default(),
            size: size?,
            sha256,
            file,
            krate,
            version,
        })
    }
}

/// Reads a manifest in the canonical shape: `table` is called for each slot table in order,
/// and the header is returned. `None` when a line is not in the canonical shape, a top-level
/// field is unknown, repeated or missing, or `table` gives up.
pub fn read<'a>(
    text: &'a str,
    mut table: impl FnMut(Table<'a>) -> Option<()>,
) -> Option<Header<'a>> {
    let mut format = None;
    let mut program = None;
    // The table being read: its name and where its body starts.
    let mut current: Option<(&'a str, usize)> = None;
    let mut offset = 0;
    for text_line in text.split('\n') {
        let start = offset;
        offset += text_line.len() + 1;
        match line(text_line)? {
            Line::Blank => {}
            Line::Slot(name) => {
                if let Some((done, body)) = current.replace((name, offset.min(text.len()))) {
                    table(Table {
                        name: done,
                        body: &text[body..start],
                    })?;
                }
            }
            Line::Field { .. } if current.is_some() => {}
            Line::Field { key, value } => match (key, value) {
                ("format", Value::Int(n)) if format.is_none() => format = Some(n),
                ("program", Value::Str(s)) if program.is_none() => program = Some(s),
                _ => return None,
            },
        }
    }
    if let Some((done, body)) = current {
        table(Table {
            name: done,
            body: &text[body..],
        })?;
    }
    Some(Header {
        format: format?,
        program: program?,
    })
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
    fn reads_the_header_and_each_table() {
        let text = "# note\nformat = 1\nprogram = \"p\"\n\n[slots.a]\nx = 1\n\n[slots.b]\n[slots.c]\ny = \"z\"";
        let mut tables = Vec::new();
        let header = read(text, |t| {
            tables.push((t.name, t.fields().collect::<Vec<_>>()));
            Some(())
        });
        assert_eq!(
            header,
            Some(Header {
                format: 1,
                program: "p"
            })
        );
        assert_eq!(
            tables,
            [
                ("a", vec![("x", Value::Int(1))]),
                ("b", vec![]),
                ("c", vec![("y", Value::Str("z"))]),
            ]
        );
        assert_eq!(read("format = 1\n", |_| Some(())), None, "no program");
        assert_eq!(
            read("format = 1\nformat = 1\nprogram = \"p\"", |_| Some(())),
            None
        );
        assert_eq!(
            read("format = 1\nprogram = \"p\"\n[slots.a]", |_| None),
            None
        );
    }

    #[test]
    fn slot_tables_pass_the_layout_rules_or_are_refused() {
        let sha = "ab".repeat(32);
        let good = format!(
            "format = 1\nprogram = \"p\"\n[slots.x86_64-v3]\narch = \"x86_64\"\nbits = 64\n\
             endian = \"little\"\nlibc = \"glibc\"\nglibc = \"2.34\"\n\
             features = [\"avx2\"]\nsize = 5\nsha256 = \"{sha}\"\n\
             file = \"x86_64-v3.abababababababab\"\n"
        );
        fn slot_of(text: &str) -> Option<SlotFields<'_>> {
            let mut found = None;
            read(text, |t| {
                found = t.slot();
                Some(())
            });
            found
        }
        let fields = slot_of(&good).expect("a good table");
        assert_eq!(fields.slot.to_string(), "x86_64-v3");
        assert_eq!(
            (fields.bits, fields.glibc, fields.size),
            (64, Some((2, 34)), 5)
        );
        assert_eq!(fields.features.iter().collect::<Vec<_>>(), ["avx2"]);
        assert_eq!(fields.file, Some("x86_64-v3.abababababababab"));
        // A manifest written before content files: the slot's file is `SLOT`.
        let old = good.replace("file = \"x86_64-v3.abababababababab\"\n", "");
        assert_eq!(slot_of(&old).expect("an old table").file, None);
        for (from, to) in [
            ("bits = 64", "bits = 32"),
            ("endian = \"little\"", "endian = \"big\""),
            ("arch = \"x86_64\"", "arch = \"aarch64\""),
            ("libc = \"glibc\"", "libc = \"bionic\""),
            ("glibc = \"2.34\"", "glibc = \"two\""),
            ("size = 5", "size = \"5\""),
            ("size = 5\n", ""),
            ("[slots.x86_64-v3]", "[slots.x86_64-v9]"),
            ("bits = 64", "bits = 64\nbits = 64"),
            ("bits = 64", "bits = 64\ncolour = \"blue\""),
            // The content file is the one its slot and sha256 name, and nothing else.
            ("x86_64-v3.abab", "x86_64.abab"),
            (
                "x86_64-v3.abababababababab",
                "../x86_64-v3.abababababababab",
            ),
            ("x86_64-v3.abababababababab", "x86_64-v3.abababababababab/x"),
            ("x86_64-v3.abababababababab", "x86_64-v3.ababababababab00"),
            ("x86_64-v3.abababababababab", "fatbin.toml"),
            ("x86_64-v3.abababababababab", ""),
            ("file = \"x86_64-v3.abababababababab\"", "file = 1"),
        ] {
            let bad = good.replace(from, to);
            assert_ne!(bad, good);
            assert_eq!(slot_of(&bad), None, "accepted:\n{bad}");
        }
        let sha_upper = good.replace(&sha, &sha.to_uppercase());
        assert_eq!(slot_of(&sha_upper), None);
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
