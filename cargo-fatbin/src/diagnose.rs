//! One diagnosis of the toolchain for a list of targets, shared by `doctor` (which prints all
//! of it) and by `build` / `install` (which stop on its problems before cargo starts), so the
//! two can never disagree about what is missing.
//!
//! For each target: rustc's view of it (`--print cfg`, baseline and tuned for `@CPU`), the slot
//! it fills, its standard library, its linker, and a C compiler when a dependency builds C code
//! for it. Where the linker and C compiler come from is `crate::toolchain`'s business; the
//! choice between its backends (`--toolchain auto|system|zig`) is made here, per target:
//! `auto` keeps the user's own configuration and the system's cross tools when they can build
//! the target, and takes zig when they cannot; `zig` takes zig unless the user configured a
//! linker for the target; `system` never takes zig. A glibc floor (`x86_64-unknown-linux-gnu.2.17`)
//! always takes zig: no other linker here has an older glibc to link against.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use cargo_metadata::{DependencyKind, Metadata, Package, PackageId};

use crate::cargo_config::UserConfig;
use crate::error::{Error, Result};
use crate::rustc::{Rustc, TargetCfg};
use crate::target::{slot_for, SlotPlan, TargetSpec};
use crate::toolchain::{zig, Backend, LinkerCheck, Problem, Toolchain, ZigPlan};

/// rustc's cfg for a triple, tuned for a CPU or not.
type CfgKey = (String, Option<String>);

/// Probes rustc for every target: the triple's baseline cfg, and the tuned one for `@CPU`.
/// The calls run in parallel: each is a separate rustc process.
pub(crate) fn probe_cfgs(
    rustc: &Rustc,
    specs: &[TargetSpec],
) -> BTreeMap<CfgKey, Result<TargetCfg>> {
    let mut keys: BTreeSet<CfgKey> = BTreeSet::new();
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
            .map(|h| h.join().expect("rustc probe thread"))
            .collect()
    })
}

/// Everything checked about one target.
#[derive(Debug)]
pub(crate) struct TargetDiagnosis {
    pub(crate) spec: TargetSpec,
    pub(crate) plan: SlotPlan,
    /// The triple's baseline cfg (its `cfg(...)` values decide which dependencies apply).
    pub(crate) baseline: TargetCfg,
    /// What is missing of its standard library, if anything.
    pub(crate) std: Option<Problem>,
    pub(crate) linker: LinkerCheck,
    /// The C compiler, when a dependency builds C code for the target (`None`: none needed).
    pub(crate) c_compiler: Option<Result<String, Problem>>,
}

