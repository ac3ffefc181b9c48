//! Helpers for the `cargo fatbin` tests: run the real binary in a fixture directory, and take
//! a snapshot of a directory tree (inodes and mtimes) to prove a re-run changed nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{host_bin_dir, workspace_root};

/// What one `cargo fatbin` run did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Panics with the whole output unless the run exited 0.
    pub fn success(self) -> Outcome {
        assert_eq!(
            self.code,
            Some(0),
            "cargo fatbin failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The fixture crates under tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures").join(name)
}

/// A target directory for one test's builds, kept between runs so a second `cargo test`
/// reuses them (and never inside the fixture's own source tree). Tests running at the same
/// time must not share one: cargo re-links (removes, then hard-links) every binary it reports,
/// even a fresh one, so a concurrent run could make a binary vanish for a moment.
pub fn build_dir(name: &str) -> PathBuf {
    workspace_root()
        .join("target/cargo-fatbin-tests")
        .join(name)
}

/// `cargo fatbin` as the binary sees it when cargo runs it: `cargo-fatbin fatbin ARGS`.
/// The user's FATBIN_* settings and RUSTFLAGS are cleared so only the test's arguments count.
pub fn cargo_fatbin_command(dir: &Path) -> Command {
    let mut cmd = Command::new(host_bin_dir().join("cargo-fatbin"));
    cmd.arg("fatbin").current_dir(dir);
    // Saved plans go under target/, not into the user's ~/.cache.
    cmd.env("XDG_CACHE_HOME", build_dir("cache"));
    for var in [
        "FATBIN_TARGETS",
        "FATBIN_ROOT",
        "FATBIN_LAUNCHER",
        "FATBIN_TOOLCHAIN",
        "RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn run(mut cmd: Command) -> Outcome {
    let out = cmd.output().expect("cargo-fatbin runs");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cargo fatbin ARGS` in `dir` without colours.
pub fn cargo_fatbin(dir: &Path, args: &[&str]) -> Outcome {
    let mut cmd = cargo_fatbin_command(dir);
    cmd.args(args).arg("--color=never");
    run(cmd)
}

/// Every path under `root` (the root too) with its inode and modification time in
/// nanoseconds, not following symlinks.
pub fn stamps(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    fn walk(path: &Path, out: &mut BTreeMap<PathBuf, (u64, i64, i64)>) {
        let meta = std::fs::symlink_metadata(path).unwrap();
        out.insert(
            path.to_owned(),
            (meta.ino(), meta.mtime(), meta.mtime_nsec()),
        );
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                walk(&entry.unwrap().path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &mut out);
    out
}
