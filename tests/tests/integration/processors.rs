//! Every Linux processor we can reach, end to end: the matrix fixture built in one
//! `cargo fatbin install` for every target the layout has a slot for, each slot run (natively
//! or under qemu-user) with the same awkward arguments, and every answer checked: the
//! processor the compiler saw, the byte order and pointer width found at run time, and a hash
//! of the arguments computed by hand, which must be the same everywhere.
//!
//! Processors whose Rust standard library is not served here are covered by C binaries
//! cross-compiled by zig (see `fatbin_tests::zig`): their ELF headers are checked against
//! an independent reader (`readelf -h`), they are run under the emulator named for them, and
//! `cargo fatbin add` either files them in their slot (and the launcher runs them) or, while
//! the layout has no slot for their processor, refuses them without touching the root.
//!
//! Adding a processor is one row in [`RUST_TARGETS`] (or [`C_BINARIES`]); a target whose
//! ABI no slot holds is a row of [`REFUSED_TARGETS`].
//!
//! Needs: the rustup targets and Debian cross linkers `ci/setup.sh` installs,
//! qemu-user-static, binutils (readelf) and zig (`python3 -m ziglang`, pinned in ci/setup.sh).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Output};

use fatbin_layout::{Layout, SlotName};
use fatbin_tests::cargo_fatbin_support::{build_dir, cargo_fatbin, fixture};
use fatbin_tests::launcher_support::{clean_env, output, require_qemu, stderr, stdout};
use fatbin_tests::zig::{c_binary, Linking, ZigBuild};
use fatbin_tests::{host_bin_dir, temp_dir};

/// One Rust target of the matrix and what its build must say about itself.
struct RustTarget {
    triple: &'static str,
    /// The slot `cargo fatbin` files it in.
    slot: &'static str,
    /// `std::env::consts::ARCH` of the build.
    arch: &'static str,
    endian: &'static str,
    bits: u32,
}

const fn rust(
    triple: &'static str,
    slot: &'static str,
    arch: &'static str,
    endian: &'static str,
    bits: u32,
) -> RustTarget {
    RustTarget {
        triple,
        slot,
        arch,
        endian,
        bits,
    }
}

/// Every processor the layout has a slot for, one target each (two targets for one slot
/// cannot share an install). musl where the standard library is served (static, linked by
/// rust-lld); gnu targets link with Debian's `gcc-<triple>` and run under qemu with
/// `-L /usr/<triple>`.
const RUST_TARGETS: &[RustTarget] = &[
    rust(
        "x86_64-unknown-linux-musl",
        "x86_64",
        "x86_64",
        "little",
        64,
    ),
    rust(
        "aarch64-unknown-linux-musl",
        "aarch64",
        "aarch64",
        "little",
        64,
    ),
    rust("i686-unknown-linux-musl", "i686", "x86", "little", 32),
    rust(
        "riscv64gc-unknown-linux-gnu",
        "riscv64",
        "riscv64",
        "little",
        64,
    ),
    rust(
        "armv7-unknown-linux-gnueabihf",
        "armv7",
        "arm",
        "little",
        32,
    ),
    rust(
        "powerpc64le-unknown-linux-gnu",
        "ppc64le",
        "powerpc64",
        "little",
        64,
    ),
    rust("s390x-unknown-linux-gnu", "s390x", "s390x", "big", 64),
    rust(
        "powerpc64-unknown-linux-gnu",
        "ppc64",
        "powerpc64",
        "big",
        64,
    ),
    rust("powerpc-unknown-linux-gnu", "ppc", "powerpc", "big", 32),
];

/// Targets whose processor has a slot but whose ABI no slot holds, and what the refusal
/// must say; refused before anything is compiled. (thumbv7neon is served but not a row: it
/// fills the armv7 slot, which one install can hold once; the matrix test installs it after.)
const REFUSED_TARGETS: &[(&str, &str)] = &[
    ("x86_64-linux-android", "Android"),
    ("x86_64-unknown-linux-gnux32", "x32"),
    ("armv7-unknown-linux-gnueabi", "soft-float"),
];

