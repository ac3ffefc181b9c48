//! The zig backend: zig as the one C compiler, C++ compiler, archiver and linker for every
//! target, with musl and glibc for every processor built in (what `cargo zigbuild` does).
//!
//! zig is `zig` on PATH, else the PyPI package `ziglang` (its `zig` binary, which
//! `python3 -m ziglang` would run). cargo and the
//! `cc` crate each want ONE program path per tool, and neither speaks zig's dialect, so
//! `cargo fatbin` writes small shell wrappers per target (and per `@CPU`) under
//! `<target-dir>/fatbin/zig/<triple>[@cpu]/` (never on the user's PATH) that fix what zig
//! would reject:
//!
//! - cc-rs sees a clang and adds `--target=<rust triple>`; zig wants its own `-target`
//!   (`aarch64-linux-musl`), so the wrapper drops the rust one and passes zig's.
//! - cc-rs splits a `CC` with spaces into a wrapper and a compiler it then cannot identify,
//!   so `python3 -m ziglang cc` is hidden behind one path.
//! - rustc passes linker flags zig does not take: `-Wl,--no-undefined-version`, `-lgcc_s` on
//!   musl, `-fuse-ld=lld` with `-B.../gcc-ld`, ld's emulation on i686 (`-Wl,-melf_i386`),
//!   and its own self-contained musl crt objects (zig brings its own, and two `_start`s do
//!   not link).
//! - A `@CPU` target passes the CPU to C code too: `-mcpu=` in zig's spelling
//!   (`x86-64-v3` -> `x86_64_v3`).
//!
//! zig's architecture names are a column of the processor table (`ArchInfo::zig`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fatbin_layout::Arch;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The fix doctor and build name when zig is needed and missing: doable with the package
/// index alone, no sources to download.
pub(crate) const INSTALL_ZIG: &str = "pip install ziglang (or pipx install ziglang)";

/// The command that runs zig here (`["zig"]`, or the `ziglang` package's own `zig` binary by
/// its path), looked up once per process; `None` when there is no zig.
///
/// The package's binary is run directly rather than as `python3 -m ziglang`, whose
/// `__main__` only `exec`s that same binary: every C compile of a build goes through the
/// wrappers, and a C library's `./configure` runs the compiler hundreds of times, each of
/// which would otherwise start a Python interpreter first (about 1 s under a pyenv shim on a
/// loaded machine, against 0.1 s for zig itself). `python3 -m ziglang` stays the fallback for
/// a package laid out differently.
pub(crate) fn find() -> Option<&'static [String]> {
    static FOUND: OnceLock<Option<Vec<String>>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let runs = |cmd: &[String]| {
                Command::new(&cmd[0])
                    .args(&cmd[1..])
                    .arg("version")
                    .output()
                    .is_ok_and(|out| out.status.success())
            };
            let on_path = || Some(vec!["zig".to_owned()]);
            let package_binary = || ziglang_binary().map(|zig| vec![zig]);
            let python_module = || {
                Some(vec![
                    "python3".to_owned(),
                    "-m".to_owned(),
                    "ziglang".to_owned(),
                ])
            };
            let candidates: [&dyn Fn() -> Option<Vec<String>>; 3] =
                [&on_path, &package_binary, &python_module];
            candidates
                .iter()
                .filter_map(|candidate| candidate())
                .find(|cmd| runs(cmd))
        })
        .as_deref()
}

/// The path of the `zig` binary inside the `ziglang` Python package, as Python finds the
/// package; `None` when python3 or the package is missing.
fn ziglang_binary() -> Option<String> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, ziglang; print(os.path.dirname(os.path.abspath(ziglang.__file__)))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    let zig = Path::new(dir.trim_end_matches('\n')).join("zig");
    zig.is_file().then(|| zig.to_string_lossy().into_owned())
}

