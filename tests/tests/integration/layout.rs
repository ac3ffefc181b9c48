//! The layout library against real binaries built during the test (static musl x86_64,
//! x86-64-v3 and aarch64, a host glibc build): identification, install round trips, dedup,
//! removal, verification, name validation, concurrent exec during reinstalls and failed
//! installs (a full disk, a wrong-arch slot).
//!
//! The tests that exec installed binaries or need a mount namespace run in child processes
//! (this test binary re-run with one `#[ignore]`d entry point): forks from this process while
//! another test holds a staged file open for writing would make exec fail with ETXTBSY,
//! an artifact of sharing one process, and a tmpfs mount must not leak into the host.
//! Needs: the musl and aarch64 rustup targets, binutils (`readelf`), util-linux (`unshare`).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fatbin_layout::identify::{ElfKind, GlibcVersion};
use fatbin_layout::install::SlotOutcome;
use fatbin_layout::verify::verify;
use fatbin_layout::{
    identify_bytes, identify_path, install, remove_program, remove_slot, write_shim, Arch, Endian,
    Error, Identity, Layout, Libc, NewSlot, SlotName,
};
use fatbin_tests::{probe_binary, temp_dir};

const X86_64_MUSL: &str = "x86_64-unknown-linux-musl";
const AARCH64_MUSL: &str = "aarch64-unknown-linux-musl";
const X86_64_GNU: &str = "x86_64-unknown-linux-gnu";

fn slot(name: &str) -> SlotName {
    name.parse().unwrap()
}

fn elf(path: &Path) -> fatbin_layout::identify::ElfInfo {
    match identify_path(path).unwrap() {
        Identity::Elf(info) => info,
        other => panic!("{}: {other}", path.display()),
    }
}

/// A slot built from the probe fixture, with what cargo-fatbin would record.
fn probe_slot(name: &str, target: &str, cpu: Option<&str>) -> NewSlot {
    NewSlot {
        slot: slot(name),
        source: probe_binary(target, cpu),
        target: target.into(),
        cpu: cpu.map(str::to_owned),
        features: Vec::new(),
        krate: Some("probe".into()),
        version: Some("0.3.1".into()),
    }
}

/// Installs the baseline x86_64 and aarch64 probe builds as program `probe`.
fn install_x86_64_and_aarch64(layout: &Layout) {
    install(
        layout,
        "probe",
        &[
            probe_slot("x86_64", X86_64_MUSL, None),
            probe_slot("aarch64", AARCH64_MUSL, None),
        ],
    )
    .unwrap();
}

/// Everything observable about a directory tree: per path, inode, mtime, mode and the
/// sha256 of the bytes (of the target, for a symlink).
type Snapshot = BTreeMap<PathBuf, (u64, i64, i64, u32, String)>;

/// [`snapshot_all`] without the mtimes of directories, which change whenever a temporary
/// file is created and removed in them, even by an install that fails and cleans up.
fn snapshot(root: &Path) -> Snapshot {
    let mut snap = snapshot_all(root);
    for (path, entry) in snap.iter_mut() {
        if root.join(path).is_dir() {
            (entry.1, entry.2) = (0, 0);
        }
    }
    snap
}

fn snapshot_all(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let bytes = if meta.is_file() {
                std::fs::read(&path).unwrap()
            } else if meta.is_dir() {
                stack.push(path.clone());
                Vec::new()
            } else {
                std::fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            };
            let key = path.strip_prefix(root).unwrap().to_owned();
            out.insert(
                key,
                (
                    meta.ino(),
                    meta.mtime(),
                    meta.mtime_nsec(),
                    meta.mode(),
                    fatbin_layout::fsutil::sha256_bytes(&bytes),
                ),
            );
        }
    }
    out
}

/// The sha256 as `sha256sum` (coreutils) computes it: an independent check of the manifest.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

// ---------------------------------------------------------------------------------------
// Identification

#[test]
fn identifies_a_static_x86_64_musl_binary() {
    let info = elf(&probe_binary(X86_64_MUSL, None));
    assert_eq!(info.arch, Some(Arch::X86_64));
    assert_eq!((info.bits, info.endian), (64, Endian::Little));
    assert_eq!(info.machine, object_em_x86_64());
    assert_eq!(info.libc, Libc::Static);
    assert_eq!(info.interpreter, None);
    assert_eq!(info.glibc, None);
    assert!(matches!(
        info.kind,
        ElfKind::Executable | ElfKind::SharedObject
    ));
}

fn object_em_x86_64() -> u16 {
    62
}

#[test]
fn identifies_a_static_aarch64_musl_binary() {
    let info = elf(&probe_binary(AARCH64_MUSL, None));
    assert_eq!(info.arch, Some(Arch::Aarch64));
    assert_eq!(
        (info.bits, info.endian, info.machine),
        (64, Endian::Little, 183)
    );
    assert_eq!(info.libc, Libc::Static);
    assert_eq!(info.interpreter, None);
    assert_eq!(info.glibc, None);
}

/// The highest `GLIBC_x.y` in the version-needs section, as binutils' `readelf -V` lists it.
fn glibc_needed_by_readelf(path: &Path) -> GlibcVersion {
    let out = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(path)
        .output()
        .expect("readelf (binutils) is needed for this test");
    let text = String::from_utf8(out.stdout).unwrap();
    let needs = text
        .split("Version needs section")
        .nth(1)
        .expect("readelf shows a version-needs section");
    needs
        .split_whitespace()
        .filter_map(|w| GlibcVersion::from_symbol_version(w.as_bytes()))
        .max()
        .expect("readelf lists GLIBC_ versions")
}

#[test]
fn identifies_a_host_glibc_binary_and_the_glibc_version_it_needs() {
    let path = probe_binary(X86_64_GNU, None);
    let info = elf(&path);
    assert_eq!(info.arch, Some(Arch::X86_64));
    assert_eq!(info.libc, Libc::Glibc);
    assert!(
        info.interpreter
            .as_deref()
            .is_some_and(|i| i.contains("ld-linux-x86-64.so")),
        "{:?}",
        info.interpreter
    );
    let expected = glibc_needed_by_readelf(&path);
    assert_eq!(info.glibc, Some(expected));
    assert!(expected >= GlibcVersion { major: 2, minor: 2 });
    assert_eq!(info.to_string(), format!("ELF x86_64, glibc >= {expected}"));
}

/// A C program linked by the host's `cc` with `-Wl,-z,x86-64-vN`, which makes GNU ld record
/// the level in a `GNU_PROPERTY_X86_ISA_1_NEEDED` note (binutils >= 2.35).
fn c_binary_needing_x86_level(dir: &Path, level: u8) -> PathBuf {
    let source = dir.join("isa.c");
    std::fs::write(
        &source,
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
    )
    .unwrap();
    let out = dir.join(format!("isa-v{level}"));
    let status = Command::new("cc")
        .arg(format!("-Wl,-z,x86-64-v{level}"))
        .arg("-o")
        .arg(&out)
        .arg(&source)
        .status()
        .expect("cc (gcc) is needed for this test");
    assert!(status.success());
    out
}

