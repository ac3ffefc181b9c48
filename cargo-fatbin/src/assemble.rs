//! Turning built binaries into fat programs: one atomic layout install per program, the
//! shims, and the report (status lines on stderr, JSON on stdout).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use fatbin_layout::install::SlotOutcome;
use fatbin_layout::{install, read_shim, write_script_shim, write_shim, Layout, NewSlot, ShimForm};
use serde_json::json;

use crate::error::{Error, Result};
use crate::plan::BuiltBinary;
use crate::status::Shell;

/// What the report says about one program.
#[derive(Debug)]
pub(crate) struct Installed {
    pub(crate) program: String,
    pub(crate) changed: bool,
    pub(crate) slots: Vec<serde_json::Value>,
}

/// Installs every program of `built` into `layout`.
pub(crate) fn install_programs(
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
                let outcome = match result {
                    SlotOutcome::Installed => "installed",
                    SlotOutcome::Linked { .. } => "linked",
                    SlotOutcome::Unchanged => "unchanged",
                };
                slot_json(layout, program, b, outcome)
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

/// The report of a run whose outputs are known to be in place already (see
/// [`crate::plan_cache`]): every program fresh, every slot unchanged, nothing touched.
pub(crate) fn unchanged_report(
    layout: &Layout,
    built: &[BuiltBinary],
    shell: &Shell,
) -> Vec<Installed> {
    let mut programs: BTreeMap<&str, Vec<&BuiltBinary>> = BTreeMap::new();
    for b in built {
        programs.entry(&b.program).or_default().push(b);
    }
    programs
        .into_iter()
        .map(|(program, mut binaries)| {
            binaries.sort_by_key(|b| b.plan.slot);
            let names: Vec<String> = binaries.iter().map(|b| b.plan.slot.to_string()).collect();
            shell.status(
                "Fresh",
                format!(
                    "{program} v{} ({}) in {}",
                    binaries[0].version,
                    names.join(", "),
                    layout.program_dir(program).display()
                ),
            );
            let slots = binaries
                .iter()
                .map(|b| slot_json(layout, program, b, "unchanged"))
                .collect();
            Installed {
                program: program.to_owned(),
                changed: false,
                slots,
            }
        })
        .collect()
}

fn slot_json(layout: &Layout, program: &str, b: &BuiltBinary, outcome: &str) -> serde_json::Value {
    json!({
        "slot": b.plan.slot.to_string(),
        "target": b.spec.triple,
        "cpu": b.spec.cpu,
        "features": b.plan.features,
        "path": layout.slot_path(program, b.plan.slot),
        "outcome": outcome,
    })
}

/// Every file an install of `report` wrote or checked: slots, manifests, and with `shims`
/// the program shims and `ROOT/shims/fatbin`.
pub(crate) fn installed_files(layout: &Layout, report: &[Installed], shims: bool) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in report {
        files.push(layout.manifest_path(&p.program));
        for slot in &p.slots {
            if let Some(path) = slot["path"].as_str() {
                files.push(PathBuf::from(path));
            }
        }
        if shims {
            files.push(layout.shim_path(&p.program));
        }
    }
    if shims {
        files.push(layout.shim_path("fatbin"));
    }
    files
}

/// Writes `ROOT/shims/PROG -> fatbin` for every program and `ROOT/shims/fatbin -> launcher`,
/// or with `script` (or in a ROOT whose `shims/fatbin` already is one) `#!` shims naming the
/// launcher, which work through network filesystems that do not pass symlinks through.
/// Without a launcher the program shims are still written (they work once one is linked).
pub(crate) fn write_shims(
    layout: &Layout,
    programs: &[String],
    launcher: Option<&Path>,
    script: bool,
    shell: &Shell,
) -> Result<()> {
    // A ROOT keeps its shim form: once `--script-shims` made `shims/fatbin` a `#!` file,
    // later installs write `#!` shims too.
    let existing = read_shim(&layout.shim_path("fatbin"));
    let form = match (&existing, script) {
        (_, true) | (Some((ShimForm::Script, _)), false) => ShimForm::Script,
        _ => ShimForm::Link,
    };
    match launcher {
        Some(launcher) => {
            match form {
                ShimForm::Link => write_shim(layout, "fatbin", launcher)?,
                ShimForm::Script => {
                    let absolute = std::path::absolute(launcher).map_err(Error::io(launcher))?;
                    write_script_shim(layout, "fatbin", &absolute)?;
                }
            }
            // The launcher hands everything but the common case to `fatbin-full` beside it.
            let real = std::fs::canonicalize(launcher).unwrap_or_else(|_| launcher.to_owned());
            let full = real.with_file_name("fatbin-full");
            if !full.exists() {
                shell.warn(format!(
                    "{} is missing: the launcher {} needs it next to it for everything but \
                     plain shim calls (install both binaries of the fatbin package)",
                    full.display(),
                    launcher.display()
                ));
            }
        }
        None if existing.is_some() => {
            if let (ShimForm::Script, Some((ShimForm::Link, target))) = (form, &existing) {
                let absolute = std::path::absolute(target).map_err(Error::io(target))?;
                write_script_shim(layout, "fatbin", &absolute)?;
            }
        }
        None => shell.warn(format!(
            "no `fatbin` launcher found (next to cargo-fatbin or on PATH): {} is not linked yet; pass --launcher PATH or set FATBIN_LAUNCHER",
            layout.shim_path("fatbin").display()
        )),
    }
    let script_launcher = match form {
        ShimForm::Script => read_shim(&layout.shim_path("fatbin")).map(|(_, l)| l),
        ShimForm::Link => None,
    };
    for program in programs {
        // The launcher installed as a fat program must not become a shim to itself.
        if program == "fatbin" || program == "fatbin-full" {
            continue;
        }
        match &script_launcher {
            Some(launcher) => write_script_shim(layout, program, launcher)?,
            None => write_shim(layout, program, Path::new("fatbin"))?,
        }
    }
    Ok(())
}

/// Prints the machine-readable report: one JSON object per program, one line each.
pub(crate) fn print_json(layout_root: &Path, report: &[Installed], reason: &str) -> Result<()> {
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
