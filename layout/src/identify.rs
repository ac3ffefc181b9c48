//! Binary identification: what a file is (ELF, Mach-O thin or fat, PE, script, or nothing we
//! run), read from its own headers.
//!
//! Everything here reads untrusted bytes. It goes through `object`, whose readers check every
//! offset and count against the file's length, so a header claiming a billion program headers
//! is an error, not an allocation. Two more limits close what `object` leaves open:
//! - files are read through a [`ReadCache`] that keeps every distinct range it read, so a file
//!   whose headers point many times at large overlapping ranges could make it hold many times
//!   the file's size; [`BudgetedFile`] caps the bytes read in total at [`READ_BUDGET`];
//! - note and version-need lists are walked with a step limit ([`MAX_ENTRIES`]), because their
//!   "next" fields can make a small file describe billions of entries.

use std::cell::Cell;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::Path;

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::read::macho::{FatArch, MachHeader};
use object::read::ReadCache;
use object::{Endianness, FileKind, ReadRef};

use crate::arch::{Arch, Endian};
use crate::error::{Error, Result};

/// What a file is, as far as running it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    Elf(ElfInfo),
    /// A Mach-O file: one slice when thin, one per architecture when fat (universal).
    MachO {
        fat: bool,
        slices: Vec<MachOSlice>,
    },
    /// A Windows PE image.
    Pe {
        machine: String,
        bits: u8,
    },
    /// A `#!` script and its interpreter line.
    Script {
        interpreter: String,
    },
    /// Anything else; the string says what, when we can tell.
    NotExecutable {
        what: String,
    },
}

/// The facts of an ELF file that decide where it can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// The architecture, when it is one the layout has slots for.
    pub arch: Option<Arch>,
    /// Raw `e_machine`, for architectures the layout does not name.
    pub machine: u16,
    /// Raw `e_flags`: the ABI variant within a machine (Arm's float ABI, ppc64's ELFv1/v2).
    pub flags: u32,
    pub bits: u8,
    pub endian: Endian,
    /// `EI_OSABI` (0 = System V, 3 = GNU/Linux).
    pub os_abi: u8,
    pub kind: ElfKind,
    pub libc: Libc,
    /// The `PT_INTERP` path, if the binary is dynamically linked.
    pub interpreter: Option<String>,
    /// The highest `GLIBC_x.y` symbol version the binary needs, for glibc binaries.
    pub glibc: Option<GlibcVersion>,
    /// The x86 ISA level from `GNU_PROPERTY_X86_ISA_1_NEEDED` (2 = x86-64-v2 ...), when the
    /// linker recorded one.
    pub x86_isa_needed: Option<u8>,
}

/// The ELF file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    Executable,
    /// Position-independent: a PIE executable or a shared library.
    SharedObject,
    Relocatable,
    Core,
    Other(u16),
}

/// Which C library, if any, a binary needs at run time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Libc {
    /// No interpreter: runs on any kernel of its architecture.
    Static,
    Musl,
    Glibc,
    /// Dynamically linked against something else (the interpreter path says what).
    Other,
}

impl fmt::Display for Libc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Libc::Static => "static",
            Libc::Musl => "musl",
            Libc::Glibc => "glibc",
            Libc::Other => "other",
        })
    }
}

/// A glibc symbol version such as `GLIBC_2.34`, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GlibcVersion {
    pub major: u16,
    pub minor: u16,
}

impl GlibcVersion {
    /// Parses `GLIBC_2.34` (and `GLIBC_2.2.5`, whose third part does not matter here).
    pub fn from_symbol_version(name: &[u8]) -> Option<GlibcVersion> {
        let rest = name.strip_prefix(b"GLIBC_")?;
        let rest = std::str::from_utf8(rest).ok()?;
        let mut parts = rest.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().unwrap_or("0").parse().ok()?;
        Some(GlibcVersion { major, minor })
    }
}

impl fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for GlibcVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        match (major.parse(), minor.parse()) {
            (Ok(major), Ok(minor)) => Ok(GlibcVersion { major, minor }),
            _ => Err(format!("`{s}` is not a glibc version like 2.34")),
        }
    }
}