/// zig's `-target` for a Rust triple (`armv7-unknown-linux-gnueabihf` ->
/// `arm-linux-gnueabihf`), with a glibc floor if one is asked for (`x86_64-linux-gnu.2.17`).
pub(crate) fn zig_target(triple: &str, glibc: Option<&str>) -> Option<String> {
    let arch = Arch::from_triple(triple)?;
    let env = triple.rsplit('-').next()?;
    let mut target = format!("{}-linux-{env}", arch.info().zig);
    if let (Some(floor), true) = (glibc, env.starts_with("gnu")) {
        target.push('.');
        target.push_str(floor);
    }
    Some(target)
}

/// Splits the glibc floor off a target as cargo-zigbuild spells it:
/// `x86_64-unknown-linux-gnu.2.17` is `x86_64-unknown-linux-gnu` built against glibc 2.17.
/// The `.` can only follow the environment (`gnu`, `gnueabihf`), so a triple without one is
/// returned whole.
pub(crate) fn split_glibc_floor(
    triple: &str,
) -> std::result::Result<(&str, Option<&str>), &'static str> {
    let env_start = triple.rfind('-').map_or(0, |i| i + 1);
    let Some(dot) = triple[env_start..].find('.').map(|i| env_start + i) else {
        return Ok((triple, None));
    };
    let (base, floor) = (&triple[..dot], &triple[dot + 1..]);
    if !base[env_start..].starts_with("gnu") {
        return Err("a glibc floor (`.2.17`) only follows a *-linux-gnu* triple");
    }
    let is_version = floor.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    });
    if !is_version {
        return Err("the glibc floor after the triple must be MAJOR.MINOR, as in x86_64-unknown-linux-gnu.2.17");
    }
    Ok((base, Some(floor)))
}

/// rustc's CPU name in zig's spelling: zig's CPU models use `_` where LLVM's use `-`.
pub(crate) fn zig_cpu(cpu: &str) -> String {
    cpu.replace(['-', '.'], "_")
}

/// Everything needed to write one target's wrappers; kept in the build plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ZigPlan {
    /// How zig is run (`["zig"]`, `["/path/to/site-packages/ziglang/zig"]`).
    pub(crate) command: Vec<String>,
    pub(crate) triple: String,
    /// zig's `-target`.
    pub(crate) target: String,
    /// `@CPU` of the target, as rustc spells it.
    pub(crate) cpu: Option<String>,
    /// The glibc floor (`2.17`), part of [`ZigPlan::target`] too.
    #[serde(default)]
    pub(crate) glibc: Option<String>,
}

/// The wrapper programs of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wrappers {
    pub(crate) cc: PathBuf,
    pub(crate) cxx: PathBuf,
    pub(crate) ar: PathBuf,
    pub(crate) linker: PathBuf,
}

