//! C test programs for processors whose Rust standard library is not served here (mips,
//! loongarch64, sparc64, big-endian ppc64, armv6, riscv64 musl), cross-compiled by zig: the
//! binaries a user brings from elsewhere and hands to `cargo fatbin add`.
//!
//! zig comes from the PyPI package `ziglang` (`python3 -m ziglang cc -target T`), one C
//! compiler with musl and glibc for every target built in. The first build for a target
//! compiles that target's libc into zig's own cache (`~/.cache/zig`), which takes minutes;
//! after that a build takes about a second. The binaries themselves are kept under
//! `target/zig/` and rebuilt only when the C source is newer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::{run_ok, workspace_root};

/// How to build one test binary: zig's target, extra C flags, and the linking mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZigBuild {
    /// A short name for the binary's file (`mips64el`, `armv6`).
    pub name: &'static str,
    /// zig's `-target` (`mips64el-linux-muslabi64`).
    pub target: &'static str,
    /// Further flags, such as `-mcpu=arm1176jzf_s` for an armv6 build.
    pub flags: &'static [&'static str],
    /// `-static`, or dynamic against zig's glibc stubs when the target has no static libc
    /// in zig (sparc64).
    pub linking: Linking,
}

/// Whether a test binary is linked statically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linking {
    Static,
    Dynamic,
}

/// The C source every test binary is built from: the C twin of the matrix fixture.
pub fn c_source() -> PathBuf {
    workspace_root().join("tests/fixtures/matrix/ident.c")
}

/// `python3 -m ziglang`: zig as the PyPI package installs it.
pub fn zig_command() -> Command {
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "ziglang"]);
    cmd
}

/// Panics with the install command unless zig can be run; CI installs it (`ci/setup.sh`).
pub fn require_zig() {
    let ok = zig_command()
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        ok,
        "zig is missing: python3 -m pip install ziglang (the version ci/setup.sh pins)"
    );
}

/// Builds the C test binary for `build` when it is missing or older than the C source, and
/// returns its path.
pub fn c_binary(build: &ZigBuild) -> PathBuf {
    // One zig build at a time: each one already keeps every core busy compiling a libc, and
    // two tests must never write the same file.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _held = BUILDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    let source = c_source();
    let dir = workspace_root().join("target/zig").join(build.name);
    let out = dir.join("ident");
    if is_newer_than(&out, &source) {
        return out;
    }
    require_zig();
    std::fs::create_dir_all(&dir).unwrap();
    // Built beside the final name and renamed, so an interrupted build leaves no half file.
    let partial = dir.join("ident.partial");
    let mut cmd = zig_command();
    cmd.args(["cc", "-target", build.target, "-Os"])
        .args(build.flags)
        .args(match build.linking {
            Linking::Static => &["-static"][..],
            Linking::Dynamic => &[],
        })
        .arg("-o")
        .arg(&partial)
        .arg(&source);
    run_ok(
        &mut cmd,
        &format!("zig cc -target {} {:?}", build.target, build.flags),
    );
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// Whether `path` exists and was modified after `than`.
fn is_newer_than(path: &Path, than: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(path), modified(than)) {
        (Some(built), Some(source)) => built > source,
        _ => false,
    }
}