/// One architecture slice of a Mach-O file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachOSlice {
    /// `x86_64`, `arm64`, `i386`, ... or `cputype N` for ones we do not name.
    pub arch: String,
    pub offset: u64,
    pub size: u64,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Elf(info) => info.fmt(f),
            Identity::MachO { fat, slices } => {
                let archs: Vec<_> = slices.iter().map(|s| s.arch.as_str()).collect();
                let kind = if *fat { "Mach-O universal" } else { "Mach-O" };
                write!(f, "{kind} ({})", archs.join(", "))
            }
            Identity::Pe { machine, bits } => write!(f, "PE{bits} {machine}"),
            Identity::Script { interpreter } => write!(f, "script for {interpreter}"),
            Identity::NotExecutable { what } => write!(f, "not an executable ({what})"),
        }
    }
}

impl fmt::Display for ElfInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.arch {
            Some(arch) => write!(f, "ELF {arch}")?,
            None if self.machine == Arch::Armv7.elf_machine() && is_arm_soft_float(self.flags) => {
                write!(f, "ELF32 ARM soft-float (armv7's slot is hard-float)")?
            }
            None => match crate::arch::machine_name(self.machine, self.bits, self.endian) {
                // A processor fatbin has no slot for is still named, not numbered.
                Some(name) => write!(f, "ELF{} {name} (machine {})", self.bits, self.machine)?,
                None => write!(f, "ELF{} machine {}", self.bits, self.machine)?,
            },
        }
        let linkage = match (&self.libc, self.glibc) {
            (Libc::Glibc, Some(v)) => format!("glibc >= {v}"),
            (libc, _) => libc.to_string(),
        };
        write!(f, ", {linkage}")?;
        if let Some(level) = self.x86_isa_needed {
            write!(f, ", needs x86-64-v{level}")?;
        }
        Ok(())
    }
}

/// The most bytes identifying one file may read (and so keep in memory). Real headers,
/// version needs and notes are a few kilobytes; only a hostile file gets near this.
pub const READ_BUDGET: u64 = 64 << 20;

/// The most notes, GNU properties and version-need entries looked at in one file. Real
/// binaries have a handful of notes and a few dozen version needs.
pub const MAX_ENTRIES: usize = 4096;

/// Identifies the file at `path` from its headers.
///
/// Only regular files are read: a directory, FIFO or device is [`Identity::NotExecutable`]
/// (opening is non-blocking, so a FIFO cannot hang the caller).
pub fn identify_path(path: &Path) -> Result<Identity> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(Error::io(path))?;
    let kind = file.metadata().map_err(Error::io(path))?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Ok(Identity::NotExecutable { what: what.into() });
    }
    identify_file(file).map_err(Error::io(path))
}

/// Identifies an open file. I/O errors are returned; malformed contents are an
/// [`Identity::NotExecutable`] that says what is wrong.
pub fn identify_file(mut file: File) -> std::io::Result<Identity> {
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic)?;
    if n == 2 && magic == *b"#!" {
        return Ok(script_identity(&mut file));
    }
    let budgeted = BudgetedFile {
        cache: ReadCache::new(file),
        left: Cell::new(READ_BUDGET),
    };
    Ok(identify_data(&budgeted))
}

/// A file read through `object`'s [`ReadCache`] with a cap on the bytes read in total.
#[derive(Debug)]
struct BudgetedFile {
    cache: ReadCache<File>,
    left: Cell<u64>,
}

impl BudgetedFile {
    fn spend(&self, bytes: u64) -> Result<(), ()> {
        let left = self.left.get().checked_sub(bytes).ok_or(())?;
        self.left.set(left);
        Ok(())
    }
}

