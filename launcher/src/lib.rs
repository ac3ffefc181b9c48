//! The fatbin launcher: pick the best slot of a fat program for this host and exec it, or
//! migrate the request to a node that can run it.
//!
//! [`main`] is the whole binary. Started through a shim (`ROOT/shims/PROG`, a symlink to the
//! launcher, or a `#!` file naming it) it runs PROG at once with the arguments untouched; started as `fatbin` it is the
//! command line of [`cli`]. See docs/launcher.md.

pub mod arena;
mod args;
pub(crate) mod check;
pub(crate) mod cli;
pub(crate) mod clib;
pub(crate) mod error;
pub(crate) mod exec;
/// The `no_std` fast launcher's decision (`fatbin_core::pick`) against this library's.
#[cfg(test)]
mod fast_agrees;
pub(crate) mod host;
pub(crate) mod invocation;
pub(crate) mod launch;
mod node_exec;
mod nodes_cli;
pub(crate) mod plan;
pub(crate) mod program;
pub(crate) mod qemu;
pub(crate) mod quick;
pub(crate) mod report;
pub(crate) mod select;
pub(crate) mod view;

use std::ffi::OsString;

use fatbin_layout::Layout;

use crate::cli::Command;
use crate::error::{Error, Result};
use crate::invocation::{Mode, Root, RootSource};
use crate::launch::Launch;

/// How many symlinks between a user's alias and a program's shim are followed.
const MAX_SHIM_LINKS: usize = 8;

/// Runs the launcher with the process's arguments; returns the exit status (when the program
/// was exec'd, this never returns).
pub fn main(args: Vec<OsString>) -> i32 {
    let args = invocation::without_shim_interpreter(args);
    let result = match invocation::detect(&args) {
        Mode::Shim(shim) => run_shim(
            shim,
            args.first().map(OsString::as_os_str),
            args.get(1..).unwrap_or_default(),
        ),
        // The node's half of a migrated run, which the remote wrapper execs: not a command for
        // people, so not in the table (or the help).
        Mode::Cli { .. } if args.get(1).is_some_and(|a| a == node_exec::COMMAND) => {
            Ok(node_exec::main(&args[2..]))
        }
        Mode::Cli { shims_dir } => {
            let shim_root = shims_dir.map(|d| invocation::parent_dir(&d));
            cli::parse(args.into_iter().skip(1).collect())
                .and_then(|command| run_command(command, shim_root))
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fatbin: {e}");
            e.exit_code()
        }
    }
}

/// A shim call: `PROG ARGS` with ROOT from the environment or the shim's location.
fn run_shim(
    mut shim: invocation::Shim,
    argv0: Option<&std::ffi::OsStr>,
    args: &[OsString],
) -> Result<i32> {
    let forced = plan::forced_from_env()?;
    // The shim itself, then up to MAX_SHIM_LINKS links followed.
    for _ in 0..=MAX_SHIM_LINKS {
        let root = invocation::resolve_root(None, Some(shim.root()))?;
        let program = launch::program_name(&shim.program)?.to_owned();
        let layout = Layout::new(&root.path);
        match program::read_manifest(&layout, &program) {
            Ok(manifest) => {
                let req = Launch {
                    layout: &layout,
                    program: &program,
                    argv0,
                    args,
                    forced,
                };
                return launch::launch(&req, &manifest);
            }
            Err(Error::NotFound(e)) => {
                // Started by a launcher as `.../bin/PROG/SLOT`: that slot is the launcher
                // itself (a copy, or a symlink to a shim), which would only start it again.
                if std::env::var_os(exec::DEPTH_VAR).is_some() {
                    if let Some((program, slot)) = invocation::as_slot_path(&shim.path) {
                        return Err(Error::CannotExecute(format!(
                            "{program}: slot `{slot}` ({}) is the fatbin launcher itself (a \
                             copy, or a link to a shim), not the program, so it would only \
                             start the launcher again; reinstall the program",
                            error::shown(&shim.path)
                        )));
                    }
                }
                // The shim may be a user's own symlink to a program's shim (`~/bin/mycat`):
                // follow it, but only when ROOT came from the shim.
                match shim.link_target() {
                    Some(next) if root.source == RootSource::Shim => shim = next,
                    _ => return Err(Error::NotFound(e)),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::CannotExecute(format!(
        "{}: more than {MAX_SHIM_LINKS} symlinks between the shim and a program",
        shim.program.to_string_lossy()
    )))
}

/// A `fatbin ...` command line.
fn run_command(command: Command, shim_root: Option<std::path::PathBuf>) -> Result<i32> {
    match command {
        Command::Help => {
            print!("{}", cli::TABLE.help());
            Ok(0)
        }
        Command::Version => {
            println!("fatbin {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Host { slurm_features } => Ok(if slurm_features {
            report::slurm_features()
        } else {
            report::host()
        }),
        Command::Nodes(args) => Ok(nodes_cli::main(&args, shim_root)),
        Command::View(args) => Ok(view::main(&args, shim_root)),
        Command::List { opts } => {
            let root = invocation::resolve_root(opts.root, shim_root)?;
            report::list(&root)
        }
        Command::Run {
            opts,
            program,
            argv0,
            args,
        } => {
            let root = invocation::resolve_root(opts.root, shim_root)?;
            let forced = forced(opts.arch.as_deref())?;
            let name = launch::program_name(&program)?;
            let layout = Layout::new(&root.path);
            let manifest = program::read_manifest(&layout, name)?;
            launch::launch(
                &Launch {
                    layout: &layout,
                    program: name,
                    argv0: Some(argv0.as_deref().unwrap_or(&program)),
                    args: &args,
                    forced,
                },
                &manifest,
            )
        }
        Command::Which {
            opts,
            program,
            explain,
        } => {
            let root: Root = invocation::resolve_root(opts.root, shim_root)?;
            let forced = forced(opts.arch.as_deref())?;
            let name = launch::program_name(&program)?;
            let manifest = program::read_manifest(&Layout::new(&root.path), name)?;
            report::which(&root, name, &manifest, forced, explain)
        }
    }
}

/// The forced slot: `--arch` beats `FATBIN_ARCH`.
fn forced(flag: Option<&str>) -> Result<Option<plan::Forced>> {
    match flag {
        Some(value) => plan::parse_forced(value, "--arch").map(Some),
        None => plan::forced_from_env(),
    }
}
