//! Deciding how a request runs: a native slot, a slot under qemu, or another node.
//!
//! A forced slot (`--arch`, `FATBIN_ARCH`) runs natively when the host can run it, else under
//! qemu. Otherwise the best native slot wins; when there is none, the fallbacks run in the
//! order `FATBIN_FALLBACK` gives (default `nodes,qemu`).

use std::fmt::Write as _;
use std::path::PathBuf;

use fatbin_layout::{Layout, Manifest, SlotName};

use crate::error::{shown, Error, Result};
use crate::host::Host;
use crate::qemu;
use crate::select::{emulation_order, Candidate, Fit};

/// The fallback order and forced-slot variables (`fatbin_core::env`).
pub use fatbin_core::env::{ARCH_VAR, FALLBACK_VAR};
/// What to try when no slot runs natively (`fatbin_core::fallback`, whose grammar the fast
/// launcher applies too).
pub use fatbin_core::fallback::Fallback;

/// The fallback order from `FATBIN_FALLBACK`: comma-separated `nodes` and `qemu`; `none` or
/// an empty value for no fallback at all.
pub fn fallbacks() -> Result<Vec<Fallback>> {
    match std::env::var_os(FALLBACK_VAR) {
        None => Ok(fatbin_core::fallback::DEFAULT.to_vec()),
        Some(value) => parse_fallbacks(&value),
    }
}

/// A `FATBIN_FALLBACK` value: the fallbacks in order, or the usage error.
pub fn parse_fallbacks(value: &std::ffi::OsStr) -> Result<Vec<Fallback>> {
    let value = value.to_str().ok_or_else(|| {
        Error::Usage(format!(
            "{FALLBACK_VAR} is not UTF-8; use e.g. `nodes,qemu`"
        ))
    })?;
    match fatbin_core::fallback::parse(value) {
        Ok(order) => Ok(order.iter().collect()),
        Err(other) => Err(Error::Usage(format!(
            "{FALLBACK_VAR}: unknown fallback `{other}` (use a comma-separated list of \
             `nodes` and `qemu`, or `none`)"
        ))),
    }
}

/// Where a forced slot came from, for messages.
#[derive(Debug, Clone, Copy)]
pub struct Forced {
    pub slot: SlotName,
    pub by: &'static str,
}

/// Parses a forced slot name given by `by` (`--arch` or `FATBIN_ARCH`).
pub fn parse_forced(value: &str, by: &'static str) -> Result<Forced> {
    value
        .parse()
        .map(|slot| Forced { slot, by })
        .map_err(|e| Error::Usage(format!("{by}: {e}")))
}

/// The forced slot from `FATBIN_ARCH`, if set and not empty.
pub fn forced_from_env() -> Result<Option<Forced>> {
    match std::env::var_os(ARCH_VAR).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Some(s) => parse_forced(s, ARCH_VAR).map(Some),
            None => Err(Error::Usage(format!("{ARCH_VAR} is not UTF-8"))),
        },
    }
}

/// How the request will run.
#[derive(Debug, Clone)]
pub enum Route {
    Native(SlotName),
    Emulate { slot: SlotName, qemu: PathBuf },
    Migrate,
}

/// Everything the decision needs.
#[derive(Debug)]
pub struct Inputs<'a, 'm> {
    pub host: &'a Host,
    pub layout: &'a Layout,
    pub program: &'a str,
    pub manifest: &'m Manifest,
    pub candidates: &'a [Candidate<'m>],
    pub forced: Option<Forced>,
    pub fallbacks: &'a [Fallback],
}

/// Decides the route, or says why there is none.
pub fn decide(inp: &Inputs<'_, '_>) -> Result<Route> {
    if let Some(forced) = inp.forced {
        return decide_forced(inp, forced);
    }
    if let Some(best) = inp.candidates.iter().find(|c| c.is_native()) {
        return Ok(Route::Native(best.slot));
    }
    for fallback in inp.fallbacks {
        match fallback {
            Fallback::Nodes if crate::migrate::has_nodes(inp.layout.root()) => {
                return Ok(Route::Migrate)
            }
            Fallback::Qemu => {
                for c in emulation_order(inp.candidates) {
                    if let Some(qemu) = qemu::find(c.slot.arch) {
                        return Ok(Route::Emulate { slot: c.slot, qemu });
                    }
                }
            }
            Fallback::Nodes => {}
        }
    }
    Err(nothing_runs(inp))
}