#[test]
fn an_x86_isa_level_note_is_read_and_enforced() {
    let dir = temp_dir();
    let binary = c_binary_needing_x86_level(dir.path(), 3);
    let info = elf(&binary);
    assert_eq!(info.x86_isa_needed, Some(3));
    assert_eq!(info.libc, Libc::Glibc);
    assert!(info.to_string().ends_with("needs x86-64-v3"), "{info}");
    // Binaries without the note say nothing about a level.
    assert_eq!(elf(&probe_binary(X86_64_MUSL, None)).x86_isa_needed, None);

    let layout = Layout::new(dir.path().join("root"));
    for refused in ["x86_64", "x86_64-v2"] {
        let err = install(
            &layout,
            "isa",
            &[NewSlot::from_file(slot(refused), &binary)],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("install it into slot `x86_64-v3`"),
            "{refused}: {err}"
        );
    }
    for accepted in ["x86_64-v3", "x86_64-v4"] {
        install(
            &layout,
            "isa",
            &[NewSlot::from_file(slot(accepted), &binary)],
        )
        .unwrap();
    }
    assert!(verify(&layout, None).unwrap().is_empty());
    // Moved into a lower slot behind the installer's back (file and manifest): verify notices.
    remove_slot(&layout, "isa", slot("x86_64-v4")).unwrap();
    let mut manifest = layout.read_manifest("isa").unwrap();
    let mut info = manifest.slots.remove(&slot("x86_64-v3")).unwrap();
    // As a manifest written before content files: the slot's file is `SLOT`.
    info.file = None;
    manifest.slots.insert(slot("x86_64-v2"), info);
    std::fs::rename(
        layout.slot_path("isa", slot("x86_64-v3")),
        layout.slot_path("isa", slot("x86_64-v2")),
    )
    .unwrap();
    std::fs::write(layout.manifest_path("isa"), manifest.to_toml()).unwrap();
    let problems: Vec<String> = verify(&layout, None)
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        problems.len() == 1 && problems[0].contains("slot `x86_64-v2` cannot hold"),
        "{problems:?}"
    );
}

