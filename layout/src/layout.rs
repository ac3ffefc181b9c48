//! Paths inside a layout root and reading what is installed there.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::manifest::{Manifest, MANIFEST_FILE};
use crate::names::program_name_problem;
use crate::slot::SlotName;

/// A layout root: `ROOT/bin/PROG/SLOT`, `ROOT/shims/PROG`, `ROOT/nodes.toml`.
///
/// Every path is derived from the root, so a layout can be mounted anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    pub fn shims_dir(&self) -> PathBuf {
        self.root.join("shims")
    }

    /// The cluster's nodes (reserved; see `docs/layout.md`).
    pub fn nodes_file(&self) -> PathBuf {
        self.root.join("nodes.toml")
    }

    pub fn program_dir(&self, program: &str) -> PathBuf {
        self.bin_dir().join(program)
    }

    pub fn manifest_path(&self, program: &str) -> PathBuf {
        self.program_dir(program).join(MANIFEST_FILE)
    }

    pub fn slot_path(&self, program: &str, slot: SlotName) -> PathBuf {
        self.program_dir(program).join(slot.to_string())
    }

    /// The file that holds `slot`'s binary, as `info` (its manifest entry) records it: the
    /// content file `ROOT/bin/PROG/SLOT.<hex>`, or `ROOT/bin/PROG/SLOT` for a manifest written
    /// before content files. What launchers run, check and hand to other nodes.
    pub fn slot_file(&self, program: &str, slot: SlotName, info: &crate::SlotInfo) -> PathBuf {
        self.program_dir(program).join(info.file_name(slot))
    }

    /// [`Layout::slot_file`] of `slot` as `manifest` records it (`SLOT` when it has no such
    /// slot).
    pub fn file_of(&self, manifest: &Manifest, program: &str, slot: SlotName) -> PathBuf {
        match manifest.slots.get(&slot) {
            Some(info) => self.slot_file(program, slot, info),
            None => self.slot_path(program, slot),
        }
    }

    pub fn shim_path(&self, program: &str) -> PathBuf {
        self.shims_dir().join(program)
    }

    /// Reads a program's manifest; a missing program directory is [`Error::NoSuchProgram`].
    pub fn read_manifest(&self, program: &str) -> Result<Manifest> {
        validate_program_name(program)?;
        let path = self.manifest_path(program);
        match Manifest::read(&path) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NoSuchProgram {
                    program: program.to_owned(),
                    root: self.root.clone(),
                })
            }
            other => other,
        }
    }

    /// The names of the installed programs, sorted. Entries that are not valid program
    /// directories (temporary files, stray files) are skipped.
    pub fn programs(&self) -> Result<Vec<String>> {
        let bin = self.bin_dir();
        let mut names = entry_names(&bin)?;
        names.retain(|name| program_name_problem(name).is_none() && bin.join(name).is_dir());
        Ok(names)
    }
}

/// The UTF-8 names in directory `dir`, sorted; none when it does not exist. (Other names are
/// never a program's.)
pub(crate) fn entry_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                source: e,
            })
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        if let Ok(name) = entry.map_err(Error::io(dir))?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Refuses names that cannot be a program directory.
pub fn validate_program_name(name: &str) -> Result<()> {
    match program_name_problem(name) {
        None => Ok(()),
        Some(why) => Err(Error::InvalidProgramName {
            name: name.to_owned(),
            why,
        }),
    }
}

/// The per-user default ROOT both front ends use when nothing names one:
/// `$XDG_DATA_HOME/fatbin`, else `~/.local/share/fatbin`; `None` when HOME is not set either.
pub fn default_root() -> Option<PathBuf> {
    Some(xdg_dir("XDG_DATA_HOME", ".local/share")?.join("fatbin"))
}

/// An XDG base directory: `$VAR` when it is an absolute path, else `$HOME/HOME_DEFAULT`;
/// `None` when neither is usable. The XDG Base Directory specification says a relative value
/// is invalid and must be ignored (it would name a different directory in every working
/// directory), and so is a relative HOME here.
pub fn xdg_dir(var: &str, home_default: &str) -> Option<PathBuf> {
    xdg_dir_from(
        std::env::var_os(var).as_deref(),
        std::env::var_os("HOME").as_deref(),
        home_default,
    )
}

fn xdg_dir_from(
    value: Option<&std::ffi::OsStr>,
    home: Option<&std::ffi::OsStr>,
    home_default: &str,
) -> Option<PathBuf> {
    let absolute = |v: &std::ffi::OsStr| Path::new(v).is_absolute().then(|| PathBuf::from(v));
    value
        .and_then(absolute)
        .or_else(|| home.and_then(absolute).map(|h| h.join(home_default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_dirs_ignore_empty_and_relative_values() {
        let os = |s: &'static str| Some(std::ffi::OsStr::new(s));
        let dir = |v, h| xdg_dir_from(v, h, ".cache");
        assert_eq!(dir(os("/x"), os("/h")), Some(PathBuf::from("/x")));
        assert_eq!(dir(os(""), os("/h")), Some(PathBuf::from("/h/.cache")));
        assert_eq!(dir(os("rel"), os("/h")), Some(PathBuf::from("/h/.cache")));
        assert_eq!(dir(None, os("/h")), Some(PathBuf::from("/h/.cache")));
        assert_eq!(dir(None, os("")), None);
        assert_eq!(dir(os("rel"), os("home")), None);
    }
}
