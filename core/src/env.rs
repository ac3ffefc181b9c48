//! The environment variables both launchers read or set, and their limits.

/// The layout root, when not the shim's own (`ROOT/shims/..`).
pub const ROOT_VAR: &str = "FATBIN_ROOT";
/// A forced slot: run it natively if the host can, else under qemu.
pub const ARCH_VAR: &str = "FATBIN_ARCH";
/// What to try when no slot runs natively (grammar: [`crate::fallback`]).
pub const FALLBACK_VAR: &str = "FATBIN_FALLBACK";
/// The recursion guard: how many launcher runs led to this process.
pub const DEPTH_VAR: &str = "FATBIN_DEPTH";
/// More nested launcher runs than this is a loop (recursive `make` is a few levels deep).
pub const MAX_DEPTH: u32 = 40;
/// The path the caller executed, handed from the fast launcher to the full one (the
/// kernel's `AT_EXECFN` would name `fatbin-full`); the full launcher removes it at once.
pub const EXECFN_VAR: &str = "FATBIN_EXECFN";

/// The recursion guard's value: a decimal count, 0 when unset or unreadable.
pub fn depth(value: Option<&[u8]>) -> u32 {
    value
        .and_then(|v| core::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_reads_counts() {
        assert_eq!(depth(None), 0);
        assert_eq!(depth(Some(b"7")), 7);
        assert_eq!(depth(Some(b"x")), 0);
        assert_eq!(depth(Some(b"")), 0);
    }
}
