//! The per-program manifest, `ROOT/bin/PROG/fatbin.toml`: the facts of every slot.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Endian};
use crate::error::{Error, Result};
use crate::identify::{GlibcVersion, Libc};
use crate::slot::SlotName;

/// The manifest format this library writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's file name inside a program directory. It cannot clash with a slot, whose
/// names never contain a dot.
pub const MANIFEST_FILE: &str = "fatbin.toml";

/// Manifests larger than this are refused unread: a real one is a few hundred bytes a slot.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

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
    pub arch: Arch,
    pub bits: u8,
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
    /// The crate it was built from, if known.
    #[serde(default, rename = "crate", skip_serializing_if = "Option::is_none")]
    pub krate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
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
                _ => Err(corrupt(e.message().trim().to_owned())),
            },
        }
    }

    /// The facts a well-formed manifest cannot contradict: its program name is a valid one,
    /// and every slot's arch, bits and endianness are those of its slot name, with a sha256
    /// that is 64 hex digits. A manifest that lies about these would make the launcher pick
    /// a binary that cannot run. [`Manifest::parse`] applies it; other readers of the format
    /// (the launcher's fast reader) must too.
    pub fn check(&self) -> Result<(), String> {
        if let Some(why) = crate::names::program_name_problem(&self.program) {
            return Err(format!("program name `{}`: {why}", self.program));
        }
        for (slot, info) in &self.slots {
            let arch = slot.arch;
            if info.arch != arch || info.bits != arch.bits() || info.endian != arch.endian() {
                return Err(format!(
                    "slot `{slot}` is recorded as {} {}-bit {:?}-endian, which is not {arch}",
                    info.arch, info.bits, info.endian
                ));
            }
            let hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
            if info.sha256.len() != 64 || !info.sha256.bytes().all(hex) {
                return Err(format!(
                    "slot `{slot}`: sha256 `{}` is not 64 lowercase hex digits",
                    info.sha256
                ));
            }
        }
        Ok(())
    }

    /// Reads and parses the manifest at `path`.
    pub fn read(path: &Path) -> Result<Manifest> {
        let file = std::fs::File::open(path).map_err(Error::io(path))?;
        let mut text = String::new();
        file.take(MAX_MANIFEST_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => Error::CorruptManifest {
                    path: path.to_owned(),
                    why: "it is not UTF-8 text".into(),
                },
                _ => Error::Io {
                    path: path.to_owned(),
                    source: e,
                },
            })?;
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::CorruptManifest {
                path: path.to_owned(),
                why: format!("it is larger than {MAX_MANIFEST_BYTES} bytes"),
            });
        }
        Manifest::parse(&text, path)
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

#[cfg(test)]
mod tests {
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
    fn newer_format_is_named() {
        let err = Manifest::parse("format = 9\nprogram = 3\n", Path::new("m")).unwrap_err();
        assert!(
            matches!(err, Error::UnsupportedFormat { found: 9, .. }),
            "{err}"
        );
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
}
