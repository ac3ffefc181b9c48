//! The checks made just before a slot is executed, in the spirit of OpenSSH's `StrictModes`.
//!
//! Whoever can write ROOT, ROOT/bin, ROOT/bin/PROG or the slot decides what every user of the
//! program runs, so each must be writable only by its owner, and owned by root or the user.
//! The slot must be a regular file whose ELF header names the slot's architecture (a wrong
//! file would otherwise die with "exec format error", or silently run under an emulator
//! registered with binfmt_misc). A slot that is the launcher itself (a copy, or a link to a
//! shim) is caught by the launcher it starts, which finds itself run as `.../bin/PROG/SLOT`
//! with FATBIN_DEPTH set (see `lib.rs`), so this fast path needs no check of its own.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use fatbin_layout::{perms, Arch, Layout, SlotName};

use crate::error::{io_words, shown, Error, Result};

/// Checks the directories from ROOT down to the program's directory, and those above ROOT
/// (`StrictModes`-like: see `fatbin_core::trust`), and returns the owner of ROOT, who is
/// trusted for everything below it (see `fatbin_layout::perms`).
pub fn check_layout_dirs(layout: &Layout, program: &str) -> Result<u32> {
    let root_owner = perms::check_layout_root(layout.root()).map_err(|e| refuse(program, e))?;
    perms::check_root_ancestors(layout.root(), root_owner).map_err(|e| refuse(program, e))?;
    for dir in [layout.bin_dir(), layout.program_dir(program)] {
        let meta = std::fs::metadata(&dir).map_err(|e| {
            refuse(
                program,
                fatbin_layout::Error::Io {
                    path: dir.clone(),
                    source: e,
                },
            )
        })?;
        perms::check_layout_metadata(&dir, &meta, root_owner).map_err(|e| refuse(program, e))?;
    }
    Ok(root_owner)
}

/// Checks the slot's file: ownership and mode, a regular file, the right ELF architecture.
pub fn check_slot(path: &Path, program: &str, slot: SlotName, root_owner: u32) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(format!(
                "{program}: slot `{slot}` is in the manifest but its file {} is missing; \
                 reinstall the program (or run another slot with --arch)",
                shown(path)
            )))
        }
        Err(e) => {
            return Err(Error::CannotExecute(format!(
                "{program}: cannot open slot `{slot}` ({}): {}",
                shown(path),
                io_words(&e)
            )))
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| Error::CannotExecute(format!("{program}: {}: {e}", shown(path))))?;
    if !meta.is_file() {
        return Err(Error::CannotExecute(format!(
            "{program}: slot `{slot}` ({}) is not a regular file; reinstall the program",
            shown(path)
        )));
    }
    perms::check_layout_metadata(path, &meta, root_owner).map_err(|e| refuse(program, e))?;
    check_real_path(path, program, root_owner)?;
    let mut header = [0u8; 20];
    let found = file
        .read_exact(&mut header)
        .ok()
        .and_then(|()| elf_arch(&header));
    match found {
        // A header cannot tell armv6 from armv7 (`Arch::same_elf`); install-time
        // identification did.
        Some(Ok(arch)) if arch.same_elf(slot.arch) => {}
        Some(Ok(arch)) => {
            return Err(Error::CannotExecute(format!(
                "{program}: slot `{slot}` ({}) holds a binary for {arch}, not {}; \
                 reinstall the program (`cargo fatbin verify ROOT` finds such slots)",
                shown(path),
                slot.arch
            )))
        }
        Some(Err(what)) => {
            return Err(Error::CannotExecute(format!(
                "{program}: slot `{slot}` ({}) is {what}, not a {} binary; reinstall the program",
                shown(path),
                slot.arch
            )))
        }
        None => {
            return Err(Error::CannotExecute(format!(
                "{program}: slot `{slot}` ({}) is not an ELF binary; reinstall the program",
                shown(path)
            )))
        }
    }
    Ok(())
}

/// A slot reached through a symlink (the slot, `bin/PROG` or `bin` being one) lives
/// elsewhere: whoever can write a directory on its real path could replace it, so those
/// directories get the ancestor rule too. Without symlinks the real path is the checked one.
fn check_real_path(path: &Path, program: &str, root_owner: u32) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |e| refuse(program, fatbin_layout::Error::Io { path: p, source: e })
    };
    let real = std::fs::canonicalize(path).map_err(io(path))?;
    // path is ROOT/bin/PROG/SLOT: its real path is the expected one when the real ROOT
    // (already checked, with its ancestors) is followed by plain directories.
    let under_root = path
        .ancestors()
        .nth(3)
        .map(|root| std::fs::canonicalize(root).map_err(io(root)))
        .transpose()?
        .zip(
            path.strip_prefix(path.ancestors().nth(3).unwrap_or(path))
                .ok(),
        )
        .is_some_and(|(root, rest)| real == root.join(rest));
    if under_root {
        return Ok(());
    }
    perms::check_ancestors(&real, root_owner).map_err(|e| refuse(program, e))
}

/// The owner and mode rule alone for a slot file, when it exists: for a slot another node
/// runs (from a shared ROOT, or shipped from here), where this host does not open it.
pub fn check_slot_modes(path: &Path, program: &str, root_owner: u32) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            perms::check_layout_metadata(path, &meta, root_owner).map_err(|e| refuse(program, e))
        }
        Err(_) => Ok(()),
    }
}

fn refuse(program: &str, e: fatbin_layout::Error) -> Error {
    Error::CannotExecute(format!("{program}: refusing to run: {e}"))
}

