//! The C-library facts slot choice needs, read from files without running them.
//!
//! A slot linked against glibc runs on a node only when two things hold there: the program
//! interpreter its ELF file names (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) exists,
//! and the glibc that interpreter belongs to is at least as new as the highest `GLIBC_x.y`
//! symbol version the slot needs (recorded in the manifest at install). Both answers come from
//! bytes: the slot's program headers, and the interpreter file's own banner
//! (`ld.so (Debian GLIBC 2.36-9) stable release version 2.36.`, which glibc puts in `ld.so`
//! for `ld.so --version`; `ld.so` and `libc.so.6` always come from one glibc build). Nothing
//! is executed, so asking costs no fork and cannot be fooled by what a program prints.
//!
//! The readers here are pure functions over byte slices, without std, so that both launchers
//! (and their tests) share one reading; the callers do the I/O.

use crate::arch::Endian;

/// How many bytes of an ELF file hold the header fields [`program_headers`] reads (the
/// 64-bit header's size; a 32-bit header is shorter).
pub const ELF_HEADER_LEN: usize = 64;

/// The most program headers looked at: real binaries have about a dozen.
pub const MAX_PROGRAM_HEADERS: u16 = 256;

/// `PT_INTERP`: the segment naming the program interpreter.
const PT_INTERP: u32 = 3;

/// Where an ELF file's program-header table is, and how to read its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramHeaders {
    pub bits: u8,
    pub endian: Endian,
    /// File offset of the table.
    pub offset: u64,
    /// Bytes per entry (at least the size of the entry the class defines).
    pub entry_size: u16,
    /// Number of entries.
    pub count: u16,
}

impl ProgramHeaders {
    /// The table's length in bytes.
    pub fn len(&self) -> u64 {
        u64::from(self.entry_size) * u64::from(self.count)
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Why the program interpreter of an ELF file cannot be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterpProblem {
    /// Not an ELF file, or an ELF header of unknown class or byte order.
    NotElf,
    /// The program-header table is of an impossible shape (entries too small, too many).
    BadProgramHeaders,
    /// `PT_INTERP` is empty, too long, or not a path.
    BadInterpreter,
}

fn u16_at(b: &[u8], at: usize, e: Endian) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u16::from_le_bytes(bytes),
        Endian::Big => u16::from_be_bytes(bytes),
    })
}

fn u32_at(b: &[u8], at: usize, e: Endian) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u32::from_le_bytes(bytes),
        Endian::Big => u32::from_be_bytes(bytes),
    })
}

fn u64_at(b: &[u8], at: usize, e: Endian) -> Option<u64> {
    let bytes: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(match e {
        Endian::Little => u64::from_le_bytes(bytes),
        Endian::Big => u64::from_be_bytes(bytes),
    })
}

/// The program-header table of the ELF file whose first bytes are `header` (at least
/// [`ELF_HEADER_LEN`] of them, or the whole file when it is shorter).
pub fn program_headers(header: &[u8]) -> Result<ProgramHeaders, InterpProblem> {
    if header.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(InterpProblem::NotElf);
    }
    let endian = match header.get(5) {
        Some(1) => Endian::Little,
        Some(2) => Endian::Big,
        _ => return Err(InterpProblem::NotElf),
    };
    // e_phoff, e_phentsize, e_phnum and the smallest entry that holds p_offset and p_filesz.
    let (bits, offset, entry_size, count, min_entry) = match header.get(4) {
        Some(1) => (
            32,
            u32_at(header, 28, endian).map(u64::from),
            u16_at(header, 42, endian),
            u16_at(header, 44, endian),
            32,
        ),
        Some(2) => (
            64,
            u64_at(header, 32, endian),
            u16_at(header, 54, endian),
            u16_at(header, 56, endian),
            56,
        ),
        _ => return Err(InterpProblem::NotElf),
    };
    let (Some(offset), Some(entry_size), Some(count)) = (offset, entry_size, count) else {
        return Err(InterpProblem::NotElf);
    };
    if (count > 0 && entry_size < min_entry) || count > MAX_PROGRAM_HEADERS {
        return Err(InterpProblem::BadProgramHeaders);
    }
    Ok(ProgramHeaders {
        bits,
        endian,
        offset,
        entry_size,
        count,
    })
}