impl<'a> ReadRef<'a> for &'a BudgetedFile {
    fn len(self) -> Result<u64, ()> {
        self.cache.len()
    }

    fn read_bytes_at(self, offset: u64, size: u64) -> Result<&'a [u8], ()> {
        // Checked before spending, so a read past the end does not eat the budget.
        let end = offset.checked_add(size).ok_or(())?;
        if end > self.len()? {
            return Err(());
        }
        self.spend(size)?;
        self.cache.read_bytes_at(offset, size)
    }

    fn read_bytes_at_until(self, range: Range<u64>, delimiter: u8) -> Result<&'a [u8], ()> {
        // ReadCache reads at most 4096 bytes looking for the delimiter.
        self.spend((range.end.saturating_sub(range.start)).min(4096))?;
        self.cache.read_bytes_at_until(range, delimiter)
    }
}

/// Counts entries walked in lists whose length the file controls.
#[derive(Debug, Default)]
struct Steps(usize);

impl Steps {
    fn take(&mut self, what: &str) -> Parsed<()> {
        self.0 += 1;
        if self.0 > MAX_ENTRIES {
            return Err(Malformed(format!("more than {MAX_ENTRIES} {what}")));
        }
        Ok(())
    }
}

/// Identifies an in-memory image (used by tests and the fuzzer).
pub fn identify_bytes(data: &[u8]) -> Identity {
    if let Some(rest) = data.strip_prefix(b"#!") {
        let line = rest.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = &line[..line.len().min(256)];
        return Identity::Script {
            interpreter: String::from_utf8_lossy(line).trim().to_owned(),
        };
    }
    identify_data(data)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn script_identity(file: &mut File) -> Identity {
    // The kernel reads at most 256 bytes of a `#!` line (BINPRM_BUF_SIZE); so do we.
    let mut line = [0u8; 256];
    let n = read_up_to(file, &mut line).unwrap_or(0);
    let line = line[..n].split(|&b| b == b'\n').next().unwrap_or(&[]);
    Identity::Script {
        interpreter: String::from_utf8_lossy(line).trim().to_owned(),
    }
}

/// Why a file that looked like an executable format could not be read as one.
#[derive(Debug)]
struct Malformed(String);

impl From<object::Error> for Malformed {
    fn from(e: object::Error) -> Self {
        Malformed(e.to_string())
    }
}

impl From<&str> for Malformed {
    fn from(e: &str) -> Self {
        Malformed(e.to_owned())
    }
}

type Parsed<T> = Result<T, Malformed>;

fn identify_data<'data, R: ReadRef<'data>>(data: R) -> Identity {
    let not = |what: &str| Identity::NotExecutable { what: what.into() };
    let kind = match FileKind::parse(data) {
        Ok(kind) => kind,
        Err(_) => return not("unrecognised format"),
    };
    let result = match kind {
        FileKind::Elf32 => elf_identity::<elf::FileHeader32<Endianness>, R>(data),
        FileKind::Elf64 => elf_identity::<elf::FileHeader64<Endianness>, R>(data),
        FileKind::MachO32 => macho_thin::<object::macho::MachHeader32<Endianness>, R>(data),
        FileKind::MachO64 => macho_thin::<object::macho::MachHeader64<Endianness>, R>(data),
        FileKind::MachOFat32 => macho_fat::<object::macho::FatArch32, R>(data),
        FileKind::MachOFat64 => macho_fat::<object::macho::FatArch64, R>(data),
        FileKind::Pe32 | FileKind::Pe64 => pe_identity(data),
        FileKind::Coff | FileKind::CoffBig | FileKind::CoffImport => return not("COFF object"),
        _ => return not("object format fatbin does not run"),
    };
    result.unwrap_or_else(|e| not(&format!("malformed: {}", e.0)))
}

fn elf_identity<'data, H, R>(data: R) -> Parsed<Identity>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let header = H::parse(data)?;
    let endian = header.endian()?;
    let bits = if header.is_class_64() { 64 } else { 32 };
    let our_endian = match endian {
        Endianness::Little => Endian::Little,
        Endianness::Big => Endian::Big,
    };
    let machine = header.e_machine(endian);
    let kind = match header.e_type(endian) {
        elf::ET_EXEC => ElfKind::Executable,
        elf::ET_DYN => ElfKind::SharedObject,
        elf::ET_REL => ElfKind::Relocatable,
        elf::ET_CORE => ElfKind::Core,
        other => ElfKind::Other(other),
    };

    let mut interpreter = None;
    let mut x86_isa_needed = None;
    let mut steps = Steps::default();
    for segment in header.program_headers(endian, data)? {
        match segment.p_type(endian) {
            elf::PT_INTERP => {
                let bytes = segment
                    .data(endian, data)
                    .map_err(|_| "PT_INTERP points outside the file")?;
                let path = bytes.split(|&b| b == 0).next().unwrap_or(bytes);
                // The kernel refuses interpreters longer than PATH_MAX; so do we keep less.
                let path = &path[..path.len().min(libc::PATH_MAX as usize)];
                interpreter = Some(String::from_utf8_lossy(path).into_owned());
            }
            elf::PT_NOTE | elf::PT_GNU_PROPERTY => {
                if let Some(level) = x86_isa_level(header, endian, data, segment, &mut steps)? {
                    x86_isa_needed = Some(x86_isa_needed.map_or(level, |l: u8| l.max(level)));
                }
            }
            _ => {}
        }
    }

    let libc = match interpreter.as_deref() {
        None => Libc::Static,
        Some(p) if p.contains("ld-musl") => Libc::Musl,
        Some(p) if p.contains("ld-linux") || p.contains("ld64.so") || p.contains("ld.so") => {
            Libc::Glibc
        }
        Some(_) => Libc::Other,
    };
    let glibc = highest_glibc_version(header, endian, data).unwrap_or(None);

    let flags = header.e_flags(endian);
    let mut arch = Arch::from_elf(machine, bits, our_endian);
    if arch == Some(Arch::Armv7) && is_arm_soft_float(flags) {
        // The armv7 slot is hard-float (gnueabihf): a soft-float binary passes floats in
        // integer registers, so it cannot share the slot's libraries and has no slot.
        arch = None;
    }
    if arch == Some(Arch::Armv7) {
        // The header is the same for ARMv6 and ARMv7 code: the build attributes the
        // compiler records say which (no section, or no tag: armv7, as before armv6 had a
        // slot).
        let cpu_arch = arm_attributes(header, endian, data)
            .and_then(|section| arm_cpu_arch(section, our_endian == Endian::Big));
        if cpu_arch.is_some_and(|v| v < ARM_CPU_ARCH_V7) {
            arch = Some(Arch::Armv6);
        }
    }
    Ok(Identity::Elf(ElfInfo {
        arch,
        machine,
        flags,
        bits,
        endian: our_endian,
        os_abi: header.e_ident().os_abi,
        kind,
        libc,
        interpreter,
        glibc,
        x86_isa_needed,
    }))
}

