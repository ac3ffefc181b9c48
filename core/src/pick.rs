//! The fast launcher's decision: which slot of a canonical manifest to run natively, or
//! "ask the full launcher".
//!
//! This answers only the common case, and only when it is sure: the manifest is in the
//! canonical shape ([`crate::canonical`]) and passes every rule the layout applies, and a
//! slot of the host's own architecture runs here. Anything else (a slot of another
//! architecture, qemu, migration, a feature only std can detect, a best slot linked against
//! glibc, whose fit depends on the node's C library, any doubt) is `None`, and
//! the full launcher decides, so this never decides differently from it; the full
//! launcher's tests compare the two on generated manifests (`fast_agrees.rs` there).

use crate::arch::Arch;
use crate::canonical::{self, StrList};
use crate::manifest::FORMAT_VERSION;
use crate::names::program_name_problem;
use crate::slot::{self, Slot};

/// The chosen slot, and the file in the program's directory that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick<'t> {
    pub slot: Slot,
    /// The slot's content file (`SLOT.<hex>`, the manifest's `file`), or the slot's name for a
    /// manifest written before content files.
    pub file: &'t str,
}

/// One slot's table, as far as the decision needs it.
#[derive(Debug, Clone, Copy)]
struct Candidate<'t> {
    slot: Slot,
    /// The file to run (see [`Pick::file`]).
    file: &'t str,
    features: StrList<'t>,
    /// Linked against glibc: whether it runs depends on the node's C library, which only the
    /// full launcher reads.
    glibc: bool,
}

/// The best slot of `text` (a manifest) that runs natively on a host of architecture
/// `host_arch`, or `None` when the full launcher must decide. `has` answers whether the host
/// has a target feature (`None`: cannot tell).
pub fn pick<'t>(
    text: &'t str,
    host_arch: Arch,
    has: &mut dyn FnMut(&str) -> Option<bool>,
) -> Option<Pick<'t>> {
    let slots = read(text)?;
    // Best level first; the first one whose features are all there wins, as in the full
    // launcher's ranking (`select::rank`). Lower levels are not asked about at all.
    for s in slots
        .iter()
        .rev()
        .flatten()
        .filter(|s| s.slot.arch == host_arch)
    {
        if runs_here(s, has)? {
            // The best slot for this CPU needs the node's glibc: the full launcher checks it.
            return (!s.glibc).then_some(Pick {
                slot: s.slot,
                file: s.file,
            });
        }
    }
    None
}

/// Whether the host has every feature the slot needs; `None` when it cannot tell.
fn runs_here(s: &Candidate<'_>, has: &mut dyn FnMut(&str) -> Option<bool>) -> Option<bool> {
    let level_features = s.slot.level_features().map(|f| -> &str { f });
    for feature in s.features.iter().chain(level_features) {
        if !has(feature)? {
            return Some(false);
        }
    }
    Some(true)
}

