//! Launcher failures and the one place that maps them to exit statuses.
//!
//! The statuses follow the shell's conventions (POSIX "Command Search and Execution"), so
//! scripts can tell them apart from the program's own: 127 when the program or the requested
//! slot is not there, 126 when it is there but cannot be run here, 2 for a usage error.

use std::fmt;

/// Bad command line or environment value.
pub const EXIT_USAGE: i32 = 2;
/// Found, but cannot be executed here (see docs/launcher.md for every case).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// The program, the layout root or the requested slot does not exist.
pub const EXIT_NOT_FOUND: i32 = 127;

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
