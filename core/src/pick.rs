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
