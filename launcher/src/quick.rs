//! A fast reader for manifests in the exact shape fatbin writes them.
//!
//! Parsing a manifest with the general TOML parser costs about 10 µs a slot here, which is
//! as much as everything else the launcher does. Manifests are written by
//! `Manifest::to_toml` in the canonical shape `fatbin_core::canonical` reads line by line. This
//! reader accepts only that shape, and only when the result passes the same checks the
//! layout library makes; anything else (comments after values, escapes, inline tables, a
//! newer format, a field it does not know, a value that would fail a check) makes it give
//! up, and the caller uses the full parser, which either reads the file the same way or says
//! precisely what is wrong with it. So this reader accepts a strict subset of what
//! `Manifest::parse` accepts, with the same result (the tests compare the two).

use std::collections::BTreeMap;

use fatbin_core::canonical::{self, SlotFields};
use fatbin_layout::identify::GlibcVersion;
use fatbin_layout::{Libc, Manifest, SlotInfo, SlotName, FORMAT_VERSION};

/// The manifest `text` holds, or `None` when it is not in the canonical shape.
pub fn parse(text: &str) -> Option<Manifest> {
    let mut slots: BTreeMap<SlotName, SlotInfo> = BTreeMap::new();
    let header = canonical::read(text, |table| {
        let fields = table.slot()?;
        // A slot named twice is not canonical.
        slots
            .insert(fields.slot.into(), slot_info(&fields))
            .is_none()
            .then_some(())
    })?;
    if header.format != u64::from(FORMAT_VERSION) {
        return None;
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        program: header.program.to_owned(),
        slots,
    };
    // The layout's own consistency checks, exactly as `Manifest::parse` applies them.
    manifest.check().ok().map(|()| manifest)
}

/// A slot's facts, from fields that passed the layout's rules (`Table::slot`).
fn slot_info(fields: &SlotFields<'_>) -> SlotInfo {
    let libc = match fields.libc {
        "static" => Libc::Static,
        "musl" => Libc::Musl,
        "glibc" => Libc::Glibc,
        _ => Libc::Other,
    };
    SlotInfo {
        target: fields.target.unwrap_or_default().to_owned(),
        arch: fields.arch,
        bits: fields.bits,
        endian: fields.endian,
        libc,
        glibc: fields
            .glibc
            .map(|(major, minor)| GlibcVersion { major, minor }),
        cpu: fields.cpu.map(str::to_owned),
        features: fields.features.iter().map(str::to_owned).collect(),
        size: fields.size,
        sha256: fields.sha256.to_owned(),
        file: fields.file.map(str::to_owned),
        krate: fields.krate.map(str::to_owned),
        version: fields.version.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fatbin_layout::Arch;
    use std::path::Path;

    fn slot(arch: Arch, features: &[&str], libc: Libc) -> SlotInfo {
        SlotInfo {
            target: "x86_64-unknown-linux-musl".into(),
            arch,
            bits: arch.bits(),
            endian: arch.endian(),
            glibc: (libc == Libc::Glibc).then_some(GlibcVersion {
                major: 2,
                minor: 34,
            }),
            libc,
            cpu: Some("x86-64-v3".into()),
            features: features.iter().map(|f| f.to_string()).collect(),
            size: 594984,
            sha256: "3d22a11adb379a90c558fa1b600e07e088050cde72c42463b2583bba3a235fc7".into(),
            file: None,
            krate: Some("probe".into()),
            version: Some("0.3.1".into()),
        }
    }

    fn sample() -> Manifest {
        let mut m = Manifest::new("probe");
        m.slots.insert(
            "x86_64-v3".parse().unwrap(),
            slot(
                Arch::X86_64,
                &["avx2", "sse4.2", "crt-static"],
                Libc::Static,
            ),
        );
        m.slots.insert(
            "x86_64".parse().unwrap(),
            slot(Arch::X86_64, &[], Libc::Glibc),
        );
        m.slots.get_mut(&"x86_64-v3".parse().unwrap()).unwrap().file =
            Some("x86_64-v3.3d22a11adb379a90".into());
        let mut bare = slot(Arch::S390x, &[], Libc::Musl);
        bare.krate = None;
        bare.version = None;
        bare.cpu = None;
        bare.target = String::new();
        m.slots.insert("s390x".parse().unwrap(), bare);
        m
    }

    #[test]
    fn reads_what_fatbin_writes_like_the_full_parser() {
        let text = sample().to_toml();
        let full = Manifest::parse(&text, Path::new("m")).unwrap();
        assert_eq!(parse(&text), Some(full));
        let empty = Manifest::new("empty").to_toml();
        if let Some(m) = parse(&empty) {
            assert_eq!(m, Manifest::parse(&empty, Path::new("m")).unwrap());
        }
    }

    #[test]
    fn gives_up_on_anything_else() {
        let text = sample().to_toml();
        let variants = [
            text.replace("format = 1", "format = 2"),
            text.replace("format = 1", "format = 01"),
            text.replace("sha256 = \"3d", "sha256 = \"3D"),
            text.replace("arch = \"s390x\"", "arch = \"aarch64\""),
            text.replace("bits = 64", "bits = 32"),
            text.replace("libc = \"musl\"", "libc = \"bionic\""),
            text.replace("program = \"probe\"", "program = \"-probe\""),
            text.replace("program = \"probe\"", "program = \"pro\\u0062e\""),
            text.replace("size = 594984", "size = 594984 # bytes"),
            text.replace("size = 594984", "size = 594_984"),
            text.replace("[slots.s390x]", "[slots.\"s390x\"]"),
            text.replace("[slots.s390x]", "[slots.x86_64]"),
            text.replace(
                "version = \"0.3.1\"",
                "version = \"0.3.1\"\nversion = \"0.3.2\"",
            ),
            text.replace("version = \"0.3.1\"", "colour = \"blue\""),
            text.replace("features = []", "features = [\n]"),
            text.replace("features = []", "features = [1]"),
            text.replace("x86_64-v3.3d22", "x86_64.3d22"),
            text.replace(
                "x86_64-v3.3d22a11adb379a90",
                "../x86_64-v3.3d22a11adb379a90",
            ),
            text.replace("endian = \"little\"", "endian = 'little'"),
            format!("{text}\n[other]\n"),
            String::from("\u{0}garbage"),
            String::new(),
        ];
        for v in variants {
            assert_ne!(v, text);
            assert_eq!(parse(&v), None, "accepted:\n{v}");
        }
    }
}
