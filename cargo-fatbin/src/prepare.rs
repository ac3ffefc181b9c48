//! Everything decided before cargo starts: the project (cargo metadata), the targets and their
//! slots (rustc), and the toolchain diagnosis (shared with `doctor`) that stops a build which
//! cannot succeed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::Metadata;

use crate::cargo_config::UserConfig;
use crate::diagnose::{self, Context};
use crate::error::{Error, Result};
use crate::options::CargoOptions;
use crate::plan::{PlannedTarget, Prepared};
use crate::plan_cache::{self, Stamped};
use crate::project::{load_metadata, project_info};
use crate::rustc::Rustc;
use crate::settings::{project_metadata, resolve_backend, resolve_targets, selected_packages};
use crate::target::{parse_targets, TargetSpec};
use crate::toolchain::{Backend, Toolchain};

/// Plans every target and checks the toolchain, failing before cargo starts when something
/// is missing; a re-run with the same inputs reuses the last plan (see [`plan_cache`]).
pub(crate) fn prepare(
    opts: &CargoOptions,
    cli_targets: &[String],
    cli_backend: Option<Backend>,
    cache_key: &str,
) -> Result<Prepared> {
    if let Some(plan) = plan_cache::load_plan::<Prepared>(cache_key) {
        return Ok(plan);
    }
    let (prepared, inputs) = prepare_from_scratch(opts, cli_targets, cli_backend)?;
    plan_cache::save_plan(cache_key, &prepared, inputs);
    Ok(prepared)
}

fn prepare_from_scratch(
    opts: &CargoOptions,
    cli_targets: &[String],
    cli_backend: Option<Backend>,
) -> Result<(Prepared, Stamped)> {
    let rustc = Rustc::from_env();
    let (metadata, toolchain) = std::thread::scope(|scope| {
        let tc = scope.spawn(|| Toolchain::detect(&rustc));
        let metadata = load_metadata(opts);
        (metadata, tc.join().expect("toolchain thread"))
    });
    let (metadata, toolchain) = (metadata?, toolchain?);
    let selected = selected_packages(&metadata, opts);
    let project = project_metadata(&metadata, &selected)?;
    let specs = parse_targets(&resolve_targets(cli_targets, &project)?)?;

    let cfgs = diagnose::probe_cfgs(&rustc, &specs);
    let cwd = std::env::current_dir().map_err(Error::io("."))?;
    let config = UserConfig::load(&cwd, &opts.config);
    let cx = Context {
        toolchain: &toolchain,
        config: &config,
        project: Some((&metadata, &selected)),
        backend: resolve_backend(cli_backend, &project)?,
    };
    let diagnoses = specs
        .iter()
        .map(|spec| diagnose::diagnose(&cx, spec, &cfgs))
        .collect::<Result<Vec<_>>>()?;
    let mut slots: BTreeMap<String, &TargetSpec> = BTreeMap::new();
    for d in &diagnoses {
        if let Some(other) = slots.insert(d.plan.slot.to_string(), &d.spec) {
            return Err(Error::usage(format!(
                "targets `{other}` and `{}` would both fill slot `{}`; keep one of them",
                d.spec, d.plan.slot
            )));
        }
    }
    // A target whose std or linker is missing would fail in cargo with a wall of errors:
    // say it first.
    let problems = diagnose::problems(&diagnoses);
    if !problems.is_empty() {
        return Err(diagnose::toolchain_error(
            "cannot build: the toolchain is missing pieces, so nothing was compiled (`cargo fatbin doctor` shows every target)",
            &problems,
        ));
    }
    let triples: BTreeSet<&str> = specs.iter().map(|s| s.triple.as_str()).collect();
    let inputs = plan_inputs(&metadata, &cwd, &toolchain, &triples);
    let targets = diagnoses
        .into_iter()
        .map(|d| PlannedTarget {
            user_flags: config.rustflags(&d.spec.triple, &d.baseline.cfgs),
            spec: d.spec,
            plan: d.plan,
            linker: d.linker,
        })
        .collect();
    let prepared = Prepared {
        project: project_info(&metadata, opts),
        fatbin: project,
        targets,
    };
    Ok((prepared, inputs))
}

/// The files a plan depends on (see [`plan_cache`]).
fn plan_inputs(
    metadata: &Metadata,
    cwd: &Path,
    toolchain: &Toolchain,
    triples: &BTreeSet<&str>,
) -> Stamped {
    let mut files: Vec<PathBuf> = Vec::new();
    // Every local package's manifest (members and path dependencies), and the lock file.
    for p in &metadata.packages {
        if p.source.is_none() {
            files.push(p.manifest_path.clone().into_std_path_buf());
        }
    }
    let root = metadata.workspace_root.as_std_path();
    files.push(root.join("Cargo.lock"));
    files.push(root.join("Cargo.toml"));
    for dir in cwd.ancestors().chain(root.ancestors()) {
        for name in [
            ".cargo/config.toml",
            ".cargo/config",
            "rust-toolchain.toml",
            "rust-toolchain",
        ] {
            files.push(dir.join(name));
        }
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")));
    if let Some(cargo_home) = cargo_home {
        files.push(cargo_home.join("config.toml"));
        files.push(cargo_home.join("config"));
    }
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".rustup")));
    if let Some(rustup_home) = rustup_home {
        files.push(rustup_home.join("settings.toml"));
    }
    // An updated toolchain, or a target added or removed.
    files.push(toolchain.sysroot.join("lib/rustlib"));
    for triple in triples {
        files.push(
            toolchain
                .sysroot
                .join("lib/rustlib")
                .join(triple)
                .join("lib"),
        );
    }
    Stamped::of(files)
}
