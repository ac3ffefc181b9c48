//! The thin top layer, like cargo's own `commands/`: each module turns one subcommand's clap
//! arguments into the engine's plain options (`crate::options`) and calls the engine. Nothing
//! below this layer sees clap.

mod build;
mod doctor;
mod inspect;
mod layout;

use crate::cli::{CargoArgs, ColorArg, Command, MessageFormatArg, ToolchainArg};
use crate::error::Result;
use crate::options::{CargoOptions, MessageFormat};
use crate::status::{ColorChoice, Shell};
use crate::toolchain::Backend;

/// Runs one subcommand.
pub(crate) fn run(command: Command, shell: Shell) -> Result<()> {
    match command {
        Command::Build(args) => build::build(args, shell),
        Command::Install(args) => build::install(args, shell),
        Command::Doctor(args) => doctor::doctor(args, shell),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Verify(args) => layout::verify(args, shell),
        Command::Add(args) => layout::add(args, shell),
        Command::Remove(args) => layout::remove(args, shell),
        Command::List(args) => layout::list(args),
    }
}

pub(crate) fn color_choice(arg: ColorArg) -> ColorChoice {
    match arg {
        ColorArg::Auto => ColorChoice::Auto,
        ColorArg::Always => ColorChoice::Always,
        ColorArg::Never => ColorChoice::Never,
    }
}

fn backend(arg: Option<ToolchainArg>) -> Option<Backend> {
    arg.map(|arg| match arg {
        ToolchainArg::Auto => Backend::Auto,
        ToolchainArg::System => Backend::System,
        ToolchainArg::Zig => Backend::Zig,
    })
}

fn message_format(arg: MessageFormatArg) -> MessageFormat {
    match arg {
        MessageFormatArg::Human => MessageFormat::Human,
        MessageFormatArg::Json => MessageFormat::Json,
    }
}

/// cargo's own flags, unchanged: they are passed to cargo as the user gave them.
fn cargo_options(args: CargoArgs) -> CargoOptions {
    let CargoArgs {
        packages,
        workspace,
        exclude,
        bins,
        all_bins,
        features,
        all_features,
        no_default_features,
        release,
        profile,
        jobs,
        target_dir,
        manifest_path,
        locked,
        frozen,
        offline,
        verbose,
        quiet,
        config,
    } = args;
    CargoOptions {
        packages,
        workspace,
        exclude,
        bins,
        all_bins,
        features,
        all_features,
        no_default_features,
        release,
        profile,
        jobs,
        target_dir,
        manifest_path,
        locked,
        frozen,
        offline,
        verbose,
        quiet,
        config,
    }
}
