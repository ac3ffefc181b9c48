//! Hostile input: the identifier and the manifest parser fed garbage, and real ELF files
//! mutated where parsers trip (header counts and offsets, program and section headers, the
//! version-need section, notes). Nothing may panic, hang or allocate without bound.
//!
//! proptest drives the cases (cargo-fuzz needs a nightly compiler). Each property prints how
//! many cases it ran, so `cargo test -p fatbin-layout --test hostile -- --nocapture` reports
//! the totals.

use std::path::Path;

use fatbin_layout::identify::{identify_file, Identity};
use fatbin_layout::{identify_bytes, Manifest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Runs `test` on `cases` inputs from `strategy`, then prints and checks the count.
fn run<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value)) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let ran = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |value| {
            ran.set(ran.get() + 1);
            test(value);
            Ok(())
        })
        .unwrap();
    eprintln!("{name}: {} cases", ran.get());
    assert_eq!(ran.get(), cases);
}

/// Real ELF files to mutate: this test's own executable (a large glibc PIE with version
/// needs and notes) and the system's `/bin/true` (small, so mutated copies can go to disk).
fn real_elf(name: &str) -> Vec<u8> {
    let path = match name {
        "self" => std::env::current_exe().unwrap(),
        other => other.into(),
    };
    let data = std::fs::read(&path).unwrap();
    assert_eq!(&data[..4], b"\x7fELF", "{}", path.display());
    data
}

fn u16_at(d: &[u8], at: usize) -> u64 {
    u16::from_le_bytes(d[at..at + 2].try_into().unwrap()).into()
}
fn u32_at(d: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(d[at..at + 4].try_into().unwrap()).into()
}
fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().unwrap())
}

/// A field of a 64-bit little-endian ELF file: where it is and how wide.
#[derive(Debug, Clone, Copy)]
struct Field {
    at: usize,
    width: usize,
}

/// The fields parsers trust: every ELF header field, every program header field, every
/// section header field, and the words of the sections and segments they point to that
/// hold counts and offsets (version needs, notes, the interpreter).
fn interesting_fields(d: &[u8]) -> Vec<Field> {
    let mut fields = Vec::new();
    let mut add = |at: usize, width: usize| {
        if at + width <= d.len() {
            fields.push(Field { at, width });
        }
    };
    // e_ident bytes, then e_type .. e_shstrndx.
    for at in 0..16 {
        add(at, 1);
    }
    for (at, width) in [
        (16, 2),
        (18, 2),
        (20, 4),
        (24, 8),
        (32, 8),
        (40, 8),
        (48, 4),
        (52, 2),
        (54, 2),
        (56, 2),
        (58, 2),
        (60, 2),
        (62, 2),
    ] {
        add(at, width);
    }
    let (phoff, phnum) = (u64_at(d, 32) as usize, u16_at(d, 56) as usize);
    for i in 0..phnum {
        let base = phoff + i * 56;
        for (off, width) in [
            (0, 4),
            (4, 4),
            (8, 8),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 8),
            (48, 8),
        ] {
            add(base + off, width);
        }
        if base + 56 <= d.len() {
            let (offset, size) = (u64_at(d, base + 8) as usize, u64_at(d, base + 32) as usize);
            // The first words of the segment: note headers, interpreter bytes.
            for w in 0..(size.min(64) / 4) {
                add(offset + w * 4, 4);
            }
        }
    }
    let (shoff, shnum) = (u64_at(d, 40) as usize, u16_at(d, 60) as usize);
    for i in 0..shnum {
        let base = shoff + i * 64;
        for (off, width) in [
            (0, 4),
            (4, 4),
            (8, 8),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 4),
            (44, 4),
        ] {
            add(base + off, width);
        }
        if base + 64 <= d.len() && u32_at(d, base + 4) == u64::from(object::elf::SHT_GNU_VERNEED) {
            let (offset, size) = (u64_at(d, base + 24) as usize, u64_at(d, base + 32) as usize);
            for w in 0..(size.min(512) / 2) {
                add(offset + w * 2, 2);
                add(offset + w * 2, 4);
            }
        }
    }
    fields
}

