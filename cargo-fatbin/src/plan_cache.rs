//! The fast path of a re-run: a no-op `cargo fatbin build` should cost about a no-op
//! `cargo build`, and every extra process (`cargo metadata`, `rustc --print cfg` per target)
//! costs about as much as that whole no-op cargo run (~20 ms each here).
//!
//! So the plan (targets, slots, linkers, flags, target directory, package names) is saved
//! after the checks pass, under a key made of everything it was derived from: the command
//! line, the working directory, the environment cargo and rustc read, and this executable.
//! Files are not in the key but stamped (inode, size, mtime): every Cargo.toml of the
//! workspace and its path dependencies, Cargo.lock, cargo config files, rust-toolchain files,
//! rustup's settings and each target's installed standard library. If any changed, the plan is
//! made again from scratch. cargo itself still runs every time and decides what is fresh.
//!
//! After a successful install the outputs are stamped too (the binaries cargo produced, the
//! installed slots, manifests and shims): when cargo reports every binary fresh and no stamp
//! moved, the install step has nothing to do and is skipped. `FATBIN_NO_CACHE=1` turns the
//! fast path off.

use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::BuiltBinary;

/// What a file looked like: enough to notice any rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The stamp of `path` (not following a final symlink), `None` when it does not exist.
pub(crate) fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// Paths with the stamps they had.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamped(Vec<(PathBuf, Option<Stamp>)>);

impl Stamped {
    pub(crate) fn of(paths: impl IntoIterator<Item = PathBuf>) -> Stamped {
        let mut list: Vec<(PathBuf, Option<Stamp>)> = paths
            .into_iter()
            .map(|p| {
                let s = stamp(&p);
                (p, s)
            })
            .collect();
        list.sort();
        list.dedup();
        Stamped(list)
    }

    pub(crate) fn still_valid(&self) -> bool {
        self.0.iter().all(|(path, old)| stamp(path) == *old)
    }
}

fn disabled() -> bool {
    std::env::var_os("FATBIN_NO_CACHE").is_some_and(|v| !v.is_empty() && v != "0")
}

/// The cache key of this invocation (an empty key means: do not cache).
pub(crate) fn key(what: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    what.hash(&mut h);
    for arg in std::env::args_os() {
        arg.hash(&mut h);
    }
    std::env::current_dir().ok().hash(&mut h);
    let mut env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| {
            [
                "CARGO",
                "RUST",
                "FATBIN_",
                "CC",
                "TARGET_CC",
                "CROSS_COMPILE",
                "XDG_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || matches!(k.as_str(), "PATH" | "HOME")
        })
        .collect();
    env.sort();
    env.hash(&mut h);
    // A new cargo-fatbin may plan differently.
    let exe = std::env::current_exe().ok();
    exe.as_deref().and_then(stamp).hash(&mut h);
    exe.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn cache_dir() -> Option<PathBuf> {
    Some(fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache")?.join("fatbin/plans"))
}

fn read<T: for<'de> Deserialize<'de>>(key: &str, suffix: &str) -> Option<T> {
    if disabled() || key.is_empty() {
        return None;
    }
    let path = cache_dir()?.join(format!("{key}.{suffix}.json"));
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Best effort: a cache that cannot be written only costs speed.
fn write<T: Serialize>(key: &str, suffix: &str, value: &T) {
    if disabled() || key.is_empty() {
        return;
    }
    let Some(dir) = cache_dir() else { return };
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let Ok(bytes) = serde_json::to_vec(value) else {
        return;
    };
    let path = dir.join(format!("{key}.{suffix}.json"));
    let _ = fatbin_layout::fsutil::write_atomic(&path, &bytes, 0o644);
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedPlan<T> {
    inputs: Stamped,
    plan: T,
}

/// The saved plan, if nothing it was made from has changed.
pub(crate) fn load_plan<T: for<'de> Deserialize<'de>>(key: &str) -> Option<T> {
    let saved: SavedPlan<T> = read(key, "plan")?;
    saved.inputs.still_valid().then_some(saved.plan)
}

pub(crate) fn save_plan<T: Serialize>(key: &str, plan: &T, inputs: Stamped) {
    write(key, "plan", &SavedPlan { inputs, plan });
}

/// What the last successful run produced and installed.
#[derive(Debug, Serialize, Deserialize)]
struct SavedOutputs {
    binaries: Vec<(String, String, PathBuf)>,
    files: Stamped,
}

fn binary_list(built: &[BuiltBinary]) -> Vec<(String, String, PathBuf)> {
    let mut list: Vec<_> = built
        .iter()
        .map(|b| (b.program.clone(), b.plan.slot.to_string(), b.path.clone()))
        .collect();
    list.sort();
    list
}

/// True when cargo rebuilt nothing and the layout still holds exactly what the last run of
/// this command installed from these same binaries.
pub(crate) fn outputs_unchanged(key: &str, built: &[BuiltBinary]) -> bool {
    if !built.iter().all(|b| b.fresh) {
        return false;
    }
    let Some(saved) = read::<SavedOutputs>(key, "outputs") else {
        return false;
    };
    saved.binaries == binary_list(built) && saved.files.still_valid()
}

/// Records the outputs of a successful run: the binaries and every installed file.
pub(crate) fn save_outputs(key: &str, built: &[BuiltBinary], installed_files: Vec<PathBuf>) {
    let files = built.iter().map(|b| b.path.clone()).chain(installed_files);
    write(
        key,
        "outputs",
        &SavedOutputs {
            binaries: binary_list(built),
            files: Stamped::of(files),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_notice_rewrites_creations_and_removals() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Cargo.toml");
        let absent = dir.path().join("Cargo.lock");
        std::fs::write(&file, "a").unwrap();
        let stamped = Stamped::of([file.clone(), absent.clone()]);
        assert!(stamped.still_valid());

        std::fs::write(&absent, "").unwrap();
        assert!(!stamped.still_valid(), "a new file went unnoticed");
        std::fs::remove_file(&absent).unwrap();
        assert!(stamped.still_valid());

        // Same size, new content: the mtime (or inode, when replaced) moves.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&file, "b").unwrap();
        assert!(!stamped.still_valid(), "a rewrite went unnoticed");
    }
}
