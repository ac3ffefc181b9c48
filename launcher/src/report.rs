//! The commands that only report: `which` (with `--explain`), `host` and `list`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

use fatbin_layout::shims::orphan_shims;
use fatbin_layout::{Arch, Layout, Manifest};

use crate::error::{shown, Error, Result};
use crate::host::Host;
use crate::invocation::Root;
use crate::plan::{self, Forced, Route};
use crate::qemu;
use crate::select;

/// `fatbin which PROG [--explain]`: the decision `run` would execute ([`plan::decide`]):
/// the chosen slot's path, or every slot with its verdict and the route.
pub(crate) fn which(
    root: &Root,
    program: &str,
    manifest: &Manifest,
    forced: Option<Forced>,
    explain: bool,
) -> Result<i32> {
    let layout = Layout::new(&root.path);
    let decision = plan::decide(&layout, program, manifest, forced)?;
    let mut out = std::io::stdout().lock();
    if !explain {
        let _ = match decision.route? {
            Route::Migrate(engine) => writeln!(
                out,
                "migrate: {program} runs on another node ({})",
                engine.name()
            ),
            route => writeln!(out, "{}", what_runs(program, manifest, &route)),
        };
        return Ok(0);
    }
    let mut text = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(text, "program: {program}");
    let _ = writeln!(
        text,
        "root:    {} ({})",
        shown(&root.path),
        root.source.describe()
    );
    let _ = writeln!(
        text,
        "filesystem: {}",
        fatbin_layout::fstype::describe(&root.path)
    );
    let _ = writeln!(text, "host:    {}", decision.host);
    if let Some(f) = decision.forced {
        let _ = writeln!(text, "forced:  {} (by {})", f.slot, f.by);
    }
    let _ = writeln!(text, "slots, best first:");
    let verdicts = decision.verdicts();
    let width = verdicts
        .iter()
        .map(|(slot, _)| slot.to_string().len())
        .max()
        .unwrap_or(0);
    for (slot, verdict) in &verdicts {
        let _ = writeln!(text, "  {:width$}  {verdict}", slot.to_string());
    }
    if verdicts.is_empty() {
        let _ = writeln!(text, "  (none)");
    }
    let order: Vec<&str> = decision.fallbacks.iter().map(|f| f.name()).collect();
    let _ = writeln!(
        text,
        "fallbacks when no slot runs natively ({}={}):",
        plan::FALLBACK_VAR,
        if order.is_empty() {
            "none".to_owned()
        } else {
            order.join(",")
        }
    );
    // Emulators only where one may be used: the qemu fallback is allowed, or a slot is
    // forced (a forced slot that does not run here is emulated whatever FATBIN_FALLBACK says).
    let may_emulate =
        decision.forced.is_some() || decision.fallbacks.contains(&plan::Fallback::Qemu);
    let mut emulators: Vec<Arch> = decision
        .candidates
        .iter()
        .map(|c| c.slot.arch)
        .filter(|a| may_emulate && decision.host.arch_rank(*a).is_none())
        .collect();
    emulators.sort();
    emulators.dedup();
    for arch in emulators {
        let q = arch.qemu_name();
        let _ = match qemu::find(arch) {
            Some(path) => writeln!(text, "  qemu for {arch}: {}", path.display()),
            None => writeln!(
                text,
                "  qemu for {arch}: none (no qemu-{q}-static or qemu-{q} in PATH)"
            ),
        };
    }
    let _ = out.write_all(text.as_bytes());
    let slots = decision.slots();
    let request = fatbin_migrate::Request {
        root: &root.path,
        program,
        manifest,
        slots: &slots,
        argv0: std::ffi::OsStr::new(program),
        args: &[],
    };
    // Every configured migration route, in the fallback order.
    for engine in decision
        .fallbacks
        .iter()
        .filter_map(|&f| crate::plan::engine(f))
    {
        if engine == fatbin_migrate::Engine::Ssh || engine.is_configured(&root.path) {
            let _ = engine.explain(&request, &mut out);
        }
    }
    let _ = match &decision.route {
        Ok(route) => writeln!(out, "runs: {}", what_runs(program, manifest, route)),
        Err(e) => writeln!(out, "runs: nothing\n{e}"),
    };
    Ok(match &decision.route {
        Ok(_) => 0,
        Err(e) => e.exit_code(),
    })
}