/// Arguments no processor may get wrong: empty, spaces, non-ASCII, not UTF-8 at all, long.
fn awkward_args() -> Vec<Vec<u8>> {
    vec![
        b"".to_vec(),
        b"two words".to_vec(),
        "caf\u{e9} \u{2603}".as_bytes().to_vec(),
        b"\xff\xfe not utf-8 \x80".to_vec(),
        b"x".repeat(300),
        b"--flag=1".to_vec(),
    ]
}

/// The hash the fixtures print, computed here independently: FNV-1a 64 over each argument's
/// length (eight bytes, least significant first) and then its bytes.
fn expected_hash(args: &[Vec<u8>]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for arg in args {
        feed(&(arg.len() as u64).to_le_bytes());
        feed(arg);
    }
    format!("{hash:016x}")
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The one line a run printed, or a panic with everything it said.
fn one_line(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what}: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
    let text = stdout(out);
    assert_eq!(text.lines().count(), 1, "{what} printed: {text}");
    text.trim_end().to_owned()
}

/// Whether today's layout knows `slot` (rows name the slots new processors will get).
fn layout_has_slot(slot: &str) -> bool {
    slot.parse::<SlotName>().is_ok()
}

#[test]
fn every_processor_builds_in_one_install_and_agrees() {
    for row in RUST_TARGETS {
        require_qemu_unless_native(row.slot);
    }
    let root = temp_dir();
    let launcher = host_bin_dir().join("fatbin");
    let target_dir = build_dir("matrix");
    let mut args = vec![
        "install",
        "--root",
        path_str(root.path()),
        "--launcher",
        path_str(&launcher),
        "--target-dir",
        path_str(&target_dir),
    ];
    for row in RUST_TARGETS {
        args.extend(["--target", row.triple]);
    }
    cargo_fatbin(&fixture("matrix"), &args).success();

    let layout = Layout::new(root.path());
    let manifest = layout.read_manifest("matrix").unwrap();
    let mut installed: Vec<String> = manifest.slots.keys().map(|s| s.to_string()).collect();
    let mut wanted: Vec<String> = RUST_TARGETS.iter().map(|r| r.slot.to_owned()).collect();
    installed.sort();
    wanted.sort();
    assert_eq!(installed, wanted, "one slot per target");

    let args = awkward_args();
    let hash = expected_hash(&args);
    let shim = layout.shim_path("matrix");
    for row in RUST_TARGETS {
        let mut cmd = Command::new(&shim);
        clean_env(&mut cmd)
            .env("FATBIN_ARCH", row.slot)
            .args(args.iter().map(|a| os(a)));
        let line = one_line(&format!("the {} slot", row.slot), &output(&mut cmd));
        assert_eq!(
            line,
            format!(
                "matrix arch={} endian={e} compiled-endian={e} bits={} hash={hash}",
                row.arch,
                row.bits,
                e = row.endian,
            ),
            "the {} slot ({})",
            row.slot,
            row.triple
        );
    }

    // Unforced, the host's own slot runs, and `fatbin run --arch` forces like FATBIN_ARCH.
    let mut plain = Command::new(&shim);
    clean_env(&mut plain).arg("plain");
    let line = one_line("the unforced shim", &output(&mut plain));
    let host_arch = std::env::consts::ARCH;
    assert!(
        line.starts_with(&format!("matrix arch={host_arch} ")),
        "{line}"
    );
    let mut forced = Command::new(&launcher);
    clean_env(&mut forced).args([
        "run",
        "--root",
        path_str(root.path()),
        "--arch",
        "s390x",
        "matrix",
    ]);
    let line = one_line("fatbin run --arch s390x", &output(&mut forced));
    assert!(line.starts_with("matrix arch=s390x endian=big"), "{line}");

    // thumbv7neon fills the armv7 slot too (one install holds one build per slot, so a second
    // install into the same ROOT replaces it): it records NEON, and runs under qemu-arm,
    // whose default CPU has it.
    let thumb = "thumbv7neon-unknown-linux-gnueabihf";
    cargo_fatbin(
        &fixture("matrix"),
        &[
            "install",
            "--root",
            path_str(root.path()),
            "--launcher",
            path_str(&launcher),
            "--target-dir",
            path_str(&target_dir),
            "--target",
            thumb,
        ],
    )
    .success();
    let manifest = layout.read_manifest("matrix").unwrap();
    let armv7 = &manifest.slots[&"armv7".parse::<SlotName>().unwrap()];
    assert_eq!(armv7.target, thumb);
    assert!(armv7.features.iter().any(|f| f == "neon"), "{armv7:?}");
    assert_eq!(
        manifest.slots.len(),
        RUST_TARGETS.len(),
        "the other slots stay"
    );
    let mut cmd = Command::new(&shim);
    clean_env(&mut cmd)
        .env("FATBIN_ARCH", "armv7")
        .args(args.iter().map(|a| os(a)));
    let line = one_line("the thumbv7neon build", &output(&mut cmd));
    assert_eq!(
        line,
        format!("matrix arch=arm endian=little compiled-endian=little bits=32 hash={hash}")
    );
}

