//! Deciding how a request runs: a native slot, a slot under qemu, or another node.
//!
//! A forced slot (`--arch`, `FATBIN_ARCH`) runs natively when the host can run it, else under
//! qemu. Otherwise the best native slot wins; when there is none, the fallbacks run in the
//! order `FATBIN_FALLBACK` gives (default `slurm,nodes,qemu`; routes that are not configured
//! are skipped). A route that runs a slot here is
//! only chosen once the slot and its directories pass the checks of [`check`].
//!
//! [`decide`] is the only place that decides: `run` and every shim call execute its
//! [`Decision`], and `fatbin which --explain` prints the same one.

use std::fmt::Write as _;
use std::path::PathBuf;

use fatbin_layout::{Layout, Manifest, SlotName};

use crate::check;
use crate::error::{shown, Error, Result};
use crate::host::Host;
use crate::qemu;
use crate::select::{self, emulation_order, Candidate, Fit};

/// The fallback order and forced-slot variables (`fatbin_core::env`).
pub use fatbin_core::env::{ARCH_VAR, FALLBACK_VAR};
/// What to try when no slot runs natively (`fatbin_core::fallback`, whose grammar the fast
/// launcher applies too).
pub use fatbin_core::fallback::Fallback;

/// The migration engine of a fallback that migrates.
pub(crate) fn engine(fallback: Fallback) -> Option<fatbin_migrate::Engine> {
    match fallback {
        Fallback::Slurm => Some(fatbin_migrate::Engine::Slurm),
        Fallback::Nodes => Some(fatbin_migrate::Engine::Ssh),
        Fallback::Qemu => None,
    }
}

/// The fallback order from `FATBIN_FALLBACK`: comma-separated `slurm`, `nodes` and `qemu`;
/// `none` or an empty value for no fallback at all.
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
            "{FALLBACK_VAR} is not UTF-8; use e.g. `slurm,nodes,qemu`"
        ))
    })?;
    match fatbin_core::fallback::parse(value) {
        Ok(order) => Ok(order.iter().collect()),
        Err(other) => Err(Error::Usage(format!(
            "{FALLBACK_VAR}: unknown fallback `{other}` (use a comma-separated list of \
             `slurm`, `nodes` and `qemu`, or `none`)"
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

/// How the request will run: the route `run` takes and `which` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Exec the slot's file, checked (see [`check`]).
    Native { slot: SlotName, path: PathBuf },
    /// Exec the emulator with the slot's file, checked.
    Emulate {
        slot: SlotName,
        qemu: PathBuf,
        path: PathBuf,
    },
    /// Run the request on another node through this engine ([`fatbin_migrate`]).
    Migrate(fatbin_migrate::Engine),
}

impl Route {
    /// The local slot this route runs, if it runs one here.
    pub(crate) fn slot(&self) -> Option<SlotName> {
        match self {
            Route::Native { slot, .. } | Route::Emulate { slot, .. } => Some(*slot),
            Route::Migrate(_) => None,
        }
    }
}

/// Everything the launcher decided about one request, and why: made once by [`decide`],
/// executed by `run` (and every shim call) and printed by `fatbin which [--explain]`, so the
/// two can never disagree.
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) host: Host,
    /// Every slot with its verdict (supported, or why not), best first.
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) forced: Option<Forced>,
    /// The fallback order in force (`FATBIN_FALLBACK`).
    pub(crate) fallbacks: Vec<Fallback>,
    /// The route, or why there is none (the error `run` fails with).
    pub(crate) route: Result<Route>,
}

impl Decision {
    /// The program's slots best first: the order migration offers them to nodes.
    pub(crate) fn slots(&self) -> Vec<SlotName> {
        self.candidates.iter().map(|c| c.slot).collect()
    }

    /// Each slot with its verdict, best first: `supported` or `not supported: why`, and
    /// `, chosen` (`, chosen (emulated)`) on the slot the route runs.
    pub(crate) fn verdicts(&self) -> Vec<(SlotName, String)> {
        let chosen = self.route.as_ref().ok().and_then(Route::slot);
        self.candidates
            .iter()
            .map(|c| {
                let mut verdict = match &c.fit {
                    Fit::Native { .. } => "supported".to_owned(),
                    _ => format!("not supported: {}", why_not(&self.host, c)),
                };
                if chosen == Some(c.slot) {
                    verdict.push_str(match &self.route {
                        Ok(Route::Emulate { .. }) => ", chosen (emulated)",
                        _ => ", chosen",
                    });
                }
                (c.slot, verdict)
            })
            .collect()
    }
}

