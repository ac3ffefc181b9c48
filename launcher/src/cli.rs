//! The `fatbin` command line: its table (see [`crate::args`]), which also prints `--help`,
//! and the [`Command`] it parses into.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::args::{ArgError, Flag, Operands, Parsed, Spec, Table};
use crate::error::{Error, Result};

const ARCH: Flag = Flag::value(
    "--arch",
    "SLOT",
    "Force a slot (x86_64, x86_64-v3, aarch64, ...); one the host cannot run natively runs \
     under qemu-<arch>-static. Default: $FATBIN_ARCH.",
);
const ROOT: Flag = Flag::value(
    "--root",
    "ROOT",
    "The layout root. Default: $FATBIN_ROOT, else the location of the shim or launcher that \
     was run (ROOT/shims/..), else $XDG_DATA_HOME/fatbin, else ~/.local/share/fatbin.",
);
const ARGV0: Flag = Flag::value(
    "--argv0",
    "ARG0",
    "argv[0] to give the program (run only). Default: PROG as typed.",
);
const EXPLAIN: Flag = Flag::switch(
    "--explain",
    "Print every slot with supported / chosen / why not, the fallbacks and the route (which only).",
);
const HELP: Flag = Flag::stop("-h", "--help", "Print this help.");
const VERSION: Flag = Flag::stop("-V", "--version", "Print the version.");

/// The `fatbin` command line.
pub(crate) const TABLE: Table = Table {
    program: "fatbin",
    about: "fatbin: run the best binary of a fat program for this processor",
    globals: &[ARCH, ROOT, HELP, VERSION],
    globals_anywhere: false,
    commands: &[
        Spec {
            name: "run",
            alias: None,
            flags: &[ARCH, ROOT, ARGV0, HELP, VERSION],
            operands: Operands::Program("PROG"),
            about: "Run PROG's best slot for this host (or the forced one) with ARGS.",
        },
        Spec {
            name: "which",
            alias: None,
            flags: &[ARCH, ROOT, EXPLAIN, HELP, VERSION],
            operands: Operands::One("PROG"),
            about: "Print the path of the slot PROG would run; --explain prints every slot \
                    with supported / chosen / why not.",
        },
        Spec {
            name: "host",
            alias: None,
            flags: &[
                Flag::switch(
                    "--slurm-features",
                    "Print only the Slurm Features this node should carry (slot names).",
                ),
                HELP,
                VERSION,
            ],
            operands: Operands::None,
            about: "Print this host's processor, x86-64 level and usable CPU features.",
        },
        Spec {
            name: "list",
            alias: None,
            flags: &[ROOT, HELP, VERSION],
            operands: Operands::None,
            about: "List the programs in ROOT and their slots (* marks the one this host runs).",
        },
        Spec {
            name: "nodes",
            alias: None,
            flags: &[],
            operands: Operands::Rest,
            about: "Manage the cluster's nodes (see `fatbin nodes --help`).",
        },
        Spec {
            name: "view",
            alias: None,
            flags: &[],
            operands: Operands::Rest,
            about: "A node-local directory of programs resolved for this node: sync, check \
                    (see `fatbin view --help`).",
        },
    ],
    footer: "\
Environment:
  FATBIN_ROOT      layout root (see --root)
  FATBIN_ARCH      forced slot (see --arch)
  FATBIN_FALLBACK  what to try when no slot runs natively, in order: `slurm,nodes,qemu`
                   (default; routes not configured are skipped), any subset, or `none`
  FATBIN_DEPTH     set by the launcher for the program it runs (recursion guard)

Shims: ROOT/shims/PROG is a symlink to the launcher; with ROOT/shims on PATH, `PROG ARGS`
runs like `fatbin run PROG ARGS`. Exit status: the program's own; 126 when it was found but
cannot run here; 127 when the program or slot does not exist; 2 for usage errors.
See docs/launcher.md.
",
};

/// A parsed command line.
#[derive(Debug)]
pub(crate) enum Command {
    Run {
        opts: Opts,
        program: OsString,
        argv0: Option<OsString>,
        args: Vec<OsString>,
    },
    Which {
        opts: Opts,
        program: OsString,
        explain: bool,
    },
    Host {
        slurm_features: bool,
    },
    List {
        opts: Opts,
    },
    Nodes(Vec<OsString>),
    View(Vec<OsString>),
    Help,
    Version,
}

