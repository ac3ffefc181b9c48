//! Ranking a program's slots for this host, best first, and saying why each one fits or not.
//!
//! Like XNU's `grade_binary` and containerd's platform matcher: a slot of the host's own
//! architecture beats one its kernel also runs (i686 on x86_64), a higher CPU level beats a
//! lower one, and a slot that needs a feature the host lacks is never runnable (it would die
//! of SIGILL later, or worse, compute something else).

use fatbin_layout::{Manifest, SlotInfo, SlotName};

use crate::host::Host;

/// Whether a slot can run here, natively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fit {
    /// Runs natively; `rank` orders architectures (0 = the host's own).
    Native { rank: usize },
    /// Right architecture, but the host lacks these features.
    MissingFeatures(Vec<String>),
    /// An architecture this host's kernel does not run.
    ForeignArch,
    /// The CPU runs it, but this node's C library cannot: why (a glibc slot without its
    /// program interpreter here, or needing a newer glibc than this node's).
    CLibrary(String),
}

/// One slot with its verdict.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub slot: SlotName,
    pub fit: Fit,
}

impl Candidate {
    pub fn is_native(&self) -> bool {
        matches!(self.fit, Fit::Native { .. })
    }
}

/// How well `slot` fits `host`.
pub fn fit(host: &Host, slot: SlotName, info: &SlotInfo) -> Fit {
    let Some(rank) = host.arch_rank(slot.arch) else {
        return Fit::ForeignArch;
    };
    // The manifest lists the level's features too; the slot name alone is checked as well in
    // case a hand-edited manifest forgot them.
    let missing: Vec<String> = info
        .features
        .iter()
        .map(String::as_str)
        .chain(slot.level_features())
        .filter(|f| !host.has_feature(f))
        .map(str::to_owned)
        .fold(Vec::new(), |mut acc, f| {
            if !acc.contains(&f) {
                acc.push(f);
            }
            acc
        });
    if missing.is_empty() {
        Fit::Native { rank }
    } else {
        Fit::MissingFeatures(missing)
    }
}

/// Every slot of `manifest`, best first, as far as the CPU decides: native slots by
/// architecture rank then level (highest first), then the rest in slot order (architecture,
/// then level). The node's C library is not asked (see [`rank_here`]): this is the ranking
/// the fast launcher's `pick` must agree with (`fast_agrees.rs`).
#[cfg(test)]
pub fn rank(host: &Host, manifest: &Manifest) -> Vec<Candidate> {
    rank_with(host, manifest, |_, _| None)
}

/// [`rank`], with the node's C library asked too: a glibc slot the CPU runs is native only
/// when its program interpreter (`PT_INTERP` of the file at `slot_path(slot)`) exists here
/// and belongs to a glibc at least as new as the slot's recorded need.
pub fn rank_here(
    host: &Host,
    manifest: &Manifest,
    slot_path: impl Fn(SlotName) -> std::path::PathBuf,
) -> Vec<Candidate> {
    rank_with(host, manifest, |slot, info| {
        if info.libc != fatbin_layout::Libc::Glibc {
            return None;
        }
        match crate::clib::slot_interpreter(&slot_path(slot)) {
            Ok(Ok(Some(interp))) => crate::clib::glibc_problem(&interp, info.glibc),
            // Static after all: nothing of the node's is needed.
            Ok(Ok(None)) => None,
            // A glibc slot whose interpreter cannot be told is not run on a guess.
            Ok(Err(why)) => Some(why),
            // An unreadable slot file: the checks before exec name it (126 or 127).
            Err(_) => None,
        }
    })
}

fn rank_with(
    host: &Host,
    manifest: &Manifest,
    c_library: impl Fn(SlotName, &SlotInfo) -> Option<String>,
) -> Vec<Candidate> {
    let mut all: Vec<Candidate> = manifest
        .slots
        .iter()
        .map(|(&slot, info)| {
            let fit = match fit(host, slot, info) {
                Fit::Native { rank } => {
                    c_library(slot, info).map_or(Fit::Native { rank }, Fit::CLibrary)
                }
                other => other,
            };
            Candidate { slot, fit }
        })
        .collect();
    // Unstable: keys are unique (slot names), and it needs no 4 KiB scratch buffer on the stack.
    all.sort_unstable_by_key(|c| match c.fit {
        Fit::Native { rank } => (0, rank, std::cmp::Reverse(c.slot.level_number()), c.slot),
        _ => (1, 0, std::cmp::Reverse(0), c.slot),
    });
    all
}

/// The order in which to try slots under emulation: lowest level first (the likeliest to be
/// emulated completely), then architecture order.
pub fn emulation_order(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut rest: Vec<&Candidate> = candidates.iter().filter(|c| !c.is_native()).collect();
    rest.sort_unstable_by_key(|c| (c.slot.level_number(), c.slot.arch));
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_slots_rank_by_level_then_the_rest() {
        let host = Host::detect();
        let mut m = Manifest::new("p");
        let info = |arch: fatbin_layout::Arch, features: &[&str]| SlotInfo {
            target: String::new(),
            arch,
            bits: arch.bits(),
            endian: arch.endian(),
            libc: fatbin_layout::Libc::Static,
            glibc: None,
            cpu: None,
            features: features.iter().map(|f| f.to_string()).collect(),
            size: 1,
            sha256: String::new(),
            file: None,
            krate: None,
            version: None,
        };
        use fatbin_layout::Arch;
        m.slots
            .insert("aarch64".parse().unwrap(), info(Arch::Aarch64, &[]));
        m.slots
            .insert("x86_64".parse().unwrap(), info(Arch::X86_64, &[]));
        m.slots.insert(
            "x86_64-v2".parse().unwrap(),
            info(Arch::X86_64, &["sse4.2"]),
        );
        m.slots
            .insert("i686".parse().unwrap(), info(Arch::I686, &[]));
        m.slots.insert(
            "x86_64-v4".parse().unwrap(),
            info(Arch::X86_64, &["no-such-feature"]),
        );
        if host.arch != Some(Arch::X86_64) {
            return;
        }
        let order: Vec<String> = rank(&host, &m).iter().map(|c| c.slot.to_string()).collect();
        assert_eq!(
            order,
            ["x86_64-v2", "x86_64", "i686", "x86_64-v4", "aarch64"]
        );
        let ranked = rank(&host, &m);
        let missing = match &ranked[3].fit {
            Fit::MissingFeatures(missing) => missing.clone(),
            other => panic!("x86_64-v4 fits as {other:?}"),
        };
        assert!(
            missing.contains(&"no-such-feature".to_owned()),
            "{missing:?}"
        );
        assert_eq!(ranked[4].fit, Fit::ForeignArch);
    }
}
