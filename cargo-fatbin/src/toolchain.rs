//! What each target needs from this machine, and the exact command that installs what is
//! missing: the standard library, a linker, a C compiler (when a `cc` build script needs one),
//! and a way to run the result here. `doctor` prints these; `build` and `install` stop on them
//! before cargo starts, so a missing piece is one clear error, not a wall of linker output.

use std::path::{Path, PathBuf};

use fatbin_layout::Arch;

use crate::cargo_config::{target_env_var, UserConfig};
use crate::target::is_musl;

/// The facts about this machine's toolchain every check needs.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub sysroot: PathBuf,
    pub host: String,
}

/// One missing piece and what fixes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

/// How a target's binaries are linked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkerCheck {
    /// The linker, as a person would name it (`rust-lld (bundled with rustc)`).
    pub describe: String,
    /// A linker `cargo fatbin` sets for the target (none when the user configured one, or the
    /// default `cc` of a native build is right).
    pub set: Option<String>,
    /// Whether `cargo fatbin` supplies the empty `-lm -lpthread ...` archives rust-lld needs.
    pub musl_stubs: bool,
    pub problem: Option<Problem>,
}

/// Can this host run the target's binaries?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
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

/// `aarch64-unknown-linux-gnu` -> `aarch64-linux-gnu`: the GNU triple Debian's cross
/// compilers (`gcc-aarch64-linux-gnu`) are named after.
pub fn gnu_prefix(triple: &str) -> String {
    let mut parts: Vec<&str> = triple.split('-').filter(|p| *p != "unknown").collect();
    if let Some(first) = parts.first_mut() {
        *first = match *first {
            "riscv64gc" => "riscv64",
            "armv7" | "thumbv7neon" => "arm",
            other => other,
        };
    }
    parts.join("-")
}

fn found_on_path(program: &str) -> bool {
    if program.contains('/') {
        Path::new(program).is_file()
    } else {
        which::which(program).is_ok()
    }
}

impl Toolchain {
    /// Where rustc keeps the tools it ships (rust-lld).
    fn host_bin_dir(&self) -> PathBuf {
        self.sysroot
            .join("lib/rustlib")
            .join(&self.host)
            .join("bin")
    }

    /// Is the target's standard library installed?
    pub fn check_std(&self, triple: &str) -> Option<Problem> {
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

    /// Which linker the target uses and whether it is there.
    pub fn check_linker(&self, triple: &str, config: &UserConfig) -> LinkerCheck {
        if let Some(linker) = config.linker(triple) {
            // rustc looks for its bundled linkers (rust-lld) in the sysroot, not on PATH.
            let bundled = !linker.contains('/') && self.host_bin_dir().join(&linker).is_file();
            let problem = (!bundled && !found_on_path(&linker)).then(|| Problem {
                what: format!("the linker `{linker}` configured for {triple} is not found"),
                fix: format!(
                    "install `{linker}`, or change {} / target.{triple}.linker",
                    target_env_var(triple, "LINKER")
                ),
            });
            // Your own rust-lld for musl needs the same stub archives as ours.
            let is_lld = linker == "rust-lld" || linker.ends_with("/rust-lld");
            return LinkerCheck {
                describe: format!("{linker} (your configuration)"),
                set: None,
                musl_stubs: is_musl(triple) && is_lld,
                problem,
            };
        }
        if is_musl(triple) {
            // Static musl: rustc ships the C runtime (self-contained crt objects and libc.a)
            // and rust-lld, so no C cross toolchain is needed.
            let lld = self.host_bin_dir().join("rust-lld");
            let problem = (!lld.is_file()).then(|| Problem {
                what: format!("rustc's bundled rust-lld is missing ({})", lld.display()),
                fix: "rustup toolchain install --force stable (reinstall the toolchain)".into(),
            });
            return LinkerCheck {
                describe: "rust-lld (bundled with rustc)".into(),
                set: Some("rust-lld".into()),
                musl_stubs: true,
                problem,
            };
        }
        if triple == self.host {
            let problem = (!found_on_path("cc")).then(|| Problem {
                what: "no C compiler `cc` to link with".into(),
                fix: "apt-get install gcc".into(),
            });
            return LinkerCheck {
                describe: "cc (native)".into(),
                set: None,
                musl_stubs: false,
                problem,
            };
        }
        let prefix = gnu_prefix(triple);
        let gcc = format!("{prefix}-gcc");
        let problem = (!found_on_path(&gcc)).then(|| Problem {
            what: format!("no cross linker `{gcc}` for {triple}"),
            fix: format!(
                "apt-get install gcc-{prefix} (or set {} to a linker)",
                target_env_var(triple, "LINKER")
            ),
        });
        LinkerCheck {
            describe: gcc.clone(),
            set: Some(gcc),
            musl_stubs: false,
            problem,
        }
    }

    /// Is there a C compiler for `triple` that the `cc` crate would find? It looks at
    /// `CC_<triple>`, `CC_<triple_with_underscores>`, `TARGET_CC`, `CC`, `CROSS_COMPILE`, then a
    /// compiler named after the target (what cc-rs does, seen in its build-script output).
    pub fn check_c_compiler(&self, triple: &str) -> Result<String, Problem> {
        let underscored = triple.replace('-', "_");
        for var in [
            format!("CC_{triple}"),
            format!("CC_{underscored}"),
            "TARGET_CC".to_owned(),
            "CC".to_owned(),
            "CROSS_COMPILE".to_owned(),
        ] {
            if let Ok(cc) = std::env::var(&var) {
                return Ok(format!("{cc} (from {var})"));
            }
        }
        if triple == self.host {
            return if found_on_path("cc") {
                Ok("cc".into())
            } else {
                Err(Problem {
                    what: "no C compiler `cc`".into(),
                    fix: "apt-get install gcc".into(),
                })
            };
        }
        let prefix = gnu_prefix(triple);
        let (candidates, fix) = if is_musl(triple) {
            let mut c = vec![format!("{prefix}-gcc")];
            let fix = if triple.starts_with("x86_64-") {
                c.push("musl-gcc".into());
                "apt-get install musl-tools".to_owned()
            } else {
                format!("install a musl cross compiler named {prefix}-gcc (musl-cross-make)")
            };
            (c, fix)
        } else {
            (
                vec![format!("{prefix}-gcc")],
                format!("apt-get install gcc-{prefix}"),
            )
        };
        if let Some(found) = candidates.iter().find(|c| found_on_path(c)) {
            return Ok(found.clone());
        }
        Err(Problem {
            what: format!(
                "a dependency builds C code with the `cc` crate, and there is no C compiler for {triple} (looked for CC_{underscored}, {})",
                candidates.join(", ")
            ),
            fix: format!("{fix}, or set CC_{underscored}=<compiler>"),
        })
    }

    /// Can this host run `arch` binaries (with the CPU `features` they need)?
    pub fn runs(&self, arch: Arch, features: &[String], host_features: &[String]) -> Runs {
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

#[cfg(test)]
mod tests {
    use super::gnu_prefix;

    #[test]
    fn gnu_prefixes_match_debian_cross_compilers() {
        assert_eq!(gnu_prefix("aarch64-unknown-linux-gnu"), "aarch64-linux-gnu");
        assert_eq!(
            gnu_prefix("riscv64gc-unknown-linux-gnu"),
            "riscv64-linux-gnu"
        );
        assert_eq!(
            gnu_prefix("armv7-unknown-linux-gnueabihf"),
            "arm-linux-gnueabihf"
        );
        assert_eq!(
            gnu_prefix("powerpc64le-unknown-linux-gnu"),
            "powerpc64le-linux-gnu"
        );
    }
}
