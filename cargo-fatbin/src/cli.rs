//! The command line: clap structs whose doc comments are the `--help` text.
//!
//! Like other cargo subcommands, the binary is run as `cargo fatbin ...` (cargo passes `fatbin`
//! as the first argument), so the top level is a `cargo` command with one subcommand.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "cargo-fatbin", bin_name = "cargo", version, styles = clap_cargo_styles())]
pub enum CargoCli {
    /// Build and install fat programs: one binary per processor, picked at run time.
    Fatbin(FatbinApp),
}

#[derive(Debug, Args)]
#[command(version)]
pub struct FatbinApp {
    #[command(subcommand)]
    pub command: Command,

    /// Coloring: auto, always, never (NO_COLOR is honoured by auto).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cross-compile the selected binaries for every target and assemble a layout in
    /// target/fatbin/<profile>/.
    Build(BuildArgs),
    /// Build in release mode and install the fat programs into a layout root, with shims.
    ///
    /// Without CRATE, installs the package in the current directory (or --path DIR); with
    /// CRATE[@VERSION], downloads a published crate from the registry and builds it.
    Install(InstallArgs),
    /// Check every target: standard library installed, linker found, runnable here; print the
    /// exact command that fixes what is missing.
    Doctor(DoctorArgs),
    /// Show a fat program's slots (a directory), or identify one binary (a file).
    Inspect(InspectArgs),
    /// Check a whole layout against its manifests and the binaries' own headers.
    Verify(VerifyArgs),
    /// Install a prebuilt binary file as one slot of a program (like `lipo -create`).
    Add(AddArgs),
    /// Remove one slot of a program, or the whole program and its shim.
    Remove(RemoveArgs),
    /// List the programs installed in a layout root and their slots.
    List(ListArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    /// Status lines for people on stderr, nothing on stdout.
    Human,
    /// One JSON object per line on stdout for every program built or installed.
    Json,
}

/// Targets to build: `TRIPLE[@CPU]`.
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// Build for TRIPLE, optionally tuned for CPU (`x86_64-unknown-linux-musl@x86-64-v3`).
    /// Repeatable; also `FATBIN_TARGETS` (comma-separated) or `targets = [...]` in
    /// [package.metadata.fatbin].
    #[arg(
        long = "target",
        value_name = "TRIPLE[@CPU]",
        help_heading = "Compilation"
    )]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub targets: TargetArgs,

    /// Write the layout here instead of target/fatbin/<profile>/.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Output format for the programs built.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human, value_name = "FMT")]
    pub message_format: MessageFormat,

    #[command(flatten)]
    pub cargo: CargoOptions,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A published crate to install, optionally with its version (`ripgrep@14.1.0`).
    #[arg(value_name = "CRATE[@VERSION]")]
    pub krate: Option<String>,

    /// The version of CRATE to install (a requirement like cargo's `--version`).
    #[arg(long = "version", value_name = "VERSION", requires = "krate")]
    pub version_req: Option<String>,

    /// Install the package in DIR instead of the current directory's.
    #[arg(long, value_name = "DIR", conflicts_with = "krate")]
    pub path: Option<PathBuf>,

    /// Layout root to install into [default: $FATBIN_ROOT, `root` in
    /// [package.metadata.fatbin], else ~/.local/share/fatbin].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// The node-local `fatbin` launcher ROOT/shims/fatbin points to [default: $FATBIN_LAUNCHER,
    /// `launcher` in [package.metadata.fatbin], the `fatbin` next to cargo-fatbin, or on PATH].
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,

    /// Build with the dev profile instead of release (like `cargo install --debug`).
    #[arg(long, conflicts_with = "profile")]
    pub debug: bool,

    #[command(flatten)]
    pub targets: TargetArgs,

    /// Output format for the programs installed.
    #[arg(long, value_enum, default_value_t = MessageFormat::Human, value_name = "FMT")]
    pub message_format: MessageFormat,

    #[command(flatten)]
    pub cargo: CargoOptions,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub targets: TargetArgs,

    /// Path to Cargo.toml (for its [package.metadata.fatbin] targets and its dependencies).
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A program directory (ROOT/bin/PROG), a layout root, or a single binary.
    pub path: PathBuf,

    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The layout root [default: $FATBIN_ROOT, else ~/.local/share/fatbin].
    pub root: Option<PathBuf>,

    /// Only verify this program.
    #[arg(long, value_name = "PROG")]
    pub program: Option<String>,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The program to add a slot to (created if new).
    pub program: String,

    /// The binary to install.
    pub file: PathBuf,

    /// The slot (`x86_64`, `x86_64-v3`, `aarch64`, ...) [default: read from the ELF header].
    #[arg(long)]
    pub slot: Option<String>,

    /// Record this Rust target triple in the manifest.
    #[arg(long = "target", value_name = "TRIPLE")]
    pub triple: Option<String>,

    #[command(flatten)]
    pub root: RootArgs,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The program.
    pub program: String,

    /// Remove only this slot (the program goes with its last slot).
    #[arg(long)]
    pub slot: Option<String>,

    #[command(flatten)]
    pub root: RootArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub root: RootArgs,

    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RootArgs {
    /// The layout root [default: $FATBIN_ROOT, else ~/.local/share/fatbin].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// The launcher ROOT/shims/fatbin points to (for `add`).
    #[arg(long, value_name = "PATH")]
    pub launcher: Option<PathBuf>,
}

