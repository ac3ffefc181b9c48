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
    /// A glibc floor (`x86_64-unknown-linux-gnu.2.17`): zig links against that glibc.
    #[serde(default)]
    pub(crate) glibc: Option<String>,
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
        let (triple, glibc) = crate::toolchain::zig::split_glibc_floor(triple).map_err(bad)?;
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
        if let Some(why) = abi_without_a_slot(triple) {
            return Err(bad(why));
        }
        if Arch::from_triple(triple).is_none() {
            return Err(bad(
                "its processor has no slot in the layout (known: x86_64, aarch64, riscv64gc, armv7, \
                 thumbv7neon, i686, powerpc64le, s390x, powerpc64, powerpc, mips64el, mips, mipsel, \
                 loongarch64, sparc64, arm)",
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
            glibc: glibc.map(str::to_owned),
        })
    }
}

/// Why a triple whose processor has a slot still cannot fill it: its ABI differs from the
/// one every binary of that slot shares (the slot is named by processor alone, so two ABIs
/// in one slot would let the launcher run a binary the host's loader cannot).
fn abi_without_a_slot(triple: &str) -> Option<&'static str> {
    let env = triple.rsplit('-').next().unwrap_or("");
    if env.starts_with("android") {
        return Some(
            "Android's libc (bionic) and loader are not a Linux distribution's; \
             fat programs hold glibc or musl binaries (use a *-linux-gnu or *-linux-musl triple)",
        );
    }
    if env.ends_with("x32") {
        return Some(
            "the x32 ABI (32-bit pointers on x86_64) has no slot: x86_64 slots hold 64-bit \
             binaries and many kernels lack x32 support (use x86_64-* or i686-*)",
        );
    }
    if env.ends_with("abin32") {
        return Some("the MIPS n32 ABI has no slot (mips64el slots hold n64 binaries)");
    }
    let arm = matches!(Arch::from_triple(triple), Some(Arch::Armv7 | Arch::Armv6));
    if arm && env.ends_with("eabi") {
        return Some(
            "soft-float Arm (*eabi) has no slot: the armv7 and armv6 slots hold hard-float \
             binaries (use armv7-unknown-linux-gnueabihf or -musleabihf)",
        );
    }
    None
}

