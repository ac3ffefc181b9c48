//! x86 feature detection that asks the processor only what it is asked about.
//!
//! Each `cpuid` instruction traps to the hypervisor in a virtual machine (about 4 µs here),
//! and std's detection runs eight or more of them up front, a third of the launcher's own
//! run time. This module runs at most four (leaves 0, 1, 7 and 0x8000_0001), each only when a
//! feature in it is asked for, and applies the same OS-support rules as std: the AVX family
//! only when XCR0 shows the OS saves the YMM state, AVX-512 only when it saves the ZMM and
//! opmask state too. A unit test checks every feature here against std's detection.
//!
//! Core only: the `no_std` fast launcher (`fast/`) compiles this same file.

#[cfg(target_arch = "x86")]
use core::arch::x86::{__cpuid_count, _xgetbv, CpuidResult};
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{__cpuid_count, _xgetbv, CpuidResult};
use core::cell::Cell;

/// Which register of which leaf holds a feature bit, and what OS support it needs.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    L1Ecx,
    L1Edx,
    L7Ebx,
    Ext1Ecx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// The OS saves the AVX (YMM) state: XCR0 bits 1 and 2.
    AvxState,
    /// The OS saves the AVX-512 state as well: XCR0 bits 5 to 7.
    Avx512State,
}

/// Features detected here: (Rust target-feature name, leaf register, bit, OS support).
const TABLE: &[(&str, Leaf, u32, Needs)] = &[
    ("sse3", Leaf::L1Ecx, 0, Needs::Nothing),
    ("pclmulqdq", Leaf::L1Ecx, 1, Needs::Nothing),
    ("ssse3", Leaf::L1Ecx, 9, Needs::Nothing),
    ("fma", Leaf::L1Ecx, 12, Needs::AvxState),
    ("cmpxchg16b", Leaf::L1Ecx, 13, Needs::Nothing),
    ("sse4.1", Leaf::L1Ecx, 19, Needs::Nothing),
    ("sse4.2", Leaf::L1Ecx, 20, Needs::Nothing),
    ("movbe", Leaf::L1Ecx, 22, Needs::Nothing),
    ("popcnt", Leaf::L1Ecx, 23, Needs::Nothing),
    ("aes", Leaf::L1Ecx, 25, Needs::Nothing),
    ("xsave", Leaf::L1Ecx, 26, Needs::AvxState),
    ("avx", Leaf::L1Ecx, 28, Needs::AvxState),
    ("f16c", Leaf::L1Ecx, 29, Needs::AvxState),
    ("rdrand", Leaf::L1Ecx, 30, Needs::Nothing),
    ("fxsr", Leaf::L1Edx, 24, Needs::Nothing),
    ("sse", Leaf::L1Edx, 25, Needs::Nothing),
    ("sse2", Leaf::L1Edx, 26, Needs::Nothing),
    ("bmi1", Leaf::L7Ebx, 3, Needs::Nothing),
    ("avx2", Leaf::L7Ebx, 5, Needs::AvxState),
    ("bmi2", Leaf::L7Ebx, 8, Needs::Nothing),
    ("avx512f", Leaf::L7Ebx, 16, Needs::Avx512State),
    ("avx512dq", Leaf::L7Ebx, 17, Needs::Avx512State),
    ("rdseed", Leaf::L7Ebx, 18, Needs::Nothing),
    ("adx", Leaf::L7Ebx, 19, Needs::Nothing),
    ("avx512ifma", Leaf::L7Ebx, 21, Needs::Avx512State),
    ("avx512cd", Leaf::L7Ebx, 28, Needs::Avx512State),
    ("sha", Leaf::L7Ebx, 29, Needs::Nothing),
    ("avx512bw", Leaf::L7Ebx, 30, Needs::Avx512State),
    ("avx512vl", Leaf::L7Ebx, 31, Needs::Avx512State),
    ("lzcnt", Leaf::Ext1Ecx, 5, Needs::Nothing),
    ("sse4a", Leaf::Ext1Ecx, 6, Needs::Nothing),
    ("tbm", Leaf::Ext1Ecx, 21, Needs::Nothing),
];

/// The processor's answers, each `cpuid` run on first use and kept.
#[derive(Debug, Default)]
pub struct Cpu {
    max_leaf: Cell<Option<u32>>,
    leaf1: Cell<Option<(u32, u32)>>,
    leaf7_ebx: Cell<Option<u32>>,
    ext1_ecx: Cell<Option<u32>>,
    xcr0: Cell<Option<u64>>,
}

/// The value in `cell`, computed by `read` the first time.
fn cached<T: Copy>(cell: &Cell<Option<T>>, read: impl FnOnce() -> T) -> T {
    if let Some(v) = cell.get() {
        return v;
    }
    let v = read();
    cell.set(Some(v));
    v
}

impl Cpu {
    pub const fn new() -> Cpu {
        Cpu {
            max_leaf: Cell::new(None),
            leaf1: Cell::new(None),
            leaf7_ebx: Cell::new(None),
            ext1_ecx: Cell::new(None),
            xcr0: Cell::new(None),
        }
    }

    /// Whether the processor has `name`, or `None` when this module does not know the name.
    pub fn has(&self, name: &str) -> Option<bool> {
        let &(_, leaf, bit, needs) = TABLE.iter().find(|(n, ..)| *n == name)?;
        Some(self.has_bit(leaf, bit, needs))
    }

