//! The system backend: a target's linker and C compiler from the user's own configuration
//! (`CARGO_TARGET_<T>_LINKER`, `target.<triple>.linker`, `CC_<triple>`, ...), else rustc's
//! bundled `rust-lld` for static musl, else the system's cross tools named after the GNU
//! triple (`aarch64-linux-gnu-gcc`, from Debian's `gcc-aarch64-linux-gnu`).

use fatbin_layout::Arch;

use super::{found_on_path, LinkerCheck, Problem, Toolchain};
use crate::cargo_config::{target_env_var, UserConfig};
use crate::target::is_musl;

/// `aarch64-unknown-linux-gnu` -> `aarch64-linux-gnu`: the GNU triple Debian's cross
/// compilers (`aarch64-linux-gnu-gcc`) are named after. The architecture part is the one of
/// the processor table's Debian sysroot (`/usr/arm-linux-gnueabihf`), the ABI the triple's.
pub(crate) fn gnu_prefix(triple: &str) -> String {
    let env = triple.rsplit('-').next().unwrap_or(triple);
    let arch = Arch::from_triple(triple)
        .and_then(|a| a.info().sysroot.strip_prefix("/usr/")?.split('-').next())
        .unwrap_or_else(|| triple.split('-').next().unwrap_or(triple));
    format!("{arch}-linux-{env}")
}

/// The Debian package of the cross gcc for `triple`, from the processor table (Debian
/// package names cannot hold underscores: `x86_64-linux-gnu-gcc` comes from
/// `gcc-x86-64-linux-gnu`).
pub(crate) fn debian_cross_gcc(triple: &str) -> String {
    match Arch::from_triple(triple) {
        Some(arch) => arch.info().debian_gcc.to_owned(),
        None => format!("gcc-{}", gnu_prefix(triple).replace('_', "-")),
    }
}

impl Toolchain {
    /// Which linker the target uses and whether it is there.
    pub(crate) fn check_linker(&self, triple: &str, config: &UserConfig) -> LinkerCheck {
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
                zig: None,
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
                zig: None,
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
                zig: None,
            };
        }
        let prefix = gnu_prefix(triple);
        let gcc = format!("{prefix}-gcc");
        let problem = (!found_on_path(&gcc)).then(|| Problem {
            what: format!("no cross linker `{gcc}` for {triple}"),
            fix: format!(
                "apt-get install {} (or set {} to a linker)",
                debian_cross_gcc(triple),
                target_env_var(triple, "LINKER")
            ),
        });
        LinkerCheck {
            describe: gcc.clone(),
            set: Some(gcc),
            musl_stubs: false,
            problem,
            zig: None,
        }
    }

    /// Is there a C compiler for `triple` that the `cc` crate would find? It looks at
    /// `CC_<triple>`, `CC_<triple_with_underscores>`, `TARGET_CC`, `CC`, `CROSS_COMPILE`, then a
    /// compiler named after the target (what cc-rs does, seen in its build-script output).
    pub(crate) fn check_c_compiler(&self, triple: &str) -> Result<String, Problem> {
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
                super::zig::INSTALL_ZIG.to_owned()
            };
            (c, fix)
        } else {
            (
                vec![format!("{prefix}-gcc")],
                format!("apt-get install {}", debian_cross_gcc(triple)),
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
}

#[cfg(test)]
mod tests {
    use super::{debian_cross_gcc, gnu_prefix};
    use crate::toolchain::Toolchain;
    use std::process::Command;

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

    /// Every gnu triple with a slot, as rustup serves them.
    const GNU_TRIPLES: [&str; 7] = [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "i686-unknown-linux-gnu",
        "riscv64gc-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
        "powerpc64le-unknown-linux-gnu",
        "s390x-unknown-linux-gnu",
    ];

    /// The names of every package Debian's lists know that start with `prefix` (one call:
    /// `apt-cache show` takes seconds per package).
    fn debian_packages(prefix: &str) -> Option<Vec<String>> {
        let out = Command::new("apt-cache")
            .args(["pkgnames", prefix])
            .output()
            .ok()?;
        Some(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Regression: doctor told x86_64 gnu users to `apt-get install gcc-x86_64-linux-gnu`,
    /// a package that cannot exist.
    #[test]
    fn suggested_packages_are_spelled_like_debian_packages() {
        assert_eq!(
            debian_cross_gcc("x86_64-unknown-linux-gnu"),
            "gcc-x86-64-linux-gnu"
        );
        // Seen from an aarch64 host, where x86_64 gnu is a cross target.
        let tc = Toolchain {
            sysroot: "/nonexistent".into(),
            host: "aarch64-unknown-linux-gnu".into(),
        };
        if let Err(problem) = tc.check_c_compiler("x86_64-unknown-linux-gnu") {
            assert!(
                problem.fix.contains("apt-get install gcc-x86-64-linux-gnu"),
                "{problem:?}"
            );
        }
    }

    /// Every package name doctor can suggest is one `apt-cache` knows. The host's own cross
    /// gcc is not in the host's archive (its compiler is plain `gcc`), so it is left out.
    #[test]
    fn suggested_cross_gcc_packages_exist_in_debian() {
        let Some(known) = debian_packages("gcc-") else {
            eprintln!("no apt-cache: not a Debian machine, nothing to check");
            return;
        };
        assert!(
            known.iter().any(|p| p == "gcc-aarch64-linux-gnu"),
            "apt-cache knows no packages: run `apt-get update` (ci/setup.sh does)"
        );
        let host_arch = std::env::consts::ARCH;
        for triple in GNU_TRIPLES {
            if triple.starts_with(host_arch) {
                continue;
            }
            let package = debian_cross_gcc(triple);
            assert!(
                known.contains(&package),
                "{triple}: no Debian package `{package}`"
            );
        }
    }
}
