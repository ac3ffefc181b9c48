//! What lives in `ROOT/shims`: telling fatbin's own shims from anything else there, and the
//! shims whose program is gone.
//!
//! A shim outlives its program when `ROOT/bin/PROG` goes some other way than `cargo fatbin
//! remove` (deleted by hand, a crash, another tool editing the layout). Typing its name then
//! fails with "not installed", and until now nothing showed it or could remove it: `list`
//! walks `ROOT/bin`, and `remove` wants a program. [`orphan_shims`] finds them for `list` and
//! `verify`; [`remove_program_or_shim`] is `remove` that also takes such a shim away.
//!
//! Only what fatbin writes is ever removed. A shim is recognised by the rule the launcher
//! itself applies to what starts it (`launcher/src/invocation.rs`):
//!
//! - a symbolic link whose target's file name is `fatbin`: what an install writes
//!   (`PROG -> fatbin`, relative) and any link straight to a launcher of that name. The
//!   launcher ends an alias chain at such a link;
//! - a regular file that is exactly one `#!` line naming an absolute `fatbin` or
//!   `fatbin-full` (what `--script-shims` writes, byte for byte [`script_shim_text`]): the
//!   launcher takes exactly those interpreters as a `#!` shim call.
//!
//! `ROOT/shims/fatbin` is the launcher's own entry (a symlink to the node's launcher, a `#!`
//! shim, or the portable `#!/bin/sh` shim), which every program shim goes through: it has no
//! program by design and is never an orphan. Names that are not program names (a `.` first:
//! a shim being replaced) are skipped. Anything else (a user's own script, a link to another
//! shim, a directory) is not ours: it is named as such and left alone.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{sync_dir, LayoutLock};
use crate::install::{remove_program, script_shim_text, ShimForm};
use crate::layout::{entry_names, Layout};
use crate::names::program_name_problem;

/// The launcher's file name: `ROOT/shims/fatbin` is its entry, and program shims lead to it.
pub const LAUNCHER_SHIM: &str = "fatbin";
/// The full launcher's file name, which a `#!` shim may also name.
const FULL_LAUNCHER: &str = "fatbin-full";
/// No `#!` shim is longer than the `#!` line Linux reads (BINPRM_BUF_SIZE).
const MAX_SCRIPT_SHIM: u64 = 256;

/// What a file in `ROOT/shims` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShimKind {
    /// A shim fatbin writes, in this form.
    Fatbin(ShimForm),
    /// Something else, described for a message ("a symlink to /usr/bin/vim").
    Foreign(String),
}

/// Says what `path` (an entry of `ROOT/shims`) is, without following it; an error when it
/// cannot be read (it does not exist).
pub fn shim_kind(path: &Path) -> std::io::Result<ShimKind> {
    let meta = std::fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = std::fs::read_link(path)?;
        if target.file_name().is_some_and(|n| n == LAUNCHER_SHIM) {
            return Ok(ShimKind::Fatbin(ShimForm::Link));
        }
        return Ok(ShimKind::Foreign(format!(
            "a symlink to {}, not to the launcher `{LAUNCHER_SHIM}`",
            target.display()
        )));
    }
    if kind.is_file() {
        if meta.len() <= MAX_SCRIPT_SHIM && is_script_shim(path) {
            return Ok(ShimKind::Fatbin(ShimForm::Script));
        }
        return Ok(ShimKind::Foreign(format!(
            "a file, not one `#!` line naming the launcher `{LAUNCHER_SHIM}`"
        )));
    }
    let what = if kind.is_dir() {
        "a directory"
    } else {
        "not a file (a FIFO, a socket or a device)"
    };
    Ok(ShimKind::Foreign(what.to_owned()))
}

