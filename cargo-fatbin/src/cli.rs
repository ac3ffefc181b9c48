//! The command line: clap structs whose doc comments are the `--help` text. Only `main` and
//! `commands/` see them; the engine gets plain options (`crate::options`).
//!
//! Like other cargo subcommands, the binary is run as `cargo fatbin ...` (cargo passes `fatbin`
//! as the first argument), so the top level is a `cargo` command with one subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "cargo-fatbin", bin_name = "cargo", version, styles = clap_cargo_styles())]
pub(crate) enum CargoCli {
    /// Build and install fat programs: one binary per processor, picked at run time.
    Fatbin(FatbinApp),
}

#[derive(Debug, Args)]
#[command(version)]
pub(crate) struct FatbinApp {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// Coloring: auto, always, never (NO_COLOR is honoured by auto).
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub(crate) color: ColorArg,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum ColorArg {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MessageFormatArg {
    /// Status lines for people on stderr, nothing on stdout.
    Human,
    /// One JSON object per line on stdout for every program built or installed.
    Json,
}

/// Targets to build: `TRIPLE[@CPU]`.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// Build for TRIPLE, optionally tuned for CPU (`x86_64-unknown-linux-musl@x86-64-v3`).
    /// Repeatable; also `FATBIN_TARGETS` (comma-separated) or `targets = [...]` in
    /// [package.metadata.fatbin].
    #[arg(
        long = "target",
        value_name = "TRIPLE[@CPU]",
        help_heading = "Compilation"
    )]
    pub(crate) targets: Vec<String>,

    /// Where linkers and C compilers come from: your configuration and the system's cross
    /// tools, then zig (auto); those alone (system); or zig (zig). Also `FATBIN_TOOLCHAIN` or
    /// `toolchain = "..."` in [package.metadata.fatbin].
    #[arg(long, value_enum, value_name = "WHICH", help_heading = "Compilation")]
    pub(crate) toolchain: Option<ToolchainArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ToolchainArg {
    Auto,
    System,
    Zig,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,

    /// Write the layout here instead of target/fatbin/<profile>/.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,

    /// Output format for the programs built.
    #[arg(long, value_enum, default_value_t = MessageFormatArg::Human, value_name = "FMT")]
    pub(crate) message_format: MessageFormatArg,

    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
}

#[derive(Debug, Args)]
pub(crate) struct InstallArgs {
    /// A published crate to install, optionally with its version (`ripgrep@14.1.0`).
    #[arg(value_name = "CRATE[@VERSION]")]
    pub(crate) krate: Option<String>,

    /// The version of CRATE to install (a requirement like cargo's `--version`).
    #[arg(long = "version", value_name = "VERSION", requires = "krate")]
    pub(crate) version_req: Option<String>,

    /// Install the package in DIR instead of the current directory's.
    #[arg(long, value_name = "DIR", conflicts_with = "krate")]
    pub(crate) path: Option<PathBuf>,

    /// Layout root to install into [default: $FATBIN_ROOT, `root` in
    /// [package.metadata.fatbin], else ~/.local/share/fatbin].
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,

    /// The node-local `fatbin` launcher ROOT/shims/fatbin points to [default: $FATBIN_LAUNCHER,
    /// `launcher` in [package.metadata.fatbin], the `fatbin` next to cargo-fatbin, or on PATH].
    #[arg(long, value_name = "PATH")]
    pub(crate) launcher: Option<PathBuf>,

    /// Write shims as `#!` files naming the launcher instead of symlinks, for a ROOT shared
    /// over a network filesystem that does not pass symlinks through (sshfs); a ROOT keeps
    /// the form once chosen.
    #[arg(long)]
    pub(crate) script_shims: bool,

    /// Build with the dev profile instead of release (like `cargo install --debug`).
    #[arg(long, conflicts_with = "profile")]
    pub(crate) debug: bool,

    #[command(flatten)]
    pub(crate) targets: TargetArgs,

    /// Output format for the programs installed.
    #[arg(long, value_enum, default_value_t = MessageFormatArg::Human, value_name = "FMT")]
    pub(crate) message_format: MessageFormatArg,

