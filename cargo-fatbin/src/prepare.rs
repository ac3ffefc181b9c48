//! Everything decided before cargo starts: the project (cargo metadata), the targets and their
//! slots (rustc), and the toolchain check that stops a build which cannot succeed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, Package, PackageId};

use crate::cargo_config::UserConfig;
use crate::compile::{target_directory, PlannedTarget};
use crate::error::{Error, Result};
use crate::options::CargoOptions;
use crate::plan_cache::{self, Stamped};
use crate::rustc::{Rustc, TargetCfg};
use crate::settings::{project_metadata, resolve_targets, selected_packages, FatbinMetadata};
use crate::target::{parse_targets, slot_for, TargetSpec};
use crate::toolchain::{Problem, Toolchain};

/// What the build needs to know about the project from `cargo metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    pub target_dir: PathBuf,
    /// Name and version of every package with binaries, by cargo's package id.
    pub packages: BTreeMap<String, (String, String)>,
}

impl ProjectInfo {
    fn from_metadata(metadata: &Metadata, opts: &CargoOptions) -> ProjectInfo {
        let packages = metadata
            .packages
            .iter()
            .filter(|p| p.targets.iter().any(|t| t.is_bin()))
            .map(|p| {
                (
                    p.id.repr.clone(),
                    (p.name.to_string(), p.version.to_string()),
                )
            })
            .collect();
        ProjectInfo {
            target_dir: target_directory(opts, metadata),
            packages,
        }
    }

    /// The name and version of the package `id`.
    pub fn package(&self, id: &str) -> (String, String) {
        self.packages.get(id).cloned().unwrap_or_default()
    }
}

/// A project ready to build.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    pub project: ProjectInfo,
    pub fatbin: FatbinMetadata,
    pub targets: Vec<PlannedTarget>,
}

/// Runs `cargo metadata` with the user's manifest, lock and config flags.
pub fn load_metadata(opts: &CargoOptions) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    if let Some(cargo) = std::env::var_os("CARGO") {
        cmd.cargo_path(cargo);
    }
    let args: Vec<String> = opts
        .metadata_args()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.other_options(args);
    cmd.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } if stderr.contains("could not find `Cargo.toml`") => {
            Error::usage(format!(
                "{} (run cargo fatbin in a Cargo project, or pass --manifest-path PATH; to install a published crate: cargo fatbin install CRATE)",
                stderr.trim().trim_start_matches("error: ")
            ))
        }
        cargo_metadata::Error::CargoMetadata { stderr } => Error::Cargo(format!(
            "cargo metadata failed: {}",
            stderr.trim().trim_start_matches("error: ")
        )),
        other => Error::Cargo(format!("cargo metadata failed: {other}")),
    })
}

