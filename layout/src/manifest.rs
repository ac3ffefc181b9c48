//! The per-program manifest, `ROOT/bin/PROG/fatbin.toml`: the facts of every slot.
//!
//! One reader ([`read_text`], and [`Manifest::read`] on top of it) and one writer
//! ([`Manifest::to_toml`], staged by `install`) for every tool. The reader opens the file
//! non-blocking and reads it only when `fstat` says it is a regular file no larger than
//! [`MAX_MANIFEST_BYTES`], so a FIFO or a device planted in its place fails at once instead of
//! hanging whoever reads it (an install holding the layout's lock, `cargo fatbin verify`, the
//! launcher). The format's fixed facts and the rules a slot must pass are
//! `fatbin_core::manifest`'s, shared with the launchers' own readers.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::{arch_serde, endian_serde, Arch, Endian};
use crate::error::{Error, Result};
use crate::identify::{GlibcVersion, Libc};
use crate::slot::SlotName;
use fatbin_core::manifest as rules;

pub use fatbin_core::manifest::{FORMAT_VERSION, MANIFEST_FILE, MAX_MANIFEST_BYTES};

/// Everything the layout records about one fat program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The format version (see `docs/layout.md`).
    pub format: u32,
    /// The program's name, which is also its directory's name.
    pub program: String,
    #[serde(default)]
    pub slots: BTreeMap<SlotName, SlotInfo>,
}

/// The facts of one slot's binary, checked against the binary itself when it was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    /// The Rust target triple it was built for, empty when it was installed from a plain file.
    #[serde(default)]
    pub target: String,
    #[serde(with = "arch_serde")]
    pub arch: Arch,
    pub bits: u8,
    #[serde(with = "endian_serde")]
    pub endian: Endian,
    pub libc: Libc,
    /// The highest `GLIBC_x.y` symbol version it needs (glibc binaries only).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "glibc_serde")]
    pub glibc: Option<GlibcVersion>,
    /// The `-C target-cpu` it was built with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// CPU features (Rust target-feature names) the binary needs beyond its architecture's
    /// baseline. A host lacking any of them must not run it: that would be SIGILL later.
    #[serde(default)]
    pub features: Vec<String>,
    pub size: u64,
    pub sha256: String,
    /// The slot's content file in the program's directory, `SLOT.<first 16 hex digits of
    /// sha256>` ([`content_name`]): the file launchers run. `None` in a manifest written before
    /// content files, whose slot's bytes are the file `SLOT`. See `docs/layout.md`, Atomicity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The crate it was built from, if known.
    #[serde(default, rename = "crate", skip_serializing_if = "Option::is_none")]
    pub krate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

impl SlotInfo {
    /// The name of the file that holds this slot's binary in the program's directory: the
    /// content file the manifest records, or `SLOT` for a manifest written before them.
    pub fn file_name(&self, slot: SlotName) -> String {
        self.file.clone().unwrap_or_else(|| slot.to_string())
    }
}

/// The content file name of a slot's binary: `SLOT.` and the first
/// [`fatbin_core::manifest::CONTENT_HEX_DIGITS`] hex digits of its sha256. Slot names never
/// contain a `.`, and hex digits never spell `toml`, so it is never a slot or the manifest.
pub fn content_name(slot: SlotName, sha256: &str) -> String {
    let digits = sha256.get(..rules::CONTENT_HEX_DIGITS).unwrap_or(sha256);
    format!("{slot}.{digits}")
}

/// The slot whose file `name` is in a program's directory: `SLOT` itself, or its content file
/// `SLOT.<hex>` ([`content_name`]); `None` for any other name.
pub fn slot_of_file_name(name: &str) -> Option<SlotName> {
    rules::slot_part(name).parse().ok()
}

mod glibc_serde {
    use super::GlibcVersion;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<GlibcVersion>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GlibcVersion>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| s.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Manifest {
    pub fn new(program: &str) -> Manifest {
        Manifest {
            format: FORMAT_VERSION,
            program: program.to_owned(),
            slots: BTreeMap::new(),
        }
    }

    /// Parses manifest text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        #[derive(Deserialize)]
        struct FormatOnly {
            // Wider than the field so that an absurd number still reads as "newer".
            format: i64,
        }
        let corrupt = |why: String| Error::CorruptManifest {
            path: path.to_owned(),
            why,
        };
        let newer = |found: u32| Error::UnsupportedFormat {
            path: path.to_owned(),
            found,
            supported: FORMAT_VERSION,
        };
        match toml::from_str::<Manifest>(text) {
            Ok(m) if m.format > FORMAT_VERSION => Err(newer(m.format)),
            Ok(m) if m.format == 0 => Err(corrupt("format 0 does not exist".into())),
            Ok(m) => m.check().map(|()| m).map_err(corrupt),
            Err(e) => match toml::from_str::<FormatOnly>(text) {
                // A newer format may have changed the fields: say that, not "corrupt".
                Ok(f) if f.format > i64::from(FORMAT_VERSION) => {
                    Err(newer(u32::try_from(f.format).unwrap_or(u32::MAX)))
                }
                _ => Err(corrupt(toml_problem(text, &e))),
            },
        }
    }