/// Whether the regular file at `path` holds exactly the `#!` shim an install writes for a
/// launcher named `fatbin` or `fatbin-full`.
fn is_script_shim(path: &Path) -> bool {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = Vec::new();
    // No following a link and no blocking on a FIFO swapped in since the lstat.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let Ok(file) = opened else { return false };
    if !file.metadata().is_ok_and(|m| m.is_file())
        || file
            .take(MAX_SCRIPT_SHIM + 1)
            .read_to_end(&mut bytes)
            .is_err()
    {
        return false;
    }
    let Some(line) = bytes
        .strip_prefix(b"#!")
        .and_then(|rest| rest.strip_suffix(b"\n"))
    else {
        return false;
    };
    let launcher = Path::new(std::ffi::OsStr::from_bytes(line));
    launcher
        .file_name()
        .is_some_and(|n| n == LAUNCHER_SHIM || n == FULL_LAUNCHER)
        && script_shim_text(launcher).is_ok_and(|text| text == bytes)
}

/// A fatbin shim in `ROOT/shims` whose program `ROOT/bin/PROG` is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanShim {
    pub program: String,
    pub path: PathBuf,
    pub form: ShimForm,
}

impl OrphanShim {
    /// How `list` shows it, with what removes it (`cargo fatbin list` and `fatbin list` say
    /// the same): `(shim without a program: PATH; `cargo fatbin remove PROG` removes it)`.
    pub fn listing(&self) -> String {
        orphan_listing(&self.program, &self.path)
    }
}

/// [`OrphanShim::listing`] for the shim at `path` of `program`.
pub fn orphan_listing(program: &str, path: &Path) -> String {
    format!(
        "(shim without a program: {}; `cargo fatbin remove {program}` removes it)",
        path.display()
    )
}

/// Whether `program` has a program directory: the test `list` and the launcher apply (a
/// directory, or a symlink to one: an alias).
fn installed(layout: &Layout, program: &str) -> bool {
    layout.program_dir(program).is_dir()
}

/// The fatbin shims of `layout` whose program is gone, sorted by name. Files that are not
/// fatbin shims are not listed: they are not ours to report (see the module comment).
pub fn orphan_shims(layout: &Layout) -> Result<Vec<OrphanShim>> {
    Ok(entry_names(&layout.shims_dir())?
        .iter()
        .filter_map(|program| orphan_shim(layout, program))
        .collect())
}

/// `ROOT/shims/PROG` when it is a fatbin shim and `PROG` is not installed.
pub fn orphan_shim(layout: &Layout, program: &str) -> Option<OrphanShim> {
    if program == LAUNCHER_SHIM
        || program_name_problem(program).is_some()
        || installed(layout, program)
    {
        return None;
    }
    let path = layout.shim_path(program);
    match shim_kind(&path) {
        Ok(ShimKind::Fatbin(form)) => Some(OrphanShim {
            program: program.to_owned(),
            path,
            form,
        }),
        _ => None,
    }
}

/// What [`remove_program_or_shim`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// The program's directory, and its shim.
    Program,
    /// Only the shim at this path: its program was already gone.
    OrphanShim(PathBuf),
}

