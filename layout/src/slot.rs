//! Slot names: a processor plus an optional CPU level (`x86_64`, `x86_64-v3`, `aarch64`).

use std::fmt;
use std::str::FromStr;

use crate::arch::Arch;

/// The x86-64 micro-architecture levels of the psABI, as Rust target-feature names.
///
/// Each level adds to the one below it. Source: the x86-64 psABI "Micro-architecture levels"
/// table, the same list glibc-hwcaps and rustc's `x86-64-vN` target CPUs use.
const X86_64_LEVEL_FEATURES: [&[&str]; 3] = [
    // x86-64-v2
    &["cmpxchg16b", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3"],
    // x86-64-v3
    &[
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave",
    ],
    // x86-64-v4
    &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
];

/// The highest x86-64 level the layout knows.
pub const MAX_X86_64_LEVEL: u8 = 4;

/// The target features an x86-64 level requires beyond the x86_64 baseline (level 1 = none).
pub fn x86_64_level_features(level: u8) -> impl Iterator<Item = &'static str> {
    let upto = usize::from(level.clamp(1, MAX_X86_64_LEVEL)) - 1;
    X86_64_LEVEL_FEATURES[..upto]
        .iter()
        .flat_map(|f| f.iter().copied())
}

/// The highest x86-64 level whose features are all in `has` (1 when none above the baseline).
pub fn x86_64_level_of(has: impl Fn(&str) -> bool) -> u8 {
    let mut level = 1;
    for features in X86_64_LEVEL_FEATURES {
        if !features.iter().all(|f| has(f)) {
            break;
        }
        level += 1;
    }
    level
}

/// A slot of a fat program: which processor its binary is for, and the CPU level it needs.
///
/// Only x86_64 has levels today (`x86_64-v2` .. `x86_64-v4`); `x86_64` and `x86_64-v1` are the
/// same slot and the former is its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotName {
    pub arch: Arch,
    /// The CPU level, `None` for the architecture's baseline.
    pub level: Option<u8>,
}

impl SlotName {
    pub fn baseline(arch: Arch) -> SlotName {
        SlotName { arch, level: None }
    }

    /// The level as a number, 1 for the baseline.
    pub fn level_number(&self) -> u8 {
        self.level.unwrap_or(1)
    }

    /// Features this slot's level implies beyond the architecture's baseline.
    pub fn level_features(&self) -> Vec<&'static str> {
        match (self.arch, self.level) {
            (Arch::X86_64, Some(level)) => x86_64_level_features(level).collect(),
            _ => Vec::new(),
        }
    }

    /// The rustc target CPU that builds for this slot's level (`x86-64-v3`), if it has one.
    pub fn target_cpu(&self) -> Option<String> {
        match (self.arch, self.level) {
            (Arch::X86_64, Some(level)) => Some(format!("x86-64-v{level}")),
            _ => None,
        }
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            None => f.write_str(self.arch.name()),
            Some(level) => write!(f, "{}-v{level}", self.arch.name()),
        }
    }
}

impl FromStr for SlotName {
    type Err = InvalidSlotName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| InvalidSlotName {
            name: s.to_owned(),
            why: why.to_owned(),
        };
        if let Ok(arch) = s.parse::<Arch>() {
            return Ok(SlotName::baseline(arch));
        }
        let (arch, level) = s
            .rsplit_once("-v")
            .ok_or_else(|| invalid("not an architecture name"))?;
        let arch: Arch = arch
            .parse()
            .map_err(|_| invalid("not an architecture name"))?;
        if arch != Arch::X86_64 {
            return Err(invalid("only x86_64 slots take a level suffix"));
        }
        let level: u8 = match level.parse() {
            Ok(n) if (2..=MAX_X86_64_LEVEL).contains(&n) && !level.starts_with('0') => n,
            _ => {
                return Err(invalid(
                    "the level must be v2, v3 or v4 (the baseline is `x86_64`)",
                ))
            }
        };
        Ok(SlotName {
            arch,
            level: Some(level),
        })
    }
}

impl serde::Serialize for SlotName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SlotName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A slot name that is not `ARCH` or `x86_64-vN`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid slot name `{name}`: {why} (slots: x86_64, x86_64-v2, x86_64-v3, x86_64-v4, aarch64, riscv64, armv7, i686, ppc64le, s390x)")]
pub struct InvalidSlotName {
    pub name: String,
    pub why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "x86_64",
            "x86_64-v2",
            "x86_64-v3",
            "x86_64-v4",
            "aarch64",
            "s390x",
        ] {
            assert_eq!(name.parse::<SlotName>().unwrap().to_string(), name);
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [
            "",
            "x86_64-v1",
            "x86_64-v5",
            "x86_64-v03",
            "aarch64-v2",
            "intel",
            "x86_64-",
        ] {
            assert!(name.parse::<SlotName>().is_err(), "{name} accepted");
        }
    }

    #[test]
    fn levels_accumulate_features() {
        let v3: Vec<_> = x86_64_level_features(3).collect();
        assert!(v3.contains(&"sse4.2") && v3.contains(&"avx2") && !v3.contains(&"avx512f"));
        assert_eq!(x86_64_level_features(1).count(), 0);
        assert_eq!(x86_64_level_of(|f| v3.contains(&f)), 3);
        assert_eq!(x86_64_level_of(|_| false), 1);
    }
}
