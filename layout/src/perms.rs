//! Refusing to run from places others can write to, in the spirit of OpenSSH's `StrictModes`.
//!
//! The rule itself (who may write, who may own) is `fatbin_core::trust`, which both
//! launchers apply; this module applies it to paths and says what is wrong. The launcher
//! checks the chain ROOT -> ROOT/bin -> ROOT/bin/PROG -> slot before it executes anything.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use fatbin_core::trust;

use crate::error::{Error, Result};

/// Fails when `path` (followed through symlinks) is writable by group or others, or is owned
/// by someone other than root or the current user.
pub fn check_not_writable_by_others(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(Error::io(path))?;
    check_metadata(path, &meta)
}

/// [`check_not_writable_by_others`] for metadata already at hand (saves a `stat`).
pub fn check_metadata(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    check_mode(path, meta)?;
    check_owner(path, meta, None)
}

/// Like [`check_metadata`] for a path inside a layout whose root is owned by `root_owner`:
/// that owner is trusted too.
pub fn check_layout_metadata(path: &Path, meta: &std::fs::Metadata, root_owner: u32) -> Result<()> {
    check_mode(path, meta)?;
    check_owner(path, meta, Some(root_owner))
}

/// Checks the layout root itself and returns its owner, the one account (besides root and the
/// user) trusted for the paths below it. The root may have any owner: using it trusts them.
pub fn check_layout_root(root: &Path) -> Result<u32> {
    let meta = std::fs::metadata(root).map_err(Error::io(root))?;
    check_mode(root, &meta)?;
    Ok(meta.uid())
}

/// Checks the directories above the layout root `root` (owned by `root_owner`), as OpenSSH's
/// `StrictModes` checks the path to `authorized_keys` (`fatbin_core::trust::ancestor_trusted`):
/// those of the path as given, and those of its real path when symlinks lead elsewhere.
pub fn check_root_ancestors(root: &Path, root_owner: u32) -> Result<()> {
    let given = std::path::absolute(root).map_err(Error::io(root))?;
    let real = std::fs::canonicalize(root).map_err(Error::io(root))?;
    check_ancestors(&given, root_owner)?;
    if real != given {
        check_ancestors(&real, root_owner)?;
    }
    Ok(())
}

/// Checks every directory above `path` (not `path` itself) with the ancestor rule.
pub fn check_ancestors(path: &Path, root_owner: u32) -> Result<()> {
    for dir in path.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(Error::io(dir))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = || unsafe { libc::geteuid() };
        if trust::ancestor_trusted(meta.mode(), meta.uid(), root_owner, me) {
            continue;
        }
        check_owner(dir, &meta, Some(root_owner))?;
        return Err(Error::UnsafeAncestor {
            path: dir.to_owned(),
            who: trust::other_writers(meta.mode()).unwrap_or("others"),
        });
    }
    Ok(())
}

fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    match trust::other_writers(meta.mode()) {
        Some(who) => Err(Error::UnsafePermissions {
            path: path.to_owned(),
            who,
        }),
        None => Ok(()),
    }
}

fn check_owner(path: &Path, meta: &std::fs::Metadata, also_trusted: Option<u32>) -> Result<()> {
    let owner = meta.uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if trust::owner_trusted(owner, also_trusted, || unsafe { libc::geteuid() }) {
        return Ok(());
    }
    Err(Error::UnsafeOwner {
        path: path.to_owned(),
        owner,
    })
}