/// Decides how `program` runs on this host: the one place that does. Fails only on a bad
/// setting (`FATBIN_FALLBACK`); a request that cannot run has a decision whose route is the
/// error.
pub(crate) fn decide(
    layout: &Layout,
    program: &str,
    manifest: &Manifest,
    forced: Option<Forced>,
) -> Result<Decision> {
    let host = Host::detect();
    let candidates = select::rank_here(&host, manifest, |slot| {
        layout.file_of(manifest, program, slot)
    });
    let fallbacks = fallbacks()?;
    let inputs = Inputs {
        host: &host,
        layout,
        program,
        manifest,
        candidates: &candidates,
        forced,
        fallbacks: &fallbacks,
    };
    let route = route(&inputs).and_then(|r| checked(&inputs, r));
    Ok(Decision {
        host,
        candidates,
        forced,
        fallbacks,
        route,
    })
}

/// Everything the decision needs.
#[derive(Debug)]
struct Inputs<'a> {
    host: &'a Host,
    layout: &'a Layout,
    program: &'a str,
    manifest: &'a Manifest,
    candidates: &'a [Candidate],
    forced: Option<Forced>,
    fallbacks: &'a [Fallback],
}

/// A slot route that passed the checks made before anything runs from the layout; those
/// failures are the decision too, so `which` reports what `run` would refuse.
fn checked(inp: &Inputs<'_>, route: Route) -> Result<Route> {
    if let Route::Native { slot, path } | Route::Emulate { slot, path, .. } = &route {
        let root_owner = check::check_layout_dirs(inp.layout, inp.program)?;
        check::check_slot(path, inp.program, *slot, root_owner)?;
    }
    if let Route::Migrate(_) = &route {
        // The node runs a file of this layout (shared, or shipped from here): whoever could
        // write the chain here would choose what runs there as the caller, so the local
        // checks come before this route too.
        let root_owner = check::check_layout_dirs(inp.layout, inp.program)?;
        for slot in inp.manifest.slots.keys() {
            let path = inp.layout.file_of(inp.manifest, inp.program, *slot);
            check::check_slot_modes(&path, inp.program, root_owner)?;
        }
    }
    Ok(route)
}

/// The route before the checks, or why there is none.
fn route(inp: &Inputs<'_>) -> Result<Route> {
    if let Some(forced) = inp.forced {
        return decide_forced(inp, forced);
    }
    if let Some(best) = inp.candidates.iter().find(|c| c.is_native()) {
        return Ok(native(inp, best.slot));
    }
    fallback_route(inp)
}

/// The first of the fallbacks that can serve the request, or why none can.
fn fallback_route(inp: &Inputs<'_>) -> Result<Route> {
    for fallback in inp.fallbacks {
        match fallback {
            Fallback::Slurm | Fallback::Nodes => {
                let engine = engine(*fallback).expect("a migrating fallback");
                if can_serve(engine, inp) {
                    return Ok(Route::Migrate(engine));
                }
            }
            Fallback::Qemu => {
                for c in emulation_order(inp.candidates) {
                    if unemulated_features(c).is_some() || missing_loader(inp, c.slot).is_some() {
                        continue;
                    }
                    if let Some(qemu) = qemu::find(c.slot.arch) {
                        return Ok(emulate(inp, c.slot, qemu));
                    }
                }
            }
        }
    }
    Err(nothing_runs(inp))
}

/// Whether a migration route may serve the request: it is configured and, as far as the
/// inventory says without asking any node, something in it runs one of the program's slots.
/// An inventory with no nodes (only settings, or the `[nodes]` left after removing the last
/// one), or with nodes only for other slots, cannot: the next fallback (qemu) gets the request.
/// An inventory that cannot be read is the route's to report (a refused or broken nodes.toml
/// must be seen, not silently replaced by an emulator).
fn can_serve(engine: fatbin_migrate::Engine, inp: &Inputs<'_>) -> bool {
    use fatbin_migrate::nodes::{Inventory, Paths};
    let root = inp.layout.root();
    if !engine.is_configured(root) {
        return false;
    }
    let slots: Vec<SlotName> = inp.candidates.iter().map(|c| c.slot).collect();
    match engine {
        fatbin_migrate::Engine::Ssh => match Inventory::load(&Paths::new(Some(root))) {
            Ok(inventory) => inventory
                .nodes
                .iter()
                .any(|node| node.best_slot(&slots).is_some()),
            Err(_) => true,
        },
        fatbin_migrate::Engine::Slurm => {
            match fatbin_migrate::slurm::load(&Paths::new(Some(root))) {
                // A route without `slots` serves what its nodes' Features name: only the
                // scheduler knows, so it is tried.
                Ok(routes) => routes.iter().any(|r| {
                    r.entry.slots.is_empty() || r.entry.slots.iter().any(|s| slots.contains(s))
                }),
                Err(_) => true,
            }
        }
        _ => true,
    }
}

