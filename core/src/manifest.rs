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
}
