//! `cargo fatbin` end to end, with real cross builds: the probe fixture for static musl x86_64,
//! x86-64-v3 and aarch64 in one command (the aarch64 slot run under qemu-user), a no-op
//! re-run that leaves every inode and mtime alone, install with shims, the errors that must
//! come before any compiling (a missing target, a `cc` dependency without a C cross
//! compiler), linking `-lm` and friends for static musl without a C toolchain, package and
//! binary selection in a workspace, configuration precedence, user rustflags, and the layout
//! commands (add, remove, list, inspect, verify) with their exit codes.
//!
//! Builds share target directories under target/cargo-fatbin-tests, so a second run is fast.
//! Needs: rustup targets x86_64-unknown-linux-musl and aarch64-unknown-linux-musl,
//! qemu-user-static, and the `cc` crate (from crates.io or cargo's cache) for the cc fixture.
//! With the riscv64gc-unknown-linux-gnu target and gcc-riscv64-linux-gnu installed, the
//! one-command build adds a riscv64 slot (run under qemu-riscv64-static).

use std::path::Path;
use std::process::Command;

use fatbin_layout::{identify_path, Arch, Identity, Layout, Libc, SlotName};
use fatbin_tests::cargo_fatbin_support::{
    build_dir, cargo_fatbin, cargo_fatbin_command, fixture, run, stamps,
};
use fatbin_tests::{host_bin_dir, probe_binary, temp_dir};

const X86_64_MUSL: &str = "x86_64-unknown-linux-musl";
const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";
const X86_64_V3_MUSL: &str = "x86_64-unknown-linux-musl@x86-64-v3";
const RISCV64_GNU: &str = "riscv64gc-unknown-linux-gnu";

