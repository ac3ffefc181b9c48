//! Errors of `cargo fatbin` and the one place that maps them to documented exit codes
//! (see `docs/cargo-fatbin.md`, "Exit codes").

use std::path::PathBuf;

/// Exit codes, documented in `docs/cargo-fatbin.md`. Never renumber one.
pub(crate) mod exit_code {
    /// Everything worked.
    pub(crate) const SUCCESS: u8 = 0;
    /// Something failed at run time: a file could not be written, a layout is damaged.
    pub(crate) const FAILURE: u8 = 1;
    /// The command line or the configuration is wrong (clap also uses 2).
    pub(crate) const USAGE: u8 = 2;
    /// A toolchain piece is missing (standard library, linker, C compiler): nothing was built.
    pub(crate) const TOOLCHAIN: u8 = 3;
    /// cargo itself failed (a compile error, a failed link, a failed download).
    pub(crate) const CARGO: u8 = 4;
    /// `verify` found a layout that does not match its manifests.
    pub(crate) const VERIFY: u8 = 5;
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{summary}")]
    Toolchain { summary: String },
    #[error("{0}")]
    Cargo(String),
    #[error("could not run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] fatbin_layout::Error),
    #[error("{count} problem(s) found in {root}")]
    Verify { root: PathBuf, count: usize },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub(crate) fn usage(msg: impl Into<String>) -> Error {
        Error::Usage(msg.into())
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit_code::USAGE,
            Error::Layout(fatbin_layout::Error::InvalidProgramName { .. })
            | Error::Layout(fatbin_layout::Error::InvalidSlotName(_)) => exit_code::USAGE,
            Error::Toolchain { .. } => exit_code::TOOLCHAIN,
            Error::Cargo(_) => exit_code::CARGO,
            Error::Verify { .. } => exit_code::VERIFY,
            Error::Spawn { .. } | Error::Io { .. } | Error::Layout(_) | Error::Other(_) => {
                exit_code::FAILURE
            }
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;
