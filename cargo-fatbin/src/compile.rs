//! Cross-compiling every target with cargo, and finding the binaries in cargo's JSON messages.
//!
//! All distinct triples build in ONE `cargo build` (cargo's repeatable `--target`), so host
//! build scripts and proc-macros are built once and the targets build in parallel. A triple
//! listed again with another CPU (`x86_64-unknown-linux-musl` and
//! `x86_64-unknown-linux-musl@x86-64-v3`) cannot be in the same run: cargo builds a triple
//! once per invocation. Each further CPU variant gets one more run in the SAME target
//! directory: rustflags are part of cargo's unit hash, so the variants' compiled units live
//! side by side and reuse the host units, and a re-run finds all of them fresh. Only the
//! uplifted binary (`target/<triple>/<profile>/<bin>`) is shared between variants, so the
//! binaries of such a triple are hard-linked to a private path the moment cargo reports them.
//! (Another cargo run building the same triple with other flags in the same target directory
//! at the same moment could still replace the file in between; cargo has no stable way to
//! name a private output path.)
//!
//! `-C target-cpu` is given per target with `--config target.<triple>.rustflags=[...]`, which
//! cargo merges with the user's own target rustflags; see [`crate::cargo_config`] for how the
//! user's `RUSTFLAGS` and `build.rustflags` are carried over instead of clobbered.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cargo_metadata::Message;

use crate::error::{Error, Result};
use crate::options::CargoOptions;
use crate::plan::{BuiltBinary, PlannedTarget, ProjectInfo};

/// Libraries that glibc splits out and musl keeps in libc.a. rustc's self-contained musl
/// runtime has no archives for them, so `-lm` and friends would fail under rust-lld; empty
/// archives satisfy the linker while libc.a provides the symbols.
const MUSL_STUB_LIBS: [&str; 5] = ["m", "pthread", "dl", "rt", "util"];

/// The cargo runs: all distinct triples in the first, one more per extra CPU variant.
pub(crate) fn plan_runs(targets: &[PlannedTarget]) -> Vec<Vec<PlannedTarget>> {
    let mut runs: Vec<Vec<PlannedTarget>> = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    // The baseline build of a triple goes first, so the common case is a single run.
    let mut ordered: Vec<&PlannedTarget> = targets.iter().collect();
    ordered.sort_by_key(|t| t.spec.cpu.is_some());
    for t in ordered {
        let n = seen.entry(&t.spec.triple).or_insert(0);
        if runs.len() <= *n {
            runs.push(Vec::new());
        }
        runs[*n].push(t.clone());
        *n += 1;
    }
    runs
}

/// Empty archives for [`MUSL_STUB_LIBS`], created once and never rewritten.
fn musl_stub_dir(target_dir: &Path) -> Result<PathBuf> {
    let dir = target_dir.join("fatbin/musl-stubs");
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    for lib in MUSL_STUB_LIBS {
        let path = dir.join(format!("lib{lib}.a"));
        if !path.is_file() {
            std::fs::write(&path, b"!<arch>\n").map_err(Error::io(&path))?;
        }
    }
    Ok(dir)
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The `--config` arguments and environment changes of one cargo run.
fn run_config(run: &[PlannedTarget], stubs: Option<&Path>) -> (Vec<String>, bool) {
    let extra = |t: &PlannedTarget| -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(cpu) = &t.spec.cpu {
            flags.push(format!("-Ctarget-cpu={cpu}"));
        }
        if let (true, Some(dir)) = (t.linker.musl_stubs, stubs) {
            flags.push("-L".into());
            flags.push(format!("native={}", dir.display()));
        }
        flags
    };
    // RUSTFLAGS in the environment would apply to every target and make cargo ignore the
    // per-target keys, so when any target needs its own flags, the user's environment flags
    // move into every target's key instead.
    let move_env =
        run.iter().any(|t| !extra(t).is_empty()) && run.iter().any(|t| t.user_flags.is_from_env());
    let mut config = Vec::new();
    for t in run {
        let key = format!("target.{}", toml_str(&t.spec.triple));
        if let Some(linker) = &t.linker.set {
            config.push(format!("{key}.linker={}", toml_str(linker)));
        }
        let extra = extra(t);
        if extra.is_empty() && !move_env {
            continue;
        }
        let words: Vec<String> = t
            .user_flags
            .to_carry()
            .iter()
            .chain(&extra)
            .map(|w| toml_str(w))
            .collect();
        config.push(format!("{key}.rustflags=[{}]", words.join(",")));
    }
    (config, move_env)
}