    fn has_bit(&self, leaf: Leaf, bit: u32, needs: Needs) -> bool {
        let reg = match leaf {
            Leaf::L1Ecx => self.leaf1().0,
            Leaf::L1Edx => self.leaf1().1,
            Leaf::L7Ebx => self.leaf7_ebx(),
            Leaf::Ext1Ecx => self.ext1_ecx(),
        };
        let os_ok = match needs {
            Needs::Nothing => true,
            Needs::AvxState => self.xcr0() & 0b110 == 0b110,
            Needs::Avx512State => self.xcr0() & 0b1110_0110 == 0b1110_0110,
        };
        reg & (1 << bit) != 0 && os_ok
    }
}

/// The feature names [`Cpu::has`] answers for (the tests compare them with std's).
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, ..)| *n)
}

#[allow(unused_unsafe)] // cpuid is a safe intrinsic in newer Rust
fn cpuid(leaf: u32) -> CpuidResult {
    // SAFETY: every x86_64 processor has cpuid, and unknown leaves return zeros or data of the
    // highest leaf, which the callers guard against with the maximum leaf numbers.
    unsafe { __cpuid_count(leaf, 0) }
}

/// The registers behind the features, each read once.
impl Cpu {
    fn max_leaf(&self) -> u32 {
        cached(&self.max_leaf, || cpuid(0).eax)
    }

    fn leaf1(&self) -> (u32, u32) {
        cached(&self.leaf1, || {
            let r = cpuid(1);
            (r.ecx, r.edx)
        })
    }

    fn leaf7_ebx(&self) -> u32 {
        cached(&self.leaf7_ebx, || {
            // A processor with XSAVE enumerates its state components in leaf 0xD, so its
            // highest leaf is at least 0xD and leaf 0 need not be asked.
            let has_xsave = self.leaf1().0 & (1 << 26) != 0;
            if has_xsave || self.max_leaf() >= 7 {
                cpuid(7).ebx
            } else {
                0
            }
        })
    }

    fn ext1_ecx(&self) -> u32 {
        cached(&self.ext1_ecx, || {
            // Every x86_64 processor has leaf 0x8000_0001 (its EDX holds the long-mode bit).
            if cfg!(target_arch = "x86_64") || cpuid(0x8000_0000).eax >= 0x8000_0001 {
                cpuid(0x8000_0001).ecx
            } else {
                0
            }
        })
    }

    /// XCR0, the state the OS saves on context switches; 0 unless the OS enabled XSAVE.
    fn xcr0(&self) -> u64 {
        cached(&self.xcr0, || {
            let (ecx, _) = self.leaf1();
            let xsave = ecx & (1 << 26) != 0;
            let osxsave = ecx & (1 << 27) != 0;
            if xsave && osxsave {
                // SAFETY: the CPU has XSAVE and the OS set CR4.OSXSAVE, so xgetbv is allowed.
                unsafe { _xgetbv(0) }
            } else {
                0
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn agrees_with_std() {
        for name in super::names() {
            let std = match name {
                "sse3" => std::arch::is_x86_feature_detected!("sse3"),
                "pclmulqdq" => std::arch::is_x86_feature_detected!("pclmulqdq"),
                "ssse3" => std::arch::is_x86_feature_detected!("ssse3"),
                "fma" => std::arch::is_x86_feature_detected!("fma"),
                "cmpxchg16b" => std::arch::is_x86_feature_detected!("cmpxchg16b"),
                "sse4.1" => std::arch::is_x86_feature_detected!("sse4.1"),
                "sse4.2" => std::arch::is_x86_feature_detected!("sse4.2"),
                "movbe" => std::arch::is_x86_feature_detected!("movbe"),
                "popcnt" => std::arch::is_x86_feature_detected!("popcnt"),
                "aes" => std::arch::is_x86_feature_detected!("aes"),
                "xsave" => std::arch::is_x86_feature_detected!("xsave"),
                "avx" => std::arch::is_x86_feature_detected!("avx"),
                "f16c" => std::arch::is_x86_feature_detected!("f16c"),
                "rdrand" => std::arch::is_x86_feature_detected!("rdrand"),
                "fxsr" => std::arch::is_x86_feature_detected!("fxsr"),
                "sse" => std::arch::is_x86_feature_detected!("sse"),
                "sse2" => std::arch::is_x86_feature_detected!("sse2"),
                "bmi1" => std::arch::is_x86_feature_detected!("bmi1"),
                "avx2" => std::arch::is_x86_feature_detected!("avx2"),
                "bmi2" => std::arch::is_x86_feature_detected!("bmi2"),
                "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
                "avx512dq" => std::arch::is_x86_feature_detected!("avx512dq"),
                "rdseed" => std::arch::is_x86_feature_detected!("rdseed"),
                "adx" => std::arch::is_x86_feature_detected!("adx"),
                "avx512ifma" => std::arch::is_x86_feature_detected!("avx512ifma"),
                "avx512cd" => std::arch::is_x86_feature_detected!("avx512cd"),
                "sha" => std::arch::is_x86_feature_detected!("sha"),
                "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
                "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
                "lzcnt" => std::arch::is_x86_feature_detected!("lzcnt"),
                "sse4a" => std::arch::is_x86_feature_detected!("sse4a"),
                "tbm" => std::arch::is_x86_feature_detected!("tbm"),
                other => panic!("{other} is detected here but not compared with std"),
            };
            assert_eq!(super::Cpu::new().has(name), Some(std), "{name}");
        }
    }
}
