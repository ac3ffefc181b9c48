//! Targets as the user writes them (`TRIPLE[@CPU]`) and the slot each one fills.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use fatbin_layout::slot::x86_64_level_of;
use fatbin_layout::{Arch, SlotName};

use crate::error::{Error, Result};

/// `x86_64-unknown-linux-musl@x86-64-v3`: a Rust target triple and an optional `-C target-cpu`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub(crate) struct TargetSpec {
    pub(crate) triple: String,
    pub(crate) cpu: Option<String>,
}

impl TargetSpec {
    pub(crate) fn arch(&self) -> Arch {
        Arch::from_triple(&self.triple).expect("checked when parsed")
    }
}

pub(crate) fn is_musl(triple: &str) -> bool {
    triple.contains("-linux-musl")
}

impl FromStr for TargetSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let (triple, cpu) = match s.split_once('@') {
            Some((t, c)) => (t, Some(c)),
            None => (s, None),
        };
        let bad = |why: &str| Error::usage(format!("invalid target `{s}`: {why}"));
        if triple.is_empty()
            || !triple
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(bad(
                "expected TRIPLE or TRIPLE@CPU, e.g. x86_64-unknown-linux-musl@x86-64-v3",
            ));
        }
        if !triple.contains("-linux") {
            return Err(bad(
                "fat programs are for Linux; use a *-linux-gnu or *-linux-musl triple",
            ));
        }
        if Arch::from_triple(triple).is_none() {
            return Err(bad(
                "its processor has no slot in the layout (known: x86_64, aarch64, riscv64gc, armv7, \
                 thumbv7neon, i686, powerpc64le, s390x, powerpc64, powerpc, mips64el, mips, mipsel, \
                 loongarch64, sparc64)",
            ));
        }
        if let Some(cpu) = cpu {
            if cpu.is_empty() || cpu.contains(char::is_whitespace) {
                return Err(bad(
                    "the CPU after `@` must be a rustc target CPU like x86-64-v3",
                ));
            }
        }
        Ok(TargetSpec {
            triple: triple.to_owned(),
            cpu: cpu.map(str::to_owned),
        })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cpu {
            Some(cpu) => write!(f, "{}@{cpu}", self.triple),
            None => f.write_str(&self.triple),
        }
    }
}

/// Parses targets, refusing duplicates.
pub(crate) fn parse_targets<S: AsRef<str>>(specs: &[S]) -> Result<Vec<TargetSpec>> {
    let mut out: Vec<TargetSpec> = Vec::new();
    for s in specs {
        let spec: TargetSpec = s.as_ref().trim().parse()?;
        if !out.contains(&spec) {
            out.push(spec);
        }
    }
    Ok(out)
}

/// The slot a build fills and the CPU features (beyond the triple's baseline) it needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SlotPlan {
    pub(crate) slot: SlotName,
    pub(crate) features: Vec<String>,
}

/// Features `-C target-cpu` adds over the triple's baseline (what rustc's `--print cfg` says),
/// and the slot that implies. `crt-static` is a linking mode, not a CPU feature.
pub(crate) fn slot_for(
    spec: &TargetSpec,
    baseline: &BTreeSet<String>,
    tuned: &BTreeSet<String>,
) -> SlotPlan {
    let features: Vec<String> = tuned
        .difference(baseline)
        .filter(|f| f.as_str() != "crt-static")
        .cloned()
        .collect();
    let arch = spec.arch();
    let level = match arch {
        Arch::X86_64 => {
            let level = x86_64_level_of(|f| tuned.contains(f));
            (level > 1).then_some(level)
        }
        _ => None,
    };
    SlotPlan {
        slot: SlotName { arch, level },
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for s in [
            "x86_64-unknown-linux-musl",
            "x86_64-unknown-linux-musl@x86-64-v3",
            "aarch64-unknown-linux-gnu@neoverse-n1",
        ] {
            assert_eq!(s.parse::<TargetSpec>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_specs_say_why() {
        for (s, why) in [
            ("", "expected TRIPLE"),
            ("x86_64-unknown-linux-musl@", "CPU after"),
            ("x86_64-pc-windows-msvc", "Linux"),
            ("wasm32-unknown-linux-gnu", "no slot"),
        ] {
            let err = s.parse::<TargetSpec>().unwrap_err().to_string();
            assert!(err.contains(why), "{s}: {err}");
        }
    }

    #[test]
    fn level_comes_from_the_features() {
        let spec: TargetSpec = "x86_64-unknown-linux-musl@x86-64-v3".parse().unwrap();
        let base: BTreeSet<String> = ["fxsr", "sse", "sse2", "crt-static"]
            .map(String::from)
            .into();
        let mut tuned = base.clone();
        tuned.extend(fatbin_layout::slot::x86_64_level_features(3).map(String::from));
        let plan = slot_for(&spec, &base, &tuned);
        assert_eq!(plan.slot.to_string(), "x86_64-v3");
        assert!(plan.features.contains(&"avx2".to_owned()));
        assert!(!plan.features.contains(&"crt-static".to_owned()));
    }
}