fn slot(name: &str) -> SlotName {
    name.parse().unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run_slot(path: &Path, qemu: Option<&str>) -> String {
    let out = match qemu {
        Some(q) => Command::new(q).arg(path).output(),
        None => Command::new(path).output(),
    }
    .unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(out.status.success(), "{} failed: {out:?}", path.display());
    String::from_utf8(out.stdout).unwrap()
}

/// riscv64 joins the one-command build when its target and Debian's cross gcc are installed.
fn riscv64_gnu_available() -> bool {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    Path::new(sysroot.trim())
        .join("lib/rustlib/riscv64gc-unknown-linux-gnu/lib")
        .is_dir()
        && which_exists("riscv64-linux-gnu-gcc")
        && which_exists("qemu-riscv64-static")
}

#[test]
fn probe_builds_three_slots_in_one_command_and_a_rerun_changes_nothing() {
    let out = temp_dir();
    let target_dir = build_dir("probe");
    let riscv64 = riscv64_gnu_available();
    let mut args = vec![
        "build",
        "--release",
        "--target",
        X86_64_MUSL,
        "--target",
        AARCH64_MUSL,
        "--target",
        X86_64_V3_MUSL,
        "--target-dir",
        path_str(&target_dir),
        "--out",
        path_str(out.path()),
        "--message-format",
        "json",
    ];
    if riscv64 {
        args.extend(["--target", RISCV64_GNU]);
    }
    let first = cargo_fatbin(&fixture("probe"), &args).success();
    assert_eq!(first.stdout.lines().count(), 1, "{}", first.stdout);
    assert!(first.stdout.contains("\"program\":\"probe\""));
    assert!(
        first.stderr.contains("Assembled probe v0.3.1"),
        "{}",
        first.stderr
    );

    let layout = Layout::new(out.path());
    let manifest = layout.read_manifest("probe").unwrap();
    let expected = if riscv64 {
        "x86_64, x86_64-v3, aarch64, riscv64"
    } else {
        "x86_64, x86_64-v3, aarch64"
    };
    assert_eq!(manifest.slot_list(), expected);
    for (name, arch, triple) in [
        ("x86_64", Arch::X86_64, "x86_64-unknown-linux-musl"),
        ("x86_64-v3", Arch::X86_64, "x86_64-unknown-linux-musl"),
        ("aarch64", Arch::Aarch64, "aarch64-unknown-linux-musl"),
    ] {
        let path = layout.slot_path("probe", slot(name));
        match identify_path(&path).unwrap() {
            Identity::Elf(info) => {
                assert_eq!(info.arch, Some(arch), "{name}");
                assert_eq!(info.libc, Libc::Static, "{name}");
            }
            other => panic!("{name}: {other}"),
        }
        let info = &manifest.slots[&slot(name)];
        assert_eq!(info.target, triple);
        assert_eq!(info.krate.as_deref(), Some("probe"));
        assert_eq!(info.version.as_deref(), Some("0.3.1"));
    }
    let v3 = &manifest.slots[&slot("x86_64-v3")];
    assert_eq!(v3.cpu.as_deref(), Some("x86-64-v3"));
    for feature in ["avx2", "fma", "bmi2", "sse4.2"] {
        assert!(
            v3.features.iter().any(|f| f == feature),
            "{:?}",
            v3.features
        );
    }
    assert!(manifest.slots[&slot("x86_64")].features.is_empty());

    // Each slot really is the build it claims to be.
    let aarch64 = run_slot(
        &layout.slot_path("probe", slot("aarch64")),
        Some("qemu-aarch64-static"),
    );
    assert!(
        aarch64.starts_with("probe arch=aarch64 level=baseline"),
        "{aarch64}"
    );
    let baseline = run_slot(&layout.slot_path("probe", slot("x86_64")), None);
    assert!(
        baseline.starts_with("probe arch=x86_64 level=baseline"),
        "{baseline}"
    );
    if riscv64 {
        let info = &manifest.slots[&slot("riscv64")];
        assert_eq!(info.target, RISCV64_GNU);
        assert_eq!(info.libc, Libc::Glibc);
        let out = Command::new("qemu-riscv64-static")
            .args(["-L", "/usr/riscv64-linux-gnu"])
            .arg(layout.slot_path("probe", slot("riscv64")))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.starts_with("probe arch=riscv64"), "{said} {out:?}");
    }
    if std::is_x86_feature_detected!("avx2") {
        let v3 = run_slot(&layout.slot_path("probe", slot("x86_64-v3")), None);
        assert!(v3.starts_with("probe arch=x86_64 level=x86-64-v3"), "{v3}");
    }

    // verify and inspect agree with the manifest.
    cargo_fatbin(Path::new("."), &["verify", path_str(out.path())]).success();
    let inspect = cargo_fatbin(
        Path::new("."),
        &["inspect", "--json", path_str(&layout.program_dir("probe"))],
    )
    .success();
    let slots = if riscv64 { 4 } else { 3 };
    assert_eq!(inspect.stdout.matches("\"verified\":true").count(), slots);
    let single = cargo_fatbin(
        Path::new("."),
        &[
            "inspect",
            path_str(&layout.slot_path("probe", slot("aarch64"))),
        ],
    )
    .success();
    assert!(single.stdout.contains("slot: aarch64"), "{}", single.stdout);

    // Nothing changed, so nothing is rebuilt and nothing is rewritten.
    let before = stamps(out.path());
    let second = cargo_fatbin(&fixture("probe"), &args).success();
    assert_eq!(
        stamps(out.path()),
        before,
        "a no-op rebuild touched the layout"
    );
    assert!(!second.stderr.contains("Compiling"), "{}", second.stderr);
    assert!(second.stderr.contains("Fresh probe"), "{}", second.stderr);
    assert_eq!(
        second.stdout.matches("\"outcome\":\"unchanged\"").count(),
        slots
    );
}