/// The slots of a canonical manifest that passes the layout's rules, indexed like
/// [`Slot::all`] (so an architecture's levels are in ascending order); `None` for anything
/// else.
fn read(text: &str) -> Option<[Option<Candidate<'_>>; slot::COUNT]> {
    let mut slots: [Option<Candidate<'_>>; slot::COUNT] = [None; slot::COUNT];
    let header = canonical::read(text, |table| {
        let fields = table.slot()?;
        let candidate = Candidate {
            slot: fields.slot,
            file: fields.file.unwrap_or(table.name),
            features: fields.features,
            glibc: fields.libc == "glibc",
        };
        // A slot named twice is not canonical.
        slots[fields.slot.index()]
            .replace(candidate)
            .is_none()
            .then_some(())
    })?;
    // A newer format is the full launcher's to explain.
    if header.format != u64::from(FORMAT_VERSION) || program_name_problem(header.program).is_some()
    {
        return None;
    }
    Some(slots)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    use super::*;

    /// A canonical manifest for `program` with a table per `(slot, libc, features)`.
    fn manifest_named(format: u32, program: &str, slots: &[(&str, &str, &[&str])]) -> String {
        let mut text = format!("format = {format}\nprogram = \"{program}\"\n");
        for (name, libc, features) in slots {
            let slot = Slot::parse(name).unwrap();
            let features: Vec<String> = features.iter().map(|f| format!("\"{f}\"")).collect();
            text += &format!(
                "\n[slots.{name}]\narch = \"{}\"\nbits = {}\nendian = \"little\"\nlibc = \"{libc}\"\n\
                 features = [{}]\nsize = 1\nsha256 = \"{}\"\n",
                slot.arch.name(),
                slot.arch.bits(),
                features.join(", "),
                "0".repeat(64)
            );
        }
        text
    }

    fn manifest(slots: &[(&str, &str, &[&str])]) -> String {
        manifest_named(FORMAT_VERSION, "prog", slots)
    }

    /// A host that has exactly the features of `slot`'s level (and `extra`).
    fn host_of<'a>(slot: &str, extra: &'a [&'a str]) -> impl FnMut(&str) -> Option<bool> + 'a {
        let level: Vec<&'static str> = Slot::parse(slot).unwrap().level_features().collect();
        move |f: &str| Some(level.contains(&f) || extra.contains(&f))
    }

    fn picked(text: &str, arch: Arch, has: &mut dyn FnMut(&str) -> Option<bool>) -> Option<String> {
        pick(text, arch, has).map(|p| format!("{}", p.slot))
    }

    const LEVELS: [(&str, &str, &[&str]); 3] = [
        ("x86_64", "static", &[]),
        ("x86_64-v2", "static", &[]),
        ("x86_64-v3", "static", &[]),
    ];

    #[test]
    fn the_best_level_the_host_runs_wins() {
        let text = manifest(&LEVELS);
        let mut v2 = host_of("x86_64-v2", &[]);
        assert_eq!(
            picked(&text, Arch::X86_64, &mut v2).as_deref(),
            Some("x86_64-v2")
        );
        let mut v3 = host_of("x86_64-v3", &[]);
        assert_eq!(
            picked(&text, Arch::X86_64, &mut v3).as_deref(),
            Some("x86_64-v3")
        );
        let mut baseline = host_of("x86_64", &[]);
        assert_eq!(
            picked(&text, Arch::X86_64, &mut baseline).as_deref(),
            Some("x86_64")
        );
    }

    #[test]
    fn a_slot_s_own_features_count_too() {
        let text = manifest(&[("x86_64", "musl", &[]), ("x86_64-v2", "musl", &["aes"])]);
        let mut without = host_of("x86_64-v2", &[]);
        assert_eq!(
            picked(&text, Arch::X86_64, &mut without).as_deref(),
            Some("x86_64")
        );
        let mut with = host_of("x86_64-v2", &["aes"]);
        assert_eq!(
            picked(&text, Arch::X86_64, &mut with).as_deref(),
            Some("x86_64-v2")
        );
    }

    #[test]
    fn only_slots_of_the_host_s_architecture() {
        let text = manifest(&[("aarch64", "static", &[])]);
        assert_eq!(picked(&text, Arch::X86_64, &mut |_| Some(true)), None);
        assert_eq!(
            picked(&text, Arch::Aarch64, &mut |_| Some(true)).as_deref(),
            Some("aarch64")
        );
        let both = manifest(&[("x86_64", "static", &[]), ("aarch64", "static", &[])]);
        assert_eq!(
            picked(&both, Arch::Aarch64, &mut |_| Some(true)).as_deref(),
            Some("aarch64")
        );
    }

    #[test]
    fn a_feature_it_cannot_tell_is_the_full_launcher_s() {
        let text = manifest(&LEVELS);
        // The best level needs a feature nobody can answer: no guess, not even a lower level.
        let mut unsure = |f: &str| (f != "avx2").then_some(true);
        assert_eq!(picked(&text, Arch::X86_64, &mut unsure), None);
    }

    #[test]
    fn a_best_slot_linked_against_glibc_is_the_full_launcher_s() {
        let text = manifest(&[("x86_64", "static", &[]), ("x86_64-v2", "glibc", &[])]);
        let mut v2 = host_of("x86_64-v2", &[]);
        assert_eq!(picked(&text, Arch::X86_64, &mut v2), None);
        // Only when it is the best: a lower glibc slot below a static best is not asked about.
        let text = manifest(&[("x86_64", "glibc", &[]), ("x86_64-v2", "static", &[])]);
        let mut v2 = host_of("x86_64-v2", &[]);
        assert_eq!(
            picked(&text, Arch::X86_64, &mut v2).as_deref(),
            Some("x86_64-v2")
        );
    }

    #[test]
    fn a_newer_format_or_a_bad_program_name_is_the_full_launcher_s() {
        let slots = [("x86_64", "static", &[][..])];
        let all = &mut |_: &str| Some(true);
        assert!(picked(
            &manifest_named(FORMAT_VERSION, "prog", &slots),
            Arch::X86_64,
            all
        )
        .is_some());
        assert_eq!(
            picked(
                &manifest_named(FORMAT_VERSION + 1, "prog", &slots),
                Arch::X86_64,
                all
            ),
            None
        );
        assert_eq!(
            picked(
                &manifest_named(FORMAT_VERSION, "-prog", &slots),
                Arch::X86_64,
                all
            ),
            None
        );
        assert_eq!(
            picked(
                &manifest_named(FORMAT_VERSION, ".prog", &slots),
                Arch::X86_64,
                all
            ),
            None
        );
    }

    #[test]
    fn a_slot_named_twice_is_not_canonical() {
        let once = manifest(&[("x86_64", "static", &[])]);
        let twice = manifest(&[("x86_64", "static", &[]), ("x86_64", "static", &[])]);
        assert!(picked(&once, Arch::X86_64, &mut |_| Some(true)).is_some());
        assert_eq!(picked(&twice, Arch::X86_64, &mut |_| Some(true)), None);
    }
}