/// `word` quoted for sh.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl ZigPlan {
    /// The plan for `triple` (tuned for `cpu`), or `None` when zig has no target for it.
    pub(crate) fn new(
        command: &[String],
        triple: &str,
        cpu: Option<&str>,
        glibc: Option<&str>,
    ) -> Option<ZigPlan> {
        Some(ZigPlan {
            command: command.to_vec(),
            triple: triple.to_owned(),
            target: zig_target(triple, glibc)?,
            cpu: cpu.map(str::to_owned),
            glibc: glibc.map(str::to_owned),
        })
    }

    /// `zig cc -target T` as a person would read it.
    pub(crate) fn describe(&self, tool: &str) -> String {
        format!("zig {tool} -target {}", self.target)
    }

    /// The directory of this target's wrappers: one per triple, glibc floor and CPU, so the
    /// linker's path changes with the floor and cargo relinks.
    pub(crate) fn dir(&self, target_dir: &Path) -> PathBuf {
        let mut name = self.triple.clone();
        if let Some(floor) = &self.glibc {
            name.push('.');
            name.push_str(floor);
        }
        if let Some(cpu) = &self.cpu {
            name.push('@');
            name.push_str(cpu);
        }
        target_dir.join("fatbin/zig").join(name)
    }

    /// The shell script for zig's `tool` (`cc`, `c++`, `ar`); `linker` adds the filters for
    /// what rustc passes.
    fn script(&self, tool: &str, linker: bool) -> String {
        let zig: Vec<String> = self.command.iter().map(|w| sh_quote(w)).collect();
        let mut head = format!("{} {tool}", zig.join(" "));
        let mut filters = String::new();
        if tool != "ar" {
            head.push_str(&format!(" -target {}", sh_quote(&self.target)));
            if let Some(cpu) = &self.cpu {
                head.push_str(&format!(
                    " {}",
                    sh_quote(&format!("-mcpu={}", zig_cpu(cpu)))
                ));
            }
            // cc-rs's `--target=<rust triple>` (or `-target X`): zig has its own.
            filters.push_str("    --target=*) ;;\n");
            filters.push_str("    -target) [ \"$n\" -gt 0 ] && { shift; n=$((n - 1)); } ;;\n");
        }
        if linker {
            filters.push_str("    -Wl,--no-undefined-version) ;;\n");
            filters.push_str("    -fuse-ld=*) ;;\n");
            filters.push_str("    -B*/gcc-ld) ;;\n");
            // The emulation rustc names for ld (`-melf_i386` on i686): zig takes it from its
            // own `-target` and rejects the flag.
            filters.push_str("    -Wl,-melf_*) ;;\n");
            if self.triple.contains("-musl") {
                // zig links its own musl start files; rustc's, with -nostartfiles, would
                // give two `_start`s. musl has no libgcc_s.
                filters.push_str("    *self-contained/*crt*.o|-nostartfiles|-lgcc_s) ;;\n");
            }
        }
        format!(
            "#!/bin/sh\n\
             # Written by cargo fatbin: zig's `{tool}` for {triple}{link}. Regenerated on every build.\n\
             n=$#\n\
             while [ \"$n\" -gt 0 ]; do\n\
             \x20 arg=$1\n\
             \x20 shift\n\
             \x20 n=$((n - 1))\n\
             \x20 case $arg in\n\
             {filters}\
             \x20   *) set -- \"$@\" \"$arg\" ;;\n\
             \x20 esac\n\
             done\n\
             exec {head} \"$@\"\n",
            triple = self.triple,
            link = if linker { " (as the linker)" } else { "" },
        )
    }

    /// Writes (or rewrites, when they changed) the wrappers under `target_dir`.
    pub(crate) fn write_wrappers(&self, target_dir: &Path) -> Result<Wrappers> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir(target_dir);
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let wrappers = Wrappers {
            cc: dir.join("cc"),
            cxx: dir.join("c++"),
            ar: dir.join("ar"),
            linker: dir.join("linker"),
        };
        for (path, tool, linker) in [
            (&wrappers.cc, "cc", false),
            (&wrappers.cxx, "c++", false),
            (&wrappers.ar, "ar", false),
            (&wrappers.linker, "cc", true),
        ] {
            let text = self.script(tool, linker);
            // Unchanged wrappers keep their mtime, so cargo sees nothing new.
            if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
                continue;
            }
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &text).map_err(Error::io(&tmp))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .map_err(Error::io(&tmp))?;
            std::fs::rename(&tmp, path).map_err(Error::io(path))?;
        }
        Ok(wrappers)
    }
}

