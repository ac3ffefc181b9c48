//! Refusing to run from places others can write to, in the spirit of OpenSSH's `StrictModes`.
//!
//! If a group or other users can write a layout directory or a slot, they can replace what
//! every user of the program runs. The launcher checks the chain ROOT -> ROOT/bin ->
//! ROOT/bin/PROG -> slot before it executes anything.

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
    let mode = meta.mode();
    let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (_, true) => Some("others"),
        (true, false) => Some("its group"),
        (false, false) => None,
    };
    if let Some(who) = who {
        return Err(Error::UnsafePermissions {
            path: path.to_owned(),
            who,
        });
    }
    let owner = meta.uid();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if owner != 0 && owner != me {
        return Err(Error::UnsafeOwner {
            path: path.to_owned(),
            owner,
        });
    }
    Ok(())
}
