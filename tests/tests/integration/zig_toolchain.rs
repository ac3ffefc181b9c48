//! zig as the one C cross toolchain (`cargo fatbin install --toolchain zig`): a crate with C
//! code (zlib compiled from source by `libz-sys`, plus a C file of its own compiled by its
//! build script with the `cc` crate) installed in one command for several targets with
//! Debian's cross gccs hidden, every slot run (natively or under qemu-user) and its output
//! compared with the x86_64 one; and glibc floors (`x86_64-unknown-linux-gnu.2.17`).
//!
//! Needs: zig (`python3 -m ziglang`, pinned in ci/setup.sh), the rustup targets and
//! qemu-user-static; Debian's cross sysroots (`/usr/<gnu triple>`) for qemu to find the
//! glibc slots' loader. zig's first build for a target compiles its libc into zig's cache
//! (a few CPU-minutes for a musl target); later runs take seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use fatbin_layout::{Arch, Layout};
use fatbin_tests::cargo_fatbin_support::{build_dir, cargo_fatbin_command, fixture, run};
use fatbin_tests::launcher_support::{output, require_qemu, stderr, stdout};
use fatbin_tests::temp_dir;
use fatbin_tests::zig::require_zig;

/// The seven targets of the issue, one per slot, musl where it is static, gnu where only gnu
/// is served: x86_64 musl is the reference, run natively; aarch64 musl is the target Debian
/// has no musl cross gcc for (and shares zig's libc with the ripgrep acceptance); i686 musl
/// is 32-bit x86 (zig's `x86`); armv7 gnueabihf is a 32-bit glibc target whose zig name
/// differs from Rust's (`arm-linux-gnueabihf`, hard float); riscv64gc's zig name drops the
/// `gc`; ppc64le is a glibc target with its own ABI; s390x is big-endian.
const ALL_TARGETS: [&str; 7] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "i686-unknown-linux-musl",
    "armv7-unknown-linux-gnueabihf",
    "riscv64gc-unknown-linux-gnu",
    "powerpc64le-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
];

/// zig's cache of compiled libcs (`ZIG_GLOBAL_CACHE_DIR`), the one every zig build of this
/// user shares: `cargo_fatbin_command` moves `XDG_CACHE_HOME` under target/, where zig would
/// otherwise compile every libc again, cold, for each worktree.
fn zig_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZIG_GLOBAL_CACHE_DIR") {
        return dir.into();
    }
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(cache) if !cache.is_empty() => PathBuf::from(cache).join("zig"),
        _ => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/zig"),
    }
}

/// `cargo fatbin` in `dir`, with zig's shared cache.
fn cargo_fatbin_with_zig(dir: &Path) -> Command {
    let mut cmd = cargo_fatbin_command(dir);
    cmd.env("ZIG_GLOBAL_CACHE_DIR", zig_cache_dir());
    cmd
}

