//! Which CPU features this host has, as far as the `no_std` fast launcher can tell without
//! std's detection; the full launcher's `Host::has_feature` answers the same way for these
//! names (its tests compare the two).

/// Names that are not CPU features but show up in `rustc --print cfg` output and so may be
/// recorded in a manifest; they never stop a slot from running.
pub const ALWAYS_SATISFIED: &[&str] = &["crt-static"];

/// The x86_64 baseline every x86_64 processor has (not every one has a detection name).
pub const X86_64_BASELINE: &[&str] = &["x87", "fxsr", "sse", "sse2"];

/// Whether this host has target feature `name`, or `None` for names only std's detection
/// knows (then the full launcher asks).
#[derive(Debug, Default)]
pub struct HostFeatures {
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    cpu: crate::cpuid::Cpu,
}

impl HostFeatures {
    pub const fn new() -> HostFeatures {
        HostFeatures {
            #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
            cpu: crate::cpuid::Cpu::new(),
        }
    }

    pub fn has(&self, name: &str) -> Option<bool> {
        if ALWAYS_SATISFIED.contains(&name) {
            return Some(true);
        }
        #[cfg(target_arch = "x86_64")]
        if X86_64_BASELINE.contains(&name) {
            return Some(true);
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
        return self.cpu.has(name);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
        None
    }
}