/// `Tag_CPU_arch` of ARMv7 code: lower values are ARMv6 and older (4: v5TE .. 6: v6, 7:
/// v6KZ, 8: v6T2, 9: v6K), higher ones ARMv7 variants and ARMv8 in AArch32 (14).
const ARM_CPU_ARCH_V7: u64 = 10;

/// The `.ARM.attributes` section of an Arm ELF file, when it has a small one.
fn arm_attributes<'data, H, R>(header: &H, endian: Endianness, data: R) -> Option<&'data [u8]>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let sections = header.sections(endian, data).ok()?;
    let (_, section) = sections.section_by_name(endian, b".ARM.attributes")?;
    let size: u64 = section.sh_size(endian).into();
    if size > 64 << 10 {
        return None;
    }
    section.data(endian, data).ok()
}

/// `Tag_CPU_arch` from an `.ARM.attributes` section: the `aeabi` vendor's file-wide
/// attributes, as the "Addenda to, and Errata in, the ABI for the Arm Architecture"
/// (ARM IHI 0045) lays them out. `None` when the section is malformed or has no such tag.
pub fn arm_cpu_arch(section: &[u8], big: bool) -> Option<u64> {
    let word = |b: &[u8]| -> Option<usize> {
        let b: [u8; 4] = b.get(..4)?.try_into().ok()?;
        let v = if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        };
        usize::try_from(v).ok()
    };
    // Format version 'A', then subsections: length, vendor name, its data.
    let mut rest = section.strip_prefix(b"A")?;
    while !rest.is_empty() {
        let len = word(rest)?;
        let subsection = rest.get(4..len)?;
        rest = &rest[len..];
        let nul = subsection.iter().position(|&b| b == 0)?;
        if &subsection[..nul] != b"aeabi" {
            continue;
        }
        // Sub-subsections: a scope tag (1: the whole file), a length, attributes.
        let mut scopes = &subsection[nul + 1..];
        while !scopes.is_empty() {
            let size = word(scopes.get(1..)?)?;
            let body = scopes.get(5..size)?;
            let scope = scopes[0];
            scopes = &scopes[size..];
            if scope != 1 {
                continue;
            }
            let mut attrs = body;
            while !attrs.is_empty() {
                match uleb128(&mut attrs)? {
                    6 => return uleb128(&mut attrs),
                    // Tag_CPU_raw_name, Tag_CPU_name, Tag_conformance: strings.
                    4 | 5 | 67 => skip_c_string(&mut attrs)?,
                    // Tag_compatibility: a number and a string.
                    32 => {
                        uleb128(&mut attrs)?;
                        skip_c_string(&mut attrs)?;
                    }
                    // Above 32, odd tags hold strings and even ones numbers.
                    tag if tag > 32 && tag % 2 == 1 => skip_c_string(&mut attrs)?,
                    _ => {
                        uleb128(&mut attrs)?;
                    }
                }
            }
        }
    }
    None
}