/// cargo's own flags, passed to cargo exactly as given.
#[derive(Debug, Clone, Default, Args)]
pub struct CargoOptions {
    /// Package to build (see `cargo help pkgid`).
    #[arg(
        short = 'p',
        long = "package",
        value_name = "SPEC",
        help_heading = "Package selection"
    )]
    pub packages: Vec<String>,
    /// Build all packages in the workspace.
    #[arg(long, help_heading = "Package selection")]
    pub workspace: bool,
    /// Exclude packages from the build.
    #[arg(long, value_name = "SPEC", help_heading = "Package selection")]
    pub exclude: Vec<String>,
    /// Build only the specified binary.
    #[arg(long = "bin", value_name = "NAME", help_heading = "Target selection")]
    pub bins: Vec<String>,
    /// Build all binaries.
    #[arg(long = "bins", help_heading = "Target selection")]
    pub all_bins: bool,

    /// Space or comma separated list of features to activate.
    #[arg(
        short = 'F',
        long,
        value_name = "FEATURES",
        help_heading = "Feature selection"
    )]
    pub features: Vec<String>,
    /// Activate all available features.
    #[arg(long, help_heading = "Feature selection")]
    pub all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long, help_heading = "Feature selection")]
    pub no_default_features: bool,

    /// Build artifacts in release mode, with optimizations.
    #[arg(short = 'r', long, help_heading = "Compilation")]
    pub release: bool,
    /// Build artifacts with the specified profile.
    #[arg(long, value_name = "PROFILE-NAME", help_heading = "Compilation")]
    pub profile: Option<String>,
    /// Number of parallel jobs.
    #[arg(short = 'j', long, value_name = "N", help_heading = "Compilation")]
    pub jobs: Option<String>,
    /// Directory for all generated artifacts.
    #[arg(long, value_name = "DIRECTORY", help_heading = "Compilation")]
    pub target_dir: Option<PathBuf>,

    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH", help_heading = "Manifest options")]
    pub manifest_path: Option<PathBuf>,
    /// Assert that `Cargo.lock` will remain unchanged.
    #[arg(long, help_heading = "Manifest options")]
    pub locked: bool,
    /// Equivalent to specifying both --locked and --offline.
    #[arg(long, help_heading = "Manifest options")]
    pub frozen: bool,
    /// Run without accessing the network.
    #[arg(long, help_heading = "Manifest options")]
    pub offline: bool,

    /// Use verbose output (-vv very verbose).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not print cargo log messages.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Override a configuration value (KEY=VALUE or a TOML file), as in cargo.
    #[arg(long = "config", value_name = "KEY=VALUE|PATH")]
    pub config: Vec<String>,
}

impl CargoOptions {
    /// The flags cargo metadata understands (manifest, lock, network, config).
    pub fn metadata_args(&self) -> Vec<OsString> {
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
    pub fn build_args(&self) -> Vec<OsString> {
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
    pub fn profile_name(&self) -> &str {
        match (&self.profile, self.release) {
            (Some(p), _) => p,
            (None, true) => "release",
            (None, false) => "dev",
        }
    }
}

/// The directory cargo names after a profile (`dev` builds into `debug`).
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

fn clap_cargo_styles() -> clap::builder::Styles {
    use anstyle::{AnsiColor, Effects};
    clap::builder::Styles::styled()
        .header(AnsiColor::Green.on_default() | Effects::BOLD)
        .usage(AnsiColor::Green.on_default() | Effects::BOLD)
        .literal(AnsiColor::Cyan.on_default() | Effects::BOLD)
        .placeholder(AnsiColor::Cyan.on_default())
}
