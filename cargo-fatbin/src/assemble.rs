//! Turning built binaries into fat programs: one atomic layout install per program, the
//! shims, and the report (status lines on stderr, JSON on stdout).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use fatbin_layout::install::SlotOutcome;
use fatbin_layout::{install, write_shim, Layout, NewSlot};
use serde_json::json;

use crate::compile::BuiltBinary;
use crate::error::{Error, Result};
use crate::status::Shell;

/// What the report says about one program.
#[derive(Debug)]
pub struct Installed {
    pub program: String,
    pub changed: bool,
    pub slots: Vec<serde_json::Value>,
}

/// Installs every program of `built` into `layout`.
pub fn install_programs(
    layout: &Layout,
    built: &[BuiltBinary],
    shell: &Shell,
    verb: &str,
) -> Result<Vec<Installed>> {
    let mut programs: BTreeMap<&str, Vec<&BuiltBinary>> = BTreeMap::new();
    for b in built {
        programs.entry(&b.program).or_default().push(b);
    }
    let mut report = Vec::new();
    for (program, binaries) in programs {
        let mut slots: BTreeMap<String, &BuiltBinary> = BTreeMap::new();
        for b in &binaries {
            if let Some(other) = slots.insert(b.plan.slot.to_string(), b) {
                if other.krate != b.krate {
                    return Err(Error::usage(format!(
                        "two packages build a binary named `{program}` ({} and {}); select one with -p",
                        other.krate, b.krate
                    )));
                }
            }
        }
        let new: Vec<NewSlot> = binaries
            .iter()
            .map(|b| NewSlot {
                slot: b.plan.slot,
                source: b.path.clone(),
                target: b.spec.triple.clone(),
                cpu: b.spec.cpu.clone(),
                features: b.plan.features.clone(),
                krate: Some(b.krate.clone()),
                version: Some(b.version.clone()),
            })
            .collect();
        let outcome = install(layout, program, &new)?;
        let names: Vec<String> = outcome.slots.iter().map(|(s, _)| s.to_string()).collect();
        let version = binaries.first().map(|b| b.version.as_str()).unwrap_or("");
        let what = format!(
            "{program} v{version} ({}) in {}",
            names.join(", "),
            layout.program_dir(program).display()
        );
        if outcome.changed {
            shell.status(verb, what);
        } else {
            shell.status("Fresh", what);
        }
        let slots = outcome
            .slots
            .iter()
            .map(|(slot, result)| {
                let b = binaries
                    .iter()
                    .find(|b| b.plan.slot == *slot)
                    .expect("every slot came from a binary");
                json!({
                    "slot": slot.to_string(),
                    "target": b.spec.triple,
                    "cpu": b.spec.cpu,
                    "features": b.plan.features,
                    "path": layout.slot_path(program, *slot),
                    "outcome": match result {
                        SlotOutcome::Installed => "installed",
                        SlotOutcome::Linked { .. } => "linked",
                        SlotOutcome::Unchanged => "unchanged",
                    },
                })
            })
            .collect();
        report.push(Installed {
            program: program.to_owned(),
            changed: outcome.changed,
            slots,
        });
    }
    Ok(report)
}

/// Writes `ROOT/shims/PROG -> fatbin` for every program and `ROOT/shims/fatbin -> launcher`.
/// Without a launcher the program shims are still written (they work once one is linked).
pub fn write_shims(
    layout: &Layout,
    programs: &[String],
    launcher: Option<&Path>,
    shell: &Shell,
) -> Result<()> {
    match launcher {
        Some(launcher) => write_shim(layout, "fatbin", launcher)?,
        None if layout.shim_path("fatbin").symlink_metadata().is_ok() => {}
        None => shell.warn(format!(
            "no `fatbin` launcher found (next to cargo-fatbin or on PATH): {} is not linked yet; pass --launcher PATH or set FATBIN_LAUNCHER",
            layout.shim_path("fatbin").display()
        )),
    }
    for program in programs {
        // The launcher installed as a fat program must not become a shim to itself.
        if program != "fatbin" {
            write_shim(layout, program, Path::new("fatbin"))?;
        }
    }
    Ok(())
}

/// Prints the machine-readable report: one JSON object per program, one line each.
pub fn print_json(layout_root: &Path, report: &[Installed], reason: &str) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for p in report {
        let line = json!({
            "reason": reason,
            "program": p.program,
            "root": layout_root,
            "changed": p.changed,
            "slots": p.slots,
        });
        writeln!(out, "{line}").map_err(Error::io(PathBuf::from("<stdout>")))?;
    }
    Ok(())
}
