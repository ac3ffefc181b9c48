//! The fast launcher's decision (`fatbin_core::pick`) against this library's: the same
//! feature answers, and never a different slot.
//!
//! The rules both apply (slot names, the ELF check, the fallback grammar, the trust rule)
//! are one copy in `fatbin-core`; what differs is the code that decides (the fast path's
//! canonical reader and first-fit pick against `quick`/`Manifest::parse` and
//! `select::rank`) and the feature detection (lazy CPUID against std's), so those are
//! compared here.

use std::path::Path;

use fatbin_core::features::HostFeatures;
use fatbin_core::pick::pick;
use fatbin_core::Slot;
use fatbin_layout::identify::GlibcVersion;
use fatbin_layout::{Libc, Manifest, SlotInfo, SlotName};
use proptest::prelude::*;

use crate::host::Host;
use crate::select;

fn all_slot_names() -> Vec<SlotName> {
    Slot::all().map(SlotName::from).collect()
}

/// The features of every level of every architecture.
fn level_features() -> impl Iterator<Item = &'static str> {
    Slot::all().flat_map(|s| s.level_features())
}

/// Names the fast launcher may meet in a manifest.
fn feature_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = level_features().collect();
    names.sort_unstable();
    names.dedup();
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    names.extend(fatbin_core::cpuid::names());
    names.extend(["crt-static", "x87", "neon", "lse", "sha3", "made-up"]);
    names
}

#[test]
fn feature_answers_agree_with_the_host() {
    let host = Host::detect();
    let fast = HostFeatures::new();
    for name in feature_names() {
        if let Some(answer) = fast.has(name) {
            assert_eq!(answer, host.has_feature(name), "{name}");
        }
    }
    // The level features must all be answered here, or the fast path would never run them.
    if cfg!(target_arch = "x86_64") {
        for name in level_features() {
            assert!(fast.has(name).is_some(), "{name}");
        }
    }
}

fn slot_info(name: SlotName, features: Vec<String>, libc: Libc) -> SlotInfo {
    let arch = name.arch;
    SlotInfo {
        target: format!("{arch}-unknown-linux-musl"),
        arch,
        bits: arch.bits(),
        endian: arch.endian(),
        glibc: (libc == Libc::Glibc).then_some(GlibcVersion {
            major: 2,
            minor: 17,
        }),
        libc,
        cpu: name.target_cpu(),
        features,
        size: 4096,
        sha256: "0123456789abcdef".repeat(4),
        file: Some(format!("{name}.0123456789abcdef")),
        krate: Some("probe".into()),
        version: Some("1.0.0".into()),
    }
}

/// A manifest as `cargo fatbin install` writes it: the slots picked by `mask`, each with some
/// of the feature names.
fn manifest(mask: u32, features: &[Vec<usize>], glibc: u32) -> Manifest {
    let names = all_slot_names();
    let pool = feature_names();
    let mut m = Manifest::new("probe");
    for (i, name) in names.into_iter().enumerate() {
        if mask & (1 << i) == 0 {
            continue;
        }
        let mut list: Vec<String> = name
            .level_features()
            .iter()
            .map(|f| f.to_string())
            .collect();
        list.extend(features[i].iter().map(|&f| pool[f % pool.len()].to_owned()));
        let libc = if glibc & (1 << i) != 0 {
            Libc::Glibc
        } else {
            Libc::Static
        };
        m.slots.insert(name, slot_info(name, list, libc));
    }
    m
}

/// The slot the full launcher runs natively, if it runs one (its parse, then its ranking), and
/// the file it runs for it.
fn full_choice(text: &str, host: &Host) -> Option<(String, String)> {
    let m = crate::quick::parse(text).or_else(|| Manifest::parse(text, Path::new("m")).ok())?;
    let ranked = select::rank(host, &m);
    let best = ranked.iter().find(|c| c.is_native())?;
    Some((
        best.slot.to_string(),
        m.slots[&best.slot].file_name(best.slot),
    ))
}