/// Options shared by the commands.
#[derive(Debug, Default)]
pub(crate) struct Opts {
    pub(crate) root: Option<PathBuf>,
    pub(crate) arch: Option<String>,
}

/// A usage error with a pointer to the help.
fn usage(message: String) -> Error {
    Error::Usage(format!("{message}\n\nRun `fatbin --help` for usage."))
}

/// A parse error in the words users have always read.
fn usage_error(e: ArgError) -> Error {
    usage(match e {
        ArgError::NoCommand => "no command given".into(),
        ArgError::UnknownCommand(other) => format!(
            "unknown command `{other}` (commands: {})",
            TABLE.command_names()
        ),
        ArgError::UnknownFlag(flag, None) => format!("unknown option `{flag}` for `fatbin`"),
        ArgError::UnknownFlag(flag, Some(command)) => {
            format!("unknown option `{flag}` for `fatbin {command}`")
        }
        ArgError::MissingValue(flag) => format!("{flag} needs a value"),
        ArgError::MissingOperand(command, _) => format!("`fatbin {command}` needs a program name"),
        ArgError::ExtraOperand("which", other) => format!(
            "`fatbin which` takes one program, got another: {}",
            other.to_string_lossy()
        ),
        ArgError::ExtraOperand(command, _) => {
            format!("`fatbin {command}` takes no such argument")
        }
    })
}

/// Parses the arguments after argv[0].
pub(crate) fn parse(args: Vec<OsString>) -> Result<Command> {
    // `fatbin help` is `fatbin --help`.
    if args.first().is_some_and(|a| a == "help") {
        return Ok(Command::Help);
    }
    command(TABLE.parse(args).map_err(usage_error)?)
}

