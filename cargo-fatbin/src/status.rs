//! Status lines like cargo's on stderr: a right-aligned bold verb, then what it is about.
//!
//! Colours follow `--color`; `auto` colours a terminal unless `NO_COLOR` is set (anstream
//! implements the NO_COLOR and CLICOLOR conventions). stdout carries only machine data.

use std::io::Write;

use anstyle::{AnsiColor, Effects, Style};

/// When to colour: `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// The spelling cargo's own `--color` takes.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Shell {
    color: ColorChoice,
    quiet: bool,
}

const OK: Style = AnsiColor::Green.on_default().effects(Effects::BOLD);
const WARN: Style = AnsiColor::Yellow.on_default().effects(Effects::BOLD);
const ERROR: Style = AnsiColor::Red.on_default().effects(Effects::BOLD);
const NOTE: Style = AnsiColor::Cyan.on_default().effects(Effects::BOLD);

impl Shell {
    pub(crate) fn new(color: ColorChoice) -> Shell {
        Shell {
            color,
            quiet: false,
        }
    }

    pub(crate) fn quiet(mut self, quiet: bool) -> Shell {
        self.quiet = quiet;
        self
    }

    pub(crate) fn color(&self) -> ColorChoice {
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
    pub(crate) fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            self.line(OK, &format!("{verb:>12}"), &message.to_string());
        }
    }

    /// A status line in cyan, for facts that are neither progress nor trouble.
    pub(crate) fn note(&self, verb: &str, message: impl std::fmt::Display) {
        if !self.quiet {
            self.line(NOTE, &format!("{verb:>12}"), &message.to_string());
        }
    }

    pub(crate) fn warn(&self, message: impl std::fmt::Display) {
        self.line(WARN, "warning:", &message.to_string());
    }

    pub(crate) fn error(&self, message: impl std::fmt::Display) {
        self.line(ERROR, "error:", &message.to_string());
    }

    /// Text styled as success or failure, for tables (doctor, inspect).
    pub(crate) fn styled(&self, ok: bool, text: &str) -> String {
        let style = if ok { OK } else { ERROR };
        format!("{style}{text}{style:#}")
    }

    /// Prints a pre-styled line to stderr.
    pub(crate) fn plain(&self, text: impl std::fmt::Display) {
        let _ = writeln!(self.stderr(), "{text}");
    }

    fn line(&self, style: Style, head: &str, message: &str) {
        let _ = writeln!(self.stderr(), "{style}{head}{style:#} {message}");
    }
}