#[test]
fn install_writes_slots_and_shims_and_a_rerun_changes_nothing() {
    let root = temp_dir();
    let launcher = host_bin_dir().join("fatbin");
    // Not the three-slot test's directory: a concurrent baseline build there would replace
    // the binary cargo uplifts for its x86-64-v3 run while it is being collected.
    let target_dir = build_dir("probe-install");
    let args = [
        "install",
        "--root",
        path_str(root.path()),
        "--launcher",
        path_str(&launcher),
        "--target",
        X86_64_MUSL,
        "--target",
        AARCH64_MUSL,
        "--target-dir",
        path_str(&target_dir),
    ];
    let first = cargo_fatbin(&fixture("probe"), &args).success();
    assert!(first.stdout.is_empty(), "human output goes to stderr");
    assert!(!first.stderr.contains("missing"), "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("Installing probe v0.3.1 (x86_64, aarch64)"),
        "{}",
        first.stderr
    );

    let layout = Layout::new(root.path());
    assert_eq!(
        layout.read_manifest("probe").unwrap().slot_list(),
        "x86_64, aarch64"
    );
    assert_eq!(
        std::fs::read_link(layout.shim_path("probe")).unwrap(),
        Path::new("fatbin")
    );
    assert_eq!(
        std::fs::read_link(layout.shim_path("fatbin")).unwrap(),
        launcher
    );

    // The shim runs the program through the launcher (argv[0] dispatch), natively here.
    let ran = Command::new(layout.shim_path("probe")).output().unwrap();
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(said.starts_with("probe arch=x86_64"), "{said} {ran:?}");
    assert!(said.contains("/bin/probe/x86_64"), "{said}");

    let before = stamps(root.path());
    let second = cargo_fatbin(&fixture("probe"), &args).success();
    assert_eq!(
        stamps(root.path()),
        before,
        "a no-op install touched the root"
    );
    assert!(second.stderr.contains("Fresh probe"), "{}", second.stderr);

    // The layout commands on the installed program.
    let list = cargo_fatbin(Path::new("."), &["list", "--root", path_str(root.path())]).success();
    assert_eq!(list.stdout, "probe v0.3.1: x86_64, aarch64\n");
    cargo_fatbin(
        Path::new("."),
        &[
            "remove",
            "probe",
            "--slot",
            "aarch64",
            "--root",
            path_str(root.path()),
        ],
    )
    .success();
    let list = cargo_fatbin(Path::new("."), &["list", "--root", path_str(root.path())]).success();
    assert_eq!(list.stdout, "probe v0.3.1: x86_64\n");
    cargo_fatbin(
        Path::new("."),
        &["remove", "probe", "--root", path_str(root.path())],
    )
    .success();
    assert!(layout.shim_path("probe").symlink_metadata().is_err());
    let missing = cargo_fatbin(
        Path::new("."),
        &["remove", "probe", "--root", path_str(root.path())],
    );
    assert_eq!(missing.code, Some(1), "{}", missing.stderr);
    assert!(missing.stderr.contains("program `probe` is not installed"));
    // A launcher without `fatbin-full` beside it is linked, with a warning that says so.
    let lone = temp_dir();
    let lone_launcher = lone.path().join("fatbin");
    std::fs::copy(&launcher, &lone_launcher).unwrap();
    let mut relinked = args;
    relinked[4] = path_str(&lone_launcher);
    let warned = cargo_fatbin(&fixture("probe"), &relinked).success();
    assert!(
        warned.stderr.contains("fatbin-full is missing"),
        "{}",
        warned.stderr
    );
    assert_eq!(
        std::fs::read_link(layout.shim_path("fatbin")).unwrap(),
        lone_launcher
    );
}

/// A target rustup could install but this toolchain does not have, if there is one.
fn a_missing_target() -> Option<&'static str> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = String::from_utf8(sysroot.stdout).unwrap();
    [
        "powerpc64le-unknown-linux-gnu",
        "s390x-unknown-linux-gnu",
        "i686-unknown-linux-musl",
    ]
    .into_iter()
    .find(|t| {
        !Path::new(sysroot.trim())
            .join("lib/rustlib")
            .join(t)
            .join("lib")
            .is_dir()
    })
}