/// Where `PT_INTERP`'s path is in the file: `(offset, length)`, or `None` when the file has
/// no interpreter (a static binary). `table` is the program-header table `headers` describes.
pub fn interpreter_at(
    headers: &ProgramHeaders,
    table: &[u8],
) -> Result<Option<(u64, u64)>, InterpProblem> {
    let e = headers.endian;
    for i in 0..usize::from(headers.count) {
        let at = i * usize::from(headers.entry_size);
        let p_type = u32_at(table, at, e).ok_or(InterpProblem::BadProgramHeaders)?;
        if p_type != PT_INTERP {
            continue;
        }
        let (offset, size) = if headers.bits == 32 {
            (
                u32_at(table, at + 4, e).map(u64::from),
                u32_at(table, at + 16, e).map(u64::from),
            )
        } else {
            (u64_at(table, at + 8, e), u64_at(table, at + 32, e))
        };
        let (Some(offset), Some(size)) = (offset, size) else {
            return Err(InterpProblem::BadProgramHeaders);
        };
        // The kernel refuses interpreters longer than a page (PATH_MAX); so do we.
        if size == 0 || size > 4096 {
            return Err(InterpProblem::BadInterpreter);
        }
        return Ok(Some((offset, size)));
    }
    Ok(None)
}

/// The interpreter path in `PT_INTERP`'s bytes (up to its NUL), when it is an absolute path.
pub fn interpreter_path(bytes: &[u8]) -> Result<&[u8], InterpProblem> {
    let path = bytes.split(|&b| b == 0).next().unwrap_or(bytes);
    if path.first() != Some(&b'/') {
        return Err(InterpProblem::BadInterpreter);
    }
    Ok(path)
}

/// The glibc version `(major, minor)` in a glibc file's banner (`... release version
/// 2.36.`), or `None` when `data` holds none (not glibc's: musl's loader, anything else). A
/// third part (`2.39.9000`, a development snapshot) does not matter for symbol versions.
pub fn glibc_banner_version(data: &[u8]) -> Option<(u16, u16)> {
    const MARK: &[u8] = b"release version ";
    let mut rest = data;
    // The mark may also appear in text that is not the banner; take the first one followed
    // by a version.
    while let Some(at) = rest.windows(MARK.len()).position(|w| w == MARK) {
        rest = &rest[at + MARK.len()..];
        if let Some(version) = leading_version(rest) {
            return Some(version);
        }
    }
    None
}

