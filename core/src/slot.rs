//! Slot names: a processor plus an optional CPU level (`x86_64`, `x86_64-v3`, `aarch64`).
//!
//! A slot is `ARCH` (the baseline) or `ARCH-vN` for a level 2..=N of an architecture whose
//! row in the processor table lists levels (today x86_64's psABI levels). `x86_64-v1` is
//! not a name: the baseline has one name only, so one binary has one slot.

use core::fmt;

use crate::arch::{write_list, Arch};
use crate::text::Short;

/// A slot of a fat program: which processor its binary is for, and the CPU level it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub arch: Arch,
    /// The CPU level, `None` for the architecture's baseline.
    pub level: Option<u8>,
}

/// How many slot names there are: one per architecture and one per level above a baseline.
pub const COUNT: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < crate::arch::ARCHES.len() {
        n += 1 + crate::arch::ARCHES[i].levels.len();
        i += 1;
    }
    n
};

impl Slot {
    pub const fn baseline(arch: Arch) -> Slot {
        Slot { arch, level: None }
    }

    /// The level as a number, 1 for the baseline.
    pub const fn level_number(&self) -> u8 {
        match self.level {
            Some(level) => level,
            None => 1,
        }
    }

    /// Features this slot's level implies beyond the architecture's baseline.
    pub fn level_features(&self) -> impl Iterator<Item = &'static str> {
        self.arch.level_features(self.level_number())
    }

    /// Every slot name, in the order of the table (each baseline, then its levels upwards),
    /// which is also the order `Ord` sorts them in.
    pub fn all() -> impl Iterator<Item = Slot> {
        Arch::ALL.into_iter().flat_map(|arch| {
            core::iter::once(Slot::baseline(arch)).chain((2..=arch.max_level()).map(move |l| {
                Slot {
                    arch,
                    level: Some(l),
                }
            }))
        })
    }

    /// The slot's position in [`Slot::all`], for tables indexed by slot.
    pub fn index(&self) -> usize {
        let before: usize = Arch::ALL[..self.arch as usize]
            .iter()
            .map(|a| usize::from(a.max_level()))
            .sum();
        before + usize::from(self.level_number()) - 1
    }

    /// Parses a slot name.
    pub fn parse(s: &str) -> Result<Slot, InvalidSlotName> {
        let invalid = |why: &'static str| InvalidSlotName {
            name: Short::new(s),
            why,
        };
        if let Ok(arch) = s.parse::<Arch>() {
            return Ok(Slot::baseline(arch));
        }
        // `ARCH-vN`, split at the last `-v` (by bytes: a `str` pattern search would add a
        // kilobyte of searcher code to the fast launcher).
        let at = s
            .as_bytes()
            .windows(2)
            .rposition(|w| w == b"-v")
            .ok_or_else(|| invalid("not an architecture name"))?;
        let (arch, level) = (&s[..at], &s[at + 2..]);
        let arch: Arch = arch
            .parse()
            .map_err(|_| invalid("not an architecture name"))?;
        if arch.max_level() == 1 {
            return Err(invalid("only x86_64 slots take a level suffix"));
        }
        match level.parse::<u8>() {
            Ok(n) if (2..=arch.max_level()).contains(&n) && !level.starts_with('0') => Ok(Slot {
                arch,
                level: Some(n),
            }),
            _ => Err(invalid(
                "the level must be v2, v3 or v4 (the baseline is `x86_64`)",
            )),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.level {
            None => f.write_str(self.arch.name()),
            Some(level) => write!(f, "{}-v{level}", self.arch.name()),
        }
    }
}

impl core::str::FromStr for Slot {
    type Err = InvalidSlotName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Slot::parse(s)
    }
}

/// A slot name that is not `ARCH` or `ARCH-vN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSlotName {
    pub name: Short,
    pub why: &'static str,
}

impl fmt::Display for InvalidSlotName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid slot name `{}`: {} (slots: ",
            self.name, self.why
        )?;
        let mut names = [Short::new(""); COUNT];
        for (name, slot) in names.iter_mut().zip(Slot::all()) {
            *name = Short::from_display(&slot);
        }
        write_list(f, names.iter().map(Short::as_str))?;
        f.write_str(")")
    }
}

impl core::error::Error for InvalidSlotName {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn names_round_trip() {
        for slot in Slot::all() {
            let name = slot.to_string();
            assert_eq!(Slot::parse(&name), Ok(slot));
        }
        for name in [
            "x86_64",
            "x86_64-v2",
            "x86_64-v3",
            "x86_64-v4",
            "aarch64",
            "s390x",
        ] {
            assert_eq!(Slot::parse(name).unwrap().to_string(), name);
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
            assert!(Slot::parse(name).is_err(), "{name} accepted");
        }
        assert_eq!(
            Slot::parse("intel").unwrap_err().to_string(),
            "invalid slot name `intel`: not an architecture name (slots: x86_64, x86_64-v2, \
             x86_64-v3, x86_64-v4, aarch64, riscv64, armv7, i686, ppc64le, s390x, ppc64, ppc, \
             mips64el, mips, mipsel, loongarch64, sparc64, armv6)"
        );
    }

    #[test]
    fn all_is_sorted_and_indexed() {
        let all: Vec<Slot> = Slot::all().collect();
        assert_eq!(all.len(), COUNT);
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        for (i, slot) in all.iter().enumerate() {
            assert_eq!(slot.index(), i, "{slot}");
        }
    }
}
