//! Regression test for an unbounded allocation found while hardening the identifier:
//! `object`'s `ReadCache` keeps every distinct range it reads, so a small file whose program
//! headers point thousands of times at large overlapping note segments made it hold gigabytes
//! (4000 segments x 1 MiB here: ~4 GiB from a 1.3 MB file). Identification now stops at
//! `READ_BUDGET` bytes read.
//!
//! Its own test binary, so that the peak memory it measures is this test's alone.

use fatbin_layout::identify::{Identity, READ_BUDGET};
use fatbin_layout::{identify_bytes, identify_path};

const SEGMENTS: usize = 4000;
const NOTE_DESC: usize = 1 << 20;

/// A 64-bit x86_64 ELF with `SEGMENTS` PT_NOTE headers. Segment i starts 8*i bytes into a run
/// of (namesz = 0, descsz = NOTE_DESC) words, so each holds one valid note of 1 MiB and
/// no two segments are the same range.
fn many_overlapping_note_segments() -> Vec<u8> {
    let phoff = 64usize;
    let data_start = phoff + SEGMENTS * 56;
    let mut f = vec![0u8; data_start + SEGMENTS * 8 + NOTE_DESC + 16];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // ELFCLASS64
    f[5] = 1; // little-endian
    f[6] = 1; // EV_CURRENT
    let put16 = |f: &mut [u8], at: usize, v: u16| f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |f: &mut [u8], at: usize, v: u32| f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |f: &mut [u8], at: usize, v: u64| f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put16(&mut f, 16, 2); // ET_EXEC
    put16(&mut f, 18, 62); // EM_X86_64
    put32(&mut f, 20, 1);
    put64(&mut f, 32, phoff as u64);
    put16(&mut f, 52, 64);
    put16(&mut f, 54, 56);
    put16(&mut f, 56, SEGMENTS as u16);
    put16(&mut f, 58, 64);
    for i in 0..SEGMENTS {
        let ph = phoff + i * 56;
        put32(&mut f, ph, 4); // PT_NOTE
        put32(&mut f, ph + 4, 4);
        put64(&mut f, ph + 8, (data_start + i * 8) as u64);
        put64(&mut f, ph + 32, (12 + NOTE_DESC) as u64);
        put64(&mut f, ph + 40, (12 + NOTE_DESC) as u64);
        put64(&mut f, ph + 48, 4);
        put32(&mut f, data_start + i * 8 + 4, NOTE_DESC as u32);
    }
    f
}

fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn hostile_note_segments_do_not_grow_the_read_cache_without_bound() {
    let data = many_overlapping_note_segments();
    // In memory nothing is copied: the file is a valid (odd) ELF.
    assert!(matches!(identify_bytes(&data), Identity::Elf(_)));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile");
    std::fs::write(&path, &data).unwrap();
    let before = peak_rss_bytes();
    let identity = identify_path(&path).unwrap();
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(
        grown < 512 << 20,
        "identifying a {} byte file grew the peak RSS by {grown} bytes",
        data.len()
    );
    eprintln!(
        "identify_path on {} bytes: peak RSS grew by {} MiB (budget {} MiB)",
        data.len(),
        grown >> 20,
        READ_BUDGET >> 20
    );
    // Past the budget the file is refused as malformed rather than read on.
    assert!(
        matches!(&identity, Identity::NotExecutable { what } if what.contains("malformed")),
        "{identity}"
    );
}
