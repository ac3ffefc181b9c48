//! `cargo fatbin verify / add / remove / list`: arguments to the plain options of
//! [`crate::manage`].

use crate::cli::{AddArgs, ListArgs, RemoveArgs, VerifyArgs};
use crate::error::Result;
use crate::options::{AddOptions, ListOptions, RemoveOptions, VerifyOptions};
use crate::status::Shell;

pub(super) fn verify(args: VerifyArgs, shell: Shell) -> Result<()> {
    let options = VerifyOptions {
        root: args.root,
        program: args.program,
    };
    crate::manage::verify(&options, shell)
}

pub(super) fn add(args: AddArgs, shell: Shell) -> Result<()> {
    let options = AddOptions {
        program: args.program,
        file: args.file,
        slot: args.slot,
        triple: args.triple,
        root: args.root.root,
        launcher: args.root.launcher,
        script_shims: args.root.script_shims,
    };
    crate::manage::add(&options, shell)
}

pub(super) fn remove(args: RemoveArgs, shell: Shell) -> Result<()> {
    let options = RemoveOptions {
        program: args.program,
        slot: args.slot,
        root: args.root.root,
    };
    crate::manage::remove(&options, shell)
}

pub(super) fn list(args: ListArgs) -> Result<()> {
    crate::manage::list(&ListOptions {
        root: args.root.root,
        json: args.json,
    })
}