/// Features an Arm 32-bit target needs that stable rustc's `--print cfg` does not show:
/// from the triple (`thumbv7neon` has NEON) and from a few known `-C target-cpu` values
/// (what nightly's `--print cfg` adds for them, the kernel-visible part only).
fn arm_features(spec: &TargetSpec) -> &'static [&'static str] {
    if spec.cpu.is_none() && spec.triple.starts_with("thumbv7neon") {
        return &["neon"];
    }
    let neon = spec.triple.starts_with("thumbv7neon");
    match (spec.cpu.as_deref(), neon) {
        (None, _) => &[],
        // ARMv8 cores in AArch32: NEON, VFPv4 and the CRC32 instructions.
        (Some("cortex-a53" | "cortex-a55" | "cortex-a57" | "cortex-a72" | "cortex-a73"), _) => {
            &["neon", "vfp4", "crc"]
        }
        (Some("cortex-a7" | "cortex-a15" | "cortex-a17"), false) => &["vfp4"],
        (Some("cortex-a7" | "cortex-a15" | "cortex-a17"), true) => &["neon", "vfp4"],
        (Some(_), true) => &["neon"],
        (Some(_), false) => &[],
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.triple)?;
        if let Some(floor) = &self.glibc {
            write!(f, ".{floor}")?;
        }
        match &self.cpu {
            Some(cpu) => write!(f, "@{cpu}"),
            None => Ok(()),
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
    let arch = spec.arch();
    let mut features: Vec<String> = tuned
        .difference(baseline)
        .filter(|f| f.as_str() != "crt-static")
        // Only what the launcher can detect on this processor: a feature it cannot see
        // (aarch64's lor, pan, ras, spe, vh: system-level, never used by a program) would
        // keep the slot from ever running natively.
        .filter(|f| arch.info().hwcaps.is_empty() || arch.hwcap_has(f, 0, 0).is_some())
        .cloned()
        .collect();
    if arch == Arch::Armv7 {
        for f in arm_features(spec) {
            if !features.iter().any(|have| have == f) {
                features.push((*f).to_owned());
            }
        }
        features.sort();
    }
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

    /// Triples whose ABI no slot holds are refused, naming the ABI.
    #[test]
    fn abis_without_a_slot_are_refused() {
        for (s, why) in [
            ("x86_64-linux-android", "distribution's; fat programs"),
            ("armv7-linux-androideabi", "Android"),
            ("x86_64-unknown-linux-gnux32", "x32"),
            ("armv7-unknown-linux-gnueabi", "soft-float"),
            ("armv7-unknown-linux-musleabi", "soft-float"),
            ("arm-unknown-linux-gnueabi", "soft-float"),
            ("mips64el-unknown-linux-gnuabin32", "n32"),
        ] {
            let err = s.parse::<TargetSpec>().unwrap_err().to_string();
            assert!(err.contains(why), "{s}: {err}");
        }
        for s in [
            "armv7-unknown-linux-gnueabihf",
            "thumbv7neon-unknown-linux-gnueabihf",
            "arm-unknown-linux-gnueabihf",
            "powerpc64-unknown-linux-gnu",
            "powerpc-unknown-linux-gnu",
            "mips64el-unknown-linux-gnuabi64",
            "x86_64-unknown-linux-gnu",
        ] {
            assert!(s.parse::<TargetSpec>().is_ok(), "{s}");
        }
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// `aarch64@neoverse-n1`: rustc's extra features that have no HWCAP bit (lor, pan, pmuv3,
    /// ras, spe, vh) are not recorded, so the launcher can run the slot natively.
    #[test]
    fn aarch64_cpu_records_only_detectable_features() {
        let spec: TargetSpec = "aarch64-unknown-linux-gnu@neoverse-n1".parse().unwrap();
        let base = set(&["fp", "neon"]);
        let mut tuned = base.clone();
        tuned.extend(set(&[
            "aes", "crc", "dotprod", "dpb", "fp16", "lor", "lse", "pan", "pmuv3", "ras", "rcpc",
            "rdm", "sha2", "spe", "ssbs", "vh",
        ]));
        let plan = slot_for(&spec, &base, &tuned);
        assert_eq!(
            plan.features,
            ["aes", "crc", "dotprod", "dpb", "fp16", "lse", "rcpc", "rdm", "sha2", "ssbs"]
        );
        for f in &plan.features {
            assert!(Arch::Aarch64.hwcap_has(f, 0, 0).is_some(), "{f}");
        }
    }

    /// Arm 32-bit: NEON from thumbv7neon, VFPv4/ARMv8 from known CPUs, though stable rustc
    /// prints none of them; every one is an AT_HWCAP/AT_HWCAP2 feature.
    #[test]
    fn arm_targets_record_the_features_they_need() {
        let none = BTreeSet::new();
        for (s, want) in [
            ("armv7-unknown-linux-gnueabihf", &[][..]),
            ("thumbv7neon-unknown-linux-gnueabihf", &["neon"][..]),
            ("armv7-unknown-linux-gnueabihf@cortex-a7", &["vfp4"][..]),
            (
                "thumbv7neon-unknown-linux-gnueabihf@cortex-a7",
                &["neon", "vfp4"][..],
            ),
            (
                "armv7-unknown-linux-gnueabihf@cortex-a53",
                &["crc", "neon", "vfp4"][..],
            ),
        ] {
            let spec: TargetSpec = s.parse().unwrap();
            let plan = slot_for(&spec, &none, &none);
            assert_eq!(plan.features, want, "{s}");
            assert_eq!(plan.slot.to_string(), "armv7");
            for f in &plan.features {
                assert!(Arch::Armv7.hwcap_has(f, 0, 0).is_some(), "{f}");
            }
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
