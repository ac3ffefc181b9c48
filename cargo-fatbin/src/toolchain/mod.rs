//! What each target needs from this machine, and the exact command that installs what is
//! missing: the standard library, a linker, a C compiler (when a `cc` build script needs one),
//! and a way to run the result here. The diagnosis module asks these questions for every target;
//! `doctor` prints the answers, `build` and `install` stop on them before cargo starts, so a
//! missing piece is one clear error, not a wall of linker output.
//!
//! Where the linker and C compiler come from is a backend: [`system`] takes them from the
//! user's configuration and the system's own cross tools (Debian's `gcc-<triple>`); [`zig`]
//! takes all of them from zig, one C cross toolchain for every target. [`Backend`] is the
//! user's choice (`--toolchain auto|system|zig`) and `diagnose` applies it per target.

use std::path::{Path, PathBuf};

use fatbin_layout::Arch;

use crate::error::Result;
use crate::rustc::Rustc;

mod system;
pub(crate) mod zig;

pub(crate) use zig::ZigPlan;

/// The facts about this machine's toolchain every check needs.
#[derive(Debug, Clone)]
pub(crate) struct Toolchain {
    pub(crate) sysroot: PathBuf,
    pub(crate) host: String,
}

/// One missing piece and what fixes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Problem {
    pub(crate) what: String,
    pub(crate) fix: String,
}

/// How a target's binaries are linked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct LinkerCheck {
    /// The linker, as a person would name it (`rust-lld (bundled with rustc)`).
    pub(crate) describe: String,
    /// A linker `cargo fatbin` sets for the target (none when the user configured one, or the
    /// default `cc` of a native build is right).
    pub(crate) set: Option<String>,
    /// Whether `cargo fatbin` supplies the empty `-lm -lpthread ...` archives rust-lld needs.
    pub(crate) musl_stubs: bool,
    pub(crate) problem: Option<Problem>,
    /// zig links the target, and compiles its C: the wrappers to write before cargo runs.
    #[serde(default)]
    pub(crate) zig: Option<ZigPlan>,
}

/// Where a target's linker and C compiler come from (`--toolchain`, `FATBIN_TOOLCHAIN`,
/// `toolchain` in `[package.metadata.fatbin]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// The user's configuration, then the system's cross tools, then zig for a target they
    /// cannot build.
    #[default]
    Auto,
    /// The user's configuration and the system's cross tools only.
    System,
    /// zig for every target the user configured no linker for.
    Zig,
}

impl Backend {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::System => "system",
            Backend::Zig => "zig",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Backend> {
        match s {
            "auto" => Ok(Backend::Auto),
            "system" => Ok(Backend::System),
            "zig" => Ok(Backend::Zig),
            other => Err(crate::error::Error::usage(format!(
                "invalid toolchain `{other}`: expected auto, system or zig"
            ))),
        }
    }
}

/// Can this host run the target's binaries?
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Runs {
    Native,
    Qemu(PathBuf),
    No { fix: String },
}

impl std::fmt::Display for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Runs::Native => f.write_str("natively"),
            Runs::Qemu(path) => write!(f, "through {}", path.display()),
            Runs::No { .. } => f.write_str("no"),
        }
    }
}

pub(crate) fn found_on_path(program: &str) -> bool {
    if program.contains('/') {
        Path::new(program).is_file()
    } else {
        which::which(program).is_ok()
    }
}

impl Toolchain {
    /// Finds the toolchain facts (sysroot, host) with one rustc call each, in parallel.
    pub(crate) fn detect(rustc: &Rustc) -> Result<Toolchain> {
        std::thread::scope(|scope| {
            let host = scope.spawn(|| rustc.host());
            let sysroot = rustc.sysroot()?;
            let host = host.join().expect("rustc host thread")?;
            Ok(Toolchain { sysroot, host })
        })
    }

    /// Where rustc keeps the tools it ships (rust-lld).
    pub(crate) fn host_bin_dir(&self) -> PathBuf {
        self.sysroot
            .join("lib/rustlib")
            .join(&self.host)
            .join("bin")
    }

    /// Is the target's standard library installed?
    pub(crate) fn check_std(&self, triple: &str) -> Option<Problem> {
        let lib = self.sysroot.join("lib/rustlib").join(triple).join("lib");
        let has_std = std::fs::read_dir(&lib).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        });
        if has_std {
            return None;
        }
        let fix = if which::which("rustup").is_ok() {
            format!("rustup target add {triple}")
        } else {
            format!(
                "install the Rust standard library for {triple} into {}",
                self.sysroot.display()
            )
        };
        Some(Problem {
            what: format!("the standard library for {triple} is not installed"),
            fix,
        })
    }

    /// Can this host run `arch` binaries (with the CPU `features` they need)?
    pub(crate) fn runs(&self, arch: Arch, features: &[String], host_features: &[String]) -> Runs {
        let host_arch = Arch::from_triple(&self.host);
        let native_arch =
            host_arch == Some(arch) || host_arch.is_some_and(|h| h.also_runs().contains(&arch));
        if native_arch && features.iter().all(|f| host_features.contains(f)) {
            return Runs::Native;
        }
        for name in [
            format!("qemu-{}-static", arch.qemu_name()),
            format!("qemu-{}", arch.qemu_name()),
        ] {
            if let Ok(path) = which::which(&name) {
                return Runs::Qemu(path);
            }
        }
        Runs::No {
            fix: "apt-get install qemu-user-static".into(),
        }
    }
}
