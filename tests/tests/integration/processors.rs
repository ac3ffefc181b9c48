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
//! Adding a processor is one row in [`RUST_TARGETS`] (or [`C_BINARIES`]): a row in
//! [`WAITING_FOR_A_SLOT`] fails as soon as the layout accepts its triple, to say it belongs in
//! the matrix now.
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
];

/// Targets rustup serves here whose processor has no slot yet. When the layout gains one,
/// [`targets_waiting_for_a_slot_are_refused_before_building`] fails: move the row to
/// [`RUST_TARGETS`] (the second column is the slot it was meant for, for that row).
const WAITING_FOR_A_SLOT: &[RustTarget] = &[
    rust(
        "powerpc64-unknown-linux-gnu",
        "ppc64",
        "powerpc64",
        "big",
        64,
    ),
    rust("powerpc-unknown-linux-gnu", "ppc", "powerpc", "big", 32),
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
fn targets_waiting_for_a_slot_are_refused_before_building() {
    for row in WAITING_FOR_A_SLOT {
        let out = cargo_fatbin(&fixture("matrix"), &["build", "--target", row.triple]);
        assert_eq!(
            out.code,
            Some(2),
            "{} is accepted now: move its row to RUST_TARGETS (slot {}, arch {}, {} endian, \
             {} bits)\n{}",
            row.triple,
            row.slot,
            row.arch,
            row.endian,
            row.bits,
            out.stderr
        );
        assert!(
            out.stderr.contains("has no slot in the layout"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("Compiling"), "{}", out.stderr);
    }
}