/// Runs cargo for every planned target and returns the binaries it built.
pub(crate) fn build_all(
    cargo_opts: &CargoOptions,
    project: &ProjectInfo,
    targets: &[PlannedTarget],
    color: &str,
    on_run: &dyn Fn(&[PlannedTarget]),
) -> Result<Vec<BuiltBinary>> {
    let target_dir = project.target_dir.as_path();
    let needs_stubs = targets.iter().any(|t| t.linker.musl_stubs);
    let stubs = needs_stubs.then(|| musl_stub_dir(target_dir)).transpose()?;
    let runs = plan_runs(targets);
    // Triples built in more than one run share one uplifted binary path between variants.
    let shared: BTreeSet<String> = runs
        .iter()
        .skip(1)
        .flatten()
        .map(|t| t.spec.triple.clone())
        .collect();
    let mut built = Vec::new();
    for run in &runs {
        on_run(run);
        let (config, move_env) = run_config(run, stubs.as_deref());
        let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cmd.arg("build")
            .args(cargo_opts.build_args())
            .arg("--message-format=json-render-diagnostics")
            .arg(format!("--color={color}"));
        for t in run {
            cmd.arg("--target").arg(&t.spec.triple);
        }
        for c in &config {
            cmd.arg("--config").arg(c);
        }
        // zig's targets: wrappers written now, named to cargo and cc-rs per triple.
        for t in run {
            let Some(zig) = &t.linker.zig else { continue };
            let wrappers = zig.write_wrappers(target_dir)?;
            let key = format!("target.{}.linker", toml_str(&t.spec.triple));
            let linker = wrappers.linker.to_string_lossy().into_owned();
            cmd.arg("--config")
                .arg(format!("{key}={}", toml_str(&linker)));
            for (var, path) in crate::toolchain::zig::tool_env(&t.spec.triple, &wrappers) {
                cmd.env(var, path);
            }
        }
        if move_env {
            cmd.env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS");
        }
        let binaries = run_cargo(cmd, project, run, &shared)?;
        built.extend(binaries);
    }
    Ok(built)
}

fn run_cargo(
    mut cmd: Command,
    project: &ProjectInfo,
    run: &[PlannedTarget],
    shared: &BTreeSet<String>,
) -> Result<Vec<BuiltBinary>> {
    let program: OsString = cmd.get_program().to_owned();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| Error::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let target_dir = project.target_dir.as_path();
    let mut binaries = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let message = message.map_err(|e| Error::Cargo(format!("reading cargo's output: {e}")))?;
        let Message::CompilerArtifact(artifact) = message else {
            continue;
        };
        let Some(exe) = artifact.executable else {
            continue;
        };
        if !artifact.target.is_bin() {
            continue;
        }
        let exe = exe.into_std_path_buf();
        let Some(target) = target_of(&exe, target_dir, run) else {
            continue;
        };
        let (krate, version) = project.package(&artifact.package_id.repr);
        let mut binary = BuiltBinary {
            spec: target.spec.clone(),
            plan: target.plan.clone(),
            program: artifact.target.name.clone(),
            krate,
            version,
            path: exe,
            fresh: artifact.fresh,
        };
        // Taken the moment cargo reports it, before another variant's run replaces it.
        if shared.contains(&binary.spec.triple) {
            binary.path = keep_variant(target_dir, &binary)?;
        }
        binaries.push(binary);
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    if !status.success() {
        return Err(Error::Cargo(format!(
            "cargo build failed ({status}); its messages are above"
        )));
    }
    Ok(binaries)
}