/// Removes `program` ([`remove_program`]) or, when only its shim is left, that shim: what
/// `cargo fatbin remove PROG` does. `ROOT/shims/PROG` is removed only if fatbin wrote it (see
/// the module comment); anything else there is [`Error::NotOurShim`], left as it is. Nothing
/// there at all is [`Error::NoSuchProgram`], as before.
pub fn remove_program_or_shim(layout: &Layout, program: &str) -> Result<Removed> {
    match remove_program(layout, program) {
        Err(Error::NoSuchProgram { .. }) => {}
        other => return other.map(|()| Removed::Program),
    }
    let not_installed = || Error::NoSuchProgram {
        program: program.to_owned(),
        root: layout.root().to_owned(),
    };
    // The launcher's own entry is never a program's shim.
    if program == LAUNCHER_SHIM {
        return Err(not_installed());
    }
    let shim = layout.shim_path(program);
    // Installers hold the lock while they create a program, and write its shim after it: under
    // the lock, a missing program directory is not one being installed. (With no `bin` at all
    // there is no install to wait for, and removing never creates a layout.)
    let _lock = if layout.bin_dir().is_dir() {
        Some(LayoutLock::acquire(&layout.bin_dir())?)
    } else {
        None
    };
    if installed(layout, program) {
        // Installed since the first look: remove it as asked.
        drop(_lock);
        return remove_program(layout, program).map(|()| Removed::Program);
    }
    match shim_kind(&shim) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(not_installed()),
        Err(e) => Err(Error::Io {
            path: shim,
            source: e,
        }),
        Ok(ShimKind::Foreign(what)) => Err(Error::NotOurShim {
            program: program.to_owned(),
            root: layout.root().to_owned(),
            path: shim,
            what,
        }),
        Ok(ShimKind::Fatbin(_)) => {
            std::fs::remove_file(&shim).map_err(Error::io(&shim))?;
            sync_dir(&layout.shims_dir())?;
            Ok(Removed::OrphanShim(shim))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(dir: &Path, name: &str) -> ShimKind {
        shim_kind(&dir.join(name)).unwrap()
    }

    #[test]
    fn every_shim_form_an_install_writes_is_fatbins_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let link = |name: &str, target: &str| std::os::unix::fs::symlink(target, d.join(name));
        link("tool", "fatbin").unwrap();
        link("direct", "/usr/local/bin/fatbin").unwrap();
        link("alias", "cat").unwrap();
        link("vi", "/usr/bin/vim").unwrap();
        let file = |name: &str, text: &[u8]| std::fs::write(d.join(name), text).unwrap();
        file(
            "script",
            &script_shim_text(Path::new("/usr/local/bin/fatbin")).unwrap(),
        );
        file("full", b"#!/opt/x/fatbin-full\n");
        file("sh", b"#!/bin/sh\n");
        file("more", b"#!/usr/local/bin/fatbin\necho more\n");
        file("relative", b"#!fatbin\n");
        file("no-newline", b"#!/usr/local/bin/fatbin");
        file("blank", b"#!/usr/local/bin/fatbin \n");
        std::fs::create_dir(d.join("dir")).unwrap();

        for name in ["tool", "direct"] {
            assert_eq!(kind_of(d, name), ShimKind::Fatbin(ShimForm::Link), "{name}");
        }
        for name in ["script", "full"] {
            assert_eq!(
                kind_of(d, name),
                ShimKind::Fatbin(ShimForm::Script),
                "{name}"
            );
        }
        for name in [
            "alias",
            "vi",
            "sh",
            "more",
            "relative",
            "no-newline",
            "blank",
            "dir",
        ] {
            assert!(
                matches!(kind_of(d, name), ShimKind::Foreign(_)),
                "{name}: {:?}",
                kind_of(d, name)
            );
        }
        assert!(shim_kind(&d.join("absent")).is_err());
    }

    #[test]
    fn orphans_are_fatbin_shims_without_a_program_directory() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let shims = layout.shims_dir();
        std::fs::create_dir_all(&shims).unwrap();
        std::fs::create_dir_all(layout.program_dir("kept")).unwrap();
        // An alias of a program directory counts as installed, as it does for `list`.
        std::os::unix::fs::symlink("kept", layout.program_dir("aka")).unwrap();
        for name in ["fatbin", "kept", "aka", "gone", ".gone.tmp-1-1"] {
            std::os::unix::fs::symlink("fatbin", shims.join(name)).unwrap();
        }
        std::fs::write(shims.join("mine"), b"#!/bin/sh\necho mine\n").unwrap();
        let orphans = orphan_shims(&layout).unwrap();
        assert_eq!(
            orphans,
            [OrphanShim {
                program: "gone".into(),
                path: shims.join("gone"),
                form: ShimForm::Link,
            }]
        );
        // No shims directory: none.
        let empty = tempfile::tempdir().unwrap();
        assert!(orphan_shims(&Layout::new(empty.path())).unwrap().is_empty());
    }
}