/// What the diagnosis needs to know besides the targets.
pub(crate) struct Context<'a> {
    pub(crate) toolchain: &'a Toolchain,
    pub(crate) config: &'a UserConfig,
    /// The project, to see whether a dependency builds C code; `None` outside a project.
    pub(crate) project: Option<(&'a Metadata, &'a [&'a Package])>,
    pub(crate) backend: Backend,
}

/// Diagnoses one target from its probed cfgs; `Err` when rustc does not know the target or
/// the CPU.
pub(crate) fn diagnose(
    cx: &Context<'_>,
    spec: &TargetSpec,
    cfgs: &BTreeMap<CfgKey, Result<TargetCfg>>,
) -> Result<TargetDiagnosis> {
    // The same probe serves several targets, so its error is repeated, with its exit code.
    let cfg = |key: CfgKey| match &cfgs[&key] {
        Ok(cfg) => Ok(cfg.clone()),
        Err(Error::Usage(message)) => Err(Error::usage(message.clone())),
        Err(e) => Err(Error::Other(e.to_string())),
    };
    let baseline = cfg((spec.triple.clone(), None))?;
    let tuned = cfg((spec.triple.clone(), spec.cpu.clone()))?;
    let plan = slot_for(spec, &baseline.features, &tuned.features);
    let needs_cc = cx.project.is_some_and(|(metadata, selected)| {
        needs_c_compiler(metadata, selected, &spec.triple, &baseline)
    });
    let (linker, c_compiler) = choose_tools(cx, spec, needs_cc);
    Ok(TargetDiagnosis {
        std: cx.toolchain.check_std(&spec.triple),
        linker,
        c_compiler,
        spec: spec.clone(),
        plan,
        baseline,
    })
}

/// The linker and C compiler of one target, from the backend [`Context::backend`] picks.
fn choose_tools(
    cx: &Context<'_>,
    spec: &TargetSpec,
    needs_cc: bool,
) -> (LinkerCheck, Option<Result<String, Problem>>) {
    let triple = spec.triple.as_str();
    let system = || {
        (
            cx.toolchain.check_linker(triple, cx.config),
            needs_cc.then(|| cx.toolchain.check_c_compiler(triple)),
        )
    };
    // A linker the user configured is theirs, whatever the backend.
    let user_linker = cx.config.linker(triple).is_some();
    // Only zig links against an older glibc than this machine's own.
    if let Some(floor) = &spec.glibc {
        if cx.backend == Backend::System || user_linker {
            let (mut linker, cc) = system();
            let why = if user_linker {
                format!("you configured a linker for {triple}")
            } else {
                "--toolchain system never takes zig".to_owned()
            };
            linker.problem = Some(Problem {
                what: format!("{spec}: a glibc floor needs zig as the linker, and {why}"),
                fix: format!(
                    "drop `.{floor}` from the target, or build with --toolchain zig (or auto)"
                ),
            });
            return (linker, cc);
        }
        return zig_tools(spec, needs_cc, &format!("glibc floor {floor}"));
    }
    let why = match cx.backend {
        Backend::System => return system(),
        Backend::Zig if user_linker => return system(),
        Backend::Zig => "--toolchain zig",
        Backend::Auto => {
            let (linker, cc) = system();
            let cc_ok = !matches!(cc, Some(Err(_)));
            if user_linker || (linker.problem.is_none() && cc_ok) || zig::find().is_none() {
                if user_linker {
                    return (linker, cc);
                }
                let mut linker = linker;
                linker.problem = linker.problem.map(suggest_zig);
                return (linker, cc.map(|r| r.map_err(suggest_zig)));
            }
            if linker.problem.is_some() {
                "auto: no system linker for it"
            } else {
                "auto: no system C compiler for it"
            }
        }
    };
    zig_tools(spec, needs_cc, why)
}

/// zig as the target's linker and C compiler, `why` saying what chose it.
fn zig_tools(
    spec: &TargetSpec,
    needs_cc: bool,
    why: &str,
) -> (LinkerCheck, Option<Result<String, Problem>>) {
    let missing = || Problem {
        what: format!(
            "{why} needs zig, and there is no `zig` on PATH nor the `ziglang` Python package"
        ),
        fix: zig::INSTALL_ZIG.into(),
    };
    let plan = zig::find().and_then(|cmd| {
        ZigPlan::new(
            cmd,
            &spec.triple,
            spec.cpu.as_deref(),
            spec.glibc.as_deref(),
        )
    });
    let linker = LinkerCheck {
        describe: match &plan {
            Some(p) => format!("{} ({why})", p.describe("cc")),
            None => format!("zig ({why})"),
        },
        set: None,
        musl_stubs: false,
        problem: plan.is_none().then(missing),
        zig: plan.clone(),
    };
    let cc = needs_cc.then(|| match &plan {
        Some(p) => Ok(format!("{} ({why})", p.describe("cc"))),
        None => Err(missing()),
    });
    (linker, cc)
}

/// A missing C compiler's fix, with zig named first: it installs from the package index
/// and covers every target.
fn suggest_zig(mut problem: Problem) -> Problem {
    if !problem.fix.contains("ziglang") {
        problem.fix = format!(
            "{} then run again (zig builds C for every target); or {}",
            zig::INSTALL_ZIG,
            problem.fix
        );
    }
    problem
}

/// Every problem of `diagnoses`, once per triple (`@CPU` variants share them).
pub(crate) fn problems<'a>(
    diagnoses: impl IntoIterator<Item = &'a TargetDiagnosis>,
) -> Vec<Problem> {
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for d in diagnoses {
        if !seen.insert(d.spec.triple.clone()) {
            continue;
        }
        problems.extend(d.std.clone());
        problems.extend(d.linker.problem.clone());
        if let Some(Err(p)) = &d.c_compiler {
            problems.push(p.clone());
        }
    }
    problems
}

/// One error listing every missing piece and its fix.
pub(crate) fn toolchain_error(heading: &str, problems: &[Problem]) -> Error {
    let mut summary = heading.to_owned();
    for p in problems {
        summary.push_str(&format!("\n  - {}\n    fix: {}", p.what, p.fix));
    }
    Error::Toolchain { summary }
}

/// Does building the selected packages for `triple` run the `cc` crate (which compiles C for
/// the target and so needs a C compiler for it)? Walks normal and build dependencies whose
/// platform condition holds for the target.
pub(crate) fn needs_c_compiler(
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
