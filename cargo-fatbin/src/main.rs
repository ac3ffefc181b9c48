//! `cargo fatbin`: cross-compile a Rust program for many processors in one cargo run and
//! install it as a fat program (one binary per processor, picked at run time by `fatbin`).
//!
//! The reference is `docs/cargo-fatbin.md`.

mod assemble;
mod build_cmd;
mod cargo_config;
mod cli;
mod compile;
mod doctor;
mod error;
mod inspect;
mod manage;
mod plan_cache;
mod prepare;
mod registry;
mod rustc;
mod settings;
mod status;
mod target;
mod toolchain;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{CargoCli, Command};
use crate::error::{exit_code, Result};
use crate::status::Shell;

fn main() -> ExitCode {
    let CargoCli::Fatbin(app) = CargoCli::parse();
    let shell = Shell::new(app.color);
    match run(app.command, shell) {
        Ok(()) => ExitCode::from(exit_code::SUCCESS),
        Err(e) => {
            shell.error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(command: Command, shell: Shell) -> Result<()> {
    match command {
        Command::Build(args) => build_cmd::build(args, shell),
        Command::Install(args) => build_cmd::install(args, shell),
        Command::Doctor(args) => doctor::doctor(args, shell),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Verify(args) => manage::verify_cmd(args, shell),
        Command::Add(args) => manage::add(args, shell),
        Command::Remove(args) => manage::remove(args, shell),
        Command::List(args) => manage::list(args),
    }
}
