//! Processor architectures a fat program can carry a slot for, and the facts each one implies.

use std::fmt;
use std::str::FromStr;

/// Byte order of a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

/// A processor family, named the way users and `uname -m` know it.
///
/// The names are the slot names of the layout (see `docs/layout.md`), so they are part of the
/// on-disk contract: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
    Armv7,
    I686,
    Ppc64le,
    S390x,
}

impl Arch {
    pub const ALL: [Arch; 7] = [
        Arch::X86_64,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::Armv7,
        Arch::I686,
        Arch::Ppc64le,
        Arch::S390x,
    ];

    /// The slot name of this architecture's baseline slot.
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::Armv7 => "armv7",
            Arch::I686 => "i686",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
        }
    }

    /// Pointer width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Arch::Armv7 | Arch::I686 => 32,
            _ => 64,
        }
    }

    pub fn endian(self) -> Endian {
        match self {
            Arch::S390x => Endian::Big,
            _ => Endian::Little,
        }
    }

    /// The ELF `e_machine` value binaries of this architecture carry.
    pub fn elf_machine(self) -> u16 {
        use object::elf;
        match self {
            Arch::X86_64 => elf::EM_X86_64,
            Arch::Aarch64 => elf::EM_AARCH64,
            Arch::Riscv64 => elf::EM_RISCV,
            Arch::Armv7 => elf::EM_ARM,
            Arch::I686 => elf::EM_386,
            Arch::Ppc64le => elf::EM_PPC64,
            Arch::S390x => elf::EM_S390,
        }
    }

    /// The architecture an ELF header describes, if it is one the layout knows.
    pub fn from_elf(machine: u16, bits: u8, endian: Endian) -> Option<Arch> {
        Arch::ALL
            .into_iter()
            .find(|a| a.elf_machine() == machine && a.bits() == bits && a.endian() == endian)
    }

    /// The suffix of Debian's `qemu-<suffix>-static` user-mode emulator for this architecture.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::Armv7 => "arm",
            Arch::I686 => "i386",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
        }
    }

    /// The architecture a Rust target triple builds for (`aarch64-unknown-linux-musl` -> aarch64).
    pub fn from_triple(triple: &str) -> Option<Arch> {
        let first = triple.split('-').next()?;
        Some(match first {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            "riscv64gc" | "riscv64" => Arch::Riscv64,
            "armv7" | "thumbv7neon" => Arch::Armv7,
            "i686" | "i586" => Arch::I686,
            "powerpc64le" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            _ => return None,
        })
    }

    /// The architecture `uname -m` reports, mapping the kernel's aliases.
    pub fn from_uname(machine: &str) -> Option<Arch> {
        Some(match machine {
            "x86_64" | "amd64" => Arch::X86_64,
            "aarch64" | "arm64" => Arch::Aarch64,
            "riscv64" => Arch::Riscv64,
            "armv7l" | "armv8l" | "armv7" | "armhf" => Arch::Armv7,
            "i386" | "i486" | "i586" | "i686" | "x86" => Arch::I686,
            "ppc64le" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            _ => return None,
        })
    }

    /// Other architectures whose binaries a processor of this one runs natively, best first.
    ///
    /// An x86_64 Linux kernel runs i686 binaries (IA32 emulation); an aarch64 one usually runs
    /// armv7 (AArch32), though not on every core, so armv7 is offered but ranks last.
    pub fn also_runs(self) -> &'static [Arch] {
        match self {
            Arch::X86_64 => &[Arch::I686],
            Arch::Aarch64 => &[Arch::Armv7],
            _ => &[],
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = UnknownArch;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownArch(s.to_owned()))
    }
}

/// A name that is not one of the architectures in [`Arch::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown architecture `{0}` (known: x86_64, aarch64, riscv64, armv7, i686, ppc64le, s390x)"
)]
pub struct UnknownArch(pub String);

impl serde::Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Arch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
