//! `cargo fatbin doctor`: each target's standard library, linker, C compiler and whether this
//! host can run it, with the exact command that fixes what is missing. The checks are the
//! ones `build` stops on (`crate::diagnose`); doctor prints them all instead of stopping.

use std::path::Path;

use crate::cargo_config::UserConfig;
use crate::diagnose::{self, Context};
use crate::error::{Error, Result};
use crate::options::{CargoOptions, DoctorOptions};
use crate::project::load_metadata;
use crate::rustc::Rustc;
use crate::settings::{
    project_metadata, resolve_backend, resolve_targets, selected_packages, FatbinMetadata,
};
use crate::status::Shell;
use crate::target::{parse_targets, TargetSpec};
use crate::toolchain::{Problem, Runs, Toolchain};

pub(crate) fn doctor(args: &DoctorOptions, shell: Shell) -> Result<()> {
    let rustc = Rustc::from_env();
    let tc = Toolchain::detect(&rustc)?;
    let opts = CargoOptions {
        manifest_path: args.manifest_path.clone(),
        ..CargoOptions::default()
    };
    // Outside a project there is no Cargo.toml to read targets or dependencies from.
    let metadata = load_metadata(&opts).ok();
    let selected = metadata
        .as_ref()
        .map(|m| selected_packages(m, &opts))
        .unwrap_or_default();
    let project = match &metadata {
        Some(m) => project_metadata(m, &selected)?,
        None => FatbinMetadata::default(),
    };
    // Targets the user asked for must all be valid; of the installed ones, those without a
    // slot are only reported, so one of them does not hide the state of all the others.
    let (specs, skipped, named) = match resolve_targets(&args.targets, &project) {
        Ok(list) => (parse_targets(&list)?, Vec::new(), true),
        Err(_) => {
            let (specs, skipped) = installed_targets(&tc);
            (specs, skipped, false)
        }
    };
    let host_features: Vec<String> = rustc
        .target_cfg(&tc.host, Some("native"))
        .map(|c| c.features.into_iter().collect())
        .unwrap_or_default();
    let cwd = std::env::current_dir().map_err(Error::io("."))?;
    let config = UserConfig::load(&cwd, &[]);
    let cx = Context {
        toolchain: &tc,
        config: &config,
        project: metadata.as_ref().map(|m| (m, selected.as_slice())),
        backend: resolve_backend(args.toolchain, &project)?,
    };
    let cfgs = diagnose::probe_cfgs(&rustc, &specs);
    let mut diagnoses = Vec::new();
    let mut problems = Vec::new();
    shell.plain(format!(
        "host: {} (sysroot {})",
        tc.host,
        tc.sysroot.display()
    ));
    shell.plain(format!("toolchain: {}", cx.backend.name()));
    for spec in &specs {
        let d = match diagnose::diagnose(&cx, spec, &cfgs) {
            Ok(d) => d,
            Err(e) => {
                shell.plain(format!(
                    "{spec}\n    {}",
                    shell.styled(false, &e.to_string())
                ));
                problems.push(Problem {
                    what: e.to_string(),
                    fix: "check the spelling: `rustc --print target-list`".into(),
                });
                continue;
            }
        };
        shell.plain(format!("{spec}  (slot {})", d.plan.slot));
        let std_text = match &d.std {
            None => shell.styled(true, "installed"),
            Some(p) => format!("{} (fix: {})", shell.styled(false, "missing"), p.fix),
        };
        shell.plain(format!("    std      {std_text}"));
        let linker_text = match &d.linker.problem {
            None => shell.styled(true, &d.linker.describe),
            Some(p) => format!(
                "{} (fix: {})",
                shell.styled(false, &format!("{} missing", d.linker.describe)),
                p.fix
            ),
        };
        shell.plain(format!("    linker   {linker_text}"));
        if let Some(cc) = &d.c_compiler {
            let text = match cc {
                Ok(cc) => shell.styled(true, cc),
                Err(p) => format!("{} (fix: {})", shell.styled(false, "missing"), p.fix),
            };
            shell.plain(format!("    C (cc)   {text}"));
        }
        let runs_text = match tc.runs(spec.arch(), &d.plan.features, &host_features) {
            Runs::No { fix } => format!("{} (fix: {fix})", shell.styled(false, "no")),
            other => shell.styled(true, &other.to_string()),
        };
        shell.plain(format!("    runs     {runs_text}"));
        diagnoses.push(d);
    }
    // Two targets for one slot would stop the build; say it here, before it does. Installed
    // targets surveyed when none are named (the host's gnu and its musl) are never built
    // together, so only named ones count.
    let mut slots: std::collections::BTreeMap<String, &TargetSpec> = Default::default();
    for d in diagnoses.iter().filter(|_| named) {
        if let Some(other) = slots.insert(d.plan.slot.to_string(), &d.spec) {
            problems.push(Problem {
                what: format!(
                    "targets `{other}` and `{}` would both fill slot `{}`",
                    d.spec, d.plan.slot
                ),
                fix: "keep one of them".into(),
            });
        }
    }
    for (triple, why) in &skipped {
        shell.plain(format!("{triple}\n    skipped  {why}"));
    }
    problems.extend(diagnose::problems(&diagnoses));
    if problems.is_empty() {
        let skipped = match skipped.len() {
            0 => String::new(),
            n => format!(" ({n} installed target(s) without a slot skipped)"),
        };
        shell.status(
            "Finished",
            format!("{} target(s) ready{skipped}", specs.len()),
        );
        Ok(())
    } else {
        Err(diagnose::toolchain_error(
            &format!("{} problem(s) to fix before building", problems.len()),
            &problems,
        ))
    }
}

/// The host and every installed Linux target, when nothing names the targets; those that
/// cannot fill a slot come back apart, with the reason.
fn installed_targets(tc: &Toolchain) -> (Vec<TargetSpec>, Vec<(String, String)>) {
    let mut list = vec![tc.host.clone()];
    list.extend(installed_linux_targets(&tc.sysroot, &tc.host));
    let mut specs = Vec::new();
    let mut skipped = Vec::new();
    for triple in list {
        match triple.parse::<TargetSpec>() {
            Ok(spec) => specs.push(spec),
            Err(e) => {
                // The reason without the "invalid target `T`: " the triple line already says.
                let why = e.to_string();
                let why = why.split_once(": ").map_or(why.as_str(), |(_, w)| w);
                skipped.push((triple, why.to_owned()));
            }
        }
    }
    (specs, skipped)
}

/// The Linux targets whose standard library is in `sysroot`, sorted, without the host.
fn installed_linux_targets(sysroot: &Path, host: &str) -> Vec<String> {
    let Ok(dirs) = std::fs::read_dir(sysroot.join("lib/rustlib")) else {
        return Vec::new();
    };
    let mut installed: Vec<String> = dirs
        .flatten()
        .filter(|e| e.path().join("lib").is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|t| t.contains("-linux") && *t != host)
        .collect();
    installed.sort();
    installed
}
