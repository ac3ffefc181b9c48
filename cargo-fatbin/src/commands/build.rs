//! `cargo fatbin build` and `cargo fatbin install`: arguments to [`crate::options`].

use crate::cli::{BuildArgs, InstallArgs};
use crate::error::Result;
use crate::options::{BuildOptions, InstallOptions, InstallSource};
use crate::status::Shell;

pub(super) fn build(args: BuildArgs, shell: Shell) -> Result<()> {
    let options = BuildOptions {
        toolchain: super::backend(args.targets.toolchain),
        targets: args.targets.targets,
        out: args.out,
        message_format: super::message_format(args.message_format),
        cargo: super::cargo_options(args.cargo),
    };
    crate::build::build(options, shell)
}

pub(super) fn install(args: InstallArgs, shell: Shell) -> Result<()> {
    // clap already refuses --path with CRATE, and --version without CRATE.
    let source = match (args.krate, args.path) {
        (Some(krate), _) => InstallSource::Registry {
            krate,
            version_req: args.version_req,
        },
        (None, Some(dir)) => InstallSource::Path(dir),
        (None, None) => InstallSource::CurrentProject,
    };
    let options = InstallOptions {
        source,
        root: args.root,
        launcher: args.launcher,
        script_shims: args.script_shims,
        debug: args.debug,
        toolchain: super::backend(args.targets.toolchain),
        targets: args.targets.targets,
        message_format: super::message_format(args.message_format),
        cargo: super::cargo_options(args.cargo),
    };
    crate::build::install(options, shell)
}