/// The qemu-user-static emulator for a slot this host does not run natively must be there.
fn require_qemu_unless_native(slot: &str) {
    let native: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["x86_64", "i686"],
        "aarch64" => &["aarch64", "armv7"],
        _ => &[],
    };
    if !native.contains(&slot) {
        let arch = slot.parse::<SlotName>().unwrap().arch;
        require_qemu(arch.qemu_name());
    }
}

#[test]
fn targets_of_an_abi_without_a_slot_are_refused_before_building() {
    for (triple, why) in REFUSED_TARGETS {
        let out = cargo_fatbin(&fixture("matrix"), &["build", "--target", triple]);
        assert_eq!(out.code, Some(2), "{triple} accepted\n{}", out.stderr);
        assert!(out.stderr.contains(why), "{triple}: {}", out.stderr);
        assert!(!out.stderr.contains("Compiling"), "{}", out.stderr);
    }
}

/// A C binary built by zig for a processor and the facts a new layout row needs about it,
/// all checked here: what `readelf -h` says, which emulator runs it, what `uname -m` says
/// under that emulator, and the slot it belongs in.
struct CBinary {
    build: ZigBuild,
    /// Slots it may be filed in, best first: its own, then (while the layout has no slot of
    /// its own) one whose processors all run it. None known today: `add` must refuse it.
    slots: &'static [&'static str],
    /// `readelf -h`: Class, Data, Machine and Flags.
    class: &'static str,
    data: &'static str,
    machine: &'static str,
    flags: &'static str,
    /// The qemu-user-static emulator that runs it here and the machine it reports, or None
    /// when it cannot run here (the reason is in the row's comment).
    runs_under: Option<(&'static str, &'static str)>,
}

const LITTLE: &str = "2's complement, little endian";
const BIG: &str = "2's complement, big endian";

const fn zig(
    name: &'static str,
    target: &'static str,
    flags: &'static [&'static str],
    linking: Linking,
) -> ZigBuild {
    ZigBuild {
        name,
        target,
        flags,
        linking,
    }
}