/// The command a parsed line asks for.
fn command(mut p: Parsed) -> Result<Command> {
    match p.stopped {
        Some("--help") => return Ok(Command::Help),
        Some(_) => return Ok(Command::Version),
        None => {}
    }
    let opts = Opts {
        root: p.value("--root").map(PathBuf::from),
        arch: match p.value("--arch") {
            None => None,
            Some(arch) => Some(
                arch.to_str()
                    .ok_or_else(|| usage("--arch: not UTF-8".into()))?
                    .to_owned(),
            ),
        },
    };
    let mut operands = std::mem::take(&mut p.operands).into_iter();
    Ok(match p.command {
        Some("run") => Command::Run {
            opts,
            program: operands.next().expect("the table requires PROG"),
            argv0: p.value("--argv0").map(OsString::from),
            args: p.rest,
        },
        Some("which") => Command::Which {
            opts,
            program: operands.next().expect("the table requires PROG"),
            explain: p.has("--explain"),
        },
        Some("host") => Command::Host {
            slurm_features: p.has("--slurm-features"),
        },
        Some("list") => Command::List { opts },
        Some("nodes") => Command::Nodes(p.rest),
        Some("view") => Command::View(p.rest),
        other => unreachable!("no command `{other:?}` in the table"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Result<Command> {
        parse(words.iter().map(OsString::from).collect())
    }

    fn usage_message(words: &[&str]) -> String {
        match parse_words(words) {
            Err(Error::Usage(message)) => message,
            other => panic!("{words:?}: not a usage error: {other:?}"),
        }
    }

    #[test]
    fn run_takes_options_before_the_program_and_passes_the_rest() {
        let Command::Run {
            opts,
            program,
            argv0,
            args,
        } = parse_words(&[
            "--root",
            "/r",
            "run",
            "--arch=aarch64",
            "--argv0",
            "a0",
            "prog",
            "--help",
            "-V",
        ])
        .unwrap()
        else {
            panic!("not run")
        };
        assert_eq!(opts.root, Some(PathBuf::from("/r")));
        assert_eq!(opts.arch.as_deref(), Some("aarch64"));
        assert_eq!((program, argv0), ("prog".into(), Some("a0".into())));
        assert_eq!(args, ["--help", "-V"]);
        let Command::Run { program, args, .. } = parse_words(&["run", "--", "-p", "x"]).unwrap()
        else {
            panic!("not run")
        };
        assert_eq!((program, args), ("-p".into(), vec!["x".into()]));
    }

    #[test]
    fn which_takes_options_on_either_side_of_the_program() {
        let Command::Which {
            opts,
            program,
            explain,
        } = parse_words(&["which", "prog", "--explain", "--root", "/r"]).unwrap()
        else {
            panic!("not which")
        };
        assert_eq!((program, explain), ("prog".into(), true));
        assert_eq!(opts.root, Some(PathBuf::from("/r")));
    }

    #[test]
    fn the_other_commands() {
        assert!(matches!(
            parse_words(&["host"]),
            Ok(Command::Host {
                slurm_features: false
            })
        ));
        assert!(matches!(
            parse_words(&["host", "--slurm-features"]),
            Ok(Command::Host {
                slurm_features: true
            })
        ));
        assert!(matches!(parse_words(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse_words(&["help"]), Ok(Command::Help)));
        assert!(matches!(parse_words(&["which", "-h"]), Ok(Command::Help)));
        assert!(matches!(parse_words(&["-V"]), Ok(Command::Version)));
        assert!(matches!(
            parse_words(&["list", "--version"]),
            Ok(Command::Version)
        ));
        let Ok(Command::List { opts }) = parse_words(&["list", "--root=/r"]) else {
            panic!("not list")
        };
        assert_eq!(opts.root, Some(PathBuf::from("/r")));
        let Ok(Command::Nodes(rest)) = parse_words(&["nodes", "add", "--bogus"]) else {
            panic!("not nodes")
        };
        assert_eq!(rest, ["add", "--bogus"]);
    }

    /// The wording users have always read (docs/launcher.md), each with the help pointer.
    #[test]
    fn usage_errors_keep_their_words() {
        for (words, message) in [
            (&[][..], "no command given"),
            (
                &["frobnicate"],
                "unknown command `frobnicate` (commands: run, which, host, list, nodes, view)",
            ),
            (&["run"], "`fatbin run` needs a program name"),
            (&["run", "--"], "`fatbin run` needs a program name"),
            (&["which"], "`fatbin which` needs a program name"),
            (
                &["run", "--bogus", "p"],
                "unknown option `--bogus` for `fatbin run`",
            ),
            (&["--bogus", "run"], "unknown option `--bogus` for `fatbin`"),
            (&["run", "--arch"], "--arch needs a value"),
            (
                &["which", "a", "b"],
                "`fatbin which` takes one program, got another: b",
            ),
            (&["host", "x"], "`fatbin host` takes no such argument"),
            (
                &["list", "--explain"],
                "unknown option `--explain` for `fatbin list`",
            ),
            (
                &["host", "--root", "/r"],
                "unknown option `--root` for `fatbin host`",
            ),
        ] {
            let text = usage_message(words);
            assert_eq!(
                text,
                format!("{message}\n\nRun `fatbin --help` for usage."),
                "{words:?}"
            );
        }
    }

    #[test]
    fn the_help_lists_every_command_and_option() {
        let help = TABLE.help();
        for needle in [
            "  fatbin run [--arch SLOT] [--root ROOT] [--argv0 ARG0] PROG [ARGS...]\n",
            "  fatbin which PROG [--arch SLOT] [--root ROOT] [--explain]\n",
            "  fatbin host [--slurm-features]\n",
            "  fatbin list [--root ROOT]\n",
            "  fatbin nodes ...\n",
            "  fatbin --help | --version\n",
            "  -V, --version",
            "FATBIN_FALLBACK",
        ] {
            assert!(help.contains(needle), "{needle:?} not in:\n{help}");
        }
    }

    /// docs/launcher.md shows the usage lines the help prints.
    #[test]
    fn the_docs_show_the_usage_the_help_prints() {
        let docs = include_str!("../../docs/launcher.md");
        let help = TABLE.help();
        let usage = help.split("\n\nCommands:").next().unwrap();
        for line in usage.lines().skip(3) {
            let line = line.trim();
            // The line, alone or followed by a comment after two spaces.
            assert!(
                docs.lines()
                    .map(str::trim)
                    .any(|l| l == line || l.starts_with(&format!("{line}  "))),
                "docs/launcher.md lacks the usage line `{line}`"
            );
        }
    }
}
