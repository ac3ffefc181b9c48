//! What this host can run: its processor, x86-64 level and usable CPU features.
//!
//! Features come from the processor itself (CPUID plus the OS-enabled register state from
//! XGETBV on x86, AT_HWCAP/AT_HWCAP2 on aarch64, both through std's detection macros), never
//! from `/proc/cpuinfo` text. Under qemu-user these report what the emulated CPU offers, which
//! is what the slot will run on.

use std::fmt;

use fatbin_layout::slot::x86_64_level_of;
use fatbin_layout::Arch;

/// The facts about this host that slot selection needs.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    /// The kernel's processor, `None` when it is one the layout does not know.
    pub arch: Option<Arch>,
    /// The raw `uname -m` text when `arch` is unknown, for messages.
    unknown_machine: Option<[u8; 65]>,
}

impl Host {
    /// Detects the host's processor. CPU features are only read when asked about (each
    /// `cpuid` costs microseconds in a virtual machine), so this costs nothing on 64-bit
    /// launchers and one `uname` on 32-bit ones.
    pub fn detect() -> Host {
        let (arch, unknown_machine) = detect_arch();
        Host {
            arch,
            unknown_machine,
        }
    }

    /// The x86-64 level (1..=4) on x86 hosts, 0 elsewhere.
    pub fn x86_64_level(&self) -> u8 {
        if matches!(self.arch, Some(Arch::X86_64 | Arch::I686)) {
            x86_64_level_of(has_feature)
        } else {
            0
        }
    }

    /// Whether a binary of `arch` runs here without emulation, and how well it ranks:
    /// `Some(0)` for the host's own architecture, `Some(1..)` for ones its kernel also runs
    /// (i686 on x86_64), `None` for foreign ones.
    pub fn arch_rank(&self, arch: Arch) -> Option<usize> {
        let host = self.arch?;
        if arch == host {
            return Some(0);
        }
        host.also_runs()
            .iter()
            .position(|&a| a == arch)
            .map(|i| i + 1)
    }

    /// Whether the processor offers target feature `name` (a Rust target-feature name such as
    /// `avx2`, `sse4.2` or `lse`). Unknown names count as missing.
    pub fn has_feature(&self, name: &str) -> bool {
        has_feature(name)
    }

    /// Every feature name this launcher knows how to detect that the host has.
    pub fn usable_features(&self) -> Vec<&'static str> {
        KNOWN_FEATURES
            .iter()
            .copied()
            .filter(|f| has_feature(f))
            .collect()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.arch, &self.unknown_machine) {
            (Some(Arch::X86_64), _) => write!(f, "x86_64 (x86-64-v{})", self.x86_64_level()),
            (Some(arch), _) => write!(f, "{arch}"),
            (None, Some(raw)) => {
                let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
                write!(
                    f,
                    "{} (unknown to fatbin)",
                    String::from_utf8_lossy(&raw[..len])
                )
            }
            (None, None) => f.write_str("an unknown processor"),
        }
    }
}

/// The processor the kernel runs. A 64-bit launcher can only be running on its own
/// architecture (or qemu emulating it), so it needs no system call; a 32-bit launcher may run
/// on a 64-bit kernel, so it asks `uname`.
fn detect_arch() -> (Option<Arch>, Option<[u8; 65]>) {
    if let Some(arch) = Arch::NATIVE_64 {
        return (Some(arch), None);
    }
    // SAFETY: utsname is plain old data; uname fills it and cannot fail with a valid pointer.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return (None, None);
    }
    let raw: [u8; 65] = std::array::from_fn(|i| uts.machine[i] as u8);
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    match std::str::from_utf8(&raw[..len])
        .ok()
        .and_then(Arch::from_uname)
    {
        Some(arch) => (Some(arch), None),
        None => (None, Some(raw)),
    }
}

/// Names that are not CPU features but show up in `rustc --print cfg` output and so may be
/// recorded in a manifest; they never stop a slot from running.
use fatbin_core::features::ALWAYS_SATISFIED;

fn has_feature(name: &str) -> bool {
    ALWAYS_SATISFIED.contains(&name) || detect::has(name)
}

/// The feature names [`Host::usable_features`] reports.
const KNOWN_FEATURES: &[&str] = detect::KNOWN;

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
mod detect {
    //! x86 features through CPUID and XGETBV (std's `is_x86_feature_detected!`).