/// Values that break parsers: zero, one, all ones, the file's length and near it, powers of two.
fn absurd_value(len: usize) -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::from(u32::MAX)),
        Just(u64::from(u16::MAX)),
        Just(0x7fff_ffff_ffff_ffff),
        Just(len as u64),
        Just(len as u64 - 1),
        Just(len as u64 + 1),
        (0u32..64).prop_map(|b| 1u64 << b),
        any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Write this value, little-endian, over an interesting field.
    Field { field: usize, value: u64 },
    /// XOR a byte anywhere in the first 64 KiB.
    Flip { at: usize, mask: u8 },
}

fn mutations(fields: usize, len: usize) -> impl Strategy<Value = Vec<Mutation>> {
    let one = prop_oneof![
        (0..fields, absurd_value(len)).prop_map(|(field, value)| Mutation::Field { field, value }),
        (0..len.min(1 << 16), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
    ];
    proptest::collection::vec(one, 1..6)
}

/// Applies `mutations` to `data` in place and returns what to undo.
fn apply(data: &mut [u8], fields: &[Field], mutations: &[Mutation]) -> Vec<(usize, Vec<u8>)> {
    let mut undo = Vec::new();
    for m in mutations {
        let (at, bytes) = match *m {
            Mutation::Field { field, value } => {
                let f = fields[field];
                (f.at, value.to_le_bytes()[..f.width].to_vec())
            }
            Mutation::Flip { at, mask } => (at, vec![data[at] ^ mask]),
        };
        undo.push((at, data[at..at + bytes.len()].to_vec()));
        data[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    undo
}

fn revert(data: &mut [u8], undo: Vec<(usize, Vec<u8>)>) {
    for (at, old) in undo.into_iter().rev() {
        data[at..at + old.len()].copy_from_slice(&old);
    }
}

/// Arbitrary bytes: `len` bytes expanded from `seed` (xorshift64*). Generating them from a
/// seed rather than byte by byte keeps 20 000 cases fast in a debug build, and proptest still
/// shrinks a failure to the shortest length and simplest seed.
fn bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    (any::<u64>(), 0..max_len).prop_map(|(seed, len)| {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    })
}

/// Text over an alphabet that TOML's grammar cares about, expanded from a seed like [`bytes`].
fn toml_ish(max_len: usize) -> impl Strategy<Value = String> {
    const ALPHABET: &[u8] = b"[]{}=\"'.,_ -#\nabcfmorstx0123456789";
    bytes(max_len).prop_map(|b| {
        b.iter()
            .map(|&c| char::from(ALPHABET[usize::from(c) % ALPHABET.len()]))
            .collect()
    })
}

#[test]
fn identify_bytes_survives_arbitrary_bytes() {
    run(
        "identify_bytes(arbitrary bytes)",
        20_000,
        bytes(2048),
        |data| {
            let _ = identify_bytes(&data);
        },
    );
}

#[test]
fn identify_bytes_survives_garbage_after_every_magic() {
    let magics: Vec<&'static [u8]> = vec![
        b"\x7fELF\x01\x01\x01",
        b"\x7fELF\x02\x01\x01",
        b"\x7fELF\x01\x02\x01",
        b"\x7fELF\x02\x02\x01",
        b"\xfe\xed\xfa\xce",
        b"\xce\xfa\xed\xfe",
        b"\xfe\xed\xfa\xcf",
        b"\xcf\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
        b"\xca\xfe\xba\xbf",
        b"MZ",
        b"#!",
    ];
    let strategy = (proptest::sample::select(magics), bytes(4096));
    run(
        "identify_bytes(magic + garbage)",
        20_000,
        strategy,
        |(magic, rest)| {
            let mut data = magic.to_vec();
            data.extend(rest);
            let _ = identify_bytes(&data);
        },
    );
}

#[test]
fn identify_bytes_survives_mutated_real_elf() {
    for seed in ["self", "/bin/true"] {
        let mut data = real_elf(seed);
        let original = identify_bytes(&data);
        assert!(matches!(original, Identity::Elf(_)), "{seed}: {original}");
        let fields = interesting_fields(&data);
        let strategy = mutations(fields.len(), data.len());
        let data = std::cell::RefCell::new(&mut data);
        run(
            &format!("identify_bytes(mutated {seed})"),
            10_000,
            strategy,
            |ms| {
                let mut data = data.borrow_mut();
                let undo = apply(&mut data, &fields, &ms);
                let _ = identify_bytes(&data);
                revert(&mut data, undo);
            },
        );
        assert_eq!(identify_bytes(&data.borrow()), original, "{seed} restored");
    }
}

#[test]
fn identify_bytes_survives_truncation_at_every_interesting_offset() {
    let mut total = 0;
    for seed in ["self", "/bin/true"] {
        let data = real_elf(seed);
        let mut cuts: Vec<usize> = (0..4096.min(data.len())).collect();
        for f in interesting_fields(&data) {
            // Where a field points (when it is an offset or a size), and around the field.
            let value = match f.width {
                8 => u64_at(&data, f.at) as usize,
                4 => u32_at(&data, f.at) as usize,
                _ => 0,
            };
            for cut in [
                f.at,
                f.at + 1,
                f.at + f.width - 1,
                value,
                value + 1,
                value.saturating_sub(1),
            ] {
                if cut <= data.len() {
                    cuts.push(cut);
                }
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        for &cut in &cuts {
            let _ = identify_bytes(&data[..cut]);
        }
        total += cuts.len();
    }
    eprintln!("identify_bytes(truncated real ELF): {total} cases");
    assert!(total > 4096);
}

#[test]
fn identify_file_survives_mutated_real_elf_on_disk() {
    // Through the file reader (ReadCache plus the read budget), not the in-memory one.
    let mut data = real_elf("/bin/true");
    let fields = interesting_fields(&data);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutant");
    let strategy = (mutations(fields.len(), data.len()), 0..=data.len());
    let data = std::cell::RefCell::new(&mut data);
    run(
        "identify_file(mutated /bin/true)",
        2_000,
        strategy,
        |(ms, cut)| {
            let mut data = data.borrow_mut();
            let undo = apply(&mut data, &fields, &ms);
            std::fs::write(&path, &data[..cut]).unwrap();
            let from_file = identify_file(std::fs::File::open(&path).unwrap()).unwrap();
            let in_memory = identify_bytes(&data[..cut]);
            revert(&mut data, undo);
            // The same bytes read from a file or from memory identify the same, except that
            // `object` reads structures in memory only at aligned addresses (an odd e_phoff)
            // while the file reader copies them into aligned buffers first. Two ways of being
            // malformed may word their reason differently.
            let unaligned = matches!(&in_memory, Identity::NotExecutable { what }
                if what.contains("alignment"));
            let both_malformed = matches!(
                (&from_file, &in_memory),
                (
                    Identity::NotExecutable { .. },
                    Identity::NotExecutable { .. }
                )
            );
            if !unaligned && !both_malformed {
                assert_eq!(from_file, in_memory);
            }
        },
    );
}

const MANIFEST: &str = r#"# fatbin manifest
format = 1
program = "cat"

[slots.x86_64]
target = "x86_64-unknown-linux-gnu"
arch = "x86_64"
bits = 64
endian = "little"
libc = "glibc"
glibc = "2.34"
features = []
size = 4096
sha256 = "abababababababababababababababababababababababababababababababab"
crate = "cat"
version = "1.0.0"

[slots.aarch64]
target = "aarch64-unknown-linux-musl"
arch = "aarch64"
bits = 64
endian = "little"
libc = "static"
features = []
size = 4096
sha256 = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
"#;

#[test]
fn manifest_parse_survives_arbitrary_text() {
    assert!(Manifest::parse(MANIFEST, Path::new("m")).is_ok());
    run(
        "Manifest::parse(arbitrary bytes)",
        20_000,
        bytes(1024),
        |bytes| {
            let _ = Manifest::parse(&String::from_utf8_lossy(&bytes), Path::new("m"));
        },
    );
    run(
        "Manifest::parse(arbitrary TOML-ish text)",
        20_000,
        toml_ish(512),
        |text| {
            let _ = Manifest::parse(&text, Path::new("m"));
        },
    );
}

#[test]
fn manifest_parse_survives_mutated_real_manifest() {
    let tokens = [
        "[",
        "]",
        "{",
        "}",
        "=",
        "\"",
        "'",
        "\n",
        "#",
        ".",
        "[[slots]]",
        "format = 2",
        "-1",
        "99999999999999999999",
        "\u{0}",
        "\u{feff}",
        "nan",
        "inf",
        "1979-05-27",
        "true",
        "x86_64-v9",
        "\"\"\"",
        "'''",
    ];
    let edit = prop_oneof![
        (0..MANIFEST.len(), proptest::sample::select(tokens.to_vec()))
            .prop_map(|(at, t)| (at, 0, t)),
        (0..MANIFEST.len(), 1..16usize).prop_map(|(at, n)| (at, n, "")),
    ];
    run(
        "Manifest::parse(mutated manifest)",
        20_000,
        proptest::collection::vec(edit, 1..5),
        |edits| {
            let mut text = MANIFEST.as_bytes().to_vec();
            for (at, remove, insert) in edits {
                let at = at.min(text.len());
                let end = (at + remove).min(text.len());
                text.splice(at..end, insert.bytes());
            }
            let _ = Manifest::parse(&String::from_utf8_lossy(&text), Path::new("m"));
        },
    );
    for cut in 0..=MANIFEST.len() {
        let _ = Manifest::parse(&MANIFEST[..cut], Path::new("m"));
    }
}

/// Deeply nested arrays and inline tables would overflow the stack of a recursive parser.
#[test]
fn manifest_parse_refuses_deep_nesting_without_overflowing_the_stack() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let text = format!(
            "format = 1\nprogram = \"p\"\nx = {}1{}\n",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        assert!(Manifest::parse(&text, Path::new("m")).is_err());
    }
}

/// A manifest written by `to_toml` reads back the same, for any slots and field values.
#[test]
fn manifest_round_trips_for_arbitrary_contents() {
    use fatbin_layout::identify::GlibcVersion;
    use fatbin_layout::{Arch, SlotInfo, SlotName};
    let slot_names: Vec<SlotName> = [
        "x86_64",
        "x86_64-v2",
        "x86_64-v3",
        "x86_64-v4",
        "aarch64",
        "riscv64",
        "armv7",
        "i686",
        "ppc64le",
        "s390x",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let info = (
        ".*",
        proptest::option::of((0u16..100, 0u16..100)),
        proptest::option::of(".*"),
        proptest::collection::vec("[a-z0-9.]{1,12}", 0..6),
        any::<u64>(),
        "[0-9a-f]{64}",
        proptest::option::of(".*"),
        proptest::option::of(".*"),
    );
    let slots = proptest::collection::btree_map(
        proptest::sample::select(slot_names),
        (info, 0..4usize),
        0..10,
    );
    run(
        "Manifest round trip",
        2_000,
        ("[a-z][a-z0-9_.+-]{0,30}", slots),
        |(program, slots)| {
            let mut m = Manifest::new(&program);
            for (slot, ((target, glibc, cpu, features, size, sha256, krate, version), libc)) in
                slots
            {
                let arch: Arch = slot.arch;
                m.slots.insert(
                    slot,
                    SlotInfo {
                        target,
                        arch,
                        bits: arch.bits(),
                        endian: arch.endian(),
                        libc: [
                            fatbin_layout::Libc::Static,
                            fatbin_layout::Libc::Musl,
                            fatbin_layout::Libc::Glibc,
                            fatbin_layout::Libc::Other,
                        ][libc]
                            .clone(),
                        glibc: glibc.map(|(major, minor)| GlibcVersion { major, minor }),
                        cpu,
                        features,
                        // With a content file and without (written before content files).
                        file: (size % 2 == 0)
                            .then(|| fatbin_layout::manifest::content_name(slot, &sha256)),
                        size,
                        sha256,
                        krate,
                        version,
                    },
                );
            }
            let text = m.to_toml();
            assert_eq!(Manifest::parse(&text, Path::new("m")).unwrap(), m, "{text}");
        },
    );
}
