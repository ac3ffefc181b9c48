//! Refusing to run from places others can write to, in the spirit of OpenSSH's `StrictModes`.
//!
//! If a group or other users can write a layout directory or a slot, they can replace what
//! every user of the program runs. The launcher checks the chain ROOT -> ROOT/bin ->
//! ROOT/bin/PROG -> slot before it executes anything.
//!
//! Owners: a path may be owned by root, by the user running the check, or by the owner of the
//! layout root. Choosing a layout is trusting whoever owns its root (a shared ROOT installed by
//! an admin account is meant to be run by everyone), but nobody else: a slot owned by a third
//! account is refused.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

fn check_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let mode = meta.mode();
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => Some("others"),
        (true, false) => Some("its group"),
        (false, false) => None,
    };
    match who {
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
    let me = unsafe { libc::geteuid() };
    if owner == 0 || owner == me || Some(owner) == also_trusted {
        return Ok(());
    }
    Err(Error::UnsafeOwner {
        path: path.to_owned(),
        owner,
    })
}