#[test]
fn a_missing_target_is_one_clear_error_before_compiling() {
    let Some(missing) = a_missing_target() else {
        eprintln!("every candidate target is installed; nothing to test");
        return;
    };
    let target_dir = build_dir("missing-target");
    let out = cargo_fatbin(
        &fixture("probe"),
        &[
            "build",
            "--target",
            X86_64_MUSL,
            "--target",
            missing,
            "--target-dir",
            path_str(&target_dir),
        ],
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "the standard library for {missing} is not installed"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("fix: rustup target add {missing}")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Compiling"), "{}", out.stderr);
    assert!(!target_dir.join(X86_64_MUSL).exists(), "cargo ran anyway");

    // doctor says the same and exits non-zero.
    let doctor = cargo_fatbin(
        &fixture("probe"),
        &["doctor", "--target", missing, "--target", AARCH64_MUSL],
    );
    assert_eq!(doctor.code, Some(3), "{}", doctor.stderr);
    assert!(doctor
        .stderr
        .contains(&format!("rustup target add {missing}")));
    assert!(
        doctor
            .stderr
            .contains("through /usr/bin/qemu-aarch64-static"),
        "{}",
        doctor.stderr
    );
}

fn rustc_says(args: &[&str]) -> String {
    let out = Command::new("rustc").args(args).output().unwrap();
    assert!(out.status.success(), "rustc {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Regression: with no `--target`, doctor checks every installed target, and one that has no
/// slot (m68k here; powerpc64 on a machine with it installed) failed the whole run with a
/// usage error before any other target was checked. It is reported and skipped instead.
/// rustc is wrapped to report a sysroot holding the host, x86_64 musl and an m68k std.
#[test]
fn doctor_reports_an_installed_target_without_a_slot_and_goes_on() {
    let real_sysroot = rustc_says(&["--print", "sysroot"]).trim().to_owned();
    let host = rustc_says(&["-vV"])
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .unwrap()
        .trim()
        .to_owned();
    let dir = temp_dir();
    let sysroot = dir.path().join("sysroot");
    let rustlib = sysroot.join("lib/rustlib");
    std::fs::create_dir_all(&rustlib).unwrap();
    for triple in [host.as_str(), X86_64_MUSL] {
        std::os::unix::fs::symlink(
            Path::new(&real_sysroot).join("lib/rustlib").join(triple),
            rustlib.join(triple),
        )
        .unwrap();
    }
    let m68k = rustlib.join("m68k-unknown-linux-gnu/lib");
    std::fs::create_dir_all(&m68k).unwrap();
    std::fs::write(m68k.join("libstd-0000000000000000.rlib"), b"").unwrap();
    let real_rustc = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("rustc"))
        .find(|p| p.is_file())
        .unwrap();
    let wrapper = dir.path().join("rustc");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$1 $2\" = \"--print sysroot\" ]; then echo '{}'; exit 0; fi\nexec '{}' \"$@\"\n",
            sysroot.display(),
            real_rustc.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // Outside any project, so no Cargo.toml names targets.
    let mut cmd = cargo_fatbin_command(dir.path());
    cmd.args(["doctor", "--color=never"]).env("RUSTC", &wrapper);
    let out = run(cmd);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("m68k-unknown-linux-gnu\n    skipped  its processor has no slot"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "{X86_64_MUSL}  (slot x86_64)\n    std      installed"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("2 target(s) ready (1 installed target(s) without a slot skipped)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_cc_dependency_without_a_c_cross_compiler_is_a_clear_error() {
    if which_exists("aarch64-linux-musl-gcc") {
        eprintln!("aarch64-linux-musl-gcc is installed; nothing to test");
        return;
    }
    let target_dir = build_dir("uses-cc");
    let mut cmd = cargo_fatbin_command(&fixture("uses-cc"));
    // `system`: zig, which `auto` would take, is the subject of zig_toolchain.rs.
    cmd.args([
        "build",
        "--color=never",
        "--toolchain=system",
        "--target",
        AARCH64_MUSL,
        "--target-dir",
    ])
    .arg(&target_dir);
    for var in [
        "CC",
        "TARGET_CC",
        "CROSS_COMPILE",
        "CC_aarch64_unknown_linux_musl",
        "CC_aarch64-unknown-linux-musl",
    ] {
        cmd.env_remove(var);
    }
    let out = run(cmd);
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("builds C code with the `cc` crate, and there is no C compiler for aarch64-unknown-linux-musl"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("CC_aarch64_unknown_linux_musl"));
    assert!(!out.stderr.contains("Compiling"), "{}", out.stderr);
}

/// rustc's self-contained musl runtime has libc.a but no libm.a, libpthread.a, ...: without
/// the stub archives `cargo fatbin` adds, rust-lld fails with "unable to find library -lm".
#[test]
fn musl_programs_that_link_libm_and_friends_link_with_rust_lld() {
    let out = temp_dir();
    cargo_fatbin(
        &fixture("links-libm"),
        &[
            "build",
            "--target",
            AARCH64_MUSL,
            "--target-dir",
            path_str(&build_dir("links-libm")),
            "--out",
            path_str(out.path()),
        ],
    )
    .success();
    let binary = Layout::new(out.path()).slot_path("links-libm", slot("aarch64"));
    let out = Command::new("qemu-aarch64-static")
        .arg(&binary)
        .arg("64")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cbrt=4\n", "{out:?}");
}

fn which_exists(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn programs_built(args: &[&str]) -> Vec<String> {
    let out = temp_dir();
    let target_dir = build_dir("workspace");
    let mut all = args.to_vec();
    all.extend([
        "--target-dir",
        path_str(&target_dir),
        "--out",
        path_str(out.path()),
    ]);
    cargo_fatbin(&fixture("workspace"), &all).success();
    Layout::new(out.path()).programs().unwrap()
}

#[test]
fn workspace_packages_and_binaries_are_selected_like_cargo() {
    assert_eq!(
        programs_built(&["build", "-p", "beta", "--target", X86_64_MUSL]),
        ["beta"]
    );
    assert_eq!(
        programs_built(&[
            "build",
            "-p",
            "alpha",
            "--bin",
            "alpha-extra",
            "--target",
            X86_64_MUSL
        ]),
        ["alpha-extra"]
    );
    assert_eq!(
        programs_built(&["build", "--workspace", "--target", X86_64_MUSL]),
        ["alpha", "alpha-extra", "beta"]
    );
}

#[test]
fn targets_come_from_the_command_line_then_the_environment_then_cargo_toml() {
    let built = |package: &str, env: Option<&str>, cli: Option<&str>| -> String {
        let out = temp_dir();
        let mut cmd = cargo_fatbin_command(&fixture("workspace"));
        cmd.args(["build", "--color=never", "-p", package, "--out"])
            .arg(out.path())
            .arg("--target-dir")
            .arg(build_dir("workspace-precedence"));
        if let Some(env) = env {
            cmd.env("FATBIN_TARGETS", env);
        }
        if let Some(cli) = cli {
            cmd.args(["--target", cli]);
        }
        run(cmd).success();
        Layout::new(out.path())
            .read_manifest(package)
            .unwrap()
            .slot_list()
    };
    // beta's [package.metadata.fatbin] beats the workspace's; alpha only has the workspace's.
    assert_eq!(built("beta", None, None), "x86_64");
    assert_eq!(built("alpha", None, None), "aarch64");
    assert_eq!(built("beta", Some(AARCH64_MUSL), None), "aarch64");
    assert_eq!(
        built("beta", Some(AARCH64_MUSL), Some(X86_64_MUSL)),
        "x86_64"
    );
}

/// The rustc command line cargo -v printed for the `beta` crate.
fn rustc_line_for_beta(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("Running") && l.contains("--crate-name beta"))
        .unwrap_or_else(|| panic!("no rustc line for beta in:\n{stderr}"))
}

#[test]
fn user_rustflags_are_kept_next_to_the_target_cpu() {
    let cpu_target = "x86_64-unknown-linux-musl@x86-64-v2";
    let build = |rustflags: Option<&str>, config: Option<&str>| {
        let (out, target_dir) = (temp_dir(), temp_dir());
        let mut cmd = cargo_fatbin_command(&fixture("workspace"));
        cmd.args([
            "build",
            "--color=never",
            "-v",
            "-p",
            "beta",
            "--target",
            cpu_target,
        ])
        .arg("--out")
        .arg(out.path())
        .arg("--target-dir")
        .arg(target_dir.path());
        if let Some(flags) = rustflags {
            cmd.env("RUSTFLAGS", flags);
        }
        if let Some(config) = config {
            cmd.args(["--config", config]);
        }
        let result = run(cmd).success();
        let slots = Layout::new(out.path())
            .read_manifest("beta")
            .unwrap()
            .slot_list();
        assert_eq!(slots, "x86_64-v2");
        rustc_line_for_beta(&result.stderr).to_owned()
    };
    // RUSTFLAGS would make cargo ignore per-target flags: it is carried into them.
    let line = build(Some("--cfg from_env"), None);
    assert!(line.contains("--cfg from_env"), "{line}");
    assert!(line.contains("-Ctarget-cpu=x86-64-v2"), "{line}");
    // build.rustflags would be replaced by a target key: it is carried too.
    let line = build(None, Some("build.rustflags=[\"--cfg\", \"from_config\"]"));
    assert!(line.contains("--cfg from_config"), "{line}");
    assert!(line.contains("-Ctarget-cpu=x86-64-v2"), "{line}");
    // target.<triple>.rustflags merges with ours by itself.
    let line = build(
        None,
        Some("target.x86_64-unknown-linux-musl.rustflags=[\"--cfg\", \"from_target\"]"),
    );
    assert!(line.contains("--cfg from_target"), "{line}");
    assert!(line.contains("-Ctarget-cpu=x86-64-v2"), "{line}");
}

/// The plan of a re-run is reused only while the files it came from are unchanged.
#[test]
fn editing_cargo_toml_is_seen_by_the_next_run() {
    let project = temp_dir();
    let src = project.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(
        fixture("workspace").join("beta/src/main.rs"),
        src.join("main.rs"),
    )
    .unwrap();
    let manifest = |targets: &str| {
        let text = format!(
            "[package]\nname = \"gamma\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.fatbin]\ntargets = [{targets}]\n\n[workspace]\n"
        );
        std::fs::write(project.path().join("Cargo.toml"), text).unwrap();
    };
    let out = temp_dir();
    let target_dir = build_dir("edited");
    let build = || {
        cargo_fatbin(
            project.path(),
            &[
                "build",
                "--out",
                path_str(out.path()),
                "--target-dir",
                path_str(&target_dir),
            ],
        )
        .success();
        Layout::new(out.path())
            .read_manifest("gamma")
            .unwrap()
            .slot_list()
    };
    manifest("\"x86_64-unknown-linux-musl\"");
    assert_eq!(build(), "x86_64");
    assert_eq!(build(), "x86_64");
    manifest("\"x86_64-unknown-linux-musl\", \"aarch64-unknown-linux-musl\"");
    assert_eq!(build(), "x86_64, aarch64");
}

#[test]
fn add_infers_the_slot_from_the_elf_header_and_verify_catches_tampering() {
    let root = temp_dir();
    let binary = probe_binary(AARCH64_MUSL, None);
    let r = path_str(root.path());
    cargo_fatbin(
        Path::new("."),
        &[
            "add",
            "tool",
            path_str(&binary),
            "--root",
            r,
            "--launcher",
            "/bin/true",
        ],
    )
    .success();
    let layout = Layout::new(root.path());
    assert_eq!(layout.read_manifest("tool").unwrap().slot_list(), "aarch64");

    // A binary for the wrong slot is refused, and the layout is left as it was.
    let wrong = cargo_fatbin(
        Path::new("."),
        &[
            "add",
            "tool",
            path_str(&binary),
            "--slot",
            "x86_64",
            "--root",
            r,
        ],
    );
    assert_eq!(wrong.code, Some(1), "{}", wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains("not a usable binary for slot `x86_64`"),
        "{}",
        wrong.stderr
    );
    cargo_fatbin(Path::new("."), &["verify", r]).success();

    // Tampering is caught: exit code 5.
    let slot_path = layout.slot_path("tool", slot("aarch64"));
    let mut bytes = std::fs::read(&slot_path).unwrap();
    bytes.push(0);
    std::fs::remove_file(&slot_path).unwrap();
    std::fs::write(&slot_path, bytes).unwrap();
    let verify = cargo_fatbin(Path::new("."), &["verify", r]);
    assert_eq!(verify.code, Some(5), "{}", verify.stderr);
    assert!(verify.stderr.contains("manifest says"), "{}", verify.stderr);
}

/// Regression: `inspect` printed its table with fixed widths, so a CPU name longer than ten
/// characters (`neoverse-n1`) or a triple longer than thirty pushed the rest of its row out of
/// line with the header. Every column must start where its title does.
#[test]
fn inspect_columns_line_up_with_their_titles() {
    let out = temp_dir();
    cargo_fatbin(
        &fixture("probe"),
        &[
            "build",
            "--target",
            X86_64_MUSL,
            "--target",
            "aarch64-unknown-linux-musl@neoverse-n1",
            "--target-dir",
            path_str(&build_dir("inspect-columns")),
            "--out",
            path_str(out.path()),
        ],
    )
    .success();
    let table = cargo_fatbin(
        Path::new("."),
        &[
            "inspect",
            path_str(&Layout::new(out.path()).program_dir("probe")),
        ],
    )
    .success()
    .stdout;
    let lines: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(lines.len(), 3, "{table}");
    let header = lines[0];
    assert!(lines[2].contains("neoverse-n1"), "{table}");
    for title in ["TARGET", "CPU", "LIBC", "SHA256", "VERIFIED"] {
        let start = header.find(title).unwrap();
        for row in &lines[1..] {
            let cell_start = row.get(start..).unwrap_or_default();
            assert!(
                row[..start].ends_with("  ") && !cell_start.starts_with(' '),
                "column {title} is out of line:\n{table}"
            );
        }
    }
    // SIZE holds numbers: right-aligned under its title.
    let end = header.find("SIZE").unwrap() + "SIZE".len();
    for row in &lines[1..] {
        assert!(
            row.as_bytes()[end - 1].is_ascii_digit() && row.as_bytes()[end] == b' ',
            "SIZE is out of line:\n{table}"
        );
    }
    assert!(lines[1..].iter().all(|r| r.ends_with("yes")), "{table}");
}

#[test]
fn bad_input_is_a_usage_error_and_colours_follow_the_flag() {
    let bad = cargo_fatbin(
        &fixture("probe"),
        &["build", "--target", "x86_64-unknown-linux-musl@"],
    );
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad
        .stderr
        .contains("invalid target `x86_64-unknown-linux-musl@`"));
    assert!(
        !bad.stderr.contains('\x1b'),
        "--color=never printed colours"
    );

    let none = cargo_fatbin(&fixture("probe"), &["build"]);
    assert_eq!(none.code, Some(2), "{}", none.stderr);
    assert!(
        none.stderr.contains("no targets to build"),
        "{}",
        none.stderr
    );

    let mut coloured = cargo_fatbin_command(&fixture("probe"));
    coloured.args(["--color", "always", "build", "--target", "bogus"]);
    let coloured = run(coloured);
    assert_eq!(coloured.code, Some(2));
    assert!(coloured.stderr.contains("\x1b["), "{}", coloured.stderr);

    let mut no_color = cargo_fatbin_command(&fixture("probe"));
    no_color
        .env("NO_COLOR", "1")
        .args(["build", "--target", "bogus"]);
    let no_color = run(no_color);
    assert!(!no_color.stderr.contains('\x1b'), "{}", no_color.stderr);

    // cargo's own failure is exit code 4, with cargo's message.
    let target_dir = build_dir("workspace-failing");
    let failed = cargo_fatbin(
        &fixture("workspace"),
        &[
            "build",
            "-p",
            "beta",
            "--features",
            "no-such-feature",
            "--target",
            X86_64_MUSL,
            "--target-dir",
            path_str(&target_dir),
        ],
    );
    assert_eq!(failed.code, Some(4), "{}", failed.stderr);
    assert!(
        failed.stderr.contains("no-such-feature"),
        "{}",
        failed.stderr
    );

    let nothing = cargo_fatbin(Path::new("."), &["inspect", "/nonexistent/fatbin"]);
    assert_eq!(nothing.code, Some(2), "{}", nothing.stderr);
}

/// Installs a small published crate from the registry for two processors, pinned to one exact
/// version (`CRATE@VERSION` means `=VERSION`, like `cargo install`). The registry is reachable
/// from every machine the tests run on, CI's included.
#[test]
fn install_from_the_registry() {
    let root = temp_dir();
    let out = cargo_fatbin(
        Path::new("."),
        &[
            "install",
            "cowsay@0.14.0",
            "--root",
            path_str(root.path()),
            "--launcher",
            "/bin/true",
            "--target",
            X86_64_MUSL,
            "--target",
            AARCH64_MUSL,
        ],
    )
    .success();
    assert!(
        out.stderr
            .contains("Installing cowsay v0.14.0 (x86_64, aarch64)"),
        "{}",
        out.stderr
    );
    let layout = Layout::new(root.path());
    let said = Command::new("qemu-aarch64-static")
        .arg(layout.slot_path("cowsay", slot("aarch64")))
        .arg("moo")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&said.stdout);
    assert!(said.contains("moo") && said.contains("(oo)"), "{said}");
}

/// A FIFO planted as a program's manifest: `cargo fatbin verify` reports it at once. (Before
/// the layout's one manifest reader opened non-blocking, it waited for a writer forever.)
#[test]
fn verify_reports_a_fifo_manifest_instead_of_hanging() {
    let root = temp_dir();
    let dir = root.path().join("bin/tool");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = std::ffi::CString::new(path_str(&dir.join("fatbin.toml"))).unwrap();
    // SAFETY: fifo is a C string.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);

    let mut cmd = cargo_fatbin_command(Path::new("."));
    cmd.args(["verify", path_str(root.path()), "--color=never"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("cargo-fatbin runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`cargo fatbin verify` hung on a FIFO manifest");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("fatbin.toml") && stderr.contains("it is not a regular file"),
        "{stderr}"
    );
}

/// A glibc binary whose manifest records an older glibc than its version references need
/// would be picked for nodes it cannot run on: `verify` fails it, naming both versions.
#[test]
fn verify_fails_a_slot_that_needs_a_newer_glibc_than_its_manifest_says() {
    let root = temp_dir();
    let r = path_str(root.path());
    // Any glibc program of this host; its version references name GLIBC_2.x.
    let host_binary = std::fs::canonicalize("/bin/true").unwrap();
    cargo_fatbin(
        Path::new("."),
        &[
            "add",
            "tool",
            path_str(&host_binary),
            "--root",
            r,
            "--launcher",
            "/bin/true",
        ],
    )
    .success();
    let layout = Layout::new(root.path());
    let needs = layout.read_manifest("tool").unwrap().slots[&slot("x86_64")]
        .glibc
        .expect("the manifest records the glibc /bin/true needs");
    cargo_fatbin(Path::new("."), &["verify", r]).success();

    let manifest = layout.manifest_path("tool");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let recorded = format!("glibc = \"{needs}\"");
    assert!(text.contains(&recorded), "{text}");
    std::fs::write(&manifest, text.replace(&recorded, "glibc = \"2.2\"")).unwrap();
    let verify = cargo_fatbin(Path::new("."), &["verify", r]);
    assert_eq!(verify.code, Some(5), "{}", verify.stderr);
    assert!(
        verify
            .stderr
            .contains(&format!("needs glibc {needs}, manifest says 2.2")),
        "{}",
        verify.stderr
    );
}
