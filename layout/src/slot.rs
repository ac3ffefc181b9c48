//! Slot names: a processor plus an optional CPU level (`x86_64`, `x86_64-v3`, `aarch64`).
//!
//! The naming rule is `fatbin_core::slot`'s; [`SlotName`] is the layout's serialisable form
//! of its `Slot`.

use std::fmt;
use std::str::FromStr;

use crate::arch::Arch;
pub use fatbin_core::slot::{InvalidSlotName, Slot};

/// The highest x86-64 level the layout knows.
pub const MAX_X86_64_LEVEL: u8 = Arch::X86_64.max_level();

/// The target features an x86-64 level requires beyond the x86_64 baseline (level 1 = none).
pub fn x86_64_level_features(level: u8) -> impl Iterator<Item = &'static str> {
    Arch::X86_64.level_features(level)
}

/// The highest x86-64 level whose features are all in `has` (1 when none above the baseline).
pub fn x86_64_level_of(has: impl Fn(&str) -> bool) -> u8 {
    Arch::X86_64.level_of(has)
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
        self.arch.level_features(self.level_number()).collect()
    }

    /// The rustc target CPU that builds for this slot's level (`x86-64-v3`), if it has one.
    pub fn target_cpu(&self) -> Option<String> {
        match (self.arch, self.level) {
            (Arch::X86_64, Some(level)) => Some(format!("x86-64-v{level}")),
            _ => None,
        }
    }
}

impl From<Slot> for SlotName {
    fn from(slot: Slot) -> SlotName {
        SlotName {
            arch: slot.arch,
            level: slot.level,
        }
    }
}

impl From<SlotName> for Slot {
    fn from(slot: SlotName) -> Slot {
        Slot {
            arch: slot.arch,
            level: slot.level,
        }
    }
}

impl fmt::Display for SlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Slot::from(*self).fmt(f)
    }
}

impl FromStr for SlotName {
    type Err = InvalidSlotName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slot::parse(s).map(SlotName::from)
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

#[cfg(test)]
mod tests {
    //! The naming rule itself is tested once, in `fatbin_core::slot`; here only that the
    //! layout's form follows it, both ways.
    use super::*;

    #[test]
    fn slot_names_are_cores_slots() {
        for slot in Slot::all() {
            let name = slot.to_string();
            let parsed: SlotName = name.parse().unwrap();
            assert_eq!(Slot::from(parsed), slot);
            assert_eq!(SlotName::from(slot).to_string(), name);
        }
        for name in ["", "x86_64-v1", "aarch64-v2", "intel"] {
            assert_eq!(
                name.parse::<SlotName>().unwrap_err(),
                Slot::parse(name).unwrap_err()
            );
        }
    }
}
