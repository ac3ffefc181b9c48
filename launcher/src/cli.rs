//! The `fatbin` command line, parsed by hand: the launcher is on every program's start-up
//! path, and a small hand-written parser costs nothing there while a general one costs
//! start-up time and binary size. The help text below is the reference.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Result};

pub const HELP: &str = "\
fatbin: run the best binary of a fat program for this processor

Usage:
  fatbin run [--arch SLOT] [--root ROOT] [--argv0 ARG0] PROG [ARGS...]
  fatbin which [--arch SLOT] [--root ROOT] PROG [--explain]
  fatbin host
  fatbin list [--root ROOT]
  fatbin nodes ...             manage the cluster's nodes (see `fatbin nodes --help`)

Commands:
  run     Run PROG's best slot for this host (or the forced one) with ARGS.
  which   Print the path of the slot PROG would run; --explain prints every slot with
          supported / chosen / why not.
  host    Print this host's processor, x86-64 level and usable CPU features.
  list    List the programs in ROOT and their slots (* marks the one this host runs).

Options:
  --arch SLOT   Force a slot (x86_64, x86_64-v3, aarch64, ...); one the host cannot run
                natively runs under qemu-<arch>-static. Default: $FATBIN_ARCH.
  --argv0 ARG0  argv[0] to give the program (run only). Default: PROG as typed.
  --root ROOT   The layout root. Default: $FATBIN_ROOT, else the location of the shim or
                launcher that was run (ROOT/shims/..), else $XDG_DATA_HOME/fatbin,
                else ~/.local/share/fatbin.
  -h, --help    Print this help.
  -V, --version Print the version.

Environment:
  FATBIN_ROOT      layout root (see --root)
  FATBIN_ARCH      forced slot (see --arch)
  FATBIN_FALLBACK  what to try when no slot runs natively, in order: `nodes,qemu` (default),
                   any subset, or `none`
  FATBIN_DEPTH     set by the launcher for the program it runs (recursion guard)

Shims: ROOT/shims/PROG is a symlink to the launcher; with ROOT/shims on PATH, `PROG ARGS`
runs like `fatbin run PROG ARGS`. Exit status: the program's own; 126 when it was found but
cannot run here; 127 when the program or slot does not exist; 2 for usage errors.
See docs/launcher.md.
";

/// A parsed command line.
#[derive(Debug)]
pub enum Command {
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
    Host,
    List {
        opts: Opts,
    },
    Nodes(Vec<OsString>),
    Help,
    Version,
}

/// Options shared by the commands.
#[derive(Debug, Default)]
pub struct Opts {
    pub root: Option<PathBuf>,
    pub arch: Option<String>,
}

/// One option or positional word.
enum Word {
    Root(PathBuf),
    Argv0(OsString),
    Arch(String),
    Explain,
    Help,
    Version,
    DoubleDash,
    Positional(OsString),
}

/// Reads one word, taking an option's value from the next argument if needed.
fn next_word(
    word: OsString,
    rest: &mut impl Iterator<Item = OsString>,
    command: &str,
) -> Result<Word> {
    let Some(text) = word.to_str() else {
        return Ok(Word::Positional(word));
    };
    let (name, inline) = match text.split_once('=') {
        Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
        _ => (text, None),
    };
    let mut value = |opt: &str| -> Result<OsString> {
        match inline.clone().map(OsString::from).or_else(|| rest.next()) {
            Some(v) => Ok(v),
            None => Err(usage(format!("{opt} needs a value"))),
        }
    };
    Ok(match name {
        "--root" => Word::Root(PathBuf::from(value("--root")?)),
        "--arch" => Word::Arch(
            value("--arch")?
                .into_string()
                .map_err(|_| usage("--arch: not UTF-8".into()))?,
        ),
        "--explain" if command == "which" => Word::Explain,
        "--argv0" if command == "run" => Word::Argv0(value("--argv0")?),
        "-h" | "--help" => Word::Help,
        "-V" | "--version" => Word::Version,
        "--" => Word::DoubleDash,
        n if n.starts_with('-') && n.len() > 1 => {
            let what = if command.is_empty() {
                "fatbin".to_owned()
            } else {
                format!("fatbin {command}")
            };
            return Err(usage(format!("unknown option `{n}` for `{what}`")));
        }
        _ => Word::Positional(word),
    })
}

