//! Reading a program's manifest out of a layout that may be broken or hostile.
//!
//! The manifest is read by the layout's one reader (`fatbin_layout::manifest::read_text`),
//! which opens it non-blocking and checks it is a regular file before it reads it, so a FIFO
//! or a device planted in its place fails at once instead of hanging the launcher.

use std::path::Path;

use fatbin_layout::{validate_program_name, Layout, Manifest};

use crate::error::{io_words, shown, Error, Result};

/// Reads and parses `program`'s manifest, with errors that say what to do.
pub fn read_manifest(layout: &Layout, program: &str) -> Result<Manifest> {
    validate_program_name(program).map_err(|e| Error::NotFound(e.to_string()))?;
    let path = layout.manifest_path(program);
    let corrupt = |why: String| {
        Error::CannotExecute(format!(
            "{}: corrupt manifest: {why} (reinstall `{program}`, or remove {})",
            shown(&path),
            shown(&layout.program_dir(program))
        ))
    };
    // The layout's one reader: non-blocking, regular files only, one size limit.
    let text = match fatbin_layout::manifest::read_text(&path) {
        Ok(text) => text,
        // ENOTDIR: `ROOT/bin/PROG` is no directory, as when a user's alias `~/bin/mycat ->
        // ROOT/shims/cat` makes `~` look like a ROOT: not installed here either.
        Err(fatbin_layout::Error::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound
                || source.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return Err(not_installed(layout, program))
        }
        Err(fatbin_layout::Error::Io { source, .. }) => {
            return Err(Error::CannotExecute(format!(
                "cannot read the manifest of `{program}`: {}: {}",
                shown(&path),
                io_words(&source)
            )))
        }
        Err(fatbin_layout::Error::CorruptManifest { why, .. }) => return Err(corrupt(why)),
        Err(other) => return Err(Error::CannotExecute(other.to_string())),
    };
    if let Some(manifest) = crate::quick::parse(&text) {
        return Ok(manifest);
    }
    Manifest::parse(&text, &path).map_err(|e| match e {
        fatbin_layout::Error::CorruptManifest { why, .. } => corrupt(why),
        other => Error::CannotExecute(other.to_string()),
    })
}

/// The error for a program whose manifest is missing: which part of the path is missing.
fn not_installed(layout: &Layout, program: &str) -> Error {
    let root = layout.root();
    if !root.is_dir() {
        return Error::NotFound(format!(
            "{program}: layout root {} does not exist (set FATBIN_ROOT or pass --root)",
            shown(root)
        ));
    }
    let dir = layout.program_dir(program);
    if dir.is_dir() {
        return Error::NotFound(format!(
            "{program}: {} has no manifest ({}); reinstall the program",
            shown(&dir),
            fatbin_layout::MANIFEST_FILE
        ));
    }
    let installed = layout.programs().unwrap_or_default();
    let list = match installed.len() {
        0 => "none".to_owned(),
        n if n > 12 => format!("{}, and {} more", installed[..12].join(", "), n - 12),
        _ => installed.join(", "),
    };
    Error::NotFound(format!(
        "{program}: not installed in {} (installed: {list})",
        display_root(root)
    ))
}

/// ROOT for messages.
pub fn display_root(root: &Path) -> String {
    shown(root).to_string()
}