/// Probes rustc for every target: the triple's baseline cfg, and the tuned one for `@CPU`.
/// The calls run in parallel: each is a separate rustc process.
fn probe_cfgs(
    rustc: &Rustc,
    specs: &[TargetSpec],
) -> Result<BTreeMap<(String, Option<String>), TargetCfg>> {
    let mut keys: BTreeSet<(String, Option<String>)> = BTreeSet::new();
    for s in specs {
        keys.insert((s.triple.clone(), None));
        keys.insert((s.triple.clone(), s.cpu.clone()));
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = keys
            .into_iter()
            .map(|key| {
                scope.spawn(move || {
                    let cfg = rustc.target_cfg(&key.0, key.1.as_deref());
                    (key, cfg)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (key, cfg) = h.join().expect("rustc probe thread");
                cfg.map(|c| (key, c))
            })
            .collect()
    })
}

/// Finds the toolchain facts (sysroot, host) with one rustc call each, in parallel.
pub fn toolchain(rustc: &Rustc) -> Result<Toolchain> {
    std::thread::scope(|scope| {
        let host = scope.spawn(|| rustc.host());
        let sysroot = rustc.sysroot()?;
        let host = host.join().expect("rustc host thread")?;
        Ok(Toolchain { sysroot, host })
    })
}

/// Plans every target and checks the toolchain, failing before cargo starts when something
/// is missing; a re-run with the same inputs reuses the last plan (see [`plan_cache`]).
pub fn prepare(opts: &CargoOptions, cli_targets: &[String], cache_key: &str) -> Result<Prepared> {
    if let Some(plan) = plan_cache::load_plan::<Prepared>(cache_key) {
        return Ok(plan);
    }
    let (prepared, inputs) = prepare_from_scratch(opts, cli_targets)?;
    plan_cache::save_plan(cache_key, &prepared, inputs);
    Ok(prepared)
}

fn prepare_from_scratch(
    opts: &CargoOptions,
    cli_targets: &[String],
) -> Result<(Prepared, Stamped)> {
    let rustc = Rustc::from_env();
    let (metadata, toolchain) = std::thread::scope(|scope| {
        let tc = scope.spawn(|| toolchain(&rustc));
        let metadata = load_metadata(opts);
        (metadata, tc.join().expect("toolchain thread"))
    });
    let (metadata, toolchain) = (metadata?, toolchain?);
    let selected = selected_packages(&metadata, opts);
    let project = project_metadata(&metadata, &selected)?;
    let specs = parse_targets(&resolve_targets(cli_targets, &project)?)?;

    // A target whose std is missing would fail in cargo with a wall of errors: say it first.
    let mut problems: Vec<Problem> = Vec::new();
    let triples: BTreeSet<&str> = specs.iter().map(|s| s.triple.as_str()).collect();
    for triple in &triples {
        problems.extend(toolchain.check_std(triple));
    }
    let cfgs = probe_cfgs(&rustc, &specs)?;
    let cwd = std::env::current_dir().map_err(Error::io("."))?;
    let config = UserConfig::load(&cwd, &opts.config);

    let mut targets = Vec::new();
    let mut slots: BTreeMap<String, &TargetSpec> = BTreeMap::new();
    for spec in &specs {
        let baseline = &cfgs[&(spec.triple.clone(), None)];
        let tuned = &cfgs[&(spec.triple.clone(), spec.cpu.clone())];
        let plan = slot_for(spec, &baseline.features, &tuned.features);
        if let Some(other) = slots.insert(plan.slot.to_string(), spec) {
            return Err(Error::usage(format!(
                "targets `{other}` and `{spec}` would both fill slot `{}`; keep one of them",
                plan.slot
            )));
        }
        let linker = toolchain.check_linker(&spec.triple, &config);
        targets.push(PlannedTarget {
            user_flags: config.rustflags(&spec.triple, &baseline.cfgs),
            spec: spec.clone(),
            plan,
            linker,
        });
    }
    let mut linker_checked = HashSet::new();
    for t in &targets {
        if linker_checked.insert(&t.spec.triple) {
            problems.extend(t.linker.problem.clone());
        }
    }
    for triple in &triples {
        let cfg = &cfgs[&(triple.to_string(), None)];
        if needs_c_compiler(&metadata, &selected, triple, cfg) {
            if let Err(problem) = toolchain.check_c_compiler(triple) {
                problems.push(problem);
            }
        }
    }
    if !problems.is_empty() {
        return Err(toolchain_error(
            "cannot build: the toolchain is missing pieces, so nothing was compiled (`cargo fatbin doctor` shows every target)",
            &problems,
        ));
    }
    let inputs = plan_inputs(&metadata, &cwd, &toolchain, &triples);
    let prepared = Prepared {
        project: ProjectInfo::from_metadata(&metadata, opts),
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

/// One error listing every missing piece and its fix.
pub fn toolchain_error(heading: &str, problems: &[Problem]) -> Error {
    let mut summary = heading.to_owned();
    for p in problems {
        summary.push_str(&format!("\n  - {}\n    fix: {}", p.what, p.fix));
    }
    Error::Toolchain { summary }
}

/// Does building the selected packages for `triple` run the `cc` crate (which compiles C for
/// the target and so needs a C compiler for it)? Walks normal and build dependencies whose
/// platform condition holds for the target.
pub fn needs_c_compiler(
    metadata: &Metadata,
    selected: &[&Package],
    triple: &str,
    cfg: &TargetCfg,
) -> bool {
    let Some(resolve) = &metadata.resolve else {
        return false;
    };
    let nodes: BTreeMap<&PackageId, _> = resolve.nodes.iter().map(|n| (&n.id, n)).collect();
    let name_of = |id: &PackageId| {
        metadata
            .packages
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.name.as_str().to_owned())
    };
    let mut todo: Vec<&PackageId> = selected.iter().map(|p| &p.id).collect();
    let mut seen: HashSet<&PackageId> = HashSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        if name_of(id).as_deref() == Some("cc") {
            return true;
        }
        let Some(node) = nodes.get(id) else { continue };
        for dep in &node.deps {
            let applies = dep.dep_kinds.iter().any(|k| {
                k.kind != DependencyKind::Development
                    && k.target
                        .as_ref()
                        .is_none_or(|p| p.matches(triple, &cfg.cfgs))
            });
            if applies {
                todo.push(&dep.pkg);
            }
        }
    }
    false
}
