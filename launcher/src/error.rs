//! Launcher failures and the one place that maps them to exit statuses.
//!
//! The statuses follow the shell's conventions (POSIX "Command Search and Execution"), so
//! scripts can tell them apart from the program's own: 127 when the program or the requested
//! slot is not there, 126 when it is there but cannot be run here, 2 for a usage error.

use std::fmt;

// The numbers are shared with migration: one definition, in the layout crate.
pub use fatbin_layout::exit::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_USAGE};

/// A failure, with the message the user reads (what happened, to what, what to do).
#[derive(Debug)]
pub enum Error {
    Usage(String),
    NotFound(String),
    CannotExecute(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::NotFound(_) => EXIT_NOT_FOUND,
            Error::CannotExecute(_) => EXIT_CANNOT_EXECUTE,
        }
    }

    /// Wraps a layout-library error, choosing "not found" or "cannot execute" by its kind.
    pub fn from_layout(e: fatbin_layout::Error) -> Error {
        use fatbin_layout::Error as E;
        match e {
            E::NoSuchProgram { .. } | E::NoSuchSlot { .. } => Error::NotFound(e.to_string()),
            E::InvalidProgramName { .. } | E::InvalidSlotName(_) => Error::Usage(e.to_string()),
            E::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NotFound(e.to_string())
            }
            _ => Error::CannotExecute(e.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::NotFound(m) | Error::CannotExecute(m) => f.write_str(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A path as messages show it: resolved (`ROOT/shims/..` becomes the real ROOT) when it can
/// be, else as given. Only used on the way to an error or a report, never on the fast path.
pub fn shown(path: &std::path::Path) -> String {
    if let Ok(real) = path.canonicalize() {
        return real.display().to_string();
    }
    match (
        path.parent().map(std::path::Path::canonicalize),
        path.file_name(),
    ) {
        (Some(Ok(dir)), Some(name)) => dir.join(name).display().to_string(),
        _ => path.display().to_string(),
    }
}

/// An I/O error in words, naming symlink loops plainly (C libraries word ELOOP differently).
pub fn io_words(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "it is a symlink loop (too many levels of symbolic links)".into(),
        _ => e.to_string(),
    }
}