/// A usage error with a pointer to the help.
fn usage(message: String) -> Error {
    Error::Usage(format!("{message}\n\nRun `fatbin --help` for usage."))
}

/// Parses the arguments after argv[0].
pub fn parse(args: Vec<OsString>) -> Result<Command> {
    let mut it = args.into_iter();
    let mut opts = Opts::default();
    // Options may come before the command.
    let command = loop {
        let Some(word) = it.next() else {
            return Err(usage("no command given".into()));
        };
        match next_word(word, &mut it, "")? {
            Word::Root(r) => opts.root = Some(r),
            Word::Arch(a) => opts.arch = Some(a),
            Word::Help => return Ok(Command::Help),
            Word::Version => return Ok(Command::Version),
            Word::Positional(c) => break c,
            Word::Explain | Word::DoubleDash | Word::Argv0(_) => {
                return Err(usage("no command given".into()))
            }
        }
    };
    let command = command.to_string_lossy().into_owned();
    match command.as_str() {
        "run" => {
            // Options end at the program's name: everything after it is the program's.
            let mut argv0 = None;
            let program = loop {
                let Some(word) = it.next() else {
                    return Err(usage("`fatbin run` needs a program name".into()));
                };
                match next_word(word, &mut it, "run")? {
                    Word::Root(r) => opts.root = Some(r),
                    Word::Arch(a) => opts.arch = Some(a),
                    Word::Help => return Ok(Command::Help),
                    Word::Version => return Ok(Command::Version),
                    Word::DoubleDash => match it.next() {
                        Some(p) => break p,
                        None => return Err(usage("`fatbin run` needs a program name".into())),
                    },
                    Word::Positional(p) => break p,
                    Word::Argv0(a) => argv0 = Some(a),
                    Word::Explain => unreachable!("--explain is only a word of `which`"),
                }
            };
            Ok(Command::Run {
                opts,
                program,
                argv0,
                args: it.collect(),
            })
        }
        "which" => {
            let mut program = None;
            let mut explain = false;
            while let Some(word) = it.next() {
                match next_word(word, &mut it, "which")? {
                    Word::Root(r) => opts.root = Some(r),
                    Word::Arch(a) => opts.arch = Some(a),
                    Word::Explain => explain = true,
                    Word::Argv0(_) => unreachable!("--argv0 is only a word of `run`"),
                    Word::Help => return Ok(Command::Help),
                    Word::Version => return Ok(Command::Version),
                    Word::DoubleDash => {}
                    Word::Positional(p) if program.is_none() => program = Some(p),
                    Word::Positional(p) => {
                        return Err(usage(format!(
                            "`fatbin which` takes one program, got another: {}",
                            p.to_string_lossy()
                        )))
                    }
                }
            }
            let program =
                program.ok_or_else(|| usage("`fatbin which` needs a program name".into()))?;
            Ok(Command::Which {
                opts,
                program,
                explain,
            })
        }
        "host" | "list" => {
            while let Some(word) = it.next() {
                match next_word(word, &mut it, &command)? {
                    Word::Root(r) if command == "list" => opts.root = Some(r),
                    Word::Help => return Ok(Command::Help),
                    Word::Version => return Ok(Command::Version),
                    _ => return Err(usage(format!("`fatbin {command}` takes no such argument"))),
                }
            }
            Ok(if command == "host" {
                Command::Host
            } else {
                Command::List { opts }
            })
        }
        "nodes" => Ok(Command::Nodes(it.collect())),
        "help" => Ok(Command::Help),
        other => Err(usage(format!(
            "unknown command `{other}` (commands: run, which, host, list, nodes)"
        ))),
    }
}