const C_BINARIES: &[CBinary] = &[
    CBinary {
        build: zig("mips64el", "mips64el-linux-muslabi64", &[], Linking::Static),
        slots: &["mips64el"],
        class: "ELF64",
        data: LITTLE,
        machine: "MIPS R3000",
        flags: "0x80000005, noreorder, cpic, mips64r2",
        runs_under: Some(("mips64el", "mips64")),
    },
    CBinary {
        build: zig("mips", "mips-linux-musleabi", &[], Linking::Static),
        slots: &["mips"],
        class: "ELF32",
        data: BIG,
        machine: "MIPS R3000",
        flags: "0x70001005, noreorder, cpic, o32, mips32r2",
        runs_under: Some(("mips", "mips")),
    },
    CBinary {
        build: zig("mipsel", "mipsel-linux-musleabi", &[], Linking::Static),
        slots: &["mipsel"],
        class: "ELF32",
        data: LITTLE,
        machine: "MIPS R3000",
        flags: "0x70001005, noreorder, cpic, o32, mips32r2",
        runs_under: Some(("mipsel", "mips")),
    },
    CBinary {
        build: zig("ppc", "powerpc-linux-musleabi", &[], Linking::Static),
        slots: &["ppc"],
        class: "ELF32",
        data: BIG,
        machine: "PowerPC",
        flags: "0x0",
        runs_under: Some(("ppc", "ppc")),
    },
    CBinary {
        // Soft-float Arm: the armv7 slot is hard-float, so `add` must refuse it.
        build: zig("armsoft", "arm-linux-musleabi", &[], Linking::Static),
        slots: &[],
        class: "ELF32",
        data: LITTLE,
        machine: "ARM",
        flags: "0x5000200, Version5 EABI, soft-float ABI",
        runs_under: Some(("arm", "armv7l")),
    },
    CBinary {
        build: zig("ppc64", "powerpc64-linux-musl", &[], Linking::Static),
        slots: &["ppc64"],
        class: "ELF64",
        data: BIG,
        machine: "PowerPC64",
        flags: "0x2, abiv2",
        runs_under: Some(("ppc64", "ppc64")),
    },
    CBinary {
        build: zig(
            "armv6",
            "arm-linux-musleabihf",
            &["-mcpu=arm1176jzf_s"],
            Linking::Static,
        ),
        // Filed as armv6 (not armv7, whose header is the same) by its `.ARM.attributes`.
        slots: &["armv6"],
        class: "ELF32",
        data: LITTLE,
        machine: "ARM",
        flags: "0x5000400, Version5 EABI, hard-float ABI",
        // qemu-arm's default CPU is an armv7 one (`-cpu arm1176` would say armv6l). Nothing
        // in the ELF header tells armv6 from armv7: only `.ARM.attributes` (Tag_CPU_arch).
        runs_under: Some(("arm", "armv7l")),
    },
    CBinary {
        // The same zig target tuned for an ARMv7 core: its attributes say v7, so armv7.
        build: zig(
            "armv7",
            "arm-linux-musleabihf",
            &["-mcpu=cortex_a15"],
            Linking::Static,
        ),
        slots: &["armv7"],
        class: "ELF32",
        data: LITTLE,
        machine: "ARM",
        flags: "0x5000400, Version5 EABI, hard-float ABI",
        runs_under: Some(("arm", "armv7l")),
    },
    CBinary {
        build: zig("riscv64", "riscv64-linux-musl", &[], Linking::Static),
        slots: &["riscv64"],
        class: "ELF64",
        data: LITTLE,
        machine: "RISC-V",
        flags: "0x5, RVC, double-float ABI",
        runs_under: Some(("riscv64", "riscv64")),
    },
    CBinary {
        build: zig(
            "loongarch64",
            "loongarch64-linux-musl",
            &[],
            Linking::Static,
        ),
        slots: &["loongarch64"],
        class: "ELF64",
        data: LITTLE,
        machine: "LoongArch",
        flags: "0x43, DOUBLE-FLOAT, OBJ-v1",
        // qemu 7.2 stops zig's loongarch64 binaries with SIGILL.
        runs_under: None,
    },
    CBinary {
        // zig has no static libc for sparc64, only glibc stubs: a dynamic binary, which
        // needs a sparc64 glibc this machine does not have to run.
        build: zig("sparc64", "sparc64-linux-gnu", &[], Linking::Dynamic),
        slots: &["sparc64"],
        class: "ELF64",
        data: BIG,
        machine: "Sparc v9",
        flags: "0x2, rmo",
        runs_under: None,
    },
];