fn fast_choice(text: &str, fast: &HostFeatures) -> Option<(String, String)> {
    let host_arch = Host::detect().arch?;
    pick(text, host_arch, &mut |f| fast.has(f)).map(|p| (p.slot.to_string(), p.file.to_owned()))
}

/// Small edits of the kinds a broken or hostile manifest has, to the `which`-th line that
/// starts with one of the manifest's keys (so every field gets its share of edits).
fn mutate(text: &str, edit: usize, which: usize) -> String {
    const KEYS: [&str; 13] = [
        "format", "program", "[slots.", "target", "arch", "bits", "endian", "libc", "glibc",
        "features", "size", "sha256", "file",
    ];
    let key = KEYS[which % KEYS.len()];
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let matching: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with(key))
        .collect();
    let Some(&i) = matching.get(which / KEYS.len() % matching.len().max(1)) else {
        return text.to_owned();
    };
    match edit % 13 {
        // On a `file` line: removed (a manifest from before content files), a path out of
        // the directory, an absolute one, another slot's file.
        10 => lines[i] = lines[i].replace("file = \"", "file = \"../"),
        11 => lines[i] = lines[i].replace("file = \"", "file = \"/tmp/"),
        12 => {
            let other = if lines[i].contains("\"aarch64.") {
                "x86_64"
            } else {
                "aarch64"
            };
            if let Some(dot) = lines[i].find('.') {
                lines[i] = format!("file = \"{other}{}", &lines[i][dot..]);
            }
        }
        0 => {
            lines.remove(i);
        }
        1 => lines.insert(i, lines[i].clone()),
        2 => lines[i] = lines[i].replace("64", "32"),
        3 => lines[i] = lines[i].replace("x86_64", "aarch64"),
        4 => lines[i] = lines[i].replace("f\"", "F\""),
        5 => lines[i] = lines[i].replace(" = ", "="),
        6 => lines[i] = lines[i].replace("1", "2"),
        7 => lines[i] = lines[i].replace('"', "").replace('[', "[\""),
        8 => {
            lines[i] = lines[i]
                .replace("\"probe\"", "\"-probe\"")
                .replace("2.", "x.")
        }
        _ => lines[i].push_str(" # note"),
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Whenever the fast launcher picks a slot, the full launcher reads the same manifest and
    /// picks the same slot; for manifests as fatbin writes them, with features it can answer,
    /// it always decides when a slot of the host's own architecture runs.
    #[test]
    fn picks_what_the_full_launcher_picks(
        mask in 0u32..(1 << fatbin_core::slot::COUNT),
        features in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..3), fatbin_core::slot::COUNT),
        glibc in 0u32..(1 << fatbin_core::slot::COUNT),
        edits in proptest::collection::vec((0usize..13, 0usize..260), 0..3),
    ) {
        let host = Host::detect();
        let fast = HostFeatures::new();
        let m = manifest(mask, &features, glibc);
        let mut text = m.to_toml();
        let written = edits.is_empty();
        for (edit, at) in edits {
            text = mutate(&text, edit, at);
        }
        let full = full_choice(&text, &host);
        match fast_choice(&text, &fast) {
            Some(slot) => prop_assert_eq!(Some(slot), full, "{}", text),
            None if written => {
                let own_arch = host.arch.map(|a| a.name());
                let all_answered = m.slots.values().all(|s| {
                    s.features.iter().all(|f| fast.has(f).is_some())
                });
                let full_slot = full.as_ref().map(|(slot, _)| slot.as_str());
                let full_own = full_slot.and_then(|s| {
                    Slot::parse(s).ok().map(|s| Some(s.arch.name()) == own_arch)
                });
                // A glibc slot's fit depends on the node's C library: the full launcher's call.
                let full_glibc = full_slot.is_some_and(|s| {
                    m.slots.iter().any(|(n, i)| n.to_string() == s && i.libc == Libc::Glibc)
                });
                prop_assert!(
                    !(all_answered && full_own == Some(true) && !full_glibc),
                    "the fast path gave up on a plain manifest:\n{}", text
                );
            }
            None => {}
        }
    }
}