/// The route of the fallbacks after `failed`, for a migration that failed before the program
/// started (`run` then tries the next; one that may have started it never does).
pub(crate) fn after(
    layout: &Layout,
    program: &str,
    manifest: &Manifest,
    decision: &Decision,
    failed: fatbin_migrate::Engine,
) -> Result<Route> {
    let rest: Vec<Fallback> = decision
        .fallbacks
        .iter()
        .copied()
        .skip_while(|&f| engine(f) != Some(failed))
        .skip(1)
        .collect();
    let inputs = Inputs {
        host: &decision.host,
        layout,
        program,
        manifest,
        candidates: &decision.candidates,
        forced: None,
        fallbacks: &rest,
    };
    fallback_route(&inputs).and_then(|r| checked(&inputs, r))
}

fn native(inp: &Inputs<'_>, slot: SlotName) -> Route {
    let path = inp.layout.file_of(inp.manifest, inp.program, slot);
    Route::Native { slot, path }
}

fn emulate(inp: &Inputs<'_>, slot: SlotName, qemu: PathBuf) -> Route {
    let path = inp.layout.file_of(inp.manifest, inp.program, slot);
    Route::Emulate { slot, qemu, path }
}

fn decide_forced(inp: &Inputs<'_>, forced: Forced) -> Result<Route> {
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
        return Ok(native(inp, c.slot));
    }
    if let Some(missing) = unemulated_features(c) {
        return Err(Error::CannotExecute(format!(
            "{}: slot `{}` (forced by {}) needs {}, which this CPU lacks and qemu-user cannot \
             emulate (it stops at AVX2), so it would die with SIGILL; force a lower x86_64 \
             slot, or run it on a machine with AVX-512",
            inp.program,
            c.slot,
            forced.by,
            missing.join(", ")
        )));
    }
    if let Some(problem) = missing_loader(inp, c.slot) {
        return Err(Error::CannotExecute(format!(
            "{}: slot `{}` (forced by {}) {problem}",
            inp.program, c.slot, forced.by
        )));
    }
    if let Some(qemu) = qemu::find(c.slot.arch) {
        return Ok(emulate(inp, c.slot, qemu));
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

/// Why qemu-user could not start a glibc slot here, when it could not: the program interpreter
/// (`ld.so`) its file names is neither on this host nor in the cross sysroot the emulator is
/// given (`-L`, see qemu.rs), so qemu would only fail with its own terse "Could not open"
/// line. A `QEMU_LD_PREFIX` the user set is trusted, and a file whose interpreter cannot be
/// read is left for the run to report.
fn missing_loader(inp: &Inputs<'_>, slot: SlotName) -> Option<String> {
    let info = inp.manifest.slots.get(&slot)?;
    if info.libc != fatbin_layout::Libc::Glibc || std::env::var_os("QEMU_LD_PREFIX").is_some() {
        return None;
    }
    let interp =
        crate::clib::slot_interpreter(&inp.layout.file_of(inp.manifest, inp.program, slot))
            .ok()?
            .ok()??;
    let arch = slot.arch.info();
    let sysroot = std::path::Path::new(arch.sysroot);
    let in_sysroot = sysroot.join(interp.strip_prefix("/").unwrap_or(&interp));
    if interp.exists() || in_sysroot.exists() {
        return None;
    }
    Some(format!(
        "is linked against glibc and needs its loader {}, which neither this host nor a cross \
         sysroot ({}) has, so qemu cannot start it; install the sysroot (`apt-get install {}` \
         brings Debian's), or set QEMU_LD_PREFIX to a {} sysroot",
        interp.display(),
        sysroot.display(),
        arch.debian_gcc,
        slot.arch
    ))
}

/// The features a slot needs that this CPU lacks and qemu-user cannot emulate either
/// (AVX-512: qemu's x86 emulation stops at AVX2), when there are such: such a slot would
/// only die with SIGILL under the emulator.
fn unemulated_features(c: &Candidate) -> Option<Vec<String>> {
    match &c.fit {
        Fit::MissingFeatures(missing) => {
            let unemulated: Vec<String> = missing
                .iter()
                .filter(|f| f.starts_with("avx512"))
                .cloned()
                .collect();
            (!unemulated.is_empty()).then_some(unemulated)
        }
        _ => None,
    }
}

/// Why a candidate does not run natively, in a few words.
pub fn why_not(host: &Host, c: &Candidate) -> String {
    match &c.fit {
        Fit::Native { .. } => "it does".into(),
        Fit::MissingFeatures(missing) => format!("the CPU lacks {}", missing.join(", ")),
        Fit::CLibrary(why) => why.clone(),
        Fit::ForeignArch => match host.arch {
            Some(h) => format!("{} binaries do not run on {h}", c.slot.arch),
            None => format!("{} binaries do not run on this processor", c.slot.arch),
        },
    }
}

/// The error when no slot runs here and no fallback helps.
fn nothing_runs(inp: &Inputs<'_>) -> Error {
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
    if inp.fallbacks.contains(&Fallback::Qemu) {
        for c in inp.candidates {
            if let Some(problem) = missing_loader(inp, c.slot) {
                let _ = writeln!(m, "  qemu for slot {}: it {problem}", c.slot);
            }
        }
    }
    if inp.fallbacks.is_empty() {
        let _ = writeln!(m, "  fallbacks: none ({FALLBACK_VAR} is empty or `none`)");
    }
    for f in inp.fallbacks {
        let why = match f {
            Fallback::Slurm => format!(
                "no Slurm route configured (`fatbin nodes add NAME --slurm`, in {})",
                shown(&inp.layout.nodes_file())
            ),
            Fallback::Nodes if fatbin_migrate::Engine::Ssh.is_configured(inp.layout.root()) => {
                "no node of the inventory runs any of its slots".to_owned()
            }
            Fallback::Nodes => {
                format!("no nodes configured in {}", shown(&inp.layout.nodes_file()))
            }
            Fallback::Qemu
                if inp
                    .candidates
                    .iter()
                    .any(|c| unemulated_features(c).is_some()) =>
            {
                let avx512: Vec<String> = inp
                    .candidates
                    .iter()
                    .filter(|c| unemulated_features(c).is_some())
                    .map(|c| c.slot.to_string())
                    .collect();
                format!(
                    "qemu-user cannot emulate the AVX-512 that {} needs, and no emulator in \
                     PATH runs another slot",
                    avx512.join(", ")
                )
            }
            Fallback::Qemu => {
                // A slot whose emulator is in PATH was passed over for a reason named above
                // (its loader); saying "no emulator" for it would send the user to install
                // qemu, which they have.
                let (found, absent): (Vec<&Candidate>, Vec<&Candidate>) = inp
                    .candidates
                    .iter()
                    .partition(|c| qemu::find(c.slot.arch).is_some());
                let looked: Vec<String> = absent
                    .iter()
                    .map(|c| format!("qemu-{}-static", c.slot.arch.qemu_name()))
                    .collect();
                if found.is_empty() {
                    format!("no emulator in PATH (looked for {})", looked.join(", "))
                } else {
                    let slots: Vec<String> = found.iter().map(|c| c.slot.to_string()).collect();
                    let mut why = format!(
                        "the emulator in PATH cannot run slot {} (see above)",
                        slots.join(", ")
                    );
                    if !looked.is_empty() {
                        let _ = write!(
                            why,
                            "; no emulator in PATH for the others (looked for {})",
                            looked.join(", ")
                        );
                    }
                    why
                }
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
        Some(Arch::Ppc64) => "powerpc64-unknown-linux-gnu",
        Some(Arch::Ppc) => "powerpc-unknown-linux-gnu",
        Some(Arch::Mips64el) => "mips64el-unknown-linux-muslabi64",
        Some(Arch::Mips) => "mips-unknown-linux-musl",
        Some(Arch::Mipsel) => "mipsel-unknown-linux-musl",
        Some(Arch::Loongarch64) => "loongarch64-unknown-linux-musl",
        Some(Arch::Sparc64) => "sparc64-unknown-linux-gnu",
        Some(Arch::Armv6) => "arm-unknown-linux-gnueabihf",
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use fatbin_layout::{Arch, Endian, Libc, SlotInfo};

    use super::*;

    /// A layout with `prog` whose slots are files holding just an ELF header of their
    /// architecture: enough for every check the decision makes.
    fn layout_with(slots: &[(&str, Arch)]) -> (tempfile::TempDir, Layout, Manifest) {
        let slots: Vec<(&str, Arch, Libc, Option<&str>)> = slots
            .iter()
            .map(|&(name, arch)| (name, arch, Libc::Static, None))
            .collect();
        layout_with_libc(&slots)
    }

    /// [`layout_with`] for slots of a given C library, each 64-bit little-endian slot with a
    /// `PT_INTERP` program header naming its interpreter when one is given.
    fn layout_with_libc(
        slots: &[(&str, Arch, Libc, Option<&str>)],
    ) -> (tempfile::TempDir, Layout, Manifest) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let mut manifest = Manifest::new("prog");
        std::fs::create_dir_all(layout.program_dir("prog")).unwrap();
        for dir in [
            dir.path().to_owned(),
            layout.bin_dir(),
            layout.program_dir("prog"),
        ] {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for (name, arch, libc, interp) in slots {
            let slot: SlotName = name.parse().unwrap();
            let mut header = vec![0x7f, b'E', b'L', b'F'];
            header.push(if arch.bits() == 64 { 2 } else { 1 });
            header.push(if arch.endian() == Endian::Little {
                1
            } else {
                2
            });
            header.resize(18, 0);
            let machine = arch.elf_machine();
            header.extend(match arch.endian() {
                Endian::Little => machine.to_le_bytes(),
                Endian::Big => machine.to_be_bytes(),
            });
            if let Some(interp) = interp {
                // e_phoff, e_phentsize and e_phnum, then the one program header and the path.
                header.resize(64, 0);
                header[32..40].copy_from_slice(&64u64.to_le_bytes());
                header[54..56].copy_from_slice(&56u16.to_le_bytes());
                header[56..58].copy_from_slice(&1u16.to_le_bytes());
                let mut ph = vec![0u8; 56];
                ph[..4].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
                ph[8..16].copy_from_slice(&120u64.to_le_bytes());
                ph[32..40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
                header.extend(ph);
                header.extend(interp.as_bytes());
                header.push(0);
            }
            let path = layout.slot_path("prog", slot);
            std::fs::write(&path, &header).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            manifest.slots.insert(
                slot,
                SlotInfo {
                    target: String::new(),
                    arch: *arch,
                    bits: arch.bits(),
                    endian: arch.endian(),
                    libc: libc.clone(),
                    glibc: None,
                    cpu: None,
                    features: Vec::new(),
                    size: header.len() as u64,
                    sha256: String::new(),
                    file: None,
                    krate: None,
                    version: None,
                },
            );
        }
        (dir, layout, manifest)
    }

    #[test]
    fn the_decision_carries_the_route_and_every_verdict() {
        if Host::detect().arch != Some(Arch::X86_64) {
            return;
        }
        let (_dir, layout, manifest) =
            layout_with(&[("x86_64", Arch::X86_64), ("aarch64", Arch::Aarch64)]);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        let x86: SlotName = "x86_64".parse().unwrap();
        assert_eq!(
            d.route.as_ref().unwrap(),
            &Route::Native {
                slot: x86,
                path: layout.slot_path("prog", x86)
            }
        );
        let verdicts: Vec<String> = d
            .verdicts()
            .iter()
            .map(|(s, v)| format!("{s}: {v}"))
            .collect();
        assert_eq!(verdicts[0], "x86_64: supported, chosen");
        assert!(
            verdicts[1].starts_with("aarch64: not supported: "),
            "{verdicts:?}"
        );
        assert_eq!(
            verdicts[1],
            "aarch64: not supported: aarch64 binaries do not run on x86_64"
        );
        // The order migration offers the slots in: best first.
        assert_eq!(d.slots(), [x86, "aarch64".parse().unwrap()]);
        // A forced slot that is absent: the decision is the error run fails with.
        let forced = parse_forced("riscv64", "--arch").unwrap();
        let d = decide(&layout, "prog", &manifest, Some(forced)).unwrap();
        let e = d.route.as_ref().unwrap_err();
        assert_eq!(e.exit_code(), 127, "{e}");
        assert!(d.verdicts().iter().all(|(_, v)| !v.contains("chosen")));
    }

    /// Regression: `which` skipped the checks `run` makes before exec, so it named a slot
    /// that running the program refused.
    #[test]
    fn a_slot_the_checks_refuse_is_not_the_route() {
        if Host::detect().arch != Some(Arch::X86_64) {
            return;
        }
        let (_dir, layout, manifest) = layout_with(&[("x86_64", Arch::X86_64)]);
        let path = layout.slot_path("prog", "x86_64".parse().unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o775)).unwrap();
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        let e = d.route.as_ref().unwrap_err();
        assert_eq!(e.exit_code(), 126, "{e}");
        assert!(e.to_string().contains("refusing to run"), "{e}");
        assert_eq!(d.verdicts()[0].1, "supported");
    }

    #[test]
    fn fallback_settings() {
        let parse = |v: &str| parse_fallbacks(std::ffi::OsStr::new(v));
        assert_eq!(
            parse("qemu,nodes").unwrap(),
            [Fallback::Qemu, Fallback::Nodes]
        );
        assert_eq!(parse("slurm").unwrap(), [Fallback::Slurm]);
        assert!(parse("none").unwrap().is_empty());
        assert!(parse("").unwrap().is_empty());
        let e = parse("nodes,ftp").unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains("unknown fallback `ftp`"), "{e}");
        use std::os::unix::ffi::OsStrExt;
        let e = parse_fallbacks(std::ffi::OsStr::from_bytes(b"qemu\xff")).unwrap_err();
        assert!(e.to_string().contains("is not UTF-8"), "{e}");
        // Each migrating fallback has its engine, and only those.
        assert_eq!(engine(Fallback::Nodes), Some(fatbin_migrate::Engine::Ssh));
        assert_eq!(engine(Fallback::Slurm), Some(fatbin_migrate::Engine::Slurm));
        assert_eq!(engine(Fallback::Qemu), None);
    }

    /// The variable a test run by [`alone`] finds set.
    const ALONE: &str = "FATBIN_PLAN_TEST_ALONE";

    /// Whether this is the process in which test `name` (of this module) may change the
    /// environment: the first call runs this test binary again for that test alone, with
    /// [`ALONE`] set, asserts it passed and returns false; in that child it returns true. The
    /// environment is the process's, and the other tests read it from their threads.
    fn alone(name: &str) -> bool {
        if std::env::var_os(ALONE).is_some() {
            return true;
        }
        let test = format!("plan::tests::{name}");
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &test, "--test-threads=1", "--nocapture"])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} alone: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        false
    }

    /// An environment where only the test's files count: no user or system inventory, a PATH
    /// of `path` only, no loader prefix.
    fn isolate(config: &std::path::Path, path: &std::path::Path) {
        std::env::set_var("XDG_CONFIG_HOME", config);
        std::env::set_var("FATBIN_SYSTEM_NODES", config.join("none.toml"));
        std::env::set_var("PATH", path);
        std::env::remove_var("QEMU_LD_PREFIX");
        std::env::remove_var(ARCH_VAR);
        std::env::remove_var(FALLBACK_VAR);
    }

    /// A directory in which `qemu-ARCH-static` is found: a file it is enough to find.
    fn emulator_dir(arch: Arch) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let qemu = dir.path().join(format!("qemu-{}-static", arch.qemu_name()));
        std::fs::write(&qemu, "#!/bin/sh\nexit 99\n").unwrap();
        std::fs::set_permissions(&qemu, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, qemu)
    }

    #[test]
    fn settings_from_the_environment() {
        if !alone("settings_from_the_environment") {
            return;
        }
        std::env::remove_var(FALLBACK_VAR);
        assert_eq!(fallbacks().unwrap(), fatbin_core::fallback::DEFAULT);
        std::env::set_var(FALLBACK_VAR, "qemu");
        assert_eq!(fallbacks().unwrap(), [Fallback::Qemu]);
        std::env::set_var(FALLBACK_VAR, "none");
        assert!(fallbacks().unwrap().is_empty());

        std::env::remove_var(ARCH_VAR);
        assert!(forced_from_env().unwrap().is_none());
        std::env::set_var(ARCH_VAR, "");
        assert!(forced_from_env().unwrap().is_none(), "empty is unset");
        std::env::set_var(ARCH_VAR, "aarch64");
        let forced = forced_from_env().unwrap().unwrap();
        assert_eq!(forced.slot, "aarch64".parse().unwrap());
        assert_eq!(forced.by, ARCH_VAR);
        std::env::set_var(ARCH_VAR, "vax");
        assert_eq!(forced_from_env().unwrap_err().exit_code(), 2);
        use std::os::unix::ffi::OsStrExt;
        std::env::set_var(ARCH_VAR, std::ffi::OsStr::from_bytes(b"\xff"));
        let e = forced_from_env().unwrap_err();
        assert!(e.to_string().contains("is not UTF-8"), "{e}");
    }

    /// No slot runs here: the fallbacks in their order, each only when it can serve.
    #[test]
    fn fallbacks_serve_in_order_and_only_when_they_can() {
        if Host::detect().arch != Some(Arch::X86_64)
            || !alone("fallbacks_serve_in_order_and_only_when_they_can")
        {
            return;
        }
        let config = tempfile::tempdir().unwrap();
        let (bin, qemu) = emulator_dir(Arch::Aarch64);
        isolate(config.path(), bin.path());
        let (_dir, layout, manifest) = layout_with(&[("aarch64", Arch::Aarch64)]);
        let arm: SlotName = "aarch64".parse().unwrap();
        let emulated = Route::Emulate {
            slot: arm,
            qemu: qemu.clone(),
            path: layout.slot_path("prog", arm),
        };
        let route = || decide(&layout, "prog", &manifest, None).unwrap().route;

        // No inventory: qemu.
        std::env::set_var(FALLBACK_VAR, "nodes,qemu");
        assert_eq!(route().unwrap(), emulated);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        assert_eq!(
            d.verdicts()[0].1,
            format!(
                "not supported: {}, chosen (emulated)",
                why_not(&d.host, &d.candidates[0])
            )
        );

        // An inventory with only settings, or only nodes for other slots, cannot serve.
        let nodes = layout.nodes_file();
        std::fs::write(&nodes, "[settings]\ndown_for = 10\n").unwrap();
        assert_eq!(route().unwrap(), emulated);
        std::fs::write(
            &nodes,
            "[nodes.rv]\nssh = \"rv.invalid\"\nslots = [\"riscv64\"]\n",
        )
        .unwrap();
        assert_eq!(route().unwrap(), emulated);

        // A node that runs the slot: migration, in the order given.
        std::fs::write(
            &nodes,
            "[nodes.arm]\nssh = \"arm.invalid\"\nslots = [\"aarch64\"]\n",
        )
        .unwrap();
        let ssh = Route::Migrate(fatbin_migrate::Engine::Ssh);
        assert_eq!(route().unwrap(), ssh);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        assert!(
            d.verdicts().iter().all(|(_, v)| !v.contains("chosen")),
            "{:?}",
            d.verdicts()
        );
        // After the migration failed before the program started: the next fallback.
        let next = after(&layout, "prog", &manifest, &d, fatbin_migrate::Engine::Ssh);
        assert_eq!(next.unwrap(), emulated);
        std::env::set_var(FALLBACK_VAR, "qemu,nodes");
        assert_eq!(route().unwrap(), emulated);
        std::env::set_var(FALLBACK_VAR, "nodes");
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        assert_eq!(d.route.as_ref().unwrap(), &ssh);
        let e = after(&layout, "prog", &manifest, &d, fatbin_migrate::Engine::Ssh).unwrap_err();
        assert_eq!(e.exit_code(), 126, "{e}");

        // A Slurm route serves the slots it names, or any when it names none (only the
        // scheduler knows its nodes' Features).
        std::env::set_var(FALLBACK_VAR, "slurm,qemu");
        let slurm = Route::Migrate(fatbin_migrate::Engine::Slurm);
        std::fs::write(&nodes, "[slurm.site]\nslots = [\"riscv64\"]\n").unwrap();
        assert_eq!(route().unwrap(), emulated);
        std::fs::write(&nodes, "[slurm.site]\nslots = [\"riscv64\", \"aarch64\"]\n").unwrap();
        assert_eq!(route().unwrap(), slurm);
        std::fs::write(&nodes, "[slurm.site]\n").unwrap();
        assert_eq!(route().unwrap(), slurm);

        // An inventory that cannot be read is the route's to report, not qemu's to hide.
        std::env::set_var(FALLBACK_VAR, "nodes,qemu");
        std::fs::write(&nodes, "[nodes.arm\n").unwrap();
        assert_eq!(route().unwrap(), ssh);

        // No fallback, or none that helps: why each could not.
        std::fs::remove_file(&nodes).unwrap();
        std::env::set_var(FALLBACK_VAR, "none");
        let e = route().unwrap_err().to_string();
        assert!(e.contains("fallbacks: none"), "{e}");
        assert!(
            e.contains("(e.g. `cargo fatbin install --target x86_64-unknown-linux-musl`)"),
            "{e}"
        );
        std::env::set_var(FALLBACK_VAR, "nodes");
        let e = route().unwrap_err().to_string();
        assert!(e.contains("fallback nodes: no nodes configured in"), "{e}");
        assert!(
            e.contains("slot aarch64: aarch64 binaries do not run on x86_64"),
            "{e}"
        );
        std::fs::write(
            &nodes,
            "[nodes.rv]\nssh = \"rv.invalid\"\nslots = [\"riscv64\"]\n",
        )
        .unwrap();
        let e = route().unwrap_err().to_string();
        assert!(
            e.contains("fallback nodes: no node of the inventory runs any of its slots"),
            "{e}"
        );
        std::fs::remove_file(&nodes).unwrap();
        std::env::set_var("PATH", config.path());
        std::env::set_var(FALLBACK_VAR, "qemu");
        let e = route().unwrap_err().to_string();
        assert!(
            e.contains("fallback qemu: no emulator in PATH (looked for qemu-aarch64-static)"),
            "{e}"
        );
    }

    /// qemu is not chosen for a slot it cannot run: AVX-512 it cannot emulate, or a glibc
    /// slot whose loader is neither here nor in a cross sysroot.
    #[test]
    fn qemu_skips_slots_it_cannot_run() {
        let host = Host::detect();
        if host.arch != Some(Arch::X86_64) || !alone("qemu_skips_slots_it_cannot_run") {
            return;
        }
        let config = tempfile::tempdir().unwrap();
        let (bin, qemu) = emulator_dir(Arch::Aarch64);
        // The x86_64 emulator goes in the same directory.
        let x86_qemu = bin.path().join("qemu-x86_64-static");
        std::fs::copy(&qemu, &x86_qemu).unwrap();
        isolate(config.path(), bin.path());
        std::env::set_var(FALLBACK_VAR, "qemu");
        let arm: SlotName = "aarch64".parse().unwrap();

        let missing = "/nonexistent/ld-linux-aarch64.so.1";
        let (_dir, layout, manifest) =
            layout_with_libc(&[("aarch64", Arch::Aarch64, Libc::Glibc, Some(missing))]);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        let e = d.route.unwrap_err().to_string();
        assert!(e.contains(&format!("needs its loader {missing}")), "{e}");
        // qemu is in PATH: the fallback line does not say it is missing.
        assert!(
            e.contains("fallback qemu: the emulator in PATH cannot run slot aarch64 (see above)"),
            "{e}"
        );
        assert!(!e.contains("no emulator in PATH"), "{e}");
        // The same slot with a loader prefix the user set: tried.
        std::env::set_var("QEMU_LD_PREFIX", config.path());
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        assert_eq!(d.route.unwrap().slot(), Some(arm));
        std::env::remove_var("QEMU_LD_PREFIX");
        // A loader this host has (a multiarch libc installs one) is enough, without a sysroot.
        let here = config.path().join("ld-linux-aarch64.so.1");
        std::fs::write(&here, "").unwrap();
        let (_dir, layout, manifest) = layout_with_libc(&[(
            "aarch64",
            Arch::Aarch64,
            Libc::Glibc,
            Some(here.to_str().unwrap()),
        )]);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        assert_eq!(d.route.unwrap().slot(), Some(arm));

        if host.has_feature("avx512f") {
            return;
        }
        let (_dir, layout, manifest) = layout_with(&[("x86_64-v4", Arch::X86_64)]);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        let e = d.route.unwrap_err().to_string();
        assert!(
            e.contains("qemu-user cannot emulate the AVX-512 that x86_64-v4 needs"),
            "{e}"
        );
        assert!(e.contains("slot x86_64-v4: the CPU lacks avx512"), "{e}");
        // Forced, it is refused for the same reason.
        let forced = parse_forced("x86_64-v4", "--arch").unwrap();
        let d = decide(&layout, "prog", &manifest, Some(forced)).unwrap();
        let e = d.route.unwrap_err();
        assert!(e.to_string().contains("qemu-user cannot emulate"), "{e}");
        // A lower slot qemu can emulate is chosen instead of refusing.
        let (_dir, layout, manifest) =
            layout_with(&[("x86_64-v4", Arch::X86_64), ("aarch64", Arch::Aarch64)]);
        let d = decide(&layout, "prog", &manifest, None).unwrap();
        assert_eq!(d.route.unwrap().slot(), Some(arm));
    }
}
