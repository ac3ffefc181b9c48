//! The processor table: one row per slot architecture, and every fact fatbin knows about it.
//!
//! Each row says how to recognise the processor (ELF machine, class, byte order, the Rust
//! triples and `uname -m` names that mean it), how to run it elsewhere (Debian's
//! qemu-user-static emulator, the cross sysroot qemu needs for glibc binaries), how to build
//! for it (Debian's cross gcc, zig's target name), how a cluster names it (the Slurm
//! feature) and which CPU features the kernel reports for it in `AT_HWCAP`/`AT_HWCAP2`.
//!
//! Adding a processor is one row in [`arches!`] below plus its tests (`tests` at the end
//! checks every row against the others and against Debian's qemu-user-static file list); the
//! enum variant, [`Arch::ALL`], the lookups and the error messages all come from the rows.
//! The slot names are part of the on-disk contract (`docs/layout.md`): never rename one.

use core::fmt;
use core::str::FromStr;

/// Byte order of a processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    /// `little` or `big`, as the manifest spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Endian::Little => "little",
            Endian::Big => "big",
        }
    }

    /// The byte order a manifest's `endian` field names.
    pub fn from_name(name: &str) -> Option<Endian> {
        match name {
            "little" => Some(Endian::Little),
            "big" => Some(Endian::Big),
            _ => None,
        }
    }
}

/// A CPU feature the kernel reports in the auxiliary vector: Rust's target-feature name and
/// the bits of `AT_HWCAP` and `AT_HWCAP2` that must all be set for it (some features need
/// two kernel bits, e.g. aarch64's `aes` is AES plus PMULL, as std's detection has it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hwcap {
    pub feature: &'static str,
    pub hwcap: u64,
    pub hwcap2: u64,
}

impl Hwcap {
    /// Whether the kernel's `AT_HWCAP` and `AT_HWCAP2` words report this feature.
    pub const fn present(&self, hwcap: u64, hwcap2: u64) -> bool {
        hwcap & self.hwcap == self.hwcap && hwcap2 & self.hwcap2 == self.hwcap2
    }
}

/// A feature from bit `bit` of `AT_HWCAP` (and, if `bit2` is given, `AT_HWCAP2`).
const fn hw(feature: &'static str, bits: &[u32], bits2: &[u32]) -> Hwcap {
    let mut hwcap = 0u64;
    let mut i = 0;
    while i < bits.len() {
        hwcap |= 1 << bits[i];
        i += 1;
    }
    let mut hwcap2 = 0u64;
    let mut i = 0;
    while i < bits2.len() {
        hwcap2 |= 1 << bits2[i];
        i += 1;
    }
    Hwcap {
        feature,
        hwcap,
        hwcap2,
    }
}

/// One row of the processor table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchInfo {
    /// The baseline slot's name, also the manifest's `arch` value and what users type.
    pub slot: &'static str,
    /// The ELF `e_machine` its binaries carry.
    pub elf_machine: u16,
    /// A human name for the ELF machine, for messages about binaries.
    pub machine_name: &'static str,
    /// Pointer width in bits (the ELF class).
    pub bits: u8,
    pub endian: Endian,
    /// Debian's qemu-user-static emulator (`qemu-aarch64-static`).
    pub qemu: &'static str,
    /// The first component of the Rust target triples built for it (`riscv64gc`).
    pub triple_arches: &'static [&'static str],
    /// What `uname -m` reports on it, the kernel's aliases included.
    pub uname: &'static [&'static str],
    /// Debian's cross C compiler package (Debian spells `x86_64` as `x86-64` there).
    pub debian_gcc: &'static str,
    /// Debian's multiarch cross sysroot, where qemu finds a glibc binary's loader.
    pub sysroot: &'static str,
    /// The architecture part of a zig (`zig cc -target`) target.
    pub zig: &'static str,
    /// The Slurm node feature that says a node runs this processor.
    pub slurm_feature: &'static str,
    /// Other architectures whose binaries its kernel runs natively, best first.
    pub also_runs: &'static [Arch],
    /// Features each CPU level above the baseline adds (x86-64-v2.. for x86_64), in order.
    /// A slot `NAME-vN` exists for every level here.
    pub levels: &'static [&'static [&'static str]],
    /// CPU features the kernel reports for it in `AT_HWCAP`/`AT_HWCAP2`.
    pub hwcaps: &'static [Hwcap],
}

