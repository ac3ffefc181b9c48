//! Errors of the layout library: each says what failed, on which path, and what to do.

use std::io;
use std::path::PathBuf;

use crate::slot::SlotName;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid program name `{name}`: {why}")]
    InvalidProgramName { name: String, why: &'static str },

    #[error(transparent)]
    InvalidSlotName(#[from] crate::slot::InvalidSlotName),

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{path}: not a usable binary for slot `{slot}`: {why}")]
    SlotMismatch {
        path: PathBuf,
        slot: SlotName,
        why: String,
    },

    #[error("{path}: corrupt manifest: {why} (reinstall the program, or remove the directory)")]
    CorruptManifest { path: PathBuf, why: String },

    #[error("{path}: manifest format {found} is newer than this fatbin understands ({supported}); upgrade fatbin")]
    UnsupportedFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "{path} is writable by {who}, who could replace what runs; fix it with `chmod go-w {path}`"
    )]
    UnsafePermissions { path: PathBuf, who: &'static str },

    #[error(
        "{path} is writable by {who} and not sticky, so they could move the layout below it aside and put their own in its place; fix it with `chmod go-w {path}` (or `chmod +t {path}` for a shared directory like /tmp)"
    )]
    UnsafeAncestor { path: PathBuf, who: &'static str },

    #[error("{path} is owned by uid {owner}, which is neither root, you, nor the owner of the layout root; anyone with that uid could replace what runs (fix: chown it to the layout owner)")]
    UnsafeOwner { path: PathBuf, owner: u32 },

    #[error("program `{program}` is not installed in {root}")]
    NoSuchProgram { program: String, root: PathBuf },

    #[error("program `{program}` is not installed in {root}, and {path} is {what}: not a shim fatbin wrote, so it was left as it is (remove it yourself if nothing needs it)", root = root.display(), path = path.display())]
    NotOurShim {
        program: String,
        root: PathBuf,
        path: PathBuf,
        what: String,
    },

    #[error("program `{program}` is a link to {target}: remove the slot from the program there, or remove `{program}` itself (the link and its shim)", target = target.display())]
    LinkedProgram { program: String, target: PathBuf },

    #[error("program `{program}` has no slot `{slot}` (slots: {present})")]
    NoSuchSlot {
        program: String,
        slot: SlotName,
        present: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