/// Reads an unsigned LEB128 number (at most 64 bits) off the front of `bytes`.
fn uleb128(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

/// Drops a NUL-terminated string off the front of `bytes`.
fn skip_c_string(bytes: &mut &[u8]) -> Option<()> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    *bytes = &bytes[nul + 1..];
    Some(())
}

/// Whether Arm `e_flags` say the soft-float ABI (`EF_ARM_ABI_FLOAT_SOFT`, EABI5), which
/// the hard-float armv7 slot's binaries do not use.
pub fn is_arm_soft_float(flags: u32) -> bool {
    const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
    flags & EF_ARM_ABI_FLOAT_SOFT != 0
}

/// Reads the x86 ISA level a `PT_NOTE`/`PT_GNU_PROPERTY` segment declares as needed.
fn x86_isa_level<'data, H, R>(
    _header: &H,
    endian: Endianness,
    data: R,
    segment: &H::ProgramHeader,
    steps: &mut Steps,
) -> Parsed<Option<u8>>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let Some(mut notes) = segment.notes(endian, data)? else {
        return Ok(None);
    };
    let mut best = None;
    while let Some(note) = notes.next()? {
        steps.take("notes")?;
        let Some(mut properties) = note.gnu_properties(endian) else {
            continue;
        };
        while let Some(property) = properties.next()? {
            steps.take("notes")?;
            if property.pr_type() == elf::GNU_PROPERTY_X86_ISA_1_NEEDED {
                let bits = property.data_u32(endian)?;
                // Bit 0 = baseline, bit 1 = v2, bit 2 = v3, bit 3 = v4.
                let level = (0..4u8).rev().find(|b| bits & (1 << b) != 0).map(|b| b + 1);
                best = best.max(level);
            }
        }
    }
    Ok(best)
}

/// The highest `GLIBC_x.y` version named in the binary's version-needs section.
fn highest_glibc_version<'data, H, R>(
    header: &H,
    endian: Endianness,
    data: R,
) -> Parsed<Option<GlibcVersion>>
where
    H: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let sections = header.sections(endian, data)?;
    let Some((mut needs, link)) = sections.gnu_verneed(endian, data)? else {
        return Ok(None);
    };
    let strings = sections.strings(endian, data, link)?;
    let mut highest = None;
    let mut steps = Steps::default();
    while let Some((_need, mut auxes)) = needs.next()? {
        steps.take("version needs")?;
        while let Some(aux) = auxes.next()? {
            steps.take("version needs")?;
            if let Some(version) = GlibcVersion::from_symbol_version(aux.name(endian, strings)?) {
                highest = highest.max(Some(version));
            }
        }
    }
    Ok(highest)
}