fn decide_forced(inp: &Inputs<'_, '_>, forced: Forced) -> Result<Route> {
    let Some(c) = inp.candidates.iter().find(|c| c.slot == forced.slot) else {
        return Err(Error::NotFound(format!(
            "{}: has no slot `{}` (forced by {}); slots present: {}",
            inp.program,
            forced.slot,
            forced.by,
            inp.manifest.slot_list()
        )));
    };
    if c.is_native() {
        return Ok(Route::Native(c.slot));
    }
    if let Some(qemu) = qemu::find(c.slot.arch) {
        return Ok(Route::Emulate { slot: c.slot, qemu });
    }
    let q = c.slot.arch.qemu_name();
    Err(Error::CannotExecute(format!(
        "{}: slot `{}` (forced by {}) does not run natively on this host, {}: {}; and no \
         emulator is installed (looked for qemu-{q}-static and qemu-{q} in PATH). Install one \
         with `apt-get install qemu-user-static`, or choose another slot",
        inp.program,
        c.slot,
        forced.by,
        inp.host,
        why_not(inp.host, c)
    )))
}

/// Why a candidate does not run natively, in a few words.
pub fn why_not(host: &Host, c: &Candidate<'_>) -> String {
    match &c.fit {
        Fit::Native { .. } => "it does".into(),
        Fit::MissingFeatures(missing) => format!("the CPU lacks {}", missing.join(", ")),
        Fit::ForeignArch => match host.arch {
            Some(h) => format!("{} binaries do not run on {h}", c.slot.arch),
            None => format!("{} binaries do not run on this processor", c.slot.arch),
        },
    }
}

/// The error when no slot runs here and no fallback helps.
fn nothing_runs(inp: &Inputs<'_, '_>) -> Error {
    let mut m = format!(
        "{}: no slot of this program runs on this host, {}.\n",
        inp.program, inp.host
    );
    if inp.candidates.is_empty() {
        m.push_str("  slots present: none\n");
    }
    for c in inp.candidates {
        let _ = writeln!(m, "  slot {}: {}", c.slot, why_not(inp.host, c));
    }
    if inp.fallbacks.is_empty() {
        let _ = writeln!(m, "  fallbacks: none ({FALLBACK_VAR} is empty or `none`)");
    }
    for f in inp.fallbacks {
        let why = match f {
            Fallback::Nodes => {
                format!("no nodes configured in {}", shown(&inp.layout.nodes_file()))
            }
            Fallback::Qemu => {
                let names: Vec<String> = inp
                    .candidates
                    .iter()
                    .map(|c| format!("qemu-{}-static", c.slot.arch.qemu_name()))
                    .collect();
                format!("no emulator in PATH (looked for {})", names.join(", "))
            }
        };
        let _ = writeln!(m, "  fallback {}: {why}", f.name());
    }
    let _ = write!(
        m,
        "  fix: install a slot for this host (e.g. `cargo fatbin install --target {}`), \
         install qemu-user-static to emulate one, or add a node that can run one to {}",
        suggested_target(inp.host),
        shown(&inp.layout.nodes_file())
    );
    Error::CannotExecute(m)
}

fn suggested_target(host: &Host) -> &'static str {
    use fatbin_layout::Arch;
    match host.arch {
        Some(Arch::X86_64) | None => "x86_64-unknown-linux-musl",
        Some(Arch::Aarch64) => "aarch64-unknown-linux-musl",
        Some(Arch::Riscv64) => "riscv64gc-unknown-linux-gnu",
        Some(Arch::Armv7) => "armv7-unknown-linux-gnueabihf",
        Some(Arch::I686) => "i686-unknown-linux-musl",
        Some(Arch::Ppc64le) => "powerpc64le-unknown-linux-gnu",
        Some(Arch::S390x) => "s390x-unknown-linux-gnu",
    }
}
