//! Status lines like cargo's on stderr: a right-aligned bold verb, then what it is about.
//!
//! Colours follow `--color`; `auto` colours a terminal unless `NO_COLOR` is set (anstream
//! implements the NO_COLOR and CLICOLOR conventions). stdout carries only machine data.

use std::io::Write;

use anstyle::{AnsiColor, Effects, Style};

use crate::cli::ColorChoice;

#[derive(Debug, Clone, Copy)]
pub struct Shell {
    color: ColorChoice,
    quiet: bool,
}

const OK: Style = AnsiColor::Green.on_default().effects(Effects::BOLD);
const WARN: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
const ERROR: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
const NOTE: Style = AnsiColor::Cyan.on_default().effects(Effects::BOLD);

impl Shell {
    pub fn new(color: ColorChoice) -> Shell {
        Shell {
            color,
            quiet: false,
        }
    }

    pub fn quiet(mut self, quiet: bool) -> Shell {
        self.quiet = quiet;
        self
    }

    pub fn color(&self) -> ColorChoice {
        self.color
    }

    fn stderr(&self) -> anstream::AutoStream<std::io::Stderr> {
        let choice = match self.color {
            ColorChoice::Auto => anstream::AutoStream::choice(&std::io::stderr()),
            ColorChoice::Always => anstream::ColorChoice::Always,
            ColorChoice::Never => anstream::ColorChoice::Never,
        };
        anstream::AutoStream::new(std::io::stderr(), choice)
    }

    /// `   Compiling probe v0.3.1`: cargo's 12-column right-aligned verb.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            self.line(OK, &format!("{verb:>12}"), &message.to_string());
        }
    }

    /// A status line in cyan, for facts that are neither progress nor trouble.
    pub fn note(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            self.line(NOTE, &format!("{verb:>12}"), &message.to_string());
        }
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        self.line(WARN, "warning:", &message.to_string());
    }

    pub fn error(&self, message: impl std::fmt::Display) {
        self.line(ERROR, "error:", &message.to_string());
    }

    /// Text styled as success or failure, for tables (doctor, inspect).
    pub fn styled(&self, ok: bool, text: &str) -> String {
        let style = if ok { OK } else { ERROR };
        format!("{style}{text}{style:#}")
    }

    /// Prints a pre-styled line to stderr.
    pub fn plain(&self, text: impl std::fmt::Display) {
        let _ = writeln!(self.stderr(), "{text}");
    }

    fn line(&self, style: Style, head: &str, message: &str) {
        let _ = writeln!(self.stderr(), "{style}{head}{style:#} {message}");
    }
}