fn macho_thin<'data, M, R>(data: R) -> Parsed<Identity>
where
    M: MachHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let header = M::parse(data, 0)?;
    let endian = header.endian()?;
    let size = data.len().map_err(|_| "cannot read the file length")?;
    Ok(Identity::MachO {
        fat: false,
        slices: vec![MachOSlice {
            arch: macho_arch_name(header.cputype(endian)),
            offset: 0,
            size,
        }],
    })
}

fn macho_fat<'data, F, R>(data: R) -> Parsed<Identity>
where
    F: FatArch,
    R: ReadRef<'data>,
{
    let fat = object::read::macho::MachOFatFile::<F>::parse(data)?;
    let slices = fat
        .arches()
        .iter()
        .map(|a| MachOSlice {
            arch: macho_arch_name(a.cputype()),
            offset: a.offset().into(),
            size: a.size().into(),
        })
        .collect();
    Ok(Identity::MachO { fat: true, slices })
}

fn macho_arch_name(cputype: u32) -> String {
    use object::macho;
    match cputype {
        macho::CPU_TYPE_X86_64 => "x86_64".into(),
        macho::CPU_TYPE_X86 => "i386".into(),
        macho::CPU_TYPE_ARM64 => "arm64".into(),
        macho::CPU_TYPE_ARM64_32 => "arm64_32".into(),
        macho::CPU_TYPE_ARM => "arm".into(),
        macho::CPU_TYPE_POWERPC => "ppc".into(),
        macho::CPU_TYPE_POWERPC64 => "ppc64".into(),
        other => format!("cputype {other}"),
    }
}