    macro_rules! x86_features {
        ($($name:tt),* $(,)?) => {
            pub const KNOWN: &[&str] = &[$($name),*];

            pub fn has(name: &str) -> bool {
                match name {
                    // The x86_64 baseline: always there, and not every one has a macro name.
                    _ if cfg!(target_arch = "x86_64")
                        && fatbin_core::features::X86_64_BASELINE.contains(&name) => true,
                    // The features a level needs are read without std's full detection.
                    _ if cpuid_has(name).is_some() => cpuid_has(name) == Some(true),
                    $($name => std::arch::is_x86_feature_detected!($name),)*
                    _ => false,
                }
            }
        };
    }

    thread_local! {
        static CPU: fatbin_core::cpuid::Cpu = const { fatbin_core::cpuid::Cpu::new() };
    }

    /// [`fatbin_core::cpuid::Cpu::has`] for this thread's processor, asked at most once a leaf.
    fn cpuid_has(name: &str) -> Option<bool> {
        CPU.with(|cpu| cpu.has(name))
    }

    x86_features!(
        "sse",
        "sse2",
        "sse3",
        "ssse3",
        "sse4.1",
        "sse4.2",
        "sse4a",
        "popcnt",
        "cmpxchg16b",
        "fxsr",
        "xsave",
        "xsaveopt",
        "xsavec",
        "xsaves",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "bmi1",
        "bmi2",
        "lzcnt",
        "movbe",
        "abm",
        "tbm",
        "adx",
        "aes",
        "pclmulqdq",
        "sha",
        "rdrand",
        "rdseed",
        "rtm",
        "gfni",
        "vaes",
        "vpclmulqdq",
        "avx512f",
        "avx512cd",
        "avx512bw",
        "avx512dq",
        "avx512vl",
        "avx512ifma",
        "avx512vbmi",
        "avx512vbmi2",
        "avx512vnni",
        "avx512bitalg",
        "avx512vpopcntdq",
        "avx512bf16",
        "avx512fp16",
        "avxvnni",
    );
}

#[cfg(target_arch = "aarch64")]
mod detect {
    //! aarch64 features through AT_HWCAP and AT_HWCAP2 (std's `is_aarch64_feature_detected!`).

    macro_rules! aarch64_features {
        ($($name:tt),* $(,)?) => {
            pub const KNOWN: &[&str] = &[$($name),*];

            pub fn has(name: &str) -> bool {
                match name {
                    $($name => std::arch::is_aarch64_feature_detected!($name),)*
                    _ => false,
                }
            }
        };
    }

    aarch64_features!(
        "neon",
        "fp",
        "fp16",
        "aes",
        "sha2",
        "sha3",
        "sm4",
        "crc",
        "lse",
        "lse2",
        "rdm",
        "rcpc",
        "rcpc2",
        "dotprod",
        "fhm",
        "dit",
        "flagm",
        "ssbs",
        "sb",
        "paca",
        "pacg",
        "dpb",
        "dpb2",
        "jsconv",
        "fcma",
        "frintts",
        "i8mm",
        "bf16",
        "rand",
        "bti",
        "mte",
        "sve",
        "sve2",
        "sve2-aes",
        "sve2-sm4",
        "sve2-sha3",
        "sve2-bitperm",
        "f32mm",
        "f64mm",
    );
}

#[cfg(target_arch = "arm")]
mod detect {
    //! 32-bit Arm features through AT_HWCAP and AT_HWCAP2, with the processor table's bits
    //! (NEON, VFPv4, ARMv8 in AArch32), which is what armv7 slots record.

    use fatbin_core::arch::Arch;

    pub const KNOWN: &[&str] = &["neon", "vfp3", "vfp4", "d32", "aes", "sha2", "crc"];

    pub fn has(name: &str) -> bool {
        // SAFETY: getauxval only reads the process's auxiliary vector.
        let (hwcap, hwcap2) = unsafe {
            (
                libc::getauxval(libc::AT_HWCAP) as u64,
                libc::getauxval(libc::AT_HWCAP2) as u64,
            )
        };
        Arch::Armv7.hwcap_has(name, hwcap, hwcap2) == Some(true)
    }
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
mod detect {
    //! Processors without feature detection here: only slots that need no features run.

    pub const KNOWN: &[&str] = &[];

    pub fn has(_name: &str) -> bool {
        false
    }
}