/// `Name: value` lines of `readelf -h FILE`.
fn readelf_header(file: &Path) -> Vec<(String, String)> {
    let out = Command::new("readelf")
        .arg("-h")
        .arg(file)
        .output()
        .expect("readelf runs (apt-get install binutils)");
    assert!(out.status.success(), "readelf -h {}", file.display());
    stdout(&out)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn c_binaries_carry_the_elf_facts_of_their_row() {
    for row in C_BINARIES {
        let file = c_binary(&row.build);
        let header = readelf_header(&file);
        let field = |name: &str| {
            header
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("readelf -h {} has no {name}", file.display()))
        };
        let seen = (
            field("Class"),
            field("Data"),
            field("Machine"),
            field("Flags"),
        );
        assert_eq!(
            seen,
            (row.class, row.data, row.machine, row.flags),
            "zig -target {} {:?}",
            row.build.target,
            row.build.flags
        );
    }
}

#[test]
fn c_binaries_run_under_their_emulator_and_agree() {
    let args = awkward_args();
    let hash = expected_hash(&args);
    for row in C_BINARIES {
        let Some((qemu, uname)) = row.runs_under else {
            continue;
        };
        let file = c_binary(&row.build);
        let mut cmd = Command::new(require_qemu(qemu));
        cmd.arg(&file).args(args.iter().map(|a| os(a)));
        let line = one_line(
            &format!("qemu-{qemu}-static {}", row.build.name),
            &output(&mut cmd),
        );
        let endian = if row.data == BIG { "big" } else { "little" };
        let bits = if row.class == "ELF64" { 64 } else { 32 };
        assert_eq!(
            line,
            format!("ident machine={uname} endian={endian} bits={bits} hash={hash}"),
            "{}",
            row.build.target
        );
    }
}

#[test]
fn cargo_fatbin_add_files_c_binaries_in_their_slot_or_refuses_them() {
    let args = awkward_args();
    let hash = expected_hash(&args);
    let launcher = host_bin_dir().join("fatbin");
    for row in C_BINARIES {
        let file = c_binary(&row.build);
        let root = temp_dir();
        let r = path_str(root.path());
        let program = format!("ident-{}", row.build.name);
        let added = cargo_fatbin(
            Path::new("."),
            &[
                "add",
                &program,
                path_str(&file),
                "--root",
                r,
                "--launcher",
                path_str(&launcher),
            ],
        );
        let layout = Layout::new(root.path());
        let Some(slot) = row.slots.iter().copied().find(|s| layout_has_slot(s)) else {
            // No slot for this processor yet: a usage error that names the machine, and an
            // untouched root.
            assert_eq!(added.code, Some(2), "{}: {}", row.build.name, added.stderr);
            assert!(
                added.stderr.contains("has no slot in the layout"),
                "{}",
                added.stderr
            );
            assert!(
                layout.read_manifest(&program).is_err(),
                "a refused add wrote a manifest"
            );
            continue;
        };
        let added = added.success();
        assert_eq!(
            layout.read_manifest(&program).unwrap().slot_list(),
            slot,
            "{}: {}",
            row.build.name,
            added.stderr
        );
        let Some((_, uname)) = row.runs_under else {
            // Identified and filed, but not runnable here: `which --explain` must list it.
            let mut which = Command::new(&launcher);
            clean_env(&mut which).args(["which", "--root", r, &program, "--explain"]);
            let said = stdout(&output(&mut which));
            assert!(said.contains(slot), "{said}");
            continue;
        };
        let mut cmd = Command::new(layout.shim_path(&program));
        clean_env(&mut cmd)
            .env("FATBIN_ARCH", slot)
            .args(args.iter().map(|a| os(a)));
        let line = one_line(&format!("the {slot} slot of {program}"), &output(&mut cmd));
        assert!(
            line.starts_with(&format!("ident machine={uname} "))
                && line.ends_with(&format!(" hash={hash}")),
            "{line}"
        );
    }
}

