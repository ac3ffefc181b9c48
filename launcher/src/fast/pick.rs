//! The fast launcher's decision: which slot of a canonical manifest to run natively, or
//! "ask the full launcher".
//!
//! This answers only the common case, and only when it is sure: the manifest is in the
//! canonical shape (`crate::canonical`) and passes every check the layout library makes, and
//! a slot of the host's own architecture runs here. Anything else (a slot of another
//! architecture, qemu, migration, a feature only std can detect, any doubt) is `None`, and
//! the full launcher decides, so this never decides differently from it; the library's tests
//! compare the two on generated manifests (`tests` below).
//!
//! Core only: compiled into the `no_std` fast launcher and, for those tests, into the
//! library. The tables mirror `fatbin_layout`'s (slot names, architectures, x86-64 levels),
//! which the `no_std` binary cannot link; the tests check that they agree.

use crate::canonical::{self, Value};
use crate::names::program_name_problem;

/// A slot name and the facts the layout implies for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFacts {
    pub name: &'static str,
    /// The architecture's name, as the manifest's `arch` field spells it.
    pub arch: &'static str,
    pub bits: u8,
    pub big_endian: bool,
    /// The ELF `e_machine` of the slot's binaries.
    pub elf_machine: u16,
    /// The x86-64 level, 1 for every baseline slot.
    pub level: u8,
}

const fn slot(name: &'static str, arch: &'static str, bits: u8, machine: u16) -> SlotFacts {
    SlotFacts {
        name,
        arch,
        bits,
        big_endian: false,
        elf_machine: machine,
        level: 1,
    }
}

const fn level(name: &'static str, level: u8) -> SlotFacts {
    SlotFacts {
        level,
        ..slot(name, "x86_64", 64, 62)
    }
}

/// Every slot name of the layout (`fatbin_layout::SlotName`), in the layout's order.
pub const SLOTS: [SlotFacts; 10] = [
    slot("x86_64", "x86_64", 64, 62),
    level("x86_64-v2", 2),
    level("x86_64-v3", 3),
    level("x86_64-v4", 4),
    slot("aarch64", "aarch64", 64, 183),
    slot("riscv64", "riscv64", 64, 243),
    slot("armv7", "armv7", 32, 40),
    slot("i686", "i686", 32, 3),
    slot("ppc64le", "ppc64le", 64, 21),
    SlotFacts {
        big_endian: true,
        ..slot("s390x", "s390x", 64, 22)
    },
];

/// What each x86-64 level adds to the one below (`fatbin_layout::slot`), from v2 up.
pub const LEVEL_FEATURES: [&[&str]; 3] = [
    &["cmpxchg16b", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3"],
    &[
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave",
    ],
    &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
];

/// The chosen slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub slot: &'static SlotFacts,
}

/// The most slots one manifest can hold: one per slot name.
const MAX_SLOTS: usize = SLOTS.len();

/// One slot's table, as far as the decision needs it.
#[derive(Debug, Clone, Copy)]
struct Slot<'t> {
    facts: &'static SlotFacts,
    features: canonical::StrList<'t>,
}

