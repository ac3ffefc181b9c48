//! The manifest's fixed facts and the rules every reader applies to it.
//!
//! The layout's `Manifest::parse` (the full TOML parser), the full launcher's quick reader
//! and the fast launcher's decision all read `ROOT/bin/PROG/fatbin.toml`; the rules here are
//! what makes them read it alike: the format version, the size limit, and what a slot's
//! recorded facts must be for the slot to be believed (see `docs/layout.md`).

use crate::arch::{Arch, Endian};
use crate::slot::Slot;

/// The manifest format the layout writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's file name inside a program directory. It cannot clash with a slot, whose
/// names never contain a dot.
pub const MANIFEST_FILE: &str = "fatbin.toml";

/// Manifests larger than this are refused unread: a real one is a few hundred bytes a slot.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The `libc` values a slot may record.
pub const LIBC_NAMES: [&str; 4] = ["static", "musl", "glibc", "other"];

/// `MAJOR[.MINOR]`, each a u16: a slot's `glibc` field (the highest `GLIBC_x.y` it needs).
pub fn glibc_version(s: &str) -> Option<(u16, u16)> {
    let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// How many hex digits of a slot's sha256 name its content file (`SLOT.<digits>`): 64 bits,
/// so two different binaries of one slot never share a name.
pub const CONTENT_HEX_DIGITS: usize = 16;

/// Whether `file` is the content file name a slot `slot` (its name as written) with this
/// `sha256` must record: `SLOT.` and the first [`CONTENT_HEX_DIGITS`] of the sha256. Only
/// that name is believed, so a manifest cannot point a slot at another slot's file, outside
/// its directory (`/`, `..`) or at the manifest, and a name never holds other content.
pub fn content_file_ok(slot: &str, sha256: &str, file: &str) -> bool {
    let Some(rest) = file.strip_prefix(slot) else {
        return false;
    };
    let Some(digits) = rest.strip_prefix('.') else {
        return false;
    };
    is_sha256(sha256) && digits.len() == CONTENT_HEX_DIGITS && sha256.starts_with(digits)
}

/// The slot part of a file name in a program's directory: `SLOT` for its content file
/// `SLOT.<hex>`, the name itself otherwise (whether that is a slot name is the caller's check).
pub fn slot_part(name: &str) -> &str {
    split_content_name(name).map_or(name, |(slot, _)| slot)
}

/// Where a content file name ends its slot name: `(SLOT, hex digits)` for a name of the
/// shape `SLOT.<CONTENT_HEX_DIGITS lowercase hex>` (the slot name itself is not checked).
pub fn split_content_name(name: &str) -> Option<(&str, &str)> {
    // By bytes at a fixed offset: no pattern search code in the fast launcher.
    let dot = name.len().checked_sub(CONTENT_HEX_DIGITS + 1)?;
    let digits = name.get(dot + 1..)?;
    let hex = name.as_bytes()[dot] == b'.'
        && digits
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    (hex && dot > 0).then(|| (&name[..dot], digits))
}

/// Whether a slot's recorded architecture, width and byte order are those its name implies:
/// a manifest that lies about them would make a launcher pick a binary that cannot run.
pub fn slot_facts_agree(slot: Slot, arch: Arch, bits: u64, endian: Endian) -> bool {
    arch == slot.arch && bits == u64::from(arch.bits()) && endian == arch.endian()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(glibc_version("2.34"), Some((2, 34)));
        assert_eq!(glibc_version("2"), Some((2, 0)));
        assert_eq!(glibc_version("x.1"), None);
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)));
        assert!(!is_sha256("ab"));
        let s = Slot::baseline(Arch::S390x);
        assert!(slot_facts_agree(s, Arch::S390x, 64, Endian::Big));
        assert!(!slot_facts_agree(s, Arch::S390x, 64, Endian::Little));
        assert!(!slot_facts_agree(s, Arch::X86_64, 64, Endian::Little));
    }

    #[test]
    fn content_file_names() {
        let sha = "0123456789abcdef".repeat(4);
        assert!(content_file_ok("x86_64", &sha, "x86_64.0123456789abcdef"));
        for bad in [
            "x86_64",
            "x86_64.",
            "x86_64.0123456789abcde",
            "x86_64.0123456789abcdef0",
            "x86_64.0123456789ABCDEF",
            "x86_64.fedcba9876543210",
            "x86_64-v2.0123456789abcdef",
            "x86_64/0123456789abcdef",
            "../x86_64.0123456789abcdef",
            "x86_64.0123456789abcdef/..",
            "fatbin.toml",
        ] {
            assert!(!content_file_ok("x86_64", &sha, bad), "{bad}");
        }
        assert!(!content_file_ok("x86_64", "short", "x86_64.short"));
        assert_eq!(
            split_content_name("x86_64-v3.0123456789abcdef"),
            Some(("x86_64-v3", "0123456789abcdef"))
        );
        for other in [
            "x86_64",
            "fatbin.toml",
            ".0123456789abcdef",
            "a.0123456789abcdeF",
        ] {
            assert_eq!(split_content_name(other), None, "{other}");
        }
    }

    #[test]
    fn slot_part_is_the_slot_of_a_content_file_and_the_name_otherwise() {
        assert_eq!(slot_part("x86_64-v3.0123456789abcdef"), "x86_64-v3");
        assert_eq!(slot_part("aarch64.fedcba9876543210"), "aarch64");
        for other in ["x86_64", "fatbin.toml", "x86_64.0123", ".0123456789abcdef"] {
            assert_eq!(slot_part(other), other);
        }
    }

    #[test]
    fn the_size_limit_fits_every_slot_and_stays_one_read() {
        // A slot's entry is a few hundred bytes: room for far more slots than the processor
        // table has, and still small enough that readers read it whole into memory.
        let slots = crate::arch::ARCHES.len() as u64 * 4;
        let sensible = slots * 1024..=16 << 20;
        assert!(
            sensible.contains(&MAX_MANIFEST_BYTES),
            "{MAX_MANIFEST_BYTES}"
        );
    }
}