/// Declares [`Arch`] and [`ARCHES`] from one list of rows, so the two cannot drift apart.
macro_rules! arches {
    ($($(#[$doc:meta])* $variant:ident = $row:expr,)*) => {
        /// A processor family, named the way users and `uname -m` know it: one variant per row
        /// of [`ARCHES`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Arch {
            $($(#[$doc])* $variant,)*
        }

        /// The processor table, in [`Arch`] order.
        pub const ARCHES: &[ArchInfo] = &[$($row,)*];

        impl Arch {
            /// Every architecture, in table order.
            pub const ALL: [Arch; ARCHES.len()] = [$(Arch::$variant,)*];

            // The facts the fast launcher needs, one `match` each, every arm a constant: the
            // binary then carries those fields alone, not the whole table (whose many
            // pointers a static PIE would relocate on every start).

            /// The slot name of this architecture's baseline slot.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Arch::$variant => const { ARCHES[Arch::$variant as usize].slot },)*
                }
            }

            /// Pointer width in bits.
            pub const fn bits(self) -> u8 {
                match self {
                    $(Arch::$variant => const { ARCHES[Arch::$variant as usize].bits },)*
                }
            }

            pub const fn endian(self) -> Endian {
                match self {
                    $(Arch::$variant => const { ARCHES[Arch::$variant as usize].endian },)*
                }
            }

            /// The ELF `e_machine` value binaries of this architecture carry.
            pub const fn elf_machine(self) -> u16 {
                match self {
                    $(Arch::$variant => const { ARCHES[Arch::$variant as usize].elf_machine },)*
                }
            }

            /// What each CPU level above the baseline adds ([`ArchInfo::levels`]).
            pub const fn levels(self) -> &'static [&'static [&'static str]] {
                match self {
                    $(Arch::$variant => const { ARCHES[Arch::$variant as usize].levels },)*
                }
            }
        }
    };
}

/// The x86-64 micro-architecture levels of the psABI, as Rust target-feature names: what
/// x86-64-v2, -v3 and -v4 each add to the level below. Source: the x86-64 psABI
/// "Micro-architecture levels" table, the list glibc-hwcaps and rustc's `x86-64-vN` use.
pub const X86_64_LEVELS: &[&[&str]] = &[
    &["cmpxchg16b", "popcnt", "sse3", "sse4.1", "sse4.2", "ssse3"],
    &[
        "avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave",
    ],
    &["avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"],
];

// ELF machine numbers (the System V gABI's `e_machine` registry).
const EM_386: u16 = 3;
const EM_MIPS: u16 = 8;
const EM_PPC: u16 = 20;
const EM_ARM: u16 = 40;
const EM_SPARCV9: u16 = 43;
const EM_X86_64: u16 = 62;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;
const EM_LOONGARCH: u16 = 258;

/// aarch64 `AT_HWCAP`/`AT_HWCAP2` bits (Linux `arch/arm64/include/uapi/asm/hwcap.h`), with
/// the pairs std's `is_aarch64_feature_detected!` requires.
const AARCH64_HWCAPS: &[Hwcap] = &[
    hw("fp", &[0], &[]),
    hw("neon", &[0, 1], &[]),
    hw("aes", &[3, 4], &[]),
    hw("sha2", &[5, 6], &[]),
    hw("crc", &[7], &[]),
    hw("lse", &[8], &[]),
    hw("fp16", &[9, 10], &[]),
    hw("rdm", &[12], &[]),
    hw("jsconv", &[13], &[]),
    hw("fcma", &[14], &[]),
    hw("rcpc", &[15], &[]),
    hw("dpb", &[16], &[]),
    hw("sha3", &[5, 6, 17, 21], &[]),
    hw("sm4", &[18, 19], &[]),
    hw("dotprod", &[20], &[]),
    hw("sve", &[22], &[]),
    hw("fhm", &[23], &[]),
    hw("dit", &[24], &[]),
    hw("lse2", &[25], &[]),
    hw("rcpc2", &[26], &[]),
    hw("flagm", &[27], &[]),
    hw("ssbs", &[28], &[]),
    hw("sb", &[29], &[]),
    hw("paca", &[30], &[]),
    hw("pacg", &[31], &[]),
    hw("dpb2", &[], &[0]),
    hw("sve2", &[], &[1]),
    hw("sve2-aes", &[], &[2, 3]),
    hw("sve2-bitperm", &[], &[4]),
    hw("sve2-sha3", &[], &[5]),
    hw("sve2-sm4", &[], &[6]),
    hw("frintts", &[], &[8]),
    hw("i8mm", &[], &[13]),
    hw("f32mm", &[], &[10]),
    hw("f64mm", &[], &[11]),
    hw("bf16", &[], &[14]),
    hw("rand", &[], &[16]),
    hw("bti", &[], &[17]),
    hw("mte", &[], &[18]),
];

/// 32-bit Arm bits (Linux `arch/arm/include/uapi/asm/hwcap.h`).
const ARM_HWCAPS: &[Hwcap] = &[
    hw("neon", &[12], &[]),
    hw("vfp3", &[13], &[]),
    hw("vfp4", &[16], &[]),
    hw("d32", &[19], &[]),
    hw("aes", &[], &[0, 1]),
    hw("sha2", &[], &[2, 3]),
    hw("crc", &[], &[4]),
];

/// RISC-V: one `AT_HWCAP` bit per single-letter extension, the letter's offset from `a`.
const RISCV_HWCAPS: &[Hwcap] = &[
    hw("a", &[0], &[]),
    hw("c", &[2], &[]),
    hw("d", &[3], &[]),
    hw("f", &[5], &[]),
    hw("m", &[12], &[]),
    hw("v", &[21], &[]),
];

/// PowerPC, 64- and 32-bit alike (`arch/powerpc/include/uapi/asm/cputable.h`).
const POWERPC_HWCAPS: &[Hwcap] = &[hw("altivec", &[28], &[]), hw("vsx", &[7], &[])];

/// s390x (`arch/s390/include/asm/elf.h`, `HWCAP_S390_VXRS`).
const S390X_HWCAPS: &[Hwcap] = &[hw("vector", &[11], &[])];

arches! {
    X86_64 = ArchInfo {
        slot: "x86_64",
        elf_machine: EM_X86_64,
        machine_name: "x86-64",
        bits: 64,
        endian: Endian::Little,
        qemu: "qemu-x86_64-static",
        triple_arches: &["x86_64"],
        uname: &["x86_64", "amd64"],
        debian_gcc: "gcc-x86-64-linux-gnu",
        sysroot: "/usr/x86_64-linux-gnu",
        zig: "x86_64",
        slurm_feature: "x86_64",
        also_runs: &[Arch::I686],
        levels: X86_64_LEVELS,
        // Detected with CPUID, not the auxiliary vector (`cpuid`).
        hwcaps: &[],
    },
    Aarch64 = ArchInfo {
        slot: "aarch64",
        elf_machine: EM_AARCH64,
        machine_name: "AArch64",
        bits: 64,
        endian: Endian::Little,
        qemu: "qemu-aarch64-static",
        triple_arches: &["aarch64"],
        uname: &["aarch64", "arm64"],
        debian_gcc: "gcc-aarch64-linux-gnu",
        sysroot: "/usr/aarch64-linux-gnu",
        zig: "aarch64",
        slurm_feature: "aarch64",
        // AArch32 is optional on aarch64 cores, so 32-bit Arm is offered but ranks last.
        also_runs: &[Arch::Armv7, Arch::Armv6],
        levels: &[],
        hwcaps: AARCH64_HWCAPS,
    },
    Riscv64 = ArchInfo {
        slot: "riscv64",
        elf_machine: EM_RISCV,
        machine_name: "RISC-V",
        bits: 64,
        endian: Endian::Little,
        qemu: "qemu-riscv64-static",
        triple_arches: &["riscv64gc", "riscv64"],
        uname: &["riscv64"],
        debian_gcc: "gcc-riscv64-linux-gnu",
        sysroot: "/usr/riscv64-linux-gnu",
        zig: "riscv64",
        slurm_feature: "riscv64",
        also_runs: &[],
        levels: &[],
        hwcaps: RISCV_HWCAPS,
    },
    Armv7 = ArchInfo {
        slot: "armv7",
        elf_machine: EM_ARM,
        machine_name: "ARM",
        bits: 32,
        endian: Endian::Little,
        qemu: "qemu-arm-static",
        triple_arches: &["armv7", "thumbv7neon"],
        uname: &["armv7l", "armv8l", "armv7", "armhf"],
        debian_gcc: "gcc-arm-linux-gnueabihf",
        sysroot: "/usr/arm-linux-gnueabihf",
        zig: "arm",
        slurm_feature: "armv7",
        // ARMv7 runs ARMv6 code, with the same hard-float EABI.
        also_runs: &[Arch::Armv6],
        levels: &[],
        hwcaps: ARM_HWCAPS,
    },
    I686 = ArchInfo {
        slot: "i686",
        elf_machine: EM_386,
        machine_name: "Intel 80386",
        bits: 32,
        endian: Endian::Little,
        qemu: "qemu-i386-static",
        triple_arches: &["i686", "i586"],
        uname: &["i386", "i486", "i586", "i686", "x86"],
        debian_gcc: "gcc-i686-linux-gnu",
        sysroot: "/usr/i686-linux-gnu",
        zig: "x86",
        slurm_feature: "i686",
        also_runs: &[],
        levels: &[],
        // Detected with CPUID, not the auxiliary vector (`cpuid`).
        hwcaps: &[],
    },
    Ppc64le = ArchInfo {
        slot: "ppc64le",
        elf_machine: EM_PPC64,
        machine_name: "PowerPC64 little-endian",
        bits: 64,
        endian: Endian::Little,
        qemu: "qemu-ppc64le-static",
        triple_arches: &["powerpc64le"],
        uname: &["ppc64le"],
        debian_gcc: "gcc-powerpc64le-linux-gnu",
        sysroot: "/usr/powerpc64le-linux-gnu",
        zig: "powerpc64le",
        slurm_feature: "ppc64le",
        also_runs: &[],
        levels: &[],
        hwcaps: POWERPC_HWCAPS,
    },
    S390x = ArchInfo {
        slot: "s390x",
        elf_machine: EM_S390,
        machine_name: "IBM S/390",
        bits: 64,
        endian: Endian::Big,
        qemu: "qemu-s390x-static",
        triple_arches: &["s390x"],
        uname: &["s390x"],
        debian_gcc: "gcc-s390x-linux-gnu",
        sysroot: "/usr/s390x-linux-gnu",
        zig: "s390x",
        slurm_feature: "s390x",
        also_runs: &[],
        levels: &[],
        hwcaps: S390X_HWCAPS,
    },
    Ppc64 = ArchInfo {
        slot: "ppc64",
        elf_machine: EM_PPC64,
        machine_name: "PowerPC64 big-endian",
        bits: 64,
        endian: Endian::Big,
        qemu: "qemu-ppc64-static",
        triple_arches: &["powerpc64"],
        uname: &["ppc64"],
        debian_gcc: "gcc-powerpc64-linux-gnu",
        sysroot: "/usr/powerpc64-linux-gnu",
        zig: "powerpc64",
        slurm_feature: "ppc64",
        // A big-endian ppc64 kernel runs 32-bit PowerPC binaries (CONFIG_COMPAT).
        also_runs: &[Arch::Ppc],
        levels: &[],
        hwcaps: POWERPC_HWCAPS,
    },
    Ppc = ArchInfo {
        slot: "ppc",
        elf_machine: EM_PPC,
        machine_name: "PowerPC",
        bits: 32,
        endian: Endian::Big,
        qemu: "qemu-ppc-static",
        triple_arches: &["powerpc"],
        uname: &["ppc"],
        debian_gcc: "gcc-powerpc-linux-gnu",
        sysroot: "/usr/powerpc-linux-gnu",
        zig: "powerpc",
        slurm_feature: "ppc",
        also_runs: &[],
        levels: &[],
        hwcaps: POWERPC_HWCAPS,
    },
    Mips64el = ArchInfo {
        slot: "mips64el",
        elf_machine: EM_MIPS,
        machine_name: "MIPS64 little-endian",
        bits: 64,
        endian: Endian::Little,
        qemu: "qemu-mips64el-static",
        triple_arches: &["mips64el"],
        // The kernel says `mips64` for either byte order (`from_uname` tells them apart).
        uname: &["mips64"],
        debian_gcc: "gcc-mips64el-linux-gnuabi64",
        sysroot: "/usr/mips64el-linux-gnuabi64",
        zig: "mips64el",
        slurm_feature: "mips64el",
        also_runs: &[],
        levels: &[],
        hwcaps: &[],
    },
    Mips = ArchInfo {
        slot: "mips",
        elf_machine: EM_MIPS,
        machine_name: "MIPS big-endian",
        bits: 32,
        endian: Endian::Big,
        qemu: "qemu-mips-static",
        triple_arches: &["mips"],
        uname: &["mips"],
        debian_gcc: "gcc-mips-linux-gnu",
        sysroot: "/usr/mips-linux-gnu",
        zig: "mips",
        slurm_feature: "mips",
        also_runs: &[],
        levels: &[],
        hwcaps: &[],
    },
    Mipsel = ArchInfo {
        slot: "mipsel",
        elf_machine: EM_MIPS,
        machine_name: "MIPS little-endian",
        bits: 32,
        endian: Endian::Little,
        qemu: "qemu-mipsel-static",
        triple_arches: &["mipsel"],
        // The kernel says `mips` for either byte order (`from_uname` tells them apart).
        uname: &["mips"],
        debian_gcc: "gcc-mipsel-linux-gnu",
        sysroot: "/usr/mipsel-linux-gnu",
        zig: "mipsel",
        slurm_feature: "mipsel",
        also_runs: &[],
        levels: &[],
        hwcaps: &[],
    },
    Loongarch64 = ArchInfo {
        slot: "loongarch64",
        elf_machine: EM_LOONGARCH,
        machine_name: "LoongArch64",
        bits: 64,
        endian: Endian::Little,
        qemu: "qemu-loongarch64-static",
        triple_arches: &["loongarch64"],
        uname: &["loongarch64"],
        debian_gcc: "gcc-loongarch64-linux-gnu",
        sysroot: "/usr/loongarch64-linux-gnu",
        zig: "loongarch64",
        slurm_feature: "loongarch64",
        also_runs: &[],
        levels: &[],
        hwcaps: &[],
    },
    Sparc64 = ArchInfo {
        slot: "sparc64",
        elf_machine: EM_SPARCV9,
        machine_name: "SPARC V9",
        bits: 64,
        endian: Endian::Big,
        qemu: "qemu-sparc64-static",
        triple_arches: &["sparc64"],
        uname: &["sparc64"],
        debian_gcc: "gcc-sparc64-linux-gnu",
        sysroot: "/usr/sparc64-linux-gnu",
        zig: "sparc64",
        slurm_feature: "sparc64",
        also_runs: &[],
        levels: &[],
        hwcaps: &[],
    },
    /// ARMv6 with VFPv2, hard-float (the Raspberry Pi 1 and Zero). Its ELF header is
    /// armv7's: only the `.ARM.attributes` section (Tag_CPU_arch) tells the two apart, so
    /// [`Arch::from_elf`] answers armv7 and the layout's `identify` reads the section.
    Armv6 = ArchInfo {
        slot: "armv6",
        elf_machine: EM_ARM,
        machine_name: "ARM",
        bits: 32,
        endian: Endian::Little,
        qemu: "qemu-arm-static",
        // Rust's `arm-unknown-linux-gnueabihf` is ARMv6 with VFPv2.
        triple_arches: &["arm", "armv6"],
        uname: &["armv6l", "armv6"],
        debian_gcc: "gcc-arm-linux-gnueabihf",
        sysroot: "/usr/arm-linux-gnueabihf",
        zig: "arm",
        slurm_feature: "armv6",
        also_runs: &[],
        levels: &[],
        hwcaps: ARM_HWCAPS,
    },
}

impl Arch {
    /// This architecture's row of the table.
    pub const fn info(self) -> &'static ArchInfo {
        &ARCHES[self as usize]
    }

    /// The suffix of Debian's `qemu-<suffix>-static` user-mode emulator (`aarch64`, `arm`).
    pub fn qemu_name(self) -> &'static str {
        let binary = self.info().qemu;
        binary
            .strip_prefix("qemu-")
            .and_then(|s| s.strip_suffix("-static"))
            .unwrap_or(binary)
    }

    /// The highest CPU level a slot of this architecture can name (1: the baseline only).
    pub const fn max_level(self) -> u8 {
        self.levels().len() as u8 + 1
    }

    /// The target features level `level` needs beyond the baseline (level 1: none).
    pub fn level_features(self, level: u8) -> impl Iterator<Item = &'static str> {
        let levels = self.levels();
        let upto = usize::from(level.max(1) - 1).min(levels.len());
        levels[..upto].iter().flat_map(|f| f.iter().copied())
    }

    /// The highest level whose features are all in `has` (1 when none above the baseline).
    pub fn level_of(self, has: impl Fn(&str) -> bool) -> u8 {
        let mut level = 1;
        for features in self.levels() {
            if !features.iter().all(|f| has(f)) {
                break;
            }
            level += 1;
        }
        level
    }

    /// Whether binaries of `self` and `other` carry the same ELF header facts (machine, class,
    /// byte order): true for a row and itself, and for armv6 and armv7, which only the
    /// `.ARM.attributes` section tells apart.
    pub const fn same_elf(self, other: Arch) -> bool {
        self.elf_machine() == other.elf_machine()
            && self.bits() == other.bits()
            && matches!(
                (self.endian(), other.endian()),
                (Endian::Little, Endian::Little) | (Endian::Big, Endian::Big)
            )
    }

    /// The architecture an ELF header describes, if it is one the layout knows: the first
    /// row with those facts (armv7 for armv6's too, see [`Arch::same_elf`]).
    pub fn from_elf(machine: u16, bits: u8, endian: Endian) -> Option<Arch> {
        Arch::ALL
            .iter()
            .copied()
            .find(|a| a.elf_machine() == machine && a.bits() == bits && a.endian() == endian)
    }

    /// The architecture a Rust target triple builds for (`aarch64-unknown-linux-musl` ->
    /// aarch64).
    pub fn from_triple(triple: &str) -> Option<Arch> {
        let first = triple.split('-').next()?;
        Arch::ALL
            .iter()
            .copied()
            .find(|a| a.info().triple_arches.contains(&first))
    }

    /// The architecture `uname -m` reports, mapping the kernel's aliases.
    ///
    /// The kernel names some processors the same for both byte orders (`mips`, `mips64`);
    /// then the row with the byte order of the code asking wins, since only a 32-bit
    /// launcher asks and it runs in its own byte order.
    pub fn from_uname(machine: &str) -> Option<Arch> {
        let native = if cfg!(target_endian = "big") {
            Endian::Big
        } else {
            Endian::Little
        };
        Arch::from_uname_in(machine, native)
    }

    /// [`Arch::from_uname`] for code running in byte order `endian`.
    pub fn from_uname_in(machine: &str, endian: Endian) -> Option<Arch> {
        let mut found = None;
        for arch in Arch::ALL {
            if arch.info().uname.contains(&machine) {
                if arch.endian() == endian {
                    return Some(arch);
                }
                found = found.or(Some(arch));
            }
        }
        found
    }

    /// Other architectures whose binaries a processor of this one runs natively, best first.
    ///
    /// An x86_64 Linux kernel runs i686 binaries (IA32 emulation); an aarch64 one usually runs
    /// armv7 (AArch32), though not on every core, so armv7 is offered but ranks last.
    pub const fn also_runs(self) -> &'static [Arch] {
        self.info().also_runs
    }

    /// Whether the kernel's `AT_HWCAP`/`AT_HWCAP2` words report `feature` on this processor;
    /// `None` when the auxiliary vector does not tell about that feature here.
    pub fn hwcap_has(self, feature: &str, hwcap: u64, hwcap2: u64) -> Option<bool> {
        self.info()
            .hwcaps
            .iter()
            .find(|h| h.feature == feature)
            .map(|h| h.present(hwcap, hwcap2))
    }

    /// The architecture this code was compiled for, when a binary of it can only be running
    /// on that architecture: 32-bit code may run on a 64-bit kernel (i686 on x86_64, armv7
    /// on aarch64), so for it this is `None` and the kernel must be asked.
    pub const NATIVE_64: Option<Arch> = if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Aarch64)
    } else if cfg!(target_arch = "riscv64") {
        Some(Arch::Riscv64)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
        Some(Arch::Ppc64le)
    } else if cfg!(target_arch = "s390x") {
        Some(Arch::S390x)
    } else if cfg!(all(target_arch = "powerpc64", target_endian = "big")) {
        Some(Arch::Ppc64)
    } else if cfg!(all(target_arch = "mips64", target_endian = "little")) {
        Some(Arch::Mips64el)
    } else if cfg!(target_arch = "loongarch64") {
        Some(Arch::Loongarch64)
    } else if cfg!(target_arch = "sparc64") {
        Some(Arch::Sparc64)
    } else {
        None
    };
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
            .iter()
            .copied()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownArch(crate::text::Short::new(s)))
    }
}

