//! `cargo fatbin doctor`: each target's standard library, linker, C compiler and whether this
//! host can run it, with the exact command that fixes what is missing.

use std::collections::BTreeSet;

use crate::cargo_config::UserConfig;
use crate::error::{Error, Result};
use crate::options::{CargoOptions, DoctorOptions};
use crate::prepare::{load_metadata, needs_c_compiler, toolchain, toolchain_error};
use crate::rustc::Rustc;
use crate::settings::{project_metadata, resolve_targets, selected_packages, FatbinMetadata};
use crate::status::Shell;
use crate::target::{parse_targets, slot_for};
use crate::toolchain::Runs;

pub(crate) fn doctor(args: &DoctorOptions, shell: Shell) -> Result<()> {
    let rustc = Rustc::from_env();
    let tc = toolchain(&rustc)?;
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
    let specs = match resolve_targets(&args.targets, &project) {
        Ok(list) => parse_targets(&list)?,
        Err(_) => {
            // Nothing configured: check the host and every installed Linux target.
            let mut list = vec![tc.host.clone()];
            if let Ok(dirs) = std::fs::read_dir(tc.sysroot.join("lib/rustlib")) {
                let mut installed: Vec<String> = dirs
                    .flatten()
                    .filter(|e| e.path().join("lib").is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|t| t.contains("-linux") && *t != tc.host)
                    .collect();
                installed.sort();
                list.extend(installed);
            }
            parse_targets(&list)?
        }
    };
    let host_features: Vec<String> = rustc
        .target_cfg(&tc.host, Some("native"))
        .map(|c| c.features.into_iter().collect())
        .unwrap_or_default();
    let cwd = std::env::current_dir().map_err(Error::io("."))?;
    let config = UserConfig::load(&cwd, &[]);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    shell.plain(format!(
        "host: {} (sysroot {})",
        tc.host,
        tc.sysroot.display()
    ));
    for spec in &specs {
        let std_problem = tc.check_std(&spec.triple);
        let (baseline, tuned) = match (
            rustc.target_cfg(&spec.triple, None),
            rustc.target_cfg(&spec.triple, spec.cpu.as_deref()),
        ) {
            (Ok(b), Ok(t)) => (b, t),
            (Err(e), _) | (_, Err(e)) => {
                shell.plain(format!(
                    "{spec}\n    {}",
                    shell.styled(false, &e.to_string())
                ));
                problems.push(crate::toolchain::Problem {
                    what: e.to_string(),
                    fix: "check the spelling: `rustc --print target-list`".into(),
                });
                continue;
            }
        };
        let plan = slot_for(spec, &baseline.features, &tuned.features);
        let linker = tc.check_linker(&spec.triple, &config);
        let runs = tc.runs(spec.arch(), &plan.features, &host_features);
        shell.plain(format!("{spec}  (slot {})", plan.slot));
        let std_text = match &std_problem {
            None => shell.styled(true, "installed"),
            Some(p) => format!("{} (fix: {})", shell.styled(false, "missing"), p.fix),
        };
        shell.plain(format!("    std      {std_text}"));
        let linker_text = match &linker.problem {
            None => shell.styled(true, &linker.describe),
            Some(p) => format!(
                "{} (fix: {})",
                shell.styled(false, &format!("{} missing", linker.describe)),
                p.fix
            ),
        };
        shell.plain(format!("    linker   {linker_text}"));
        if let Some(m) = &metadata {
            if needs_c_compiler(m, &selected, &spec.triple, &baseline) {
                let text = match tc.check_c_compiler(&spec.triple) {
                    Ok(cc) => shell.styled(true, &cc),
                    Err(p) => {
                        let text = format!("{} (fix: {})", shell.styled(false, "missing"), p.fix);
                        if seen.insert(("cc", spec.triple.clone())) {
                            problems.push(p);
                        }
                        text
                    }
                };
                shell.plain(format!("    C (cc)   {text}"));
            }
        }
        let runs_text = match &runs {
            Runs::No { fix } => format!("{} (fix: {fix})", shell.styled(false, "no")),
            other => shell.styled(true, &other.to_string()),
        };
        shell.plain(format!("    runs     {runs_text}"));
        if seen.insert(("std", spec.triple.clone())) {
            problems.extend(std_problem);
            problems.extend(linker.problem);
        }
    }
    if problems.is_empty() {
        shell.status("Finished", format!("{} target(s) ready", specs.len()));
        Ok(())
    } else {
        Err(toolchain_error(
            &format!("{} problem(s) to fix before building", problems.len()),
            &problems,
        ))
    }
}