/// `MAJOR.MINOR` at the start of `text`.
fn leading_version(text: &[u8]) -> Option<(u16, u16)> {
    let number = |t: &[u8]| -> Option<(u16, usize)> {
        let digits = t.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 4 {
            return None;
        }
        let value = t[..digits]
            .iter()
            .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
        Some((value, digits))
    };
    let (major, n) = number(text)?;
    if text.get(n) != Some(&b'.') {
        return None;
    }
    let (minor, _) = number(&text[n + 1..])?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF file of `bits` and `endian` with program headers of `types`; the
    /// `PT_INTERP` one (if any) points at `interp`, placed after the table.
    fn elf(bits: u8, endian: Endian, types: &[u32], interp: &[u8]) -> std::vec::Vec<u8> {
        let put16 = |v: u16| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let put32 = |v: u32| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let put64 = |v: u64| match endian {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let (ehsize, phent) = if bits == 32 { (52, 32) } else { (64, 56) };
        let mut f = std::vec![0u8; ehsize];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = if bits == 32 { 1 } else { 2 };
        f[5] = if endian == Endian::Little { 1 } else { 2 };
        let interp_at = (ehsize + phent * types.len()) as u64;
        if bits == 32 {
            f[28..32].copy_from_slice(&put32(ehsize as u32));
            f[42..44].copy_from_slice(&put16(phent as u16));
            f[44..46].copy_from_slice(&put16(types.len() as u16));
        } else {
            f[32..40].copy_from_slice(&put64(ehsize as u64));
            f[54..56].copy_from_slice(&put16(phent as u16));
            f[56..58].copy_from_slice(&put16(types.len() as u16));
        }
        for &t in types {
            let mut ph = std::vec![0u8; phent];
            ph[..4].copy_from_slice(&put32(t));
            if bits == 32 {
                ph[4..8].copy_from_slice(&put32(interp_at as u32));
                ph[16..20].copy_from_slice(&put32(interp.len() as u32));
            } else {
                ph[8..16].copy_from_slice(&put64(interp_at));
                ph[32..40].copy_from_slice(&put64(interp.len() as u64));
            }
            f.extend_from_slice(&ph);
        }
        f.extend_from_slice(interp);
        f
    }

    fn interp_of(file: &[u8]) -> Result<Option<&[u8]>, InterpProblem> {
        let headers = program_headers(file)?;
        let start = headers.offset as usize;
        let table = &file[start..start + headers.len() as usize];
        Ok(match interpreter_at(&headers, table)? {
            None => None,
            Some((at, len)) => Some(interpreter_path(&file[at as usize..(at + len) as usize])?),
        })
    }

    #[test]
    fn the_interpreter_is_found_in_every_class_and_byte_order() {
        for bits in [32, 64] {
            for endian in [Endian::Little, Endian::Big] {
                let file = elf(bits, endian, &[6, 3, 1], b"/lib/ld-linux.so.2\0");
                assert_eq!(
                    interp_of(&file),
                    Ok(Some(b"/lib/ld-linux.so.2".as_slice())),
                    "{bits} {endian:?}"
                );
                let file = elf(bits, endian, &[1, 1, 4], b"");
                assert_eq!(interp_of(&file), Ok(None), "{bits} {endian:?}");
            }
        }
    }

    #[test]
    fn a_real_dynamic_binary_names_its_interpreter() {
        // This test binary is linked the host's usual way; when it is dynamic, its
        // interpreter is a file that exists.
        let me = std::fs::read("/proc/self/exe").unwrap();
        if let Some(path) = interp_of(&me).unwrap() {
            let path = std::str::from_utf8(path).unwrap();
            assert!(std::path::Path::new(path).exists(), "{path}");
        }
    }

    /// The limits themselves are allowed: up to [`MAX_PROGRAM_HEADERS`] entries, an
    /// interpreter entry of 1 to 4096 bytes, and entries of any size when there are none.
    #[test]
    fn the_limits_are_inclusive() {
        let mut file = elf(64, Endian::Little, &[], b"");
        file[54] = 0; // no entries: their size does not matter
        assert!(program_headers(&file).unwrap().is_empty());
        assert!(!program_headers(&elf(64, Endian::Little, &[3], b"/l\0"))
            .unwrap()
            .is_empty());
        let count = |file: &mut [u8], n: u16| file[56..58].copy_from_slice(&n.to_le_bytes());
        let mut file = elf(64, Endian::Little, &[3], b"/l\0");
        count(&mut file, MAX_PROGRAM_HEADERS);
        assert_eq!(program_headers(&file).unwrap().count, MAX_PROGRAM_HEADERS);
        count(&mut file, MAX_PROGRAM_HEADERS + 1);
        assert_eq!(
            program_headers(&file),
            Err(InterpProblem::BadProgramHeaders)
        );
        let interp_len = |len: u64| {
            let mut file = elf(64, Endian::Little, &[3], b"/l\0");
            file[64 + 32..64 + 40].copy_from_slice(&len.to_le_bytes());
            let headers = program_headers(&file).unwrap();
            interpreter_at(&headers, &file[64..64 + 56]).map(|at| at.map(|(_, n)| n))
        };
        assert_eq!(interp_len(4096), Ok(Some(4096)));
        assert_eq!(interp_len(1), Ok(Some(1)));
        assert_eq!(interp_len(4097), Err(InterpProblem::BadInterpreter));
        assert_eq!(interp_len(0), Err(InterpProblem::BadInterpreter));
    }

    #[test]
    fn malformed_headers_are_problems_not_answers() {
        assert_eq!(program_headers(b"#!/bin/sh\n"), Err(InterpProblem::NotElf));
        let mut file = elf(64, Endian::Little, &[3], b"/lib/ld.so\0");
        file[54] = 8; // entries too small to hold p_offset and p_filesz
        assert_eq!(
            program_headers(&file),
            Err(InterpProblem::BadProgramHeaders)
        );
        let file = elf(64, Endian::Little, &[3], b"relative/ld.so\0");
        assert_eq!(interp_of(&file), Err(InterpProblem::BadInterpreter));
        let file = elf(32, Endian::Little, &[3], b"");
        assert_eq!(interp_of(&file), Err(InterpProblem::BadInterpreter));
    }

    #[test]
    fn the_banner_gives_the_version() {
        let v = glibc_banner_version;
        assert_eq!(
            v(b"\0ld.so (Debian GLIBC 2.36-9) stable release version 2.36.\n"),
            Some((2, 36))
        );
        assert_eq!(v(b"release version 2.4"), Some((2, 4)));
        assert_eq!(v(b"release version 2.39.9000."), Some((2, 39)));
        assert_eq!(
            v(b"release version x; release version 2.17."),
            Some((2, 17))
        );
        assert_eq!(v(b"no banner"), None);
        assert_eq!(v(b"release version 2"), None);
        assert_eq!(v(b"release version 99999.1"), None);
        assert_eq!(v(b"release version 1000.9999"), Some((1000, 9999)));
    }

    #[test]
    fn the_hosts_loader_has_a_banner_when_it_is_glibc() {
        for loader in ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"] {
            if let Ok(data) = std::fs::read(loader) {
                let (major, minor) = glibc_banner_version(&data).expect(loader);
                assert!(major == 2 && minor >= 17, "{loader}: {major}.{minor}");
            }
        }
    }
}