    #[command(flatten)]
    pub(crate) cargo: CargoArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) targets: TargetArgs,

    /// Path to Cargo.toml (for its [package.metadata.fatbin] targets and its dependencies).
    #[arg(long, value_name = "PATH")]
    pub(crate) manifest_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A program directory (ROOT/bin/PROG), a layout root, or a single binary.
    pub(crate) path: PathBuf,

    /// Print JSON on stdout instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The layout root [default: $FATBIN_ROOT, else ~/.local/share/fatbin].
    pub(crate) root: Option<PathBuf>,

    /// Only verify this program.
    #[arg(long, value_name = "PROG")]
    pub(crate) program: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The program to add a slot to (created if new).
    pub(crate) program: String,

    /// The binary to install.
    pub(crate) file: PathBuf,

    /// The slot (`x86_64`, `x86_64-v3`, `aarch64`, ...) [default: read from the ELF header].
    #[arg(long)]
    pub(crate) slot: Option<String>,

    /// Record this Rust target triple in the manifest.
    #[arg(long = "target", value_name = "TRIPLE")]
    pub(crate) triple: Option<String>,

    #[command(flatten)]
    pub(crate) root: RootArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    /// The program.
    pub(crate) program: String,

    /// Remove only this slot (the program goes with its last slot).
    #[arg(long)]
    pub(crate) slot: Option<String>,

    #[command(flatten)]
    pub(crate) root: RootArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) root: RootArgs,

    /// Print JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RootArgs {
    /// The layout root [default: $FATBIN_ROOT, else ~/.local/share/fatbin].
    #[arg(long, value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,

    /// The launcher ROOT/shims/fatbin points to (for `add`).
    #[arg(long, value_name = "PATH")]
    pub(crate) launcher: Option<PathBuf>,

    /// (For `add`.) Write shims as `#!` files naming the launcher instead of symlinks, for a ROOT shared
    /// over a network filesystem that does not pass symlinks through (sshfs); a ROOT keeps
    /// the form once chosen.
    #[arg(long)]
    pub(crate) script_shims: bool,
}

/// cargo's own flags, passed to cargo exactly as given.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct CargoArgs {
    /// Package to build (see `cargo help pkgid`).
    #[arg(
        short = 'p',
        long = "package",
        value_name = "SPEC",
        help_heading = "Package selection"
    )]
    pub(crate) packages: Vec<String>,
    /// Build all packages in the workspace.
    #[arg(long, help_heading = "Package selection")]
    pub(crate) workspace: bool,
    /// Exclude packages from the build.
    #[arg(long, value_name = "SPEC", help_heading = "Package selection")]
    pub(crate) exclude: Vec<String>,
    /// Build only the specified binary.
    #[arg(long = "bin", value_name = "NAME", help_heading = "Target selection")]
    pub(crate) bins: Vec<String>,
    /// Build all binaries.
    #[arg(long = "bins", help_heading = "Target selection")]
    pub(crate) all_bins: bool,

    /// Space or comma separated list of features to activate.
    #[arg(
        short = 'F',
        long,
        value_name = "FEATURES",
        help_heading = "Feature selection"
    )]
    pub(crate) features: Vec<String>,
    /// Activate all available features.
    #[arg(long, help_heading = "Feature selection")]
    pub(crate) all_features: bool,
    /// Do not activate the `default` feature.
    #[arg(long, help_heading = "Feature selection")]
    pub(crate) no_default_features: bool,

    /// Build artifacts in release mode, with optimizations.
    #[arg(short = 'r', long, help_heading = "Compilation")]
    pub(crate) release: bool,
    /// Build artifacts with the specified profile.
    #[arg(long, value_name = "PROFILE-NAME", help_heading = "Compilation")]
    pub(crate) profile: Option<String>,
    /// Number of parallel jobs.
    #[arg(short = 'j', long, value_name = "N", help_heading = "Compilation")]
    pub(crate) jobs: Option<String>,
    /// Directory for all generated artifacts.
    #[arg(long, value_name = "DIRECTORY", help_heading = "Compilation")]
    pub(crate) target_dir: Option<PathBuf>,

    /// Path to Cargo.toml.
    #[arg(long, value_name = "PATH", help_heading = "Manifest options")]
    pub(crate) manifest_path: Option<PathBuf>,
    /// Assert that `Cargo.lock` will remain unchanged.
    #[arg(long, help_heading = "Manifest options")]
    pub(crate) locked: bool,
    /// Equivalent to specifying both --locked and --offline.
    #[arg(long, help_heading = "Manifest options")]
    pub(crate) frozen: bool,
    /// Run without accessing the network.
    #[arg(long, help_heading = "Manifest options")]
    pub(crate) offline: bool,

    /// Use verbose output (-vv very verbose).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Do not print cargo log messages.
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
    /// Override a configuration value (KEY=VALUE or a TOML file), as in cargo.
    #[arg(long = "config", value_name = "KEY=VALUE|PATH")]
    pub(crate) config: Vec<String>,
}

fn clap_cargo_styles() -> clap::builder::Styles {
    use anstyle::{AnsiColor, Effects};
    clap::builder::Styles::styled()
        .header(AnsiColor::Green.on_default() | Effects::BOLD)
        .usage(AnsiColor::Green.on_default() | Effects::BOLD)
        .literal(AnsiColor::Cyan.on_default() | Effects::BOLD)
        .placeholder(AnsiColor::Cyan.on_default())
}