/// The best slot of `text` (the manifest of `program`) that runs natively on a host whose
/// own slots are those of `host_arch`, or `None` when the full launcher must decide. `has`
/// answers whether the host has a target feature (`None`: cannot tell).
pub fn pick(
    text: &str,
    host_arch: &str,
    has: &mut dyn FnMut(&str) -> Option<bool>,
) -> Option<Pick> {
    let slots = read(text)?;
    // Best level first; the first one whose features are all there wins, as in the full
    // launcher's ranking (`select::rank`). Lower levels are not asked about at all.
    let mut candidates: [Option<&Slot<'_>>; MAX_SLOTS] = [None; MAX_SLOTS];
    let mut n = 0;
    for s in slots.iter().flatten().filter(|s| s.facts.arch == host_arch) {
        candidates[n] = Some(s);
        n += 1;
    }
    candidates[..n].sort_unstable_by_key(|s| core::cmp::Reverse(s.map_or(0, |s| s.facts.level)));
    for s in candidates[..n].iter().flatten() {
        if runs_here(s, has)? {
            return Some(Pick { slot: s.facts });
        }
    }
    None
}

/// Whether the host has every feature the slot needs; `None` when it cannot tell.
fn runs_here(s: &Slot<'_>, has: &mut dyn FnMut(&str) -> Option<bool>) -> Option<bool> {
    let level_features = LEVEL_FEATURES[..usize::from(s.facts.level) - 1]
        .iter()
        .flat_map(|l| l.iter().copied());
    for feature in s.features.iter().chain(level_features) {
        if !has(feature)? {
            return Some(false);
        }
    }
    Some(true)
}

/// The slots of a manifest in the canonical shape that passes the layout's checks, indexed
/// like [`SLOTS`]; `None` for anything else.
fn read(text: &str) -> Option<[Option<Slot<'_>>; MAX_SLOTS]> {
    let mut slots: [Option<Slot<'_>>; MAX_SLOTS] = [None; MAX_SLOTS];
    let header = canonical::read(text, |table| {
        let index = SLOTS.iter().position(|s| s.name == table.name)?;
        let mut fields = Fields::default();
        for (key, value) in table.fields() {
            fields.set(key, value)?;
        }
        // A slot named twice is not canonical.
        let slot = fields.finish(&SLOTS[index])?;
        slots[index].replace(slot).is_none().then_some(())
    })?;
    // FORMAT_VERSION; a newer format is the full launcher's to explain.
    if header.format != 1 || program_name_problem(header.program).is_some() {
        return None;
    }
    Some(slots)
}

/// The fields of one `[slots.NAME]` table, each at most once (`quick::Fields`).
#[derive(Debug, Default)]
struct Fields<'t> {
    seen: u16,
    arch: Option<&'t str>,
    bits: Option<u64>,
    endian: Option<&'t str>,
    libc: Option<&'t str>,
    sha256: Option<&'t str>,
    size: bool,
    features: Option<canonical::StrList<'t>>,
}

impl<'t> Fields<'t> {
    fn set(&mut self, key: &str, value: Value<'t>) -> Option<()> {
        const KEYS: [&str; 12] = [
            "target", "arch", "bits", "endian", "libc", "glibc", "cpu", "features", "size",
            "sha256", "crate", "version",
        ];
        let index = KEYS.iter().position(|k| *k == key)?;
        if self.seen & (1 << index) != 0 {
            return None;
        }
        self.seen |= 1 << index;
        match (key, value) {
            ("arch", Value::Str(s)) => self.arch = Some(s),
            ("endian", Value::Str(s)) => self.endian = Some(s),
            ("libc", Value::Str(s)) => self.libc = Some(s),
            ("sha256", Value::Str(s)) => self.sha256 = Some(s),
            ("glibc", Value::Str(s)) => glibc_version_ok(s).then_some(())?,
            ("target" | "cpu" | "crate" | "version", Value::Str(_)) => {}
            ("bits", Value::Int(n)) => self.bits = Some(n),
            ("size", Value::Int(_)) => self.size = true,
            ("features", Value::StrArray(list)) => self.features = Some(list),
            _ => return None,
        }
        Some(())
    }

    /// The slot, when its table is complete and agrees with its name (`Manifest::check`).
    fn finish(self, facts: &'static SlotFacts) -> Option<Slot<'t>> {
        let endian = if facts.big_endian { "big" } else { "little" };
        let consistent = self.arch? == facts.arch
            && self.bits? == u64::from(facts.bits)
            && self.endian? == endian
            && matches!(self.libc?, "static" | "musl" | "glibc" | "other")
            && is_sha256(self.sha256?)
            && self.size;
        consistent.then_some(Slot {
            facts,
            features: self.features.unwrap_or_default(),
        })
    }
}

/// `GlibcVersion::from_str`: `MAJOR[.MINOR]`, each a u16.
fn glibc_version_ok(s: &str) -> bool {
    let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
    major.parse::<u16>().is_ok() && minor.parse::<u16>().is_ok()
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// `FATBIN_FALLBACK` values the full launcher accepts (`plan::fallbacks`): comma-separated
/// `nodes`, `qemu` and `none`. Anything else is its error to report.
pub fn fallback_setting_ok(value: &[u8]) -> bool {
    core::str::from_utf8(value).is_ok_and(|v| {
        v.split(',')
            .map(str::trim)
            .all(|w| matches!(w, "" | "nodes" | "qemu" | "none"))
    })
}

/// Whether a 20-byte ELF header is that of a binary for `slot` (`check::elf_arch`).
pub fn elf_matches(header: &[u8; 20], slot: &SlotFacts) -> bool {
    let bits = match header[4] {
        1 => 32,
        2 => 64,
        _ => return false,
    };
    let machine = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => return false,
    };
    header[..4] == *b"\x7fELF"
        && bits == slot.bits
        && (header[5] == 2) == slot.big_endian
        && machine == slot.elf_machine
}

/// Whether this host has target feature `name`, as the full launcher's `Host::has_feature`
/// answers it, or `None` for names only std's detection knows (then the full launcher asks).
#[derive(Debug, Default)]
pub struct HostFeatures {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    cpu: crate::cpuid::Cpu,
}

impl HostFeatures {
    pub const fn new() -> HostFeatures {
        HostFeatures {
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            cpu: crate::cpuid::Cpu::new(),
        }
    }

    pub fn has(&self, name: &str) -> Option<bool> {
        // Not a CPU feature, but `rustc --print cfg` lists it (host.rs: ALWAYS_SATISFIED).
        if name == "crt-static" {
            return Some(true);
        }
        #[cfg(target_arch = "x86_64")]
        if matches!(name, "x87" | "fxsr" | "sse" | "sse2") {
            return Some(true);
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        return self.cpu.has(name);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
        None
    }
}
