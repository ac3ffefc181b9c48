//! Shared helpers for the integration tests: where the workspace is, building the real
//! binaries and the fixture programs (really cross-compiled), and temporary layouts.
//!
//! Builds go through cargo itself and are cached in `target/`, so the first test that needs a
//! binary pays for it and the rest reuse it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

/// The fixture crate that reports where it runs (see `tests/fixtures/probe`).
pub fn probe_crate() -> PathBuf {
    workspace_root().join("tests/fixtures/probe")
}

/// Environment that lets cargo link static musl targets with rustc's bundled `rust-lld`, the
/// same thing `cargo fatbin` does, so no C cross toolchain is needed.
pub fn lld_env(cmd: &mut Command) -> &mut Command {
    for triple in ["aarch64-unknown-linux-musl", "x86_64-unknown-linux-musl"] {
        let var = format!(
            "CARGO_TARGET_{}_LINKER",
            triple.to_uppercase().replace('-', "_")
        );
        if std::env::var_os(&var).is_none() {
            cmd.env(var, "rust-lld");
        }
    }
    cmd
}

/// Runs `cmd` to completion and panics with `what` and its stderr unless it succeeded.
pub fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds (once per process) the probe fixture for `target`, optionally with
/// `-C target-cpu=cpu`, in release mode, and returns the binary's path.
pub fn probe_binary(target: &str, cpu: Option<&str>) -> PathBuf {
    /// (target, cpu) -> built binary.
    type Builds = Mutex<HashMap<(String, Option<String>), PathBuf>>;
    static BUILT: OnceLock<Builds> = OnceLock::new();
    let key = (target.to_owned(), cpu.map(str::to_owned));
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    // One target dir per CPU, so builds for different levels do not invalidate each other.
    let target_dir = workspace_root()
        .join("target/fixtures")
        .join(cpu.unwrap_or("default"));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.arg("build")
        .arg("--release")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(probe_crate().join("Cargo.toml"))
        .arg("--target")
        .arg(target)
        .arg("--target-dir")
        .arg(&target_dir);
    lld_env(&mut cmd);
    if let Some(cpu) = cpu {
        cmd.env("RUSTFLAGS", format!("-C target-cpu={cpu}"));
    }
    run_ok(
        &mut cmd,
        &format!("building the probe fixture for {target} {cpu:?}"),
    );
    let path = target_dir.join(target).join("release/probe");
    built.insert(key, path.clone());
    path
}

/// Builds (once per process) the workspace's own binaries for the host, in debug mode, and
/// returns the directory holding `fatbin` and `cargo-fatbin`.
pub fn host_bin_dir() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut cmd = Command::new(env!("CARGO"));
            cmd.current_dir(workspace_root()).args([
                "build",
                "--quiet",
                "-p",
                "fatbin",
                "-p",
                "cargo-fatbin",
            ]);
            run_ok(&mut cmd, "building fatbin and cargo-fatbin");
            workspace_root().join("target/debug")
        })
        .clone()
}

/// Builds (once per process) the launcher for a musl `target` in release mode, static, as it
/// is shipped, and returns its path.
pub fn launcher_binary(target: &str) -> PathBuf {
    launcher_binary_linked_by(target, None)
}

/// [`launcher_binary`], linked by `linker` when given (a gnu target's cross gcc, as
/// `cargo install --path launcher --target T` links it there) instead of `rust-lld`.
pub fn launcher_binary_linked_by(target: &str, linker: Option<&str>) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(target) {
        return path.clone();
    }
    let target_dir = workspace_root().join("target/cross");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "fatbin",
            "--target",
            target,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    match linker {
        Some(linker) => cmd.env(
            format!(
                "CARGO_TARGET_{}_LINKER",
                target.to_uppercase().replace('-', "_")
            ),
            linker,
        ),
        None => lld_env(&mut cmd),
    };
    run_ok(&mut cmd, &format!("building the launcher for {target}"));
    let path = target_dir.join(target).join("release/fatbin");
    built.insert(target.to_owned(), path.clone());
    path
}

/// Installs the launcher built for `target` into `dir` the way a node has it: the fast
/// launcher `fatbin` and the full launcher `fatbin-full` side by side. Returns `dir/fatbin`.
pub fn install_launcher(target: &str, dir: &Path) -> PathBuf {
    let fast = launcher_binary(target);
    for name in ["fatbin", "fatbin-full"] {
        std::fs::copy(fast.with_file_name(name), dir.join(name)).unwrap();
    }
    dir.join("fatbin")
}

/// A temporary directory with mode 0755 (tempfile makes 0700 ones; layouts must be readable
/// by other users' runs and must not be group- or world-writable).
pub fn temp_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("fatbin-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}
pub mod cargo_fatbin_support;
pub mod cluster;
pub mod launcher_support;
pub mod slurm;
pub mod sshfs;
pub mod zig;