/// The architecture an ELF header names: `None` when it is not ELF at all, `Err` when it is
/// an ELF file of an architecture the layout does not know (the rule is `fatbin_core::elf`'s,
/// which the fast launcher applies too).
pub fn elf_arch(header: &[u8; 20]) -> Option<std::result::Result<Arch, String>> {
    fatbin_core::elf::arch_of(header).map(|found| found.map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// An ELF header of `machine`, 64-bit little-endian.
    fn elf(machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1];
        h.resize(18, 0);
        h.extend(machine.to_le_bytes());
        h
    }

    const X86_64: u16 = 62;
    const AARCH64: u16 = 183;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A layout in a fresh directory with `prog` and its `x86_64` slot, every mode 0755.
    fn layout() -> (tempfile::TempDir, Layout, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.program_dir("prog")).unwrap();
        let slot = layout.slot_path("prog", x86());
        std::fs::write(&slot, elf(X86_64)).unwrap();
        for path in [
            dir.path().to_owned(),
            layout.bin_dir(),
            layout.program_dir("prog"),
            slot.clone(),
        ] {
            chmod(&path, 0o755);
        }
        (dir, layout, slot)
    }

    fn x86() -> SlotName {
        "x86_64".parse().unwrap()
    }

    fn me() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }

    #[test]
    fn the_layout_directories_are_checked_down_to_the_program() {
        let (_dir, layout, _) = layout();
        assert_eq!(check_layout_dirs(&layout, "prog").unwrap(), me());
        for (dir, mode) in [
            (layout.root().to_owned(), 0o757),
            (layout.bin_dir(), 0o775),
            (layout.program_dir("prog"), 0o757),
        ] {
            chmod(&dir, mode);
            let e = check_layout_dirs(&layout, "prog").unwrap_err();
            assert_eq!(e.exit_code(), 126, "{e}");
            assert!(e.to_string().starts_with("prog: refusing to run: "), "{e}");
            chmod(&dir, 0o755);
        }
        // ROOT may have any owner, and that owner is the one trusted below it (only root
        // can give a directory away, so this part needs root).
        let other = 4242;
        if std::os::unix::fs::chown(layout.root(), Some(other), None).is_ok() {
            assert_eq!(check_layout_dirs(&layout, "prog").unwrap(), other);
        }
        let e = check_layout_dirs(&layout, "other").unwrap_err();
        assert!(e.to_string().starts_with("other: refusing to run: "), "{e}");
    }

    #[test]
    fn the_slot_must_be_a_safe_regular_file_of_its_architecture() {
        let (_dir, _layout, slot) = layout();
        let owner = me();
        check_slot(&slot, "prog", x86(), owner).unwrap();

        chmod(&slot, 0o775);
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert!(e.to_string().contains("refusing to run"), "{e}");
        chmod(&slot, 0o755);

        std::fs::write(&slot, elf(AARCH64)).unwrap();
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert!(
            e.to_string()
                .contains("holds a binary for aarch64, not x86_64"),
            "{e}"
        );
        std::fs::write(&slot, elf(0x7777)).unwrap();
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert!(e.to_string().contains(", not a x86_64 binary"), "{e}");
        std::fs::write(&slot, b"#!/bin/sh\nexit 0\n____").unwrap();
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert!(e.to_string().contains("is not an ELF binary"), "{e}");
        std::fs::write(&slot, &elf(X86_64)[..19]).unwrap();
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert!(e.to_string().contains("is not an ELF binary"), "{e}");

        std::fs::remove_file(&slot).unwrap();
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert_eq!(e.exit_code(), 127, "{e}");
        assert!(
            e.to_string().contains("is in the manifest but its file"),
            "{e}"
        );
        // A file that is there but cannot be opened is not "missing".
        std::os::unix::fs::symlink(&slot, &slot).unwrap();
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert_eq!(e.exit_code(), 126, "{e}");
        assert!(e.to_string().contains("cannot open slot `x86_64`"), "{e}");
        std::fs::remove_file(&slot).unwrap();
        std::fs::create_dir(&slot).unwrap();
        chmod(&slot, 0o755);
        let e = check_slot(&slot, "prog", x86(), owner).unwrap_err();
        assert_eq!(e.exit_code(), 126, "{e}");
        assert!(e.to_string().contains("is not a regular file"), "{e}");
    }

    /// A slot that is a symlink is checked on its real path: a directory others can write
    /// there could replace it.
    #[test]
    fn a_slot_reached_through_a_symlink_is_checked_where_it_lives() {
        let (_dir, _layout, slot) = layout();
        let elsewhere = tempfile::tempdir().unwrap();
        let real_dir = elsewhere.path().join("real");
        std::fs::create_dir(&real_dir).unwrap();
        chmod(elsewhere.path(), 0o755);
        chmod(&real_dir, 0o755);
        let real = real_dir.join("x86_64");
        std::fs::rename(&slot, &real).unwrap();
        std::os::unix::fs::symlink(&real, &slot).unwrap();
        check_slot(&slot, "prog", x86(), me()).unwrap();
        // The file's directory is fine; the one above it is writable by others.
        chmod(elsewhere.path(), 0o777);
        let e = check_slot(&slot, "prog", x86(), me()).unwrap_err();
        assert!(e.to_string().contains("refusing to run"), "{e}");
        // A sticky one, like /tmp, is not a danger.
        chmod(elsewhere.path(), 0o1777);
        check_slot(&slot, "prog", x86(), me()).unwrap();
    }

    #[test]
    fn the_slot_modes_alone_for_a_slot_another_node_runs() {
        let (_dir, _layout, slot) = layout();
        check_slot_modes(&slot, "prog", me()).unwrap();
        chmod(&slot, 0o757);
        let e = check_slot_modes(&slot, "prog", me()).unwrap_err();
        assert!(e.to_string().starts_with("prog: refusing to run: "), "{e}");
        std::fs::remove_file(&slot).unwrap();
        check_slot_modes(&slot, "prog", me()).unwrap();
    }
}