/// The C binary of [`C_BINARIES`] named `name`.
fn c_binary_named(name: &str) -> std::path::PathBuf {
    let row = C_BINARIES.iter().find(|r| r.build.name == name).unwrap();
    c_binary(&row.build)
}

/// The launcher built for 32-bit Arm with glibc, as `cargo install --path launcher --target
/// armv7-unknown-linux-gnueabihf` builds it (linked by Debian's cross gcc): the directory
/// holding `fatbin` and `fatbin-full`.
fn armv7_launcher_dir() -> std::path::PathBuf {
    let fast = fatbin_tests::launcher_binary_linked_by(
        "armv7-unknown-linux-gnueabihf",
        Some("arm-linux-gnueabihf-gcc"),
    );
    fast.parent().expect("the launcher's directory").to_owned()
}

/// The 32-bit Arm launcher: both binaries build (the fast one's `stat` fields are 32 bits
/// there), both start under qemu-arm, and the full launcher picks among armv7 and armv6 slots
/// by what the kernel reports in `AT_HWCAP`: qemu-arm reports the features of its `-cpu`.
#[test]
fn the_armv7_launcher_picks_arm_slots_by_the_hwcap_of_its_cpu() {
    let launcher = armv7_launcher_dir();
    let qemu = require_qemu("arm");
    let sysroot = "/usr/arm-linux-gnueabihf";
    let root = temp_dir();
    let layout = Layout::new(root.path());
    // armv7 built for a Cortex-A15 needs NEON and VFPv4, as `armv7-...@cortex-a15` records.
    let mut armv7 =
        fatbin_layout::NewSlot::from_file("armv7".parse().unwrap(), c_binary_named("armv7"));
    armv7.features = vec!["neon".into(), "vfp4".into()];
    let armv6 =
        fatbin_layout::NewSlot::from_file("armv6".parse().unwrap(), c_binary_named("armv6"));
    fatbin_layout::install(&layout, "tool", &[armv7, armv6]).unwrap();

    let run = |binary: &str, cpu: &str, args: &[&str]| {
        let mut cmd = Command::new(&qemu);
        clean_env(&mut cmd)
            .args(["-L", sysroot, "-cpu", cpu])
            .arg(launcher.join(binary))
            .args(args);
        output(&mut cmd)
    };
    let r = path_str(root.path());
    for (cpu, chosen) in [
        // VFPv4 and NEON: the armv7 build.
        ("cortex-a15", "armv7"),
        ("cortex-a7", "armv7"),
        // ARMv7 with NEON but VFPv3 only: the armv7 build would stop on its first VFPv4
        // instruction, so the armv6 one runs.
        ("cortex-a8", "armv6"),
        // (An ARMv6 processor, `-cpu arm1176`, cannot run this ARMv7 launcher at all.)
    ] {
        let out = run("fatbin-full", cpu, &["which", "--root", r, "tool"]);
        assert!(out.status.success(), "-cpu {cpu}: {}", stderr(&out));
        // The slot's content file, `SLOT.<hex>`.
        let prefix = format!("{}.", root.path().join("bin/tool").join(chosen).display());
        assert!(
            stdout(&out).trim().starts_with(&prefix),
            "-cpu {cpu}: {}",
            stdout(&out)
        );
        let out = run(
            "fatbin-full",
            cpu,
            &["which", "--root", r, "tool", "--explain"],
        );
        let explained = stdout(&out);
        if chosen == "armv6" {
            assert!(explained.contains("vfp4"), "-cpu {cpu}: {explained}");
        }
    }
    // The fast launcher starts too: a 32-bit launcher always hands over to fatbin-full,
    // which qemu-user without binfmt_misc cannot exec (and with it, runs).
    let out = run("fatbin", "cortex-a15", &["--version"]);
    let said = stderr(&out);
    assert!(
        out.status.success() || said.contains("under qemu-user without binfmt_misc"),
        "{:?}: {said}",
        out.status
    );
}