/// A directory of `<gnu triple>-gcc` programs that fail loudly, put first on PATH: a build
/// that still reached for a Debian cross gcc fails instead of passing for zig's.
fn hide_cross_gccs(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    for arch in Arch::ALL {
        let gnu = arch.info().sysroot.trim_start_matches("/usr/");
        let (arch_part, _) = gnu.split_once('-').unwrap();
        for name in [
            format!("{gnu}-gcc"),
            format!("{gnu}-g++"),
            format!("{gnu}-ar"),
            format!("{arch_part}-linux-musl-gcc"),
        ] {
            let path = dir.join(name);
            std::fs::write(
                &path,
                "#!/bin/sh\necho \"$0 must not be run\" >&2\nexit 99\n",
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", dir.display())
}

/// Runs a slot's binary here: natively for x86_64 and i686, else under qemu, with the
/// Debian cross sysroot for a glibc binary's loader.
fn run_slot(slot: &str, binary: &Path) -> String {
    let arch = *Arch::ALL.iter().find(|a| a.name() == slot).unwrap();
    let mut cmd = match arch {
        Arch::X86_64 | Arch::I686 => Command::new(binary),
        _ => {
            let mut cmd = Command::new(require_qemu(arch.qemu_name()));
            cmd.arg("-L").arg(arch.info().sysroot).arg(binary);
            cmd
        }
    };
    let out = output(&mut cmd);
    assert!(
        out.status.success(),
        "{slot}: {} {}",
        binary.display(),
        stderr(&out)
    );
    stdout(&out)
}

/// Installs the `c-zlib` fixture for `targets` with `--toolchain zig` and the cross gccs
/// hidden, runs every slot, and checks each prints what the x86_64 slot prints.
fn install_c_code_with_zig_alone(targets: &[&str], build_name: &str) {
    require_zig();
    let target_dir = build_dir(build_name);
    let root = temp_dir();
    let shadow: PathBuf = root.path().join("no-cross-gcc");
    let mut cmd = cargo_fatbin_with_zig(&fixture("c-zlib"));
    cmd.env("PATH", hide_cross_gccs(&shadow))
        .args(["install", "-v", "--color=never", "--toolchain", "zig"])
        .args(targets.iter().flat_map(|t| ["--target", t]))
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--root")
        .arg(root.path().join("layout"))
        .args(["--launcher", "/bin/true"]);
    for var in ["CC", "TARGET_CC", "CROSS_COMPILE", "AR", "RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let result = run(cmd);
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    // `-v` says, per target, that zig links it and why.
    assert!(
        result.stderr.contains(
            "aarch64-unknown-linux-musl -> slot aarch64 (linker: zig cc -target aarch64-linux-musl (--toolchain zig))"
        ),
        "{}",
        result.stderr
    );
    // Every wrapper is under the target dir, per target.
    for triple in targets {
        assert!(target_dir
            .join("fatbin/zig")
            .join(triple)
            .join("cc")
            .is_file());
    }

    let layout = Layout::new(root.path().join("layout"));
    let program = layout.program_dir("c-zlib");
    let reference = run_slot("x86_64", &program.join("x86_64"));
    assert!(
        reference.contains("crc32=") && reference.contains("round_trip=true"),
        "{reference}"
    );
    for slot in targets.iter().map(|t| Arch::from_triple(t).unwrap().name()) {
        let binary = program.join(slot);
        assert!(binary.is_file(), "no slot {slot} in {}", program.display());
        assert_eq!(run_slot(slot, &binary), reference, "slot {slot}");
    }
}

/// One install for all seven targets. Its first run on a machine compiles zig's libc and
/// compiler-rt for each target into zig's cache (minutes of CPU); later runs reuse them.
#[test]
fn c_code_installs_for_seven_targets_with_zig_alone() {
    install_c_code_with_zig_alone(&ALL_TARGETS, "c-zlib-zig-seven");
}

/// The highest `GLIBC_x.y` in `readelf --version-info`'s version needs, as (major, minor).
fn readelf_highest_glibc(binary: &Path) -> (u16, u16) {
    let out = output(Command::new("readelf").arg("--version-info").arg(binary));
    assert!(out.status.success(), "readelf: {}", stderr(&out));
    stdout(&out)
        .split(|c: char| c.is_whitespace())
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .max()
        .expect("a glibc binary names GLIBC_ versions")
}

/// `x86_64-unknown-linux-gnu.2.17` (cargo-zigbuild's spelling) links against glibc 2.17, so
/// the slot runs on old nodes: the manifest records the highest `GLIBC_x.y` the binary's
/// version references name, 2.17 or lower, and readelf agrees. The slot is still `x86_64`.
#[test]
fn a_glibc_floor_build_needs_no_newer_glibc_than_its_floor() {
    require_zig();
    let root = temp_dir();
    let mut cmd = cargo_fatbin_with_zig(&fixture("c-zlib"));
    cmd.args(["install", "--color=never", "-v"])
        .args(["--target", "x86_64-unknown-linux-gnu.2.17"])
        .arg("--target-dir")
        .arg(build_dir("c-zlib-glibc-floor"))
        .arg("--root")
        .arg(root.path())
        .args(["--launcher", "/bin/true"]);
    let result = run(cmd);
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert!(
        result.stderr.contains(
            "x86_64-unknown-linux-gnu.2.17 -> slot x86_64 (linker: zig cc -target x86_64-linux-gnu.2.17 (glibc floor 2.17))"
        ),
        "{}",
        result.stderr
    );

    let layout = Layout::new(root.path());
    let manifest = layout.read_manifest("c-zlib").unwrap();
    let (slot, info) = manifest.slots.iter().next().unwrap();
    assert_eq!(slot.to_string(), "x86_64");
    assert_eq!(info.target, "x86_64-unknown-linux-gnu");
    let recorded = info.glibc.expect("a glibc slot records its glibc");
    assert!(
        (recorded.major, recorded.minor) <= (2, 17),
        "manifest says glibc {recorded}"
    );
    let binary = layout.slot_path("c-zlib", *slot);
    assert_eq!(
        readelf_highest_glibc(&binary),
        (recorded.major, recorded.minor)
    );
    // It runs on this (newer) glibc, and verify agrees with its manifest.
    assert!(run_slot("x86_64", &binary).contains("round_trip=true"));
    let verify = run({
        let mut cmd = cargo_fatbin_command(Path::new("."));
        cmd.arg("verify").arg(root.path());
        cmd
    });
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
}

/// Only zig has an older glibc to link against: a floor with `--toolchain system` stops
/// before cargo starts, saying why and what to do.
#[test]
fn a_glibc_floor_with_the_system_toolchain_is_a_clear_error() {
    let mut cmd = cargo_fatbin_command(&fixture("uses-cc"));
    cmd.args(["build", "--color=never", "--toolchain", "system"])
        .args(["--target", "x86_64-unknown-linux-gnu.2.17"])
        .arg("--target-dir")
        .arg(build_dir("uses-cc-floor-system"));
    let result = run(cmd);
    assert_eq!(result.code, Some(3), "{}", result.stderr);
    assert!(
        result.stderr.contains(
            "x86_64-unknown-linux-gnu.2.17: a glibc floor needs zig as the linker, and --toolchain system never takes zig"
        ),
        "{}",
        result.stderr
    );
    assert!(!result.stderr.contains("Compiling"), "{}", result.stderr);

    // A floor is glibc's: on a musl triple it is a usage error.
    let mut cmd = cargo_fatbin_command(&fixture("uses-cc"));
    cmd.args(["build", "--color=never"])
        .args(["--target", "x86_64-unknown-linux-musl.2.17"]);
    let result = run(cmd);
    assert_eq!(result.code, Some(2), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("a glibc floor (`.2.17`) only follows a *-linux-gnu* triple"),
        "{}",
        result.stderr
    );
}

/// A PATH on which neither `zig` nor `python3 -m ziglang` runs: a `python3` that fails comes
/// first (cargo and rustc are still found after it).
fn path_without_zig(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let python = dir.join("python3");
    std::fs::write(&python, "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    let kept: Vec<&str> = path
        .split(':')
        .filter(|d| !Path::new(d).join("zig").is_file())
        .collect();
    format!("{}:{}", dir.display(), kept.join(":"))
}

/// `doctor` on a target with C code and no C compiler names a fix that can be done from the
/// package index alone (`pip install ziglang`), not a cross gcc to build from sources; once
/// zig is there, the same doctor run finds it and the target is ready.
#[test]
fn doctor_names_pip_install_ziglang_and_finds_zig_once_installed() {
    require_zig();
    let dir = temp_dir();
    let doctor = |path: Option<String>, toolchain: &str| {
        let mut cmd = cargo_fatbin_command(&fixture("uses-cc"));
        cmd.args(["doctor", "--color=never", "--toolchain", toolchain])
            .args(["--target", "aarch64-unknown-linux-musl"]);
        if let Some(path) = path {
            cmd.env("PATH", path);
        }
        for var in [
            "CC",
            "TARGET_CC",
            "CROSS_COMPILE",
            "CC_aarch64_unknown_linux_musl",
            "CC_aarch64-unknown-linux-musl",
        ] {
            cmd.env_remove(var);
        }
        run(cmd)
    };
    let without = || Some(path_without_zig(&dir.path().join("no-zig")));

    let auto = doctor(without(), "auto");
    assert_eq!(auto.code, Some(3), "{}", auto.stderr);
    assert!(
        auto.stderr
            .contains("fix: pip install ziglang (or pipx install ziglang)"),
        "{}",
        auto.stderr
    );
    assert!(!auto.stderr.contains("musl-cross-make"), "{}", auto.stderr);

    let zig = doctor(without(), "zig");
    assert_eq!(zig.code, Some(3), "{}", zig.stderr);
    assert!(
        zig.stderr.contains(
            "--toolchain zig needs zig, and there is no `zig` on PATH nor the `ziglang` Python package"
        ),
        "{}",
        zig.stderr
    );
    assert!(
        zig.stderr
            .contains("fix: pip install ziglang (or pipx install ziglang)"),
        "{}",
        zig.stderr
    );

    // zig installed (this machine's, as ci/setup.sh puts it): the same check passes.
    let found = doctor(None, "auto");
    assert_eq!(found.code, Some(0), "{}", found.stderr);
    assert!(
        found.stderr.contains(
            "C (cc)   zig cc -target aarch64-linux-musl (auto: no system C compiler for it)"
        ),
        "{}",
        found.stderr
    );
}

/// Two targets that would fill one slot (a glibc and a musl build for x86_64) are reported by
/// `doctor`, not only later by `build`.
#[test]
fn doctor_reports_two_targets_for_one_slot() {
    let mut cmd = cargo_fatbin_command(&fixture("uses-cc"));
    cmd.args(["doctor", "--color=never"]).args([
        "--target",
        "x86_64-unknown-linux-musl",
        "--target",
        "x86_64-unknown-linux-gnu.2.17",
    ]);
    let result = run(cmd);
    assert_eq!(result.code, Some(3), "{}", result.stderr);
    assert!(
        result.stderr.contains(
            "targets `x86_64-unknown-linux-musl` and `x86_64-unknown-linux-gnu.2.17` would both fill slot `x86_64`"
        ),
        "{}",
        result.stderr
    );
}

/// The acceptance run of the issue, as a new user would type it: ripgrep, whose jemalloc
/// allocator builds C code on musl, installed from the registry for two musl processors with
/// the default toolchain (`auto`, which takes zig where this machine has no C compiler for
/// the target); both slots search a small corpus and print the same lines.
///
/// The slowest test of the suite (two release builds of ripgrep, and jemalloc's `./configure`
/// and make through zig for each target), so it is made as cheap as the acceptance allows:
/// - ripgrep's release profile is lightened through cargo's environment, for this build
///   only: `opt-level` 1 instead of 3 and no debug line tables (`debug = 1` in ripgrep's
///   profile). It stays the same acceptance: the same crate graph, features and build
///   scripts, jemalloc's configure and make through the same zig wrappers, the same link
///   through zig for both musl targets, the same install; only how hard LLVM optimises Rust
///   code changes. cc-rs then hands jemalloc `-O1` instead of `-O3`: zig links both
///   against the same release build of its libc (`-O1` to `-O3` are all its `ReleaseFast`),
///   so the lighter profile adds no libc compile.
/// - zig's cache of compiled libcs is the one every zig test shares (`ZIG_GLOBAL_CACHE_DIR`),
///   so musl for both targets is compiled once per machine, and cargo's registry cache is
///   the user's (`CARGO_HOME` is left alone).
/// - The build has a target directory of its own under target/, kept between runs: a second
///   `cargo test` finds ripgrep built and only installs it again.
#[test]
fn ripgrep_15_2_0_installs_from_the_registry_for_two_musl_processors() {
    require_zig();
    let root = temp_dir();
    let mut cmd = cargo_fatbin_with_zig(Path::new("."));
    cmd.args(["install", "ripgrep@15.2.0", "--color=never"])
        .args(["--target", "x86_64-unknown-linux-musl"])
        .args(["--target", "aarch64-unknown-linux-musl"])
        .arg("--target-dir")
        .arg(build_dir("ripgrep"))
        .arg("--root")
        .arg(root.path().join("layout"))
        .args(["--launcher", "/bin/true"])
        .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "0");
    let result = run(cmd);
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("Installing rg v15.2.0 (x86_64, aarch64)"),
        "{}",
        result.stderr
    );

    let corpus = root.path().join("corpus");
    std::fs::create_dir_all(corpus.join("src")).unwrap();
    std::fs::write(
        corpus.join("notes.txt"),
        "one program\nevery processor\nfat programs run anywhere\n",
    )
    .unwrap();
    std::fs::write(
        corpus.join("src/main.rs"),
        "fn main() {\n    println!(\"one fat program\");\n}\n",
    )
    .unwrap();
    let layout = Layout::new(root.path().join("layout"));
    let search = |slot: &str| {
        // A program is named after its binary: ripgrep's is `rg`.
        let binary = layout.program_dir("rg").join(slot);
        let mut cmd = match slot {
            "x86_64" => Command::new(&binary),
            _ => {
                let mut cmd = Command::new(require_qemu("aarch64"));
                cmd.arg(&binary);
                cmd
            }
        };
        cmd.args(["--sort", "path", "-n", "--no-heading", "--color", "never"])
            .args(["fat|one", "."])
            .current_dir(&corpus);
        let out = output(&mut cmd);
        assert!(out.status.success(), "{slot}: {}", stderr(&out));
        stdout(&out)
    };
    let x86_64 = search("x86_64");
    assert_eq!(
        x86_64,
        "./notes.txt:1:one program\n./notes.txt:3:fat programs run anywhere\n./src/main.rs:2:    println!(\"one fat program\");\n"
    );
    assert_eq!(search("aarch64"), x86_64);
}