    /// The facts a well-formed manifest cannot contradict: its program name is a valid one,
    /// and every slot's arch, bits and endianness are those of its slot name, with a sha256
    /// that is 64 hex digits. A manifest that lies about these would make the launcher pick
    /// a binary that cannot run. [`Manifest::parse`] applies it; the launchers' canonical
    /// reader applies the same rules (`fatbin_core::canonical`).
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = crate::names::program_name_problem(&self.program) {
            return Err(format!("program name `{}`: {why}", self.program));
        }
        for (slot, info) in &self.slots {
            let arch = slot.arch;
            let bits = u64::from(info.bits);
            if !rules::slot_facts_agree((*slot).into(), info.arch, bits, info.endian) {
                return Err(format!(
                    "slot `{slot}` is recorded as {} {}-bit {:?}-endian, which is not {arch}",
                    info.arch, info.bits, info.endian
                ));
            }
            if !rules::is_sha256(&info.sha256) {
                return Err(format!(
                    "slot `{slot}`: sha256 `{}` is not 64 lowercase hex digits",
                    info.sha256
                ));
            }
            if let Some(file) = &info.file {
                if !rules::content_file_ok(&slot.to_string(), &info.sha256, file) {
                    return Err(format!(
                        "slot `{slot}`: file `{file}` is not `{}`, the name its sha256 gives",
                        content_name(*slot, &info.sha256)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads and parses the manifest at `path` ([`read_text`], then [`Manifest::parse`]).
    pub fn read(path: &Path) -> Result<Manifest> {
        Manifest::parse(&read_text(path)?, path)
    }

    /// The manifest as TOML text, slots in name order.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a manifest always serialises");
        format!("# fatbin manifest: see docs/layout.md. Written by fatbin; do not edit.\n{body}")
    }

    /// The slot names, comma-separated, for messages.
    pub fn slot_list(&self) -> String {
        if self.slots.is_empty() {
            return "none".into();
        }
        let names: Vec<String> = self.slots.keys().map(|s| s.to_string()).collect();
        names.join(", ")
    }
}

/// The text of the manifest at `path`: opened non-blocking, read only when it is a regular
/// file of at most [`MAX_MANIFEST_BYTES`] of UTF-8. Errors: [`Error::Io`] when it cannot be
/// opened (`NotFound` when absent), [`Error::CorruptManifest`] for anything else.
pub fn read_text(path: &Path) -> Result<String> {
    let corrupt = |why: String| Error::CorruptManifest {
        path: path.to_owned(),
        why,
    };
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(Error::io(path))?;
    let meta = file
        .metadata()
        .map_err(|e| corrupt(format!("cannot stat it: {e}")))?;
    if !meta.is_file() {
        return Err(corrupt("it is not a regular file".into()));
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(corrupt(format!(
            "it is larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One more byte than allowed, in case it grew since the fstat.
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| corrupt(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(corrupt(format!(
            "it is larger than {MAX_MANIFEST_BYTES} bytes"
        )));
    }
    String::from_utf8(bytes).map_err(|_| corrupt("it is not UTF-8 text".into()))
}

/// A TOML parse error in words that locate it: the line and the text it points at
/// (`duplicate key` alone would not say which), then the parser's message.
pub fn toml_problem(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    let Some(span) = e.span().filter(|s| s.start <= s.end && s.end <= text.len()) else {
        return message.to_owned();
    };
    // Bytes, not a str slice: never a panic, whatever the span.
    let line = text.as_bytes()[..span.start]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    let what = text.get(span.clone()).unwrap_or_default().trim();
    if what.is_empty() || what.contains('\n') {
        format!("line {line}: {message}")
    } else {
        format!("line {line}: {message} (`{what}`)")
    }
}

#[cfg(test)]
mod tests {
    /// Issue 11, poor errors: a TOML error names the line and the key, not just
    /// `duplicate key`.
    #[test]
    fn toml_errors_name_the_line_and_the_key() {
        let text = "[nodes.a]\nssh = \"h\"\nssh = \"g\"\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        assert_eq!(toml_problem(text, &e), "line 3: duplicate key (`ssh`)");
    }

    use super::*;

    fn sample() -> Manifest {
        let mut m = Manifest::new("cat");
        m.slots.insert(
            "x86_64-v3".parse().unwrap(),
            SlotInfo {
                target: "x86_64-unknown-linux-musl".into(),
                arch: Arch::X86_64,
                bits: 64,
                endian: Endian::Little,
                libc: Libc::Glibc,
                glibc: Some(GlibcVersion {
                    major: 2,
                    minor: 34,
                }),
                cpu: Some("x86-64-v3".into()),
                features: vec!["avx2".into(), "fma".into()],
                size: 4096,
                sha256: "ab".repeat(32),
                file: Some("x86_64-v3.abababababababab".into()),
                krate: Some("cat".into()),
                version: Some("1.0.0".into()),
            },
        );
        m
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let text = m.to_toml();
        assert_eq!(Manifest::parse(&text, Path::new("m")).unwrap(), m);
    }

    #[test]
    fn a_slots_file_is_the_one_its_sha256_names() {
        let text = sample().to_toml();
        assert!(
            text.contains("file = \"x86_64-v3.abababababababab\"\n"),
            "{text}"
        );
        // Written before content files: no `file`, and the slot's file is `SLOT`.
        let old = text.replace("file = \"x86_64-v3.abababababababab\"\n", "");
        let m = Manifest::parse(&old, Path::new("m")).unwrap();
        let slot: SlotName = "x86_64-v3".parse().unwrap();
        assert_eq!(m.slots[&slot].file, None);
        assert_eq!(m.slots[&slot].file_name(slot), "x86_64-v3");
        assert_eq!(
            sample().slots[&slot].file_name(slot),
            "x86_64-v3.abababababababab"
        );
        for bad in [
            "x86_64.abababababababab",
            "../x86_64-v3.abababababababab",
            "x86_64-v3.abababababababab/",
            "x86_64-v3.0000000000000000",
            "fatbin.toml",
        ] {
            let text = text.replace("x86_64-v3.abababababababab", bad);
            let err = Manifest::parse(&text, Path::new("m"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("the name its sha256 gives"), "{bad}: {err}");
        }
    }

    #[test]
    fn newer_format_is_named() {
        let err = Manifest::parse("format = 9\nprogram = 3\n", Path::new("m")).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 9, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_newer_format_with_this_formats_fields_is_still_newer() {
        let text = sample().to_toml().replace("format = 1\n", "format = 2\n");
        assert!(text.contains("format = 2\n"), "{text}");
        let err = Manifest::parse(&text, Path::new("m")).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_file_names_its_slot_itself_or_by_its_content_file() {
        let slot = |s: &str| Some(s.parse::<SlotName>().unwrap());
        assert_eq!(slot_of_file_name("x86_64-v3"), slot("x86_64-v3"));
        assert_eq!(
            slot_of_file_name("aarch64.0123456789abcdef"),
            slot("aarch64")
        );
        for other in [
            "fatbin.toml",
            "x86_64.short",
            "bogus.0123456789abcdef",
            ".lock",
        ] {
            assert_eq!(slot_of_file_name(other), None, "{other}");
        }
    }

    #[test]
    fn a_manifest_of_exactly_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let text = "#".repeat(MAX_MANIFEST_BYTES as usize);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_text(&path).unwrap().len(), text.len());
        std::fs::write(&path, format!("{text}#")).unwrap();
        let err = read_text(&path).unwrap_err().to_string();
        assert!(err.contains("larger than 1048576 bytes"), "{err}");
    }

    #[test]
    fn a_toml_error_at_a_line_end_names_only_the_line() {
        let text = "format = 1\nprogram = \n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let problem = toml_problem(text, &e);
        assert!(problem.starts_with("line 2: "), "{problem}");
        assert!(!problem.contains("(`"), "{problem}");
    }

    #[test]
    fn slot_lists_for_messages() {
        assert_eq!(sample().slot_list(), "x86_64-v3");
        let mut two = sample();
        let info = two.slots.values().next().unwrap().clone();
        two.slots.insert("x86_64".parse().unwrap(), info);
        assert_eq!(two.slot_list(), "x86_64, x86_64-v3");
        assert_eq!(Manifest::new("cat").slot_list(), "none");
    }

    #[test]
    fn garbage_is_corrupt() {
        for text in [
            "",
            "format = 1",
            "\u{0}",
            "[slots.bogus]\nx=1",
            "format = 0\nprogram='a'",
        ] {
            let err = Manifest::parse(text, Path::new("m")).unwrap_err();
            assert!(
                matches!(err, Error::CorruptManifest { .. }),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn read_text_refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let err = read_text(&path).unwrap_err();
        assert!(
            matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        );

        std::fs::write(&path, sample().to_toml()).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), sample());

        std::fs::write(&path, vec![b'#'; MAX_MANIFEST_BYTES as usize + 1]).unwrap();
        let err = read_text(&path).unwrap_err().to_string();
        assert!(err.contains("larger than 1048576 bytes"), "{err}");

        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        let err = read_text(&path).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }

    /// A FIFO in the manifest's place: the old blocking open waited for a writer forever.
    #[test]
    fn a_fifo_fails_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tx.send(Manifest::read(&path).map(|_| ()).map_err(|e| e.to_string()))
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO manifest hung");
        let err = result.unwrap_err();
        assert!(
            err.contains("corrupt manifest: it is not a regular file"),
            "{err}"
        );
    }
}
