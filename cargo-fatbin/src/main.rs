//! `cargo fatbin`: cross-compile a Rust program for many processors in one cargo run and
//! install it as a fat program (one binary per processor, picked at run time by `fatbin`).
//!
//! The reference is `docs/cargo-fatbin.md`.

mod assemble;
mod build;
mod cargo_config;
mod cli;
mod commands;
mod compile;
mod diagnose;
mod doctor;
mod error;
mod inspect;
mod manage;
mod options;
mod plan;
mod plan_cache;
mod prepare;
mod project;
mod registry;
mod rustc;
mod settings;
mod status;
mod target;
mod toolchain;
mod views;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::CargoCli;
use crate::error::exit_code;
use crate::status::Shell;

fn main() -> ExitCode {
    let CargoCli::Fatbin(app) = CargoCli::parse();
    let shell = Shell::new(commands::color_choice(app.color));
    match commands::run(app.command, shell) {
        Ok(()) => ExitCode::from(exit_code::SUCCESS),
        Err(e) => {
            shell.error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