/// The environment cargo and cc-rs read for one target's C tools (`CC_<triple>`, ...).
pub(crate) fn tool_env(triple: &str, wrappers: &Wrappers) -> Vec<(String, PathBuf)> {
    vec![
        (format!("CC_{triple}"), wrappers.cc.clone()),
        (format!("CXX_{triple}"), wrappers.cxx.clone()),
        (format!("AR_{triple}"), wrappers.ar.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_triples_map_to_zig_targets() {
        for (triple, zig) in [
            ("aarch64-unknown-linux-musl", "aarch64-linux-musl"),
            ("armv7-unknown-linux-gnueabihf", "arm-linux-gnueabihf"),
            ("riscv64gc-unknown-linux-gnu", "riscv64-linux-gnu"),
            ("powerpc64le-unknown-linux-gnu", "powerpc64le-linux-gnu"),
            ("s390x-unknown-linux-gnu", "s390x-linux-gnu"),
            ("i686-unknown-linux-musl", "x86-linux-musl"),
            ("x86_64-unknown-linux-musl", "x86_64-linux-musl"),
        ] {
            assert_eq!(zig_target(triple, None).as_deref(), Some(zig), "{triple}");
        }
        assert_eq!(
            zig_target("x86_64-unknown-linux-gnu", Some("2.17")).as_deref(),
            Some("x86_64-linux-gnu.2.17")
        );
        // musl has no glibc floor.
        assert_eq!(
            zig_target("x86_64-unknown-linux-musl", Some("2.17")).as_deref(),
            Some("x86_64-linux-musl")
        );
        assert_eq!(zig_cpu("x86-64-v3"), "x86_64_v3");
        assert_eq!(zig_cpu("neoverse-n1"), "neoverse_n1");
    }

    /// zig, as CI installs it (`ci/setup.sh`); these tests run it for real.
    fn zig() -> &'static [String] {
        find().expect("zig is missing: python3 -m pip install ziglang (ci/setup.sh pins it)")
    }

    /// Wrappers for `triple@cpu` in a fresh directory, and that directory.
    fn wrappers(triple: &str, cpu: Option<&str>) -> (tempfile::TempDir, Wrappers) {
        let dir = tempfile::tempdir().unwrap();
        let plan = ZigPlan::new(zig(), triple, cpu, None).unwrap();
        let wrappers = plan.write_wrappers(dir.path()).unwrap();
        (dir, wrappers)
    }

    fn run(program: &Path, args: &[&str], cwd: &Path) -> std::process::Output {
        let out = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The ELF `e_machine` of a file.
    fn elf_machine(path: &Path) -> u16 {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
        u16::from_le_bytes([bytes[18], bytes[19]])
    }

    /// The `ziglang` package's zig is run by its path, not through `python3 -m ziglang`: a
    /// C library's `./configure` runs the compiler hundreds of times, and each would start a
    /// Python interpreter first. It is the same zig the module runs.
    #[test]
    fn the_ziglang_package_is_run_without_python() {
        let cmd = zig();
        assert_ne!(cmd[0], "python3", "{cmd:?}");
        assert_eq!(cmd.len(), 1, "{cmd:?}");
        let version = |cmd: &mut Command| {
            let out = cmd.arg("version").output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        };
        let package = ziglang_binary().expect("the ziglang package (ci/setup.sh) is installed");
        assert_eq!(
            version(&mut Command::new(package)),
            version(Command::new("python3").args(["-m", "ziglang"]))
        );
    }

    /// cc-rs adds `--target=<rust triple>` when it sees a clang; zig rejects that spelling.
    #[test]
    fn the_rust_target_flag_of_cc_rs_is_dropped() {
        let (dir, w) = wrappers("aarch64-unknown-linux-musl", None);
        std::fs::write(dir.path().join("a.c"), "int f(void) { return 1; }\n").unwrap();
        run(
            &w.cc,
            &[
                "--target=aarch64-unknown-linux-musl",
                "-c",
                "a.c",
                "-o",
                "a.o",
            ],
            dir.path(),
        );
        assert_eq!(elf_machine(&dir.path().join("a.o")), 183, "not AArch64");
    }

    /// cc-rs splits a `CC` with spaces (`python3 -m ziglang cc`) into a wrapper and a
    /// compiler it cannot identify: what it gets is one path, with no spaces.
    #[test]
    fn the_compiler_cc_rs_sees_is_one_path() {
        let (_dir, w) = wrappers("x86_64-unknown-linux-musl", None);
        for tool in [&w.cc, &w.cxx, &w.ar, &w.linker] {
            let env = tool_env("x86_64-unknown-linux-musl", &w);
            assert!(!tool.to_string_lossy().contains(' '), "{}", tool.display());
            assert!(env.iter().all(|(_, p)| !p.to_string_lossy().contains(' ')));
        }
    }

    /// rustc passes flags zig does not take: `-Wl,--no-undefined-version`, `-lgcc_s` on musl,
    /// `-fuse-ld=lld`, and its own self-contained crt objects with `-nostartfiles`.
    #[test]
    fn linker_flags_zig_rejects_are_dropped() {
        let (dir, w) = wrappers("aarch64-unknown-linux-musl", None);
        let d = dir.path();
        std::fs::write(d.join("m.c"), "int main(void) { return 0; }\n").unwrap();
        run(&w.cc, &["-c", "m.c", "-o", "m.o"], d);
        // Stands for rustc's self-contained crt1.o: linking it too would clash with zig's.
        std::fs::create_dir_all(d.join("self-contained")).unwrap();
        std::fs::copy(d.join("m.o"), d.join("self-contained/crt1.o")).unwrap();
        run(
            &w.linker,
            &[
                "m.o",
                "self-contained/crt1.o",
                "-nostartfiles",
                "-Wl,--no-undefined-version",
                "-lgcc_s",
                "-fuse-ld=lld",
                "-static",
                "-o",
                "m",
            ],
            d,
        );
        assert_eq!(elf_machine(&d.join("m")), 183);
    }

    /// rustc names ld's emulation for i686 (`-m32 -Wl,-melf_i386`); zig stops on it with
    /// "unsupported linker arg: -melf_i386". Linked without a libc, so the test does not wait
    /// for zig to compile one.
    #[test]
    fn the_linker_emulation_rustc_names_for_i686_is_dropped() {
        let (dir, w) = wrappers("i686-unknown-linux-musl", None);
        let d = dir.path();
        std::fs::write(d.join("s.c"), "void _start(void) { for (;;) {} }\n").unwrap();
        run(&w.cc, &["-c", "s.c", "-o", "s.o"], d);
        run(
            &w.linker,
            &[
                "-m32",
                "-Wl,-melf_i386",
                "-nostdlib",
                "-static",
                "s.o",
                "-o",
                "s",
            ],
            d,
        );
        assert_eq!(elf_machine(&d.join("s")), 3, "not i386");
    }

    /// An `@CPU` target compiles its C for that CPU too.
    #[test]
    fn the_cpu_of_a_target_reaches_the_c_compiler() {
        let avx2 = |cpu: Option<&str>| {
            let (dir, w) = wrappers("x86_64-unknown-linux-musl", cpu);
            std::fs::write(dir.path().join("e.c"), "").unwrap();
            let out = run(&w.cc, &["-dM", "-E", "e.c"], dir.path());
            String::from_utf8_lossy(&out.stdout).contains("__AVX2__")
        };
        assert!(avx2(Some("x86-64-v3")), "x86-64-v3 C code has no AVX2");
        assert!(!avx2(None), "baseline C code has AVX2");
    }

    #[test]
    fn glibc_floors_split_off_gnu_triples_only() {
        assert_eq!(
            split_glibc_floor("x86_64-unknown-linux-gnu.2.17"),
            Ok(("x86_64-unknown-linux-gnu", Some("2.17")))
        );
        assert_eq!(
            split_glibc_floor("armv7-unknown-linux-gnueabihf.2.28"),
            Ok(("armv7-unknown-linux-gnueabihf", Some("2.28")))
        );
        assert_eq!(
            split_glibc_floor("x86_64-unknown-linux-gnu"),
            Ok(("x86_64-unknown-linux-gnu", None))
        );
        for bad in [
            "x86_64-unknown-linux-musl.2.17",
            "x86_64-unknown-linux-gnu.2",
            "x86_64-unknown-linux-gnu.2.",
            "x86_64-unknown-linux-gnu.two.17",
            "x86_64-unknown-linux-gnu.2.17.1",
        ] {
            assert!(split_glibc_floor(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