/// A name that is not one of the architectures in [`Arch::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownArch(pub crate::text::Short);

impl fmt::Display for UnknownArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown architecture `{}` (known: ", self.0)?;
        write_list(f, Arch::ALL.iter().map(|a| a.name()))?;
        f.write_str(")")
    }
}

impl core::error::Error for UnknownArch {}

/// `a, b, c`.
pub(crate) fn write_list<'a>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = &'a str>,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(item)?;
    }
    Ok(())
}

/// Linux processors (or ABIs) with no slot, by ELF machine, class and byte order, so a
/// message names the binary's processor instead of a number.
const UNSLOTTED_MACHINES: &[(u16, u8, Endian, &str)] = &[
    (2, 32, Endian::Big, "SPARC"),
    (4, 32, Endian::Big, "Motorola 68000"),
    (EM_MIPS, 64, Endian::Big, "MIPS64 big-endian"),
    (15, 32, Endian::Big, "PA-RISC"),
    (15, 64, Endian::Big, "PA-RISC 64-bit"),
    (EM_PPC, 32, Endian::Little, "PowerPC little-endian"),
    (
        EM_PPC64,
        32,
        Endian::Big,
        "PowerPC64 big-endian (32-bit class)",
    ),
    (EM_S390, 32, Endian::Big, "IBM S/390 31-bit"),
    (EM_ARM, 32, Endian::Big, "ARM big-endian"),
    (42, 32, Endian::Little, "SuperH"),
    (50, 64, Endian::Little, "IA-64"),
    (EM_X86_64, 32, Endian::Little, "x86-64 x32 ABI"),
    (EM_AARCH64, 64, Endian::Big, "AArch64 big-endian"),
    (EM_AARCH64, 32, Endian::Little, "AArch64 ILP32"),
    (EM_RISCV, 32, Endian::Little, "RISC-V 32-bit"),
    (EM_LOONGARCH, 32, Endian::Little, "LoongArch32"),
    (0x9026, 64, Endian::Little, "Alpha"),
];

