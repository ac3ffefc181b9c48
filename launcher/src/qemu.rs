//! Running a slot under qemu-user when this host cannot run it natively.
//!
//! Debian's `qemu-user-static` installs `qemu-<arch>-static`; other packagings install
//! `qemu-<arch>`. Both are looked up in PATH, the static one first.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use fatbin_layout::{Arch, Libc, SlotInfo, SlotName};

use crate::invocation::search_path;

/// The emulator for `arch` on PATH, if one is installed.
pub fn find(arch: Arch) -> Option<PathBuf> {
    let name = arch.qemu_name();
    [format!("qemu-{name}-static"), format!("qemu-{name}")]
        .into_iter()
        .find_map(|n| search_path(OsStr::new(&n)))
}

/// The emulator's command line: `qemu [-cpu max] [-L PREFIX] [-0 ARGV0] SLOT ARGS...`.
///
/// `-0` keeps argv[0] as the user typed it. `-cpu max` is added when the slot needs CPU
/// features, because qemu's default x86_64 CPU (qemu64) has none beyond the baseline; a
/// `QEMU_CPU` the user set wins. glibc slots get Debian's cross sysroot (`/usr/<triple>`) as
/// their library prefix when it exists and `QEMU_LD_PREFIX` is not set.
pub fn argv(
    qemu: &Path,
    slot: SlotName,
    info: &SlotInfo,
    slot_path: &Path,
    argv0: Option<&OsStr>,
    args: &[OsString],
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![qemu.as_os_str().to_owned()];
    let needs_features = !info.features.is_empty() || slot.level.is_some();
    if needs_features && std::env::var_os("QEMU_CPU").is_none() {
        argv.extend(["-cpu".into(), "max".into()]);
    }
    if info.libc == Libc::Glibc && std::env::var_os("QEMU_LD_PREFIX").is_none() {
        // Debian's multiarch cross sysroot (the processor table's `sysroot`).
        let prefix = Path::new(slot.arch.info().sysroot);
        if prefix.is_dir() {
            argv.extend(["-L".into(), prefix.as_os_str().to_owned()]);
        }
    }
    if let Some(argv0) = argv0 {
        argv.extend(["-0".into(), argv0.to_owned()]);
    }
    argv.push(slot_path.as_os_str().to_owned());
    argv.extend(args.iter().cloned());
    argv
}