/// What a route executes, as one line: the slot's path, the emulator's command line exactly
/// as `run` builds it (with PROG as argv[0]), or the migration.
fn what_runs(program: &str, manifest: &Manifest, route: &Route) -> String {
    match route {
        Route::Native { path, .. } => shown(path),
        Route::Emulate { slot, qemu, path } => {
            let argv = qemu::argv(
                qemu,
                *slot,
                &manifest.slots[slot],
                Path::new(&shown(path)),
                Some(OsStr::new(program)),
                &[],
            );
            let words: Vec<_> = argv.iter().map(|w| w.to_string_lossy()).collect();
            words.join(" ")
        }
        Route::Migrate(engine) => format!("on another node (migration: {})", engine.name()),
    }
}

/// `fatbin host --slurm-features`: the Features a Slurm node with this processor should carry,
/// comma-separated as `slurm.conf` takes them: the slot names of its own architecture it runs
/// natively, lowest level first (`x86_64,x86_64-v2,x86_64-v3` on an x86-64-v3 CPU).
pub fn slurm_features() -> i32 {
    let host = Host::detect();
    let Some(arch) = host.arch else {
        eprintln!("fatbin: this processor is not one fatbin knows: {host}");
        return fatbin_layout::exit::EXIT_CANNOT_EXECUTE;
    };
    let mut features = vec![arch.to_string()];
    if arch == Arch::X86_64 {
        features.extend((2..=host.x86_64_level()).map(|l| format!("x86_64-v{l}")));
    }
    println!("{}", features.join(","));
    0
}

/// `fatbin host`: the processor, its x86-64 level, usable features and emulators.
pub fn host() -> i32 {
    let host = Host::detect();
    let mut text = String::new();
    use std::fmt::Write as _;
    match host.arch {
        Some(arch) => {
            let _ = writeln!(text, "arch: {arch}");
        }
        None => {
            let _ = writeln!(text, "arch: {host}");
        }
    }
    let level = host.x86_64_level();
    if level > 0 {
        let _ = writeln!(text, "x86-64 level: x86-64-v{level}");
    }
    let mut runs: Vec<String> = Vec::new();
    if let Some(arch) = host.arch {
        for a in std::iter::once(arch).chain(arch.also_runs().iter().copied()) {
            if a == Arch::X86_64 {
                runs.extend((2..=level).rev().map(|l| format!("x86_64-v{l}")));
            }
            runs.push(a.to_string());
        }
    }
    let _ = writeln!(
        text,
        "runs natively: {}",
        if runs.is_empty() {
            "nothing fatbin knows".to_owned()
        } else {
            runs.join(", ")
        }
    );
    let _ = writeln!(text, "features: {}", host.usable_features().join(" "));
    let _ = writeln!(text, "C library: {}", crate::clib::describe(host.arch));
    let emulated: Vec<String> = Arch::ALL
        .iter()
        .filter(|a| host.arch_rank(**a).is_none())
        .filter_map(|a| qemu::find(*a).map(|p| format!("{a} ({})", p.display())))
        .collect();
    let _ = writeln!(
        text,
        "emulates: {}",
        if emulated.is_empty() {
            "nothing (no qemu-user in PATH)".to_owned()
        } else {
            emulated.join(", ")
        }
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    0
}

/// `fatbin list`: every program and its slots, `*` on the one this host would run.
pub fn list(root: &Root) -> Result<i32> {
    let layout = Layout::new(&root.path);
    if !root.path.is_dir() {
        return Err(Error::NotFound(format!(
            "layout root {} ({}) does not exist",
            shown(&root.path),
            root.source.describe()
        )));
    }
    let programs = layout.programs().map_err(Error::from_layout)?;
    // A shim whose program is gone is on PATH and fails: show it with what removes it, as
    // `cargo fatbin list` does (its own path, not the launcher it links to). An unreadable
    // shims/ must not stop the list of programs itself.
    let orphans = orphan_shims(&layout).unwrap_or_default();
    let host = Host::detect();
    let mut lines: Vec<(&str, String)> = Vec::new();
    for orphan in &orphans {
        lines.push((&orphan.program, orphan.listing()));
    }
    for program in &programs {
        match crate::program::read_manifest(&layout, program) {
            Ok(manifest) => {
                let ranked = select::rank_here(&host, &manifest, |slot| {
                    layout.file_of(&manifest, program, slot)
                });
                let best = ranked.iter().find(|c| c.is_native()).map(|c| c.slot);
                let slots: Vec<String> = manifest
                    .slots
                    .keys()
                    .map(|s| {
                        if Some(*s) == best {
                            format!("{s}*")
                        } else {
                            s.to_string()
                        }
                    })
                    .collect();
                lines.push((program, slots.join(" ")));
            }
            Err(e) => lines.push((program, format!("(broken: {e})"))),
        }
    }
    lines.sort_by(|a, b| a.0.cmp(b.0));
    let width = lines.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::new();
    use std::fmt::Write as _;
    for (program, what) in &lines {
        let _ = writeln!(text, "{program:width$}  {what}");
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}
