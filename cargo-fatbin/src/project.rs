//! What `cargo metadata` says about the project: the packages, the target directory, and the
//! facts a plan keeps from them.

use cargo_metadata::{Metadata, MetadataCommand};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::options::CargoOptions;
use crate::plan::ProjectInfo;

/// Runs `cargo metadata` with the user's manifest, lock and config flags.
pub(crate) fn load_metadata(opts: &CargoOptions) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    if let Some(cargo) = std::env::var_os("CARGO") {
        cmd.cargo_path(cargo);
    }
    let args: Vec<String> = opts
        .metadata_args()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.other_options(args);
    cmd.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } if stderr.contains("could not find `Cargo.toml`") => {
            Error::usage(format!(
                "{} (run cargo fatbin in a Cargo project, or pass --manifest-path PATH; to install a published crate: cargo fatbin install CRATE)",
                stderr.trim().trim_start_matches("error: ")
            ))
        }
        cargo_metadata::Error::CargoMetadata { stderr } => Error::Cargo(format!(
            "cargo metadata failed: {}",
            stderr.trim().trim_start_matches("error: ")
        )),
        other => Error::Cargo(format!("cargo metadata failed: {other}")),
    })
}

/// The target directory cargo builds into: `--target-dir` (which `cargo metadata` does not
/// take), else what cargo metadata says (`CARGO_TARGET_DIR`, `build.target-dir`, default).
pub(crate) fn target_directory(opts: &CargoOptions, metadata: &Metadata) -> PathBuf {
    match &opts.target_dir {
        Some(dir) => std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
        None => metadata.target_directory.clone().into_std_path_buf(),
    }
}

/// The facts a plan keeps: the target directory and every package with binaries.
pub(crate) fn project_info(metadata: &Metadata, opts: &CargoOptions) -> ProjectInfo {
    let packages = metadata
        .packages
        .iter()
        .filter(|p| p.targets.iter().any(|t| t.is_bin()))
        .map(|p| {
            (
                p.id.repr.clone(),
                (p.name.to_string(), p.version.to_string()),
            )
        })
        .collect();
    ProjectInfo {
        target_dir: target_directory(opts, metadata),
        packages,
    }
}