/// Which target of the run built `exe`. cargo's artifact messages do not name the triple;
/// the executable's path does: `<target-dir>/<triple>/<profile>/<name>`.
fn target_of<'r>(
    exe: &Path,
    target_dir: &Path,
    run: &'r [PlannedTarget],
) -> Option<&'r PlannedTarget> {
    let relative = exe.strip_prefix(target_dir).unwrap_or(exe);
    // The first component under the target dir; any component if the target dir was spelled
    // differently (a symlink, a relative --target-dir).
    relative.components().find_map(|c| {
        let name = c.as_os_str().to_str()?;
        run.iter().find(|t| t.spec.triple == name)
    })
}

/// Hard-links a variant's binary to `<target-dir>/fatbin/variants/<triple>@<cpu>/<bin>`
/// (the same inode as cargo's output, so nothing is copied and a re-run changes nothing).
fn keep_variant(target_dir: &Path, binary: &BuiltBinary) -> Result<PathBuf> {
    let dir = target_dir
        .join("fatbin/variants")
        .join(binary.spec.to_string());
    std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
    let kept = dir.join(&binary.program);
    let same = match (std::fs::metadata(&kept), std::fs::metadata(&binary.path)) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.dev() == b.dev() && a.ino() == b.ino()
        }
        _ => false,
    };
    if !same {
        let _ = std::fs::remove_file(&kept);
        if std::fs::hard_link(&binary.path, &kept).is_err() {
            std::fs::copy(&binary.path, &kept).map_err(Error::io(&kept))?;
        }
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cargo_config::UserFlags;
    use crate::target::{SlotPlan, TargetSpec};
    use crate::toolchain::LinkerCheck;

    fn planned(spec: &str) -> PlannedTarget {
        let spec: TargetSpec = spec.parse().unwrap();
        PlannedTarget {
            plan: SlotPlan {
                slot: fatbin_layout::SlotName::baseline(spec.arch()),
                features: vec![],
            },
            spec,
            linker: LinkerCheck {
                describe: String::new(),
                set: Some("rust-lld".into()),
                musl_stubs: true,
                problem: None,
                zig: None,
            },
            user_flags: UserFlags::None,
        }
    }

    #[test]
    fn variants_of_a_triple_get_their_own_runs() {
        let targets = [
            planned("x86_64-unknown-linux-musl@x86-64-v3"),
            planned("aarch64-unknown-linux-musl"),
            planned("x86_64-unknown-linux-musl"),
        ];
        let runs = plan_runs(&targets);
        let names: Vec<Vec<String>> = runs
            .iter()
            .map(|r| r.iter().map(|t| t.spec.to_string()).collect())
            .collect();
        assert_eq!(
            names,
            [
                vec!["aarch64-unknown-linux-musl", "x86_64-unknown-linux-musl"],
                vec!["x86_64-unknown-linux-musl@x86-64-v3"]
            ]
        );
    }

    #[test]
    fn user_env_rustflags_are_carried_not_clobbered() {
        let mut t = planned("x86_64-unknown-linux-musl@x86-64-v3");
        t.user_flags = UserFlags::Env(vec!["-Cdebuginfo=1".into()]);
        let (config, move_env) = run_config(&[t], Some(Path::new("/s")));
        assert!(move_env);
        assert_eq!(
            config,
            [
                "target.\"x86_64-unknown-linux-musl\".linker=\"rust-lld\"",
                "target.\"x86_64-unknown-linux-musl\".rustflags=[\"-Cdebuginfo=1\",\"-Ctarget-cpu=x86-64-v3\",\"-L\",\"native=/s\"]"
            ]
        );
    }
}