fn put(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if buf.len() < at + bytes.len() {
        buf.resize(at + bytes.len(), 0);
    }
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A thin 64-bit Mach-O header (mach_header_64, little-endian) for `cputype`.
fn macho_thin(cputype: u32) -> Vec<u8> {
    let mut h = Vec::new();
    put(&mut h, 0, &0xfeed_facfu32.to_le_bytes());
    put(&mut h, 4, &cputype.to_le_bytes());
    put(&mut h, 12, &2u32.to_le_bytes()); // MH_EXECUTE
    put(&mut h, 28, &0u32.to_le_bytes());
    h
}

#[test]
fn identifies_hand_made_macho_thin_and_fat_headers() {
    const X86_64: u32 = 0x0100_0007;
    const ARM64: u32 = 0x0100_000c;
    let thin = macho_thin(ARM64);
    match identify_bytes(&thin) {
        Identity::MachO { fat: false, slices } => {
            assert_eq!(slices.len(), 1);
            assert_eq!(slices[0].arch, "arm64");
        }
        other => panic!("{other}"),
    }
    // A universal file: big-endian fat header, two fat_arch entries, slices at 4 KiB steps.
    let mut fat = Vec::new();
    put(&mut fat, 0, &0xcafe_babeu32.to_be_bytes());
    put(&mut fat, 4, &2u32.to_be_bytes());
    for (i, cputype) in [X86_64, ARM64].into_iter().enumerate() {
        let entry = 8 + i * 20;
        let offset = 4096 * (i as u32 + 1);
        put(&mut fat, entry, &cputype.to_be_bytes());
        put(&mut fat, entry + 8, &offset.to_be_bytes());
        put(&mut fat, entry + 12, &32u32.to_be_bytes());
        put(&mut fat, entry + 16, &12u32.to_be_bytes()); // align 2^12
        put(&mut fat, offset as usize, &macho_thin(cputype));
    }
    match identify_bytes(&fat) {
        Identity::MachO { fat: true, slices } => {
            let archs: Vec<_> = slices.iter().map(|s| (s.arch.as_str(), s.offset)).collect();
            assert_eq!(archs, [("x86_64", 4096), ("arm64", 8192)]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        identify_bytes(&fat).to_string(),
        "Mach-O universal (x86_64, arm64)"
    );
}

#[test]
fn identifies_a_hand_made_pe_header() {
    // DOS header pointing at a PE32+ header for AMD64.
    let mut pe = Vec::new();
    put(&mut pe, 0, b"MZ");
    put(&mut pe, 0x3c, &0x40u32.to_le_bytes());
    put(&mut pe, 0x40, b"PE\0\0");
    put(&mut pe, 0x44, &0x8664u16.to_le_bytes()); // IMAGE_FILE_MACHINE_AMD64
    put(&mut pe, 0x54, &240u16.to_le_bytes()); // SizeOfOptionalHeader
    put(&mut pe, 0x56, &0x22u16.to_le_bytes()); // EXECUTABLE_IMAGE | LARGE_ADDRESS_AWARE
    let opt = 0x58;
    put(&mut pe, opt, &0x20bu16.to_le_bytes()); // PE32+
    put(&mut pe, opt + 32, &0x1000u32.to_le_bytes()); // SectionAlignment
    put(&mut pe, opt + 36, &0x200u32.to_le_bytes()); // FileAlignment
    put(&mut pe, opt + 56, &0x1000u32.to_le_bytes()); // SizeOfImage
    put(&mut pe, opt + 60, &0x200u32.to_le_bytes()); // SizeOfHeaders
    put(&mut pe, opt + 108, &16u32.to_le_bytes()); // NumberOfRvaAndSizes
                                                   // One section header (object refuses an empty section table read from memory).
    put(&mut pe, 0x46, &1u16.to_le_bytes()); // NumberOfSections
    put(&mut pe, opt + 240, b".text\0\0\0");
    put(&mut pe, 0x200, &[0]);
    match identify_bytes(&pe) {
        Identity::Pe { machine, bits } => {
            assert_eq!(bits, 64);
            assert_eq!(machine, "x86_64");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn identifies_scripts_and_non_executables() {
    let dir = temp_dir();
    let script = dir.path().join("s");
    std::fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
    assert_eq!(
        identify_path(&script).unwrap(),
        Identity::Script {
            interpreter: "/bin/sh -e".into()
        }
    );
    let text = dir.path().join("t");
    std::fs::write(&text, "hello").unwrap();
    assert!(matches!(
        identify_path(&text).unwrap(),
        Identity::NotExecutable { .. }
    ));
    assert!(matches!(
        identify_path(dir.path()).unwrap(),
        Identity::NotExecutable { what } if what == "a directory"
    ));
}

/// Regression: opening a FIFO to identify it blocked forever (no writer ever comes).
#[test]
fn identifying_a_fifo_does_not_hang() {
    let dir = temp_dir();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    assert!(matches!(
        identify_path(&fifo).unwrap(),
        Identity::NotExecutable { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// Hostile input: the real probe builds, truncated and with bytes flipped

/// A small deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_probe_builds_never_break_the_identifier() {
    let mut cases = 0usize;
    for target in [AARCH64_MUSL, X86_64_GNU] {
        let mut data = std::fs::read(probe_binary(target, None)).unwrap();
        let original = identify_bytes(&data);
        // Every truncation inside the headers, and a sample of longer ones.
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut cuts: Vec<usize> = (0..8192).collect();
        cuts.extend((0..2000).map(|_| rng.below(data.len())));
        for cut in cuts {
            let _ = identify_bytes(&data[..cut]);
            cases += 1;
        }
        // Random flips and absurd words in the first 8 KiB (headers, notes, version needs).
        for _ in 0..20_000 {
            let mut undo = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(8192.min(data.len()) - 8);
                undo.push((at, data[at..at + 8].to_vec()));
                let word: [u8; 8] = match rng.below(4) {
                    0 => u64::MAX.to_le_bytes(),
                    1 => (data.len() as u64 + rng.below(16) as u64).to_le_bytes(),
                    2 => rng.next().to_le_bytes(),
                    _ => {
                        let mut w: [u8; 8] = data[at..at + 8].try_into().unwrap();
                        w[0] ^= 1 << rng.below(8);
                        w
                    }
                };
                let width = [1, 2, 4, 8][rng.below(4)];
                data[at..at + width].copy_from_slice(&word[..width]);
            }
            let _ = identify_bytes(&data);
            for (at, old) in undo.into_iter().rev() {
                data[at..at + 8].copy_from_slice(&old);
            }
            cases += 1;
        }
        assert_eq!(identify_bytes(&data), original);
    }
    eprintln!("identify_bytes on mutated probe builds: {cases} cases");
}

// ---------------------------------------------------------------------------------------
// Installs

#[test]
fn install_round_trip_with_several_slots() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let slots = [
        probe_slot("x86_64", X86_64_MUSL, None),
        probe_slot("x86_64-v3", X86_64_MUSL, Some("x86-64-v3")),
        probe_slot("aarch64", AARCH64_MUSL, None),
    ];
    let report = install(&layout, "probe", &slots).unwrap();
    assert!(report.changed);
    assert_eq!(report.slots.len(), 3);
    assert!(report
        .slots
        .iter()
        .all(|(_, o)| *o == SlotOutcome::Installed));

    let manifest = layout.read_manifest("probe").unwrap();
    assert_eq!(manifest.format, 1);
    assert_eq!(manifest.program, "probe");
    let names: Vec<String> = manifest.slots.keys().map(|s| s.to_string()).collect();
    assert_eq!(names, ["x86_64", "x86_64-v3", "aarch64"]);
    for new in &slots {
        let info = &manifest.slots[&new.slot];
        let installed = layout.slot_path("probe", new.slot);
        assert_eq!(
            std::fs::read(&installed).unwrap(),
            std::fs::read(&new.source).unwrap()
        );
        let meta = std::fs::metadata(&installed).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(info.size, meta.len());
        assert_eq!(info.sha256, sha256sum(&new.source));
        assert_eq!(info.target, new.target);
        assert_eq!(info.arch, new.slot.arch);
        assert_eq!(
            (info.bits, info.endian),
            (new.slot.arch.bits(), new.slot.arch.endian())
        );
        assert_eq!(info.libc, Libc::Static);
        assert_eq!(info.glibc, None);
        assert_eq!(info.cpu, new.cpu);
        assert_eq!(info.krate.as_deref(), Some("probe"));
        assert_eq!(info.version.as_deref(), Some("0.3.1"));
    }
    let v3 = &manifest.slots[&slot("x86_64-v3")].features;
    for f in ["avx2", "bmi2", "fma", "sse4.2"] {
        assert!(v3.contains(&f.to_owned()), "{v3:?}");
    }
    assert!(manifest.slots[&slot("x86_64")].features.is_empty());
    // The manifest on disk is exactly what the library writes for what it read back.
    let text = std::fs::read_to_string(layout.manifest_path("probe")).unwrap();
    assert_eq!(text, manifest.to_toml());
    let mode = std::fs::metadata(layout.manifest_path("probe"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o7777, 0o644);
    assert_eq!(layout.programs().unwrap(), ["probe"]);
    assert!(verify(&layout, None).unwrap().is_empty());
}

#[test]
fn a_glibc_slot_records_its_glibc_version() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let new = probe_slot("x86_64", X86_64_GNU, None);
    install(&layout, "probe", std::slice::from_ref(&new)).unwrap();
    let info = &layout.read_manifest("probe").unwrap().slots[&new.slot];
    assert_eq!(info.libc, Libc::Glibc);
    assert_eq!(info.glibc, Some(glibc_needed_by_readelf(&new.source)));
}

#[test]
fn a_slot_whose_elf_header_disagrees_with_its_name_is_refused_and_nothing_changes() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install(&layout, "probe", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    let before = snapshot(dir.path());
    for (name, binary) in [
        ("x86_64", probe_binary(AARCH64_MUSL, None)),
        ("aarch64", probe_binary(X86_64_MUSL, None)),
        ("riscv64", probe_binary(X86_64_MUSL, None)),
        ("i686", probe_binary(X86_64_MUSL, None)),
        ("s390x", probe_binary(AARCH64_MUSL, None)),
    ] {
        let err =
            install(&layout, "probe", &[NewSlot::from_file(slot(name), &binary)]).unwrap_err();
        assert!(matches!(err, Error::SlotMismatch { .. }), "{name}: {err}");
        assert!(err.to_string().contains("ELF header says"), "{err}");
        assert_eq!(snapshot(dir.path()), before, "{name}");
    }
    // Not an ELF at all: a script.
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let before = snapshot(dir.path());
    let err = install(
        &layout,
        "probe",
        &[NewSlot::from_file(slot("x86_64"), &script)],
    )
    .unwrap_err();
    assert!(err.to_string().contains("not an ELF executable"), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn a_wrong_arch_slot_in_a_multi_slot_install_leaves_the_previous_install_intact() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install_x86_64_and_aarch64(&layout);
    let before = snapshot(dir.path());
    let mut wrong = probe_slot("aarch64", X86_64_MUSL, None);
    wrong.target = String::new();
    let err = install(
        &layout,
        "probe",
        &[
            probe_slot("x86_64-v3", X86_64_MUSL, Some("x86-64-v3")),
            wrong,
        ],
    )
    .unwrap_err();
    assert!(matches!(err, Error::SlotMismatch { .. }), "{err}");
    assert_eq!(snapshot(dir.path()), before);
}

/// Regression: the target triple was recorded without being checked against the slot.
#[test]
fn a_target_triple_of_another_arch_is_refused() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let mut new = probe_slot("x86_64", X86_64_MUSL, None);
    new.target = AARCH64_MUSL.into();
    let err = install(&layout, "probe", &[new]).unwrap_err();
    assert!(err.to_string().contains("not a x86_64 target"), "{err}");
    assert!(!layout.program_dir("probe").exists());
}

/// Regression: a slot given twice silently kept the last one.
#[test]
fn a_slot_given_twice_is_refused() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let new = probe_slot("x86_64", X86_64_MUSL, None);
    let err = install(&layout, "probe", &[new.clone(), new]).unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");
}

#[test]
fn identical_binaries_are_hard_linked() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    // The same build in two slots of one program, and again in another program.
    let report = install(
        &layout,
        "one",
        &[
            probe_slot("x86_64", X86_64_MUSL, None),
            probe_slot("x86_64-v2", X86_64_MUSL, None),
        ],
    )
    .unwrap();
    assert_eq!(report.slots[0].1, SlotOutcome::Installed);
    let manifest = layout.read_manifest("one").unwrap();
    let first = layout.slot_file("one", slot("x86_64"), &manifest.slots[&slot("x86_64")]);
    assert_eq!(report.slots[1].1, SlotOutcome::Linked { to: first });
    install(&layout, "two", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    let ino = |p: &str, s: &str| {
        std::fs::metadata(layout.slot_path(p, slot(s)))
            .unwrap()
            .ino()
    };
    assert_eq!(ino("one", "x86_64"), ino("one", "x86_64-v2"));
    assert_eq!(ino("one", "x86_64"), ino("two", "x86_64"));
    let nlink = std::fs::metadata(layout.slot_path("one", slot("x86_64")))
        .unwrap()
        .nlink();
    // Three slots, each a content file and its `SLOT` name: one inode.
    assert_eq!(nlink, 6);
    // A different build is a different file.
    install(
        &layout,
        "two",
        &[probe_slot("x86_64-v3", X86_64_MUSL, Some("x86-64-v3"))],
    )
    .unwrap();
    assert_ne!(ino("two", "x86_64-v3"), ino("two", "x86_64"));
    assert!(verify(&layout, None).unwrap().is_empty());
}

/// Each install keeps the content files of the manifest it replaces (one generation of grace,
/// for readers of that manifest) and removes older ones; `SLOT` is always the current one.
#[test]
fn content_files_of_the_install_before_last_are_removed() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let builds = [
        probe_slot("x86_64", X86_64_MUSL, None),
        probe_slot("x86_64", X86_64_MUSL, Some("x86-64-v2")),
        probe_slot("x86_64", X86_64_MUSL, Some("x86-64-v3")),
    ];
    let content = |new: &NewSlot| {
        let (sha, _) = fatbin_layout::fsutil::sha256_file(&new.source).unwrap();
        fatbin_layout::manifest::content_name(new.slot, &sha)
    };
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(layout.program_dir("probe"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let expected = |kept: &[&NewSlot]| {
        let mut e: Vec<String> = kept.iter().map(|n| content(n)).collect();
        e.extend(["fatbin.toml".to_owned(), "x86_64".to_owned()]);
        e.sort();
        e
    };
    install(&layout, "probe", &builds[..1]).unwrap();
    assert_eq!(names(), expected(&[&builds[0]]));
    install(&layout, "probe", &builds[1..2]).unwrap();
    assert_eq!(names(), expected(&[&builds[0], &builds[1]]));
    install(&layout, "probe", &builds[2..]).unwrap();
    assert_eq!(names(), expected(&[&builds[1], &builds[2]]));
    assert!(verify(&layout, None).unwrap().is_empty());
    let manifest = layout.read_manifest("probe").unwrap();
    let info = &manifest.slots[&slot("x86_64")];
    assert_eq!(info.file.as_deref(), Some(content(&builds[2]).as_str()));
    assert_eq!(
        std::fs::metadata(layout.slot_path("probe", slot("x86_64")))
            .unwrap()
            .ino(),
        std::fs::metadata(layout.slot_file("probe", slot("x86_64"), info))
            .unwrap()
            .ino()
    );
    // Removing a slot removes its name and its content file.
    install(
        &layout,
        "probe",
        &[probe_slot("aarch64", AARCH64_MUSL, None)],
    )
    .unwrap();
    remove_slot(&layout, "probe", slot("aarch64")).unwrap();
    assert!(
        names().iter().all(|n| !n.starts_with("aarch64")),
        "{:?}",
        names()
    );
    // Removing the last slot removes the program.
    remove_slot(&layout, "probe", slot("x86_64")).unwrap();
    assert!(!layout.program_dir("probe").exists());
}

#[test]
fn reinstalling_with_nothing_changed_rewrites_nothing() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let slots = [
        probe_slot("x86_64", X86_64_MUSL, None),
        probe_slot("aarch64", AARCH64_MUSL, None),
    ];
    install(&layout, "probe", &slots).unwrap();
    let before = snapshot_all(dir.path());
    std::thread::sleep(Duration::from_millis(20));
    let report = install(&layout, "probe", &slots).unwrap();
    assert!(!report.changed);
    assert!(report
        .slots
        .iter()
        .all(|(_, o)| *o == SlotOutcome::Unchanged));
    // Same inodes, mtimes (of directories too), modes and bytes everywhere.
    assert_eq!(snapshot_all(dir.path()), before);
}

#[test]
fn removing_a_slot_then_the_program() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install_x86_64_and_aarch64(&layout);
    write_shim(&layout, "probe", Path::new("../launcher")).unwrap();
    assert_eq!(
        std::fs::read_link(layout.shim_path("probe")).unwrap(),
        Path::new("../launcher")
    );

    remove_slot(&layout, "probe", slot("aarch64")).unwrap();
    assert!(!layout.slot_path("probe", slot("aarch64")).exists());
    let manifest = layout.read_manifest("probe").unwrap();
    assert_eq!(manifest.slot_list(), "x86_64");
    assert!(verify(&layout, None).unwrap().is_empty());

    let err = remove_slot(&layout, "probe", slot("riscv64")).unwrap_err();
    assert!(
        err.to_string()
            .contains("has no slot `riscv64` (slots: x86_64)"),
        "{err}"
    );

    // Removing the last slot removes the program and its shim.
    remove_slot(&layout, "probe", slot("x86_64")).unwrap();
    assert!(!layout.program_dir("probe").exists());
    assert!(layout.shim_path("probe").symlink_metadata().is_err());
    assert!(layout.programs().unwrap().is_empty());
    assert!(matches!(
        remove_program(&layout, "probe").unwrap_err(),
        Error::NoSuchProgram { .. }
    ));
    // Nothing is left in bin/ but the lock file.
    let left: Vec<_> = std::fs::read_dir(layout.bin_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [".lock"]);
}

#[test]
fn remove_program_removes_the_directory_and_the_shim() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install(&layout, "a", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    install(&layout, "b", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    write_shim(&layout, "a", Path::new("fatbin")).unwrap();
    remove_program(&layout, "a").unwrap();
    assert!(!layout.program_dir("a").exists());
    assert!(layout.shim_path("a").symlink_metadata().is_err());
    assert_eq!(layout.programs().unwrap(), ["b"]);
    // b shared a's binary through a hard link: it is still whole.
    assert!(verify(&layout, None).unwrap().is_empty());
}

/// Regression: temporary names add ~30 bytes to the name they stand for, so a 255-byte
/// program name (a valid one) could not be shimmed or removed (ENAMETOOLONG).
#[test]
fn a_255_byte_program_name_can_be_installed_shimmed_and_removed() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let name = "p".repeat(255);
    install(&layout, &name, &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    write_shim(&layout, &name, Path::new("fatbin")).unwrap();
    remove_program(&layout, &name).unwrap();
    assert!(layout.programs().unwrap().is_empty());
}

#[test]
fn invalid_program_names_are_refused_before_anything_is_written() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let new = probe_slot("x86_64", X86_64_MUSL, None);
    for name in [
        "a/b", "/abs", "..", ".", "a\0b", "-rf", "--help", "", ".hidden", "tab\t",
    ] {
        let err = install(&layout, name, std::slice::from_ref(&new)).unwrap_err();
        assert!(
            matches!(err, Error::InvalidProgramName { .. }),
            "{name:?}: {err}"
        );
        for result in [
            remove_program(&layout, name),
            remove_slot(&layout, name, new.slot),
            write_shim(&layout, name, Path::new("x")),
            verify(&layout, Some(name)).map(drop),
            layout.read_manifest(name).map(drop),
        ] {
            assert!(
                matches!(result, Err(Error::InvalidProgramName { .. })),
                "{name:?}: {result:?}"
            );
        }
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Slot names are just as strict.
    for name in [
        "x86_64/..",
        "../x86_64",
        "x86_64-v5",
        "aarch64-v2",
        "-x86_64",
        "x86_64\0",
    ] {
        assert!(name.parse::<SlotName>().is_err(), "{name:?}");
    }
}

/// Regression: two installs into one layout at once each read the manifest, added their own
/// slot and wrote it back, so one slot was lost. Installs now lock the layout.
#[test]
fn concurrent_installs_do_not_lose_each_others_slots() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let x86 = probe_slot("x86_64", X86_64_MUSL, None);
    let arm = probe_slot("aarch64", AARCH64_MUSL, None);
    let v3 = probe_slot("x86_64-v3", X86_64_MUSL, Some("x86-64-v3"));
    for round in 0..20 {
        let program = format!("p{round}");
        std::thread::scope(|s| {
            for new in [&x86, &arm, &v3] {
                let (layout, program) = (&layout, &program);
                s.spawn(move || install(layout, program, std::slice::from_ref(new)).unwrap());
            }
        });
        let manifest = layout.read_manifest(&program).unwrap();
        assert_eq!(
            manifest.slot_list(),
            "x86_64, x86_64-v3, aarch64",
            "round {round}"
        );
    }
    assert!(verify(&layout, None).unwrap().is_empty());
}

/// Regression: a first install that failed left an empty program directory, listed by
/// `programs()` as an installed program without a manifest. (The full-disk test checks the
/// case where the directory was already made when the install failed.)
#[test]
fn a_failed_first_install_leaves_no_directory() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let missing = NewSlot::from_file(slot("x86_64"), dir.path().join("no-such-file"));
    assert!(install(&layout, "probe", &[missing]).is_err());
    assert!(!layout.program_dir("probe").exists());
    assert!(layout.programs().unwrap().is_empty());
}

/// Regression: an install of no slots made an empty program directory (a "program" that
/// `programs()` listed but that had no manifest).
#[test]
fn installing_no_slots_creates_nothing() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    let report = install(&layout, "probe", &[]).unwrap();
    assert!(!report.changed);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------
// Verify

#[test]
fn verify_finds_a_tampered_byte_a_wrong_arch_file_and_unsafe_permissions() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install_x86_64_and_aarch64(&layout);
    assert!(verify(&layout, None).unwrap().is_empty());
    let problems = |layout: &Layout| -> Vec<String> {
        verify(layout, None)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect()
    };

    // One byte changed in the middle of a slot.
    let x86 = layout.slot_path("probe", slot("x86_64"));
    let mut bytes = std::fs::read(&x86).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&x86, &bytes).unwrap();
    let found = problems(&layout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("sha256 differs"), "{found:?}");
    bytes[middle] ^= 0x40;
    std::fs::write(&x86, &bytes).unwrap();
    assert!(problems(&layout).is_empty());

    // A wrong-arch file with the manifest updated to match its bytes: only the header check
    // can catch it.
    let arm = layout.slot_path("probe", slot("aarch64"));
    let saved = std::fs::read(&arm).unwrap();
    std::fs::copy(&x86, &arm).unwrap();
    let mut manifest = layout.read_manifest("probe").unwrap();
    let x86_info = manifest.slots[&slot("x86_64")].clone();
    let arm_info = manifest.slots.get_mut(&slot("aarch64")).unwrap();
    arm_info.sha256 = x86_info.sha256;
    arm_info.size = x86_info.size;
    // The slot's file is then `SLOT` (as in a manifest written before content files).
    arm_info.file = None;
    std::fs::write(layout.manifest_path("probe"), manifest.to_toml()).unwrap();
    let found = problems(&layout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("ELF x86_64") && found[0].contains("slot `aarch64` cannot hold"),
        "{found:?}"
    );
    std::fs::write(&arm, saved).unwrap();
    install(
        &layout,
        "probe",
        &[probe_slot("aarch64", AARCH64_MUSL, None)],
    )
    .unwrap();
    assert!(problems(&layout).is_empty());

    // Group-writable program directory, world-writable slot.
    let program_dir = layout.program_dir("probe");
    std::fs::set_permissions(&program_dir, std::fs::Permissions::from_mode(0o775)).unwrap();
    let found = problems(&layout);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("writable by its group") && found[0].contains("chmod go-w"),
        "{found:?}"
    );
    std::fs::set_permissions(&program_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o757)).unwrap();
    let found = problems(&layout);
    assert!(
        found.len() == 1 && found[0].contains("writable by others"),
        "{found:?}"
    );
    std::fs::set_permissions(&arm, std::fs::Permissions::from_mode(0o755)).unwrap();

    // A stray file and a slot replaced by a symlink.
    std::fs::write(program_dir.join(".x86_64.tmp-1-1"), "").unwrap();
    let found = problems(&layout);
    assert!(
        found.len() == 1 && found[0].contains("not named in the manifest"),
        "{found:?}"
    );
    std::fs::remove_file(program_dir.join(".x86_64.tmp-1-1")).unwrap();
    // The file launchers run (the content file) replaced by a symlink.
    let info = layout.read_manifest("probe").unwrap().slots[&slot("x86_64")].clone();
    let content = layout.slot_file("probe", slot("x86_64"), &info);
    std::fs::rename(&content, dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &content).unwrap();
    let found = problems(&layout);
    assert!(
        found.len() == 1 && found[0].contains("not a regular file"),
        "{found:?}"
    );
    std::fs::remove_file(&content).unwrap();
    std::fs::rename(dir.path().join("elsewhere"), &content).unwrap();
    assert!(problems(&layout).is_empty());
    // `SLOT` replaced by another file (an install killed before renaming the name leaves
    // the previous binary there): named, with the fix.
    std::fs::remove_file(&x86).unwrap();
    std::fs::copy(probe_binary(X86_64_MUSL, Some("x86-64-v3")), &x86).unwrap();
    let found = problems(&layout);
    assert!(
        found.len() == 1
            && found[0].contains("is not x86_64.")
            && found[0].contains("install `probe` again"),
        "{found:?}"
    );
    install_x86_64_and_aarch64(&layout);
    assert!(problems(&layout).is_empty());
    assert!(matches!(
        verify(&layout, Some("nope")).unwrap_err(),
        Error::NoSuchProgram { .. }
    ));
}

