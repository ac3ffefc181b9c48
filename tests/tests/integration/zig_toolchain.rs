//! zig as the one C cross toolchain (`cargo fatbin build --toolchain zig`): a crate whose
//! build script compiles C with the `cc` crate, built in one command for seven targets with
//! Debian's cross gccs hidden, every slot run (natively or under qemu-user) and its answer
//! compared with the x86_64 one.
//!
//! Needs: zig (`python3 -m ziglang`, pinned in ci/setup.sh), the rustup targets and
//! qemu-user-static; Debian's cross sysroots (`/usr/<gnu triple>`) for qemu to find the
//! glibc slots' loader. zig's first build for a target compiles its libc into zig's cache
//! (minutes); later runs take seconds.

use std::path::{Path, PathBuf};
use std::process::Command;

use fatbin_layout::{Arch, Layout};
use fatbin_tests::cargo_fatbin_support::{build_dir, cargo_fatbin_command, fixture, run};
use fatbin_tests::launcher_support::{output, require_qemu, stderr, stdout};
use fatbin_tests::temp_dir;
use fatbin_tests::zig::require_zig;

/// The seven targets: one per slot, musl where it is static, gnu where only gnu is
/// served.
const TARGETS: [&str; 7] = [
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
    "i686-unknown-linux-musl",
    "armv7-unknown-linux-gnueabihf",
    "riscv64gc-unknown-linux-gnu",
    "powerpc64le-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
];

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

#[test]
fn c_code_builds_for_seven_targets_with_zig_alone() {
    require_zig();
    let target_dir = build_dir("uses-cc-zig");
    let out_dir = temp_dir();
    let shadow: PathBuf = out_dir.path().join("no-cross-gcc");
    let mut cmd = cargo_fatbin_command(&fixture("uses-cc"));
    cmd.env("PATH", hide_cross_gccs(&shadow))
        .args(["build", "-v", "--color=never", "--toolchain", "zig"])
        .args(TARGETS.iter().flat_map(|t| ["--target", t]))
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--out")
        .arg(out_dir.path().join("layout"));
    for var in ["CC", "TARGET_CC", "CROSS_COMPILE", "RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    let result = run(cmd);
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    // `-v` says, per target, that zig links it and why.
    assert!(
        result
            .stderr
            .contains("aarch64-unknown-linux-musl -> slot aarch64 (linker: zig cc -target aarch64-linux-musl (--toolchain zig))"),
        "{}",
        result.stderr
    );
    // Every wrapper is under the target dir, per target.
    assert!(target_dir
        .join("fatbin/zig/riscv64gc-unknown-linux-gnu/cc")
        .is_file());

    let layout = Layout::new(out_dir.path().join("layout"));
    let program = layout.program_dir("uses-cc");
    let expected = "answer=42\n";
    for slot in TARGETS.map(|t| Arch::from_triple(t).unwrap().name()) {
        let binary = program.join(slot);
        assert!(binary.is_file(), "no slot {slot} in {}", program.display());
        assert_eq!(run_slot(slot, &binary), expected, "slot {slot}");
    }
}
