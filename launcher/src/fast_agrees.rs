//! The fast launcher's decision (`fast_pick`) against this library's: the same tables, the
//! same feature answers, and never a different slot.

use std::path::Path;

use fatbin_layout::identify::GlibcVersion;
use fatbin_layout::slot::x86_64_level_features;
use fatbin_layout::{Arch, Libc, Manifest, SlotInfo, SlotName};
use proptest::prelude::*;

use crate::fast_pick::{
    elf_matches, fallback_setting_ok, pick, HostFeatures, LEVEL_FEATURES, SLOTS,
};
use crate::host::Host;
use crate::select;

fn all_slot_names() -> Vec<SlotName> {
    let mut names: Vec<SlotName> = Arch::ALL.into_iter().map(SlotName::baseline).collect();
    names.extend((2..=4).map(|level| SlotName {
        arch: Arch::X86_64,
        level: Some(level),
    }));
    names.sort();
    names
}

#[test]
fn slot_tables_mirror_the_layout() {
    let names = all_slot_names();
    assert_eq!(SLOTS.len(), names.len());
    for name in names {
        let text = name.to_string();
        let facts = SLOTS.iter().find(|s| s.name == text).expect("slot missing");
        let arch = name.arch;
        assert_eq!(facts.arch, arch.name(), "{text}");
        assert_eq!(facts.bits, arch.bits(), "{text}");
        assert_eq!(
            facts.big_endian,
            arch.endian() == fatbin_layout::Endian::Big,
            "{text}"
        );
        assert_eq!(facts.elf_machine, arch.elf_machine(), "{text}");
        assert_eq!(facts.level, name.level_number(), "{text}");
    }
    for level in 2..=4u8 {
        let below: Vec<_> = x86_64_level_features(level - 1).collect();
        let mut added: Vec<_> = x86_64_level_features(level)
            .filter(|f| !below.contains(f))
            .collect();
        let mut mirrored = LEVEL_FEATURES[usize::from(level) - 2].to_vec();
        added.sort_unstable();
        mirrored.sort_unstable();
        assert_eq!(mirrored, added, "x86-64-v{level}");
    }
}

#[test]
fn fallback_settings_agree() {
    for value in [
        "",
        "nodes",
        "qemu",
        "none",
        "nodes,qemu",
        " qemu , nodes ",
        ",,",
        "ssh",
        "nodes;qemu",
        "NODES",
        "qemu,",
        "\u{a0}qemu",
        "nodes,bogus",
    ] {
        let full = crate::plan::parse_fallbacks(std::ffi::OsStr::new(value)).is_ok();
        assert_eq!(fallback_setting_ok(value.as_bytes()), full, "{value:?}");
    }
    assert!(!fallback_setting_ok(b"qemu\xff"));
}

proptest! {
    /// The fast launcher's ELF check accepts a header exactly when the full launcher's
    /// (`check::elf_arch`) finds the slot's architecture in it.
    #[test]
    fn elf_checks_agree(header in proptest::array::uniform20(any::<u8>()), slot in 0usize..10,
                        elf in any::<bool>(), machine in 0usize..10) {
        let mut header = header;
        if elf {
            // Mostly real headers: ELF magic, a valid class and byte order, a known machine.
            header[..4].copy_from_slice(b"\x7fELF");
            let facts = &SLOTS[machine];
            header[4] = if facts.bits == 64 { 2 } else { 1 };
            header[5] = if facts.big_endian { 2 } else { 1 };
            let m = if facts.big_endian {
                facts.elf_machine.to_be_bytes()
            } else {
                facts.elf_machine.to_le_bytes()
            };
            header[18..20].copy_from_slice(&m);
        }
        let facts = &SLOTS[slot];
        let arch: Arch = facts.arch.parse().unwrap();
        let full = matches!(crate::check::elf_arch(&header), Some(Ok(a)) if a == arch);
        prop_assert_eq!(elf_matches(&header, facts), full);
    }
}

/// Names the fast launcher may meet in a manifest.
fn feature_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = LEVEL_FEATURES
        .iter()
        .flat_map(|l| l.iter().copied())
        .collect();
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    names.extend(crate::cpuid::names());
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
        for name in LEVEL_FEATURES.iter().flat_map(|l| l.iter()) {
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
        krate: Some("probe".into()),
        version: Some("1.0.0".into()),
    }
}

/// A manifest as `cargo fatbin install` writes it: the slots picked by `mask`, each with some
/// of the feature names.
fn manifest(mask: u16, features: &[Vec<usize>], glibc: u16) -> Manifest {
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

/// The slot the full launcher runs natively, if it runs one: its parse, then its ranking.
fn full_choice(text: &str, host: &Host) -> Option<String> {
    let m = crate::quick::parse(text).or_else(|| Manifest::parse(text, Path::new("m")).ok())?;
    let ranked = select::rank(host, &m);
    let best = ranked.iter().find(|c| c.is_native())?;
    Some(best.slot.to_string())
}

fn fast_choice(text: &str, fast: &HostFeatures) -> Option<&'static str> {
    let host_arch = Host::detect().arch?.name();
    pick(text, host_arch, &mut |f| fast.has(f)).map(|p| p.slot.name)
}

/// Small edits of the kinds a broken or hostile manifest has, to the `which`-th line that
/// starts with one of the manifest's keys (so every field gets its share of edits).
fn mutate(text: &str, edit: usize, which: usize) -> String {
    const KEYS: [&str; 12] = [
        "format", "program", "[slots.", "target", "arch", "bits", "endian", "libc", "glibc",
        "features", "size", "sha256",
    ];
    let key = KEYS[which % KEYS.len()];
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let matching: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with(key))
        .collect();
    let Some(&i) = matching.get(which / KEYS.len() % matching.len().max(1)) else {
        return text.to_owned();
    };
    match edit % 10 {
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
        mask in 0u16..(1 << 10),
        features in proptest::collection::vec(proptest::collection::vec(0usize..64, 0..3), 10),
        glibc in 0u16..(1 << 10),
        edits in proptest::collection::vec((0usize..10, 0usize..240), 0..3),
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
            Some(slot) => prop_assert_eq!(Some(slot.to_owned()), full, "{}", text),
            None if written => {
                let own_arch = host.arch.map(|a| a.name());
                let all_answered = m.slots.values().all(|s| {
                    s.features.iter().all(|f| fast.has(f).is_some())
                });
                let full_own = full.as_deref().and_then(|s| {
                    SLOTS.iter().find(|f| f.name == s).map(|f| Some(f.arch) == own_arch)
                });
                prop_assert!(
                    !(all_answered && full_own == Some(true)),
                    "the fast path gave up on a plain manifest:\n{}", text
                );
            }
            None => {}
        }
    }
}
