//! The ELF header check: which architecture a binary's first 20 bytes name.
//!
//! Both launchers read a slot's header just before they run it and refuse one whose class,
//! byte order and machine are not the slot's architecture; `identify` in the layout reads the
//! same facts with a full ELF parser at install time.

use core::fmt;

use crate::arch::{Arch, Endian};

/// How many bytes of a file the check reads: up to and including `e_machine`.
pub const HEADER_LEN: usize = 20;

/// Why an ELF header names no architecture fatbin knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfProblem {
    UnknownClass,
    UnknownByteOrder,
    UnknownMachine {
        machine: u16,
        bits: u8,
        endian: Endian,
    },
}

impl fmt::Display for ElfProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfProblem::UnknownClass => f.write_str("an ELF file of unknown class"),
            ElfProblem::UnknownByteOrder => f.write_str("an ELF file of unknown byte order"),
            ElfProblem::UnknownMachine {
                machine,
                bits,
                endian,
            } => match crate::arch::machine_name(*machine, *bits, *endian) {
                Some(name) => write!(f, "an ELF file for {name} (machine {machine}, {bits}-bit)"),
                None => write!(f, "an ELF file for machine {machine} ({bits}-bit)"),
            },
        }
    }
}

/// The architecture an ELF header names: `None` when it is not ELF at all, `Err` when it is
/// an ELF file of an architecture the processor table does not know.
pub fn arch_of(header: &[u8; HEADER_LEN]) -> Option<Result<Arch, ElfProblem>> {
    if header[..4] != *b"\x7fELF" {
        return None;
    }
    let bits = match header[4] {
        1 => 32,
        2 => 64,
        _ => return Some(Err(ElfProblem::UnknownClass)),
    };
    let (endian, machine) = match header[5] {
        1 => (Endian::Little, u16::from_le_bytes([header[18], header[19]])),
        2 => (Endian::Big, u16::from_be_bytes([header[18], header[19]])),
        _ => return Some(Err(ElfProblem::UnknownByteOrder)),
    };
    Some(
        Arch::from_elf(machine, bits, endian).ok_or(ElfProblem::UnknownMachine {
            machine,
            bits,
            endian,
        }),
    )
}

/// Whether a header is that of a binary for `arch` (as far as a header tells: an armv6
/// slot's header reads as armv7, see [`Arch::same_elf`]).
pub fn matches(header: &[u8; HEADER_LEN], arch: Arch) -> bool {
    matches!(arch_of(header), Some(Ok(a)) if a.same_elf(arch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(bits: u8, endian: Endian, machine: u16) -> [u8; HEADER_LEN] {
        let mut h = [0; HEADER_LEN];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = if bits == 64 { 2 } else { 1 };
        h[5] = if endian == Endian::Big { 2 } else { 1 };
        let m = match endian {
            Endian::Little => machine.to_le_bytes(),
            Endian::Big => machine.to_be_bytes(),
        };
        h[18..20].copy_from_slice(&m);
        h
    }

    /// Every row of the processor table: its header reads as it, and as nothing else.
    #[test]
    fn every_row_reads_back() {
        for arch in Arch::ALL {
            let h = header(arch.bits(), arch.endian(), arch.elf_machine());
            let Some(Ok(read)) = arch_of(&h) else {
                panic!("{arch}: not read back")
            };
            assert!(
                read == arch || (arch, read) == (Arch::Armv6, Arch::Armv7),
                "{arch}"
            );
            for other in Arch::ALL {
                let twins = matches!(
                    (arch, other),
                    (Arch::Armv6, Arch::Armv7) | (Arch::Armv7, Arch::Armv6)
                );
                assert_eq!(
                    matches(&h, other),
                    other == arch || twins,
                    "{arch} as {other}"
                );
            }
        }
    }

    #[test]
    fn refuses_what_is_not_a_known_elf() {
        assert_eq!(arch_of(&[0; HEADER_LEN]), None);
        let mut h = header(64, Endian::Little, 62);
        h[4] = 3;
        assert_eq!(arch_of(&h), Some(Err(ElfProblem::UnknownClass)));
        h[4] = 2;
        h[5] = 0;
        assert_eq!(arch_of(&h), Some(Err(ElfProblem::UnknownByteOrder)));
        // MIPS64 big-endian has no slot; the problem names it.
        let mips64 = header(64, Endian::Big, 8);
        let Some(Err(problem)) = arch_of(&mips64) else {
            panic!("MIPS64 big-endian has a slot")
        };
        assert_eq!(
            std::string::ToString::to_string(&problem),
            "an ELF file for MIPS64 big-endian (machine 8, 64-bit)"
        );
        let unknown = header(64, Endian::Little, 9999);
        let Some(Err(problem)) = arch_of(&unknown) else {
            panic!("machine 9999 has a slot")
        };
        assert_eq!(
            std::string::ToString::to_string(&problem),
            "an ELF file for machine 9999 (64-bit)"
        );
    }
}