#[test]
fn verify_finds_a_slot_owned_by_another_user() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install(&layout, "probe", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    let path = layout.slot_path("probe", slot("x86_64"));
    // Only root can give a file away; CI runs these tests as root.
    if std::os::unix::fs::chown(&path, Some(54321), None).is_err() {
        eprintln!("skipped: chown needs root");
        return;
    }
    let problems: Vec<String> = verify(&layout, None)
        .unwrap()
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert!(
        problems.len() == 1 && problems[0].contains("owned by uid 54321"),
        "{problems:?}"
    );
    let err = fatbin_layout::perms::check_not_writable_by_others(&path).unwrap_err();
    assert!(
        matches!(err, Error::UnsafeOwner { owner: 54321, .. }),
        "{err}"
    );
}

/// A manifest that names a slot with the facts of another architecture is corrupt: the
/// launcher would otherwise trust it to pick a binary.
#[test]
fn a_manifest_that_lies_about_a_slot_is_corrupt() {
    let dir = temp_dir();
    let layout = Layout::new(dir.path());
    install(&layout, "probe", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    let path = layout.manifest_path("probe");
    let text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in [
        ("arch = \"x86_64\"", "arch = \"aarch64\""),
        ("bits = 64", "bits = 32"),
        ("endian = \"little\"", "endian = \"big\""),
        ("program = \"probe\"", "program = \"../x\""),
        ("sha256 = \"", "sha256 = \"zz"),
    ] {
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let err = layout.read_manifest("probe").unwrap_err();
        assert!(matches!(err, Error::CorruptManifest { .. }), "{to}: {err}");
    }
    // A newer format is refused by name, even when its fields are unknown.
    std::fs::write(&path, "format = 2\n[programs.probe]\nwhatever = true\n").unwrap();
    let err = layout.read_manifest("probe").unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnsupportedFormat {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade fatbin"), "{err}");
    std::fs::write(&path, "format = 99999999999\n").unwrap();
    assert!(matches!(
        layout.read_manifest("probe").unwrap_err(),
        Error::UnsupportedFormat { .. }
    ));
}

// ---------------------------------------------------------------------------------------
// Children: this test binary re-run for one entry point

/// Runs the `#[ignore]`d test `name` of this binary in a child process, through `wrapper`
/// (e.g. `unshare ...`) when given, with `env`; returns its output.
fn run_child(wrapper: &[&str], name: &str, env: &[(&str, &Path)]) -> std::process::Output {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn child_env(key: &str) -> Option<PathBuf> {
    std::env::var_os(key).map(PathBuf::from)
}

/// What the probe prints for `whoami` when run from `path`, for each build in the loop.
fn whoami_is_complete(out: &str, path: &Path) -> bool {
    let path = path.display().to_string();
    ["baseline", "x86-64-v3"].iter().any(|level| {
        let head = format!("probe arch=x86_64 level={level} argv0={path} exe={path}");
        // A run that started just before its binary was replaced sees it as deleted.
        out == format!("{head}\n") || out == format!("{head} (deleted)\n")
    })
}

/// Reinstalls while others exec: every run must be the old or the new binary, whole.
#[test]
fn exec_during_reinstalls_sees_the_old_or_the_new_binary_never_a_torn_one() {
    // Build in this process so the children find the builds cached.
    let a = probe_binary(X86_64_MUSL, None);
    let b = probe_binary(X86_64_MUSL, Some("x86-64-v3"));
    let dir = temp_dir();
    let out = run_child(
        &[],
        "layout::child_exec_while_reinstalling",
        &[
            ("FATBIN_CHILD_ROOT", dir.path()),
            ("FATBIN_CHILD_A", &a),
            ("FATBIN_CHILD_B", &b),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("EXEC-RACE-OK"), "{stderr}");
    eprintln!(
        "{}",
        stderr.lines().find(|l| l.contains("EXEC-RACE-OK")).unwrap()
    );
}

#[test]
#[ignore = "child process of exec_during_reinstalls_sees_the_old_or_the_new_binary_never_a_torn_one"]
fn child_exec_while_reinstalling() {
    let (Some(root), Some(a), Some(b)) = (
        child_env("FATBIN_CHILD_ROOT"),
        child_env("FATBIN_CHILD_A"),
        child_env("FATBIN_CHILD_B"),
    ) else {
        panic!("run by exec_during_reinstalls_sees_the_old_or_the_new_binary_never_a_torn_one")
    };
    let layout = Layout::new(&root);
    install(&layout, "probe", &[NewSlot::from_file(slot("x86_64"), &a)]).unwrap();
    let path = layout.slot_path("probe", slot("x86_64"));

    // The writer is its own process, so that no fork made here for an exec can inherit its
    // staged file while open for writing (exec of that file would then fail with ETXTBSY).
    let writer = Command::new(std::env::current_exe().unwrap())
        .args([
            "layout::child_reinstaller",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("FATBIN_CHILD_ROOT", &root)
        .env("FATBIN_CHILD_A", &a)
        .env("FATBIN_CHILD_B", &b)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (runs, levels, reinstalls) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut runs = 0u32;
                    let mut levels = [0u32; 2];
                    while !done.load(std::sync::atomic::Ordering::Relaxed)
                        && Instant::now() < deadline
                    {
                        let out = Command::new(&path).arg("whoami").output().unwrap();
                        let text = String::from_utf8_lossy(&out.stdout);
                        assert!(
                            out.status.success() && whoami_is_complete(&text, &path),
                            "run {runs}: {:?} {text:?} {}",
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                        levels[usize::from(text.contains("x86-64-v3"))] += 1;
                        runs += 1;
                    }
                    (runs, levels)
                })
            })
            .collect();
        let writer = writer.wait_with_output().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let writer_err = String::from_utf8_lossy(&writer.stderr).into_owned();
        assert!(writer.status.success(), "{writer_err}");
        assert!(writer_err.contains("REINSTALLS="), "{writer_err}");
        let reinstalls = writer_err
            .lines()
            .find(|l| l.contains("REINSTALLS="))
            .unwrap()
            .to_owned();
        let (runs, levels) = readers
            .into_iter()
            .map(|r| r.join().unwrap())
            .fold((0, [0, 0]), |(n, l), (rn, rl)| {
                (n + rn, [l[0] + rl[0], l[1] + rl[1]])
            });
        (runs, levels, reinstalls)
    });
    // Both builds were seen running, so the runs really raced the replacements.
    assert!(
        runs > 50 && levels[0] > 0 && levels[1] > 0,
        "{runs} {levels:?}"
    );
    assert!(verify(&layout, None).unwrap().is_empty());
    eprintln!(
        "EXEC-RACE-OK runs={runs} baseline={} v3={} failures=0 {reinstalls}",
        levels[0], levels[1]
    );
}

#[test]
#[ignore = "child process of exec_during_reinstalls_sees_the_old_or_the_new_binary_never_a_torn_one"]
fn child_reinstaller() {
    let (Some(root), Some(a), Some(b)) = (
        child_env("FATBIN_CHILD_ROOT"),
        child_env("FATBIN_CHILD_A"),
        child_env("FATBIN_CHILD_B"),
    ) else {
        panic!("run by child_exec_while_reinstalling")
    };
    let layout = Layout::new(&root);
    let start = Instant::now();
    let mut n = 0;
    // Bounded both ways: enough replacements to race, never more than a few seconds.
    // (A debug build spends most of an install hashing: ~20 ms per copy of the probe.)
    while n < 400 && start.elapsed() < Duration::from_secs(6) {
        let source = if n % 2 == 0 { &b } else { &a };
        let report = install(
            &layout,
            "probe",
            &[NewSlot::from_file(slot("x86_64"), source)],
        )
        .unwrap();
        // The build before last is still there (one generation of grace): its content file
        // is reused, and the manifest and `SLOT` change.
        assert!(report.changed);
        if n == 0 {
            assert_eq!(report.slots[0].1, SlotOutcome::Installed);
        }
        n += 1;
    }
    assert!(n >= 4, "only {n} reinstalls");
    eprintln!("REINSTALLS={n} in {:?}", start.elapsed());
}

/// `kill -9` at each step of a reinstall (`fatbin_layout::install::INSTALL_STEPS`, reached
/// through its `FATBIN_TEST_KILL_AT` hook: the install kills itself there with SIGKILL, so
/// nothing is cleaned up): every slot the manifest names has its file, whose sha256 and size
/// are the manifest's; the fast and the full launcher, and a direct exec of `SLOT`, run the
/// old build or the new one, whole (the old one until the manifest is renamed, the new one
/// after); `verify` finds nothing but what the step left for the next install (a temporary
/// file, `SLOT` lagging the manifest), and the next install repairs it.
#[test]
fn kill_9_at_each_install_step_leaves_a_manifest_whose_files_exist_and_match() {
    use std::os::unix::process::ExitStatusExt;
    let old = probe_binary(X86_64_MUSL, None);
    let new = probe_binary(X86_64_MUSL, Some("x86-64-v2"));
    let arm = probe_binary(AARCH64_MUSL, None);
    let t = fatbin_tests::launcher_support::TestLayout::new();
    let layout = t.layout();
    let x86 = slot("x86_64");
    let install_x86 = |binary: &Path| {
        install(
            &layout,
            "probe",
            &[
                NewSlot::from_file(x86, binary),
                NewSlot::from_file(slot("aarch64"), &arm),
            ],
        )
        .unwrap();
    };
    install_x86(&old);
    t.add_shim("probe");
    let mut seen = Vec::new();
    for (i, step) in fatbin_layout::install::INSTALL_STEPS.iter().enumerate() {
        // From the old build to the new one, and back in the next round.
        let (from, to) = if i % 2 == 0 {
            (&old, &new)
        } else {
            (&new, &old)
        };
        let level = |binary: &PathBuf| {
            if binary == &old {
                "baseline"
            } else {
                "x86-64-v2"
            }
        };
        let out = run_child(
            &[],
            "layout::child_install_killed",
            &[
                ("FATBIN_CHILD_ROOT", layout.root()),
                ("FATBIN_CHILD_A", to),
                ("FATBIN_TEST_KILL_AT", Path::new(step)),
            ],
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "{step}: the install was not killed there: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = layout.read_manifest("probe").unwrap();
        for (s, info) in &manifest.slots {
            let file = layout.slot_file("probe", *s, info);
            assert!(info.file.is_some(), "{step}: {s} has no content file");
            assert_eq!(sha256sum(&file), info.sha256, "{step}: {}", file.display());
            assert_eq!(std::fs::metadata(&file).unwrap().len(), info.size);
        }
        let committed = i >= 2;
        let expected = level(if committed { to } else { from });
        for (how, forced) in [("fast", None), ("full", Some("x86_64"))] {
            let mut cmd = t.run("probe");
            if let Some(forced) = forced {
                cmd.env("FATBIN_ARCH", forced);
            }
            let out = cmd.arg("whoami").output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success()
                    && text.starts_with(&format!("probe arch=x86_64 level={expected} ")),
                "{step}, {how} launcher: {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // `SLOT` itself: the old build until the names are renamed, whole.
        let direct = layout.slot_path("probe", x86);
        let renamed = i >= 4;
        let lvl = level(if renamed { to } else { from });
        let out = Command::new(&direct).arg("whoami").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let shown = direct.display();
        assert_eq!(
            text,
            format!("probe arch=x86_64 level={lvl} argv0={shown} exe={shown}\n"),
            "{step}: direct exec of SLOT"
        );
        let mut kinds: Vec<&str> = verify(&layout, None)
            .unwrap()
            .iter()
            .map(|p| {
                let p = p.to_string();
                if p.contains("interrupted install (fix: install `probe` again") {
                    "temporary file"
                } else if p.contains("interrupted before it renamed this name") {
                    "SLOT lags the manifest"
                } else {
                    panic!("{step}: a torn layout: {p}")
                }
            })
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        seen.push(format!("{step}: {kinds:?}"));
        // The next install (the same build again) repairs everything.
        install_x86(to);
        assert!(
            verify(&layout, None).unwrap().is_empty(),
            "{step}: not repaired"
        );
        let info = &layout.read_manifest("probe").unwrap().slots[&x86];
        assert_eq!(
            std::fs::metadata(&direct).unwrap().ino(),
            std::fs::metadata(layout.slot_file("probe", x86, info))
                .unwrap()
                .ino(),
            "{step}: SLOT is not the content file"
        );
    }
    // What each step left, before the next install: a step that leaves nothing to repair is
    // fine, but the ones around the commit point must show the lag they leave.
    assert_eq!(
        seen,
        [
            "staged: [\"temporary file\"]",
            "content-renamed: []",
            "manifest-renamed: [\"SLOT lags the manifest\"]",
            "names-staged: [\"SLOT lags the manifest\", \"temporary file\"]",
            "names-renamed: []",
        ]
    );
}

#[test]
#[ignore = "child process of kill_9_at_each_install_step_leaves_a_manifest_whose_files_exist_and_match"]
fn child_install_killed() {
    let (Some(root), Some(binary)) = (child_env("FATBIN_CHILD_ROOT"), child_env("FATBIN_CHILD_A"))
    else {
        panic!("run by kill_9_at_each_install_step_leaves_a_manifest_whose_files_exist_and_match")
    };
    let layout = Layout::new(root);
    // FATBIN_TEST_KILL_AT ends this process inside the install.
    install(
        &layout,
        "probe",
        &[NewSlot::from_file(slot("x86_64"), &binary)],
    )
    .unwrap();
    eprintln!("CHILD-NOT-KILLED");
}

/// A manifest written before content files (no `file`: each slot's bytes are `SLOT`) still
/// runs, through the fast launcher alone and through the full one, and the next install gives
/// every slot of the program its content file, the ones it does not replace too.
#[test]
fn a_manifest_without_content_files_still_runs_and_the_next_install_converts_it() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes(
        "probe",
        &[
            ("x86_64", X86_64_MUSL, None),
            ("aarch64", AARCH64_MUSL, None),
        ],
    );
    let layout = t.layout();
    // As an install before content files left it.
    let mut manifest = layout.read_manifest("probe").unwrap();
    for (s, info) in manifest.slots.iter_mut() {
        std::fs::remove_file(layout.slot_file("probe", *s, info)).unwrap();
        info.file = None;
    }
    let text = manifest.to_toml();
    assert!(!text.contains("file = "), "{text}");
    std::fs::write(layout.manifest_path("probe"), text).unwrap();
    let direct = layout.slot_path("probe", slot("x86_64"));
    let runs_slot = |out: std::process::Output, how: &str| {
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success()
                && text.starts_with("probe arch=x86_64 level=baseline ")
                && text.ends_with(&format!(" exe={}\n", direct.display())),
            "{how}: {text:?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The fast launcher alone: without the full one next to it, a hand-over would fail.
    let full = t.full_launcher();
    let away = full.with_file_name("fatbin-full.away");
    std::fs::rename(&full, &away).unwrap();
    let fast = t.run("probe").arg("whoami").output().unwrap();
    std::fs::rename(&away, &full).unwrap();
    runs_slot(fast, "fast launcher");
    let forced = t
        .run("probe")
        .env("FATBIN_ARCH", "x86_64")
        .arg("whoami")
        .output();
    runs_slot(forced.unwrap(), "full launcher");
    assert!(verify(&layout, None).unwrap().is_empty());

    // Reinstalling one slot converts both.
    install(&layout, "probe", &[probe_slot("x86_64", X86_64_MUSL, None)]).unwrap();
    let manifest = layout.read_manifest("probe").unwrap();
    for (s, info) in &manifest.slots {
        assert!(info.file.is_some(), "{s} has no content file");
        assert_eq!(
            std::fs::metadata(layout.slot_path("probe", *s))
                .unwrap()
                .ino(),
            std::fs::metadata(layout.slot_file("probe", *s, info))
                .unwrap()
                .ino(),
            "{s}"
        );
    }
    assert!(verify(&layout, None).unwrap().is_empty());
    let out = t.run("probe").arg("whoami").output().unwrap();
    let content = layout.slot_file("probe", slot("x86_64"), &manifest.slots[&slot("x86_64")]);
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with(&format!(" exe={}\n", content.display())),
        "{out:?}"
    );
}

/// A full disk during an install: the previous install is untouched and no temporary file
/// is left. The layout lives on a tiny tmpfs mounted in a private user and mount namespace.
#[test]
fn a_full_disk_during_install_leaves_the_previous_install_intact() {
    let a = probe_binary(X86_64_MUSL, None);
    let b = probe_binary(X86_64_MUSL, Some("x86-64-v3"));
    let arm = probe_binary(AARCH64_MUSL, None);
    let mount = temp_dir();
    let env: [(&str, &Path); 4] = [
        ("FATBIN_CHILD_ROOT", mount.path()),
        ("FATBIN_CHILD_A", &a),
        ("FATBIN_CHILD_B", &b),
        ("FATBIN_CHILD_ARM", &arm),
    ];
    // Room for the first install and a little more, not for a second binary.
    let size = std::fs::metadata(&a).unwrap().len() + (128 << 10);
    let script = format!(
        "mount -t tmpfs -o size={size},mode=755 fatbin-test \"$FATBIN_CHILD_ROOT\" && exec \"$@\""
    );
    let out = run_child(
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            &script,
            "sh",
        ],
        "layout::child_disk_full",
        &env,
    );
    let mut stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !stderr.contains("CHILD-STARTED") {
        // No user namespaces here: fall back to a file-size limit in a plain child.
        eprintln!("tmpfs in a user namespace unavailable ({stderr}); using RLIMIT_FSIZE");
        let limit = PathBuf::from(size.to_string());
        let mut env = env.to_vec();
        env.push(("FATBIN_CHILD_FSIZE", &limit));
        let out = run_child(&[], "layout::child_disk_full", &env);
        stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
    }
    assert!(
        out.status.success() || stderr.contains("DISK-FULL-OK"),
        "{stderr}"
    );
    assert!(stderr.contains("DISK-FULL-OK"), "{stderr}");
    eprintln!(
        "{}",
        stderr.lines().find(|l| l.contains("DISK-FULL-OK")).unwrap()
    );
}

#[test]
#[ignore = "child process of a_full_disk_during_install_leaves_the_previous_install_intact"]
fn child_disk_full() {
    let (Some(root), Some(a), Some(b), Some(arm)) = (
        child_env("FATBIN_CHILD_ROOT"),
        child_env("FATBIN_CHILD_A"),
        child_env("FATBIN_CHILD_B"),
        child_env("FATBIN_CHILD_ARM"),
    ) else {
        panic!("run by a_full_disk_during_install_leaves_the_previous_install_intact")
    };
    eprintln!("CHILD-STARTED");
    let layout = Layout::new(root.join("layout"));
    install(&layout, "probe", &[NewSlot::from_file(slot("x86_64"), &a)]).unwrap();
    let before = snapshot(layout.root());
    let limit = child_env("FATBIN_CHILD_FSIZE");
    if let Some(limit) = &limit {
        let bytes: u64 = limit.to_str().unwrap().parse().unwrap();
        // SAFETY: ignoring SIGXFSZ makes an oversized write fail with EFBIG instead of
        // killing the process; setrlimit only reads the struct we pass.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rl = libc::rlimit {
                rlim_cur: bytes / 2,
                rlim_max: libc::RLIM_INFINITY,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &rl), 0);
        }
    }
    // Replace the slot and add two more: the disk fills while staging.
    let err = install(
        &layout,
        "probe",
        &[
            NewSlot::from_file(slot("x86_64"), &b),
            NewSlot::from_file(slot("x86_64-v3"), &b),
            NewSlot::from_file(slot("aarch64"), &arm),
        ],
    )
    .unwrap_err();
    let errno = match &err {
        Error::Io { source, .. } => source.raw_os_error(),
        _ => None,
    };
    let expected = if limit.is_some() {
        libc::EFBIG
    } else {
        libc::ENOSPC
    };
    assert_eq!(errno, Some(expected), "{err}");
    // Byte-identical old slot and manifest, same inodes and mtimes, no temporary files.
    assert_eq!(snapshot(layout.root()), before);
    assert!(verify(&layout, None).unwrap().is_empty());
    let manifest = layout.read_manifest("probe").unwrap();
    assert_eq!(manifest.slot_list(), "x86_64");
    // A new program that does not fit leaves no directory behind either.
    assert!(install(&layout, "other", &[NewSlot::from_file(slot("x86_64"), &b)]).is_err());
    assert_eq!(snapshot(layout.root()), before);
    if limit.is_none() {
        // Regression: a slot identical to one on another file system cannot be hard-linked
        // to (EXDEV); it is copied instead of failing the install.
        let across = layout.program_dir("across");
        std::fs::create_dir(&across).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=755", "fatbin-across"])
            .arg(&across)
            .status()
            .unwrap();
        assert!(mounted.success());
        let report = install(&layout, "across", &[NewSlot::from_file(slot("x86_64"), &a)]).unwrap();
        assert_eq!(report.slots[0].1, SlotOutcome::Installed);
        assert!(verify(&layout, None).unwrap().is_empty());
    }
    eprintln!(
        "DISK-FULL-OK ({}): {err}",
        if limit.is_some() {
            "RLIMIT_FSIZE"
        } else {
            "tmpfs"
        }
    );
}
