//! `cargo fatbin doctor`: arguments to [`crate::options::DoctorOptions`].

use crate::cli::DoctorArgs;
use crate::error::Result;
use crate::options::DoctorOptions;
use crate::status::Shell;

pub(super) fn doctor(args: DoctorArgs, shell: Shell) -> Result<()> {
    let options = DoctorOptions {
        toolchain: super::backend(args.targets.toolchain),
        targets: args.targets.targets,
        manifest_path: args.manifest_path,
    };
    crate::doctor::doctor(&options, shell)
}
