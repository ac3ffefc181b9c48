//! Plain options for the engine: what each command was asked to do, already turned from
//! command-line arguments into values (see `commands/`). Nothing here knows about clap, so the
//! engine can be driven by tests, by another front end, or by a future config layer alike.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::toolchain::Backend;

/// cargo's own flags, passed to cargo exactly as given (their `--help` text is on the clap
/// struct in `cli.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct CargoOptions {
    /// Package to build (see `cargo help pkgid`).
    pub(crate) packages: Vec<String>,
    /// Build all packages in the workspace.
    pub(crate) workspace: bool,
    /// Exclude packages from the build.
    pub(crate) exclude: Vec<String>,
    /// Build only the specified binary.
    pub(crate) bins: Vec<String>,
    /// Build all binaries.
    pub(crate) all_bins: bool,

    /// Space or comma separated list of features to activate.
    pub(crate) features: Vec<String>,
    /// Activate all available features.
    pub(crate) all_features: bool,
    /// Do not activate the `default` feature.
    pub(crate) no_default_features: bool,

    /// Build artifacts in release mode, with optimizations.
    pub(crate) release: bool,
    /// Build artifacts with the specified profile.
    pub(crate) profile: Option<String>,
    /// Number of parallel jobs.
    pub(crate) jobs: Option<String>,
    /// Directory for all generated artifacts.
    pub(crate) target_dir: Option<PathBuf>,

    /// Path to Cargo.toml.
    pub(crate) manifest_path: Option<PathBuf>,
    /// Assert that `Cargo.lock` will remain unchanged.
    pub(crate) locked: bool,
    /// Equivalent to specifying both --locked and --offline.
    pub(crate) frozen: bool,
    /// Run without accessing the network.
    pub(crate) offline: bool,

    /// Use verbose output (-vv very verbose).
    pub(crate) verbose: u8,
    /// Do not print cargo log messages.
    pub(crate) quiet: bool,
    /// Override a configuration value (KEY=VALUE or a TOML file), as in cargo.
    pub(crate) config: Vec<String>,
}

impl CargoOptions {
    /// The flags cargo metadata understands (manifest, lock, network, config).
    pub(crate) fn metadata_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(path) = &self.manifest_path {
            args.push("--manifest-path".into());
            args.push(path.into());
        }
        for (on, flag) in [
            (self.locked, "--locked"),
            (self.frozen, "--frozen"),
            (self.offline, "--offline"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        for c in &self.config {
            args.push("--config".into());
            args.push(c.into());
        }
        args
    }

    /// Every flag, for `cargo build`, exactly as the user gave it.
    pub(crate) fn build_args(&self) -> Vec<OsString> {
        let mut args = self.metadata_args();
        let mut push = |flag: &str, value: &str| {
            args.push(flag.into());
            args.push(value.into());
        };
        for p in &self.packages {
            push("--package", p);
        }
        for e in &self.exclude {
            push("--exclude", e);
        }
        for b in &self.bins {
            push("--bin", b);
        }
        for f in &self.features {
            push("--features", f);
        }
        if let Some(p) = &self.profile {
            push("--profile", p);
        }
        if let Some(j) = &self.jobs {
            push("--jobs", j);
        }
        for (on, flag) in [
            (self.workspace, "--workspace"),
            (self.all_bins, "--bins"),
            (self.all_features, "--all-features"),
            (self.no_default_features, "--no-default-features"),
            (self.release, "--release"),
            (self.quiet, "--quiet"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        if let Some(dir) = &self.target_dir {
            args.push("--target-dir".into());
            args.push(dir.into());
        }
        for _ in 0..self.verbose {
            args.push("--verbose".into());
        }
        args
    }

    /// The profile cargo will build with.
    pub(crate) fn profile_name(&self) -> &str {
        match (&self.profile, self.release) {
            (Some(p), _) => p,
            (None, true) => "release",
            (None, false) => "dev",
        }
    }
}

/// The directory cargo names after a profile (`dev` builds into `debug`).
pub(crate) fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// What `build` and `install` print on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageFormat {
    /// Status lines for people on stderr, nothing on stdout.
    Human,
    /// One JSON object per line on stdout for every program built or installed.
    Json,
}

/// `cargo fatbin build`.
#[derive(Debug, Clone)]
pub(crate) struct BuildOptions {
    /// `TRIPLE[@CPU]` as given on the command line (may be empty: then env, then Cargo.toml).
    pub(crate) targets: Vec<String>,
    /// Where to write the layout instead of `target/fatbin/<profile>/`.
    pub(crate) out: Option<PathBuf>,
    /// `--toolchain`, if given.
    pub(crate) toolchain: Option<Backend>,
    pub(crate) message_format: MessageFormat,
    pub(crate) cargo: CargoOptions,
}

/// Where `install` takes its package from.
#[derive(Debug, Clone)]
pub(crate) enum InstallSource {
    /// The package of the current directory, or of `--manifest-path`.
    CurrentProject,
    /// The package in this directory (`--path DIR`).
    Path(PathBuf),
    /// A published crate: `CRATE[@VERSION]` and an optional `--version` requirement.
    Registry {
        krate: String,
        version_req: Option<String>,
    },
}

/// `cargo fatbin install`.
#[derive(Debug, Clone)]
pub(crate) struct InstallOptions {
    pub(crate) source: InstallSource,
    pub(crate) root: Option<PathBuf>,
    pub(crate) launcher: Option<PathBuf>,
    /// `--script-shims`: `#!` shims instead of symlinks.
    pub(crate) script_shims: bool,
    /// Build with the dev profile instead of release (`--debug`).
    pub(crate) debug: bool,
    pub(crate) targets: Vec<String>,
    pub(crate) toolchain: Option<Backend>,
    pub(crate) message_format: MessageFormat,
    pub(crate) cargo: CargoOptions,
}

/// `cargo fatbin doctor`.
#[derive(Debug, Clone)]
pub(crate) struct DoctorOptions {
    /// Targets to check; empty means: the configured ones, else every installed Linux target.
    pub(crate) targets: Vec<String>,
    pub(crate) toolchain: Option<Backend>,
    pub(crate) manifest_path: Option<PathBuf>,
}

/// `cargo fatbin inspect`.
#[derive(Debug, Clone)]
pub(crate) struct InspectOptions {
    pub(crate) path: PathBuf,
    pub(crate) json: bool,
}

/// `cargo fatbin verify`.
#[derive(Debug, Clone)]
pub(crate) struct VerifyOptions {
    pub(crate) root: Option<PathBuf>,
    pub(crate) program: Option<String>,
}

/// `cargo fatbin add`.
#[derive(Debug, Clone)]
pub(crate) struct AddOptions {
    pub(crate) program: String,
    pub(crate) file: PathBuf,
    /// The slot, when the user named one; else it is read from the ELF header.
    pub(crate) slot: Option<String>,
    pub(crate) triple: Option<String>,
    pub(crate) root: Option<PathBuf>,
    pub(crate) launcher: Option<PathBuf>,
    /// `--script-shims`: `#!` shims instead of symlinks.
    pub(crate) script_shims: bool,
}

/// `cargo fatbin remove`.
#[derive(Debug, Clone)]
pub(crate) struct RemoveOptions {
    pub(crate) program: String,
    pub(crate) slot: Option<String>,
    pub(crate) root: Option<PathBuf>,
}

/// `cargo fatbin list`.
#[derive(Debug, Clone)]
pub(crate) struct ListOptions {
    pub(crate) root: Option<PathBuf>,
    pub(crate) json: bool,
}