/// The name of an ELF machine for messages: the table's when fatbin has a slot for it, a
/// known Linux processor's name when it has none, else `None`.
pub fn machine_name(machine: u16, bits: u8, endian: Endian) -> Option<&'static str> {
    if let Some(arch) = Arch::from_elf(machine, bits, endian) {
        return Some(arch.info().machine_name);
    }
    UNSLOTTED_MACHINES
        .iter()
        .find(|&&(m, b, e, _)| m == machine && b == bits && e == endian)
        .map(|&(.., name)| name)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;
    use std::vec::Vec;

    #[test]
    fn rows_are_in_enum_order_and_names_are_unique() {
        assert_eq!(Arch::ALL.len(), ARCHES.len());
        for (i, &arch) in Arch::ALL.iter().enumerate() {
            assert_eq!(arch as usize, i);
            let info = arch.info();
            assert_eq!(
                (arch.name(), arch.bits(), arch.endian(), arch.elf_machine()),
                (info.slot, info.bits, info.endian, info.elf_machine)
            );
            assert_eq!(arch.levels(), info.levels);
            assert_eq!(arch.name().parse::<Arch>(), Ok(arch));
            assert_eq!(arch.to_string(), arch.name());
        }
        let mut names: Vec<_> = ARCHES.iter().map(|r| r.slot).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ARCHES.len());
    }

    /// Every row: the ELF machine, class and byte order name exactly its architecture.
    #[test]
    fn elf_facts_name_exactly_one_row() {
        for arch in Arch::ALL {
            let info = arch.info();
            let found = Arch::from_elf(info.elf_machine, info.bits, info.endian).unwrap();
            assert!(found.same_elf(arch), "{arch}");
            // Only a row that shares another's header facts reads as that other row.
            assert_eq!(found == arch, arch != Arch::Armv6, "{arch}");
            let other_bits = if info.bits == 64 { 32 } else { 64 };
            let other_endian = match info.endian {
                Endian::Little => Endian::Big,
                Endian::Big => Endian::Little,
            };
            assert_ne!(
                Arch::from_elf(info.elf_machine, other_bits, info.endian),
                Some(arch)
            );
            assert_ne!(
                Arch::from_elf(info.elf_machine, info.bits, other_endian),
                Some(arch)
            );
        }
    }

    /// Every row: its Rust triples and `uname -m` names map back to it, and nothing else does.
    #[test]
    fn triples_and_uname_names_map_to_their_row() {
        for arch in Arch::ALL {
            let info = arch.info();
            assert!(!info.triple_arches.is_empty(), "{arch}");
            for first in info.triple_arches {
                for triple in [
                    std::format!("{first}-unknown-linux-gnu"),
                    std::format!("{first}-unknown-linux-musl"),
                ] {
                    assert_eq!(Arch::from_triple(&triple), Some(arch), "{triple}");
                }
            }
            assert!(
                info.uname.contains(&arch.name())
                    || matches!(arch, Arch::Armv7 | Arch::Mips64el | Arch::Mipsel)
            );
            for name in info.uname {
                assert_eq!(
                    Arch::from_uname_in(name, arch.endian()),
                    Some(arch),
                    "{name}"
                );
            }
        }
        for triple in [
            "armv7-unknown-linux-gnueabihf",
            "thumbv7neon-unknown-linux-gnueabihf",
        ] {
            assert_eq!(Arch::from_triple(triple), Some(Arch::Armv7));
        }
        assert_eq!(
            Arch::from_triple("arm-unknown-linux-gnueabihf"),
            Some(Arch::Armv6)
        );
        assert!(Arch::Armv7.same_elf(Arch::Armv6) && !Arch::Armv7.same_elf(Arch::I686));
        assert_eq!(
            Arch::from_triple("riscv64gc-unknown-linux-gnu"),
            Some(Arch::Riscv64)
        );
        assert_eq!(Arch::from_triple("wasm32-unknown-unknown"), None);
        assert_eq!(Arch::from_uname("alpha"), None);
        // The kernel names both MIPS byte orders alike: the asker's byte order decides.
        assert_eq!(Arch::from_uname_in("mips", Endian::Big), Some(Arch::Mips));
        assert_eq!(
            Arch::from_uname_in("mips", Endian::Little),
            Some(Arch::Mipsel)
        );
        assert_eq!(
            Arch::from_uname_in("mips64", Endian::Big),
            Some(Arch::Mips64el),
            "no big-endian mips64 row: the one there is"
        );
        for (triple, arch) in [
            ("powerpc64-unknown-linux-gnu", Arch::Ppc64),
            ("powerpc64le-unknown-linux-gnu", Arch::Ppc64le),
            ("powerpc-unknown-linux-gnu", Arch::Ppc),
            ("mips-unknown-linux-musl", Arch::Mips),
            ("mipsel-unknown-linux-musl", Arch::Mipsel),
            ("mips64el-unknown-linux-gnuabi64", Arch::Mips64el),
            ("loongarch64-unknown-linux-gnu", Arch::Loongarch64),
            ("sparc64-unknown-linux-gnu", Arch::Sparc64),
        ] {
            assert_eq!(Arch::from_triple(triple), Some(arch), "{triple}");
        }
    }

    /// Every row: the Debian package names follow Debian's spelling, the sysroot is the
    /// multiarch directory of the cross gcc's triple, and the emulator is named like Debian's.
    #[test]
    fn debian_names_follow_debian() {
        for arch in Arch::ALL {
            let info = arch.info();
            let gnu = info
                .sysroot
                .strip_prefix("/usr/")
                .expect("sysroot under /usr");
            assert_eq!(
                info.debian_gcc,
                std::format!("gcc-{}", gnu.replace('_', "-")),
                "{arch}"
            );
            assert!(
                !info.debian_gcc.contains('_'),
                "{arch}: Debian has no `_` here"
            );
            assert!(info.qemu.starts_with("qemu-") && info.qemu.ends_with("-static"));
            assert_eq!(std::format!("qemu-{}-static", arch.qemu_name()), info.qemu);
            assert!(!info.zig.is_empty() && !info.slurm_feature.is_empty());
        }
        assert_eq!(Arch::X86_64.info().debian_gcc, "gcc-x86-64-linux-gnu");
    }

    /// Every row: its emulator is in Debian's qemu-user-static (when it is installed, as CI's
    /// setup installs it).
    #[test]
    fn qemu_binaries_exist_in_debian_qemu_user_static() {
        let Ok(out) = std::process::Command::new("dpkg")
            .args(["-L", "qemu-user-static"])
            .output()
        else {
            std::eprintln!("skipped: no dpkg here");
            return;
        };
        if !out.status.success() {
            assert!(
                std::env::var_os("CI").is_none(),
                "qemu-user-static is not installed (ci/setup.sh installs it)"
            );
            return;
        }
        let list = std::string::String::from_utf8_lossy(&out.stdout);
        for arch in Arch::ALL {
            let path = std::format!("/usr/bin/{}", arch.info().qemu);
            assert!(
                list.lines().any(|l| l == path),
                "{arch}: no {path} in qemu-user-static"
            );
        }
    }

    #[test]
    fn also_runs_names_other_rows_of_the_same_family() {
        for arch in Arch::ALL {
            for &other in arch.also_runs() {
                assert_ne!(other, arch);
                assert!(other.bits() <= arch.bits());
            }
        }
    }

    #[test]
    fn levels_accumulate_features() {
        let v3: Vec<_> = Arch::X86_64.level_features(3).collect();
        assert!(v3.contains(&"sse4.2") && v3.contains(&"avx2") && !v3.contains(&"avx512f"));
        assert_eq!(Arch::X86_64.level_features(1).count(), 0);
        assert_eq!(Arch::X86_64.level_of(|f| v3.contains(&f)), 3);
        assert_eq!(Arch::X86_64.level_of(|_| false), 1);
        assert_eq!(Arch::X86_64.max_level(), 4);
        assert_eq!(Arch::Aarch64.max_level(), 1);
        assert_eq!(Arch::Aarch64.level_features(3).count(), 0);
    }

    #[test]
    fn hwcap_features_are_unique_per_row_and_need_a_bit() {
        for arch in Arch::ALL {
            let caps = arch.info().hwcaps;
            for (i, cap) in caps.iter().enumerate() {
                assert!(cap.hwcap | cap.hwcap2 != 0, "{arch}: {}", cap.feature);
                assert!(
                    caps[i + 1..].iter().all(|c| c.feature != cap.feature),
                    "{arch}: {} twice",
                    cap.feature
                );
                assert_eq!(arch.hwcap_has(cap.feature, u64::MAX, u64::MAX), Some(true));
                assert_eq!(arch.hwcap_has(cap.feature, 0, 0), Some(false));
            }
            assert_eq!(arch.hwcap_has("made-up", u64::MAX, u64::MAX), None);
        }
        // aarch64 `aes` needs AES and PMULL, as std's detection has it.
        assert_eq!(Arch::Aarch64.hwcap_has("aes", 1 << 3, 0), Some(false));
        assert_eq!(Arch::Aarch64.hwcap_has("aes", 0b11 << 3, 0), Some(true));
    }

    /// Binaries of a processor without a slot are named, not numbered; every row's ELF
    /// facts name that row's processor, and no unslotted entry shadows a row.
    #[test]
    fn machines_are_named() {
        assert_eq!(
            machine_name(EM_PPC64, 64, Endian::Big),
            Some("PowerPC64 big-endian")
        );
        assert_eq!(
            machine_name(EM_MIPS, 64, Endian::Big),
            Some("MIPS64 big-endian")
        );
        assert_eq!(
            machine_name(EM_X86_64, 32, Endian::Little),
            Some("x86-64 x32 ABI")
        );
        assert_eq!(machine_name(0x9026, 64, Endian::Little), Some("Alpha"));
        assert_eq!(machine_name(9999, 64, Endian::Little), None);
        for arch in Arch::ALL {
            let info = arch.info();
            assert_eq!(
                machine_name(info.elf_machine, info.bits, info.endian),
                Some(info.machine_name)
            );
        }
        for &(m, b, e, name) in UNSLOTTED_MACHINES {
            assert_eq!(Arch::from_elf(m, b, e), None, "{name} has a slot");
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = "intel".parse::<Arch>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown architecture `intel` (known: x86_64, aarch64, riscv64, armv7, i686, \
             ppc64le, s390x, ppc64, ppc, mips64el, mips, mipsel, loongarch64, sparc64, armv6)"
        );
    }
}