fn pe_identity<'data, R: ReadRef<'data>>(data: R) -> Parsed<Identity> {
    use object::Object;
    let file = object::File::parse(data)?;
    let bits = if file.is_64() { 64 } else { 32 };
    Ok(Identity::Pe {
        machine: format!("{:?}", file.architecture()).to_lowercase(),
        bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_symbol_versions_parse_and_compare_numerically() {
        let v = |s: &str| GlibcVersion::from_symbol_version(s.as_bytes());
        assert_eq!(
            v("GLIBC_2.34"),
            Some(GlibcVersion {
                major: 2,
                minor: 34
            })
        );
        assert_eq!(v("GLIBC_2.2.5"), Some(GlibcVersion { major: 2, minor: 2 }));
        assert_eq!(v("GLIBC_2"), Some(GlibcVersion { major: 2, minor: 0 }));
        for not in [
            "GLIBC_PRIVATE",
            "GLIBC_ABI_DT_RELR",
            "GCC_3.0",
            "GLIBC_2.x",
            "GLIBC_99999.1",
        ] {
            assert_eq!(v(not), None, "{not}");
        }
        assert!(v("GLIBC_2.34") > v("GLIBC_2.4"));
        assert_eq!("2.34".parse::<GlibcVersion>(), Ok(v("GLIBC_2.34").unwrap()));
        assert!("2.x".parse::<GlibcVersion>().is_err());
    }

    /// A bare ELF executable header (no program or section headers).
    fn elf_header(bits: u8, big: bool, machine: u16, flags: u32) -> Vec<u8> {
        let h2 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let h4 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut h = b"\x7fELF".to_vec();
        h.extend([if bits == 64 { 2 } else { 1 }, if big { 2 } else { 1 }, 1]);
        h.resize(16, 0);
        h.extend(h2(2)); // ET_EXEC
        h.extend(h2(machine));
        h.extend(h4(1));
        let word = if bits == 64 { 8 } else { 4 };
        h.resize(h.len() + 3 * word, 0); // entry, phoff, shoff
        h.extend(h4(flags));
        let (ehsize, phent, shent) = if bits == 64 {
            (64, 56, 64)
        } else {
            (52, 32, 40)
        };
        for half in [ehsize, phent, 0, shent, 0, 0] {
            h.extend(h2(half));
        }
        h
    }

    fn elf_of(bytes: &[u8]) -> ElfInfo {
        match identify_bytes(bytes) {
            Identity::Elf(info) => info,
            other => panic!("not read as ELF: {other}"),
        }
    }

    /// Hard-float Arm binaries fill the armv7 slot; soft-float ones have no slot and say why.
    #[test]
    fn arm_soft_float_has_no_slot() {
        let hard = elf_of(&elf_header(32, false, 40, 0x0500_0400));
        assert_eq!(hard.arch, Some(Arch::Armv7));
        let soft = elf_of(&elf_header(32, false, 40, 0x0500_0200));
        assert_eq!((soft.arch, soft.flags), (None, 0x0500_0200));
        assert!(
            soft.to_string().starts_with("ELF32 ARM soft-float"),
            "{soft}"
        );
    }

    /// An `.ARM.attributes` section as compilers write it: `aeabi`, file scope, the CPU's
    /// name, then `Tag_CPU_arch` among other tags.
    fn arm_attributes_section(cpu_name: &str, cpu_arch: u8) -> Vec<u8> {
        let mut attrs = vec![5];
        attrs.extend(cpu_name.as_bytes());
        attrs.push(0);
        // Tag_CPU_arch, Tag_CPU_arch_profile 'A', Tag_compatibility, Tag_ARM_ISA_use.
        attrs.extend([6, cpu_arch, 7, b'A', 32, 1, b'x', 0, 8, 1]);
        let mut file_scope = vec![1];
        file_scope.extend(u32::try_from(5 + attrs.len()).unwrap().to_le_bytes());
        file_scope.extend(attrs);
        let mut vendor = b"aeabi\0".to_vec();
        vendor.extend(file_scope);
        // Another vendor's subsection first: skipped.
        let mut section = b"A".to_vec();
        section.extend(10u32.to_le_bytes());
        section.extend(b"gnu\0\x01\x02");
        section.extend(u32::try_from(4 + vendor.len()).unwrap().to_le_bytes());
        section.extend(vendor);
        section
    }

    #[test]
    fn arm_attributes_tell_armv6_from_armv7() {
        let v6 = arm_attributes_section("ARM1176JZF-S", 7);
        assert_eq!(arm_cpu_arch(&v6, false), Some(7));
        let v7 = arm_attributes_section("7-A", 10);
        assert_eq!(arm_cpu_arch(&v7, false), Some(10));
        // Cut anywhere, it is malformed, never a wrong answer or a panic.
        for end in 0..v7.len() - 1 {
            assert_eq!(arm_cpu_arch(&v7[..end], false), None, "{end}");
        }
        assert_eq!(arm_cpu_arch(b"B", false), None);
        assert_eq!(arm_cpu_arch(b"A\xff\xff\xff\xff", false), None);
    }

    /// Processors with a slot are read as their slot; ones without are named, not numbered.
    #[test]
    fn machines_are_named_not_numbered() {
        for (bits, big, machine, arch) in [
            (64, true, 21, Arch::Ppc64),
            (32, true, 20, Arch::Ppc),
            (64, false, 8, Arch::Mips64el),
            (32, true, 8, Arch::Mips),
            (32, false, 8, Arch::Mipsel),
            (64, false, 258, Arch::Loongarch64),
            (64, true, 43, Arch::Sparc64),
        ] {
            assert_eq!(elf_of(&elf_header(bits, big, machine, 0)).arch, Some(arch));
        }
        let mips64be = elf_of(&elf_header(64, true, 8, 0));
        assert_eq!(mips64be.arch, None);
        assert!(
            mips64be
                .to_string()
                .starts_with("ELF64 MIPS64 big-endian (machine 8)"),
            "{mips64be}"
        );
        let odd = elf_of(&elf_header(64, false, 9999, 0));
        assert!(odd.to_string().starts_with("ELF64 machine 9999"), "{odd}");
    }

    #[test]
    fn scripts_report_their_interpreter_line() {
        assert_eq!(
            identify_bytes(b"#!/usr/bin/env python3\nprint()\n"),
            Identity::Script {
                interpreter: "/usr/bin/env python3".into()
            }
        );
        assert!(matches!(
            identify_bytes(b""),
            Identity::NotExecutable { .. }
        ));
    }
}
