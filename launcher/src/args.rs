//! One table-driven parser for the launcher's command lines, `fatbin` and `fatbin nodes`.
//!
//! Each command is a [`Spec`]: its flags and its operands. The parser walks the table, and
//! the same table prints the usage lines and the option list of `--help`, so the help cannot
//! drift from what is parsed. The conventions are the usual ones: `--flag VALUE` or
//! `--flag=VALUE`, flags and operands in any order, `--` ends the flags, and a command that
//! runs a program (`fatbin run PROG ARGS`) stops at PROG: everything after it is PROG's.
//!
//! Hand-written rather than a crate: `fatbin-full` starts on every shim call the fast launcher
//! hands over, and a walk over a small static table costs nothing there. Errors are returned
//! as [`ArgError`] for each command line to word in its own voice.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;

/// Help text is wrapped to this many columns.
const WIDTH: usize = 92;

/// One flag of a command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    /// `--name`.
    pub(crate) long: &'static str,
    /// `-x`, if the flag has a short form.
    short: Option<&'static str>,
    /// The value's name in the help (`SLOT`); `None` for a switch.
    value: Option<&'static str>,
    /// May be given more than once (shown as `[--flag VALUE]...`).
    repeats: bool,
    /// Shown without brackets in usage lines (the command itself says when it is missing).
    required: bool,
    /// Ends parsing where it stands (`--help`, `--version`); left out of usage lines.
    stops: bool,
    help: &'static str,
}

impl Flag {
    /// A flag that takes a value.
    pub(crate) const fn value(long: &'static str, value: &'static str, help: &'static str) -> Flag {
        Flag {
            long,
            short: None,
            value: Some(value),
            repeats: false,
            required: false,
            stops: false,
            help,
        }
    }

    /// A flag without a value.
    pub(crate) const fn switch(long: &'static str, help: &'static str) -> Flag {
        Flag {
            value: None,
            ..Flag::value(long, "", help)
        }
    }

    /// A switch that ends parsing at once, like `--help`.
    pub(crate) const fn stop(short: &'static str, long: &'static str, help: &'static str) -> Flag {
        Flag {
            short: Some(short),
            stops: true,
            ..Flag::switch(long, help)
        }
    }

    pub(crate) const fn repeats(self) -> Flag {
        Flag {
            repeats: true,
            ..self
        }
    }

    // `fatbin nodes add` needs `--ssh` or `--slurm`: no command requires one flag today.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) const fn required(self) -> Flag {
        Flag {
            required: true,
            ..self
        }
    }

    /// `--flag VALUE` as usage lines show it.
    fn usage(&self) -> String {
        let mut text = match self.value {
            Some(value) => format!("{} {value}", self.long),
            None => self.long.to_owned(),
        };
        if !self.required {
            text = format!("[{text}]");
        }
        if self.repeats {
            text.push_str("...");
        }
        text
    }

    /// `-h, --help` or `--arch SLOT` as the option list shows it.
    fn signature(&self) -> String {
        let long = match self.value {
            Some(value) => format!("{} {value}", self.long),
            None => self.long.to_owned(),
        };
        match self.short {
            Some(short) => format!("{short}, {long}"),
            None => long,
        }
    }
}

/// What a command takes besides flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operands {
    None,
    /// At most one (`[NAME]`).
    Optional(&'static str),
    /// Exactly one (`NAME`).
    One(&'static str),
    /// A program and its arguments (`PROG [ARGS...]`): flags end at the program.
    Program(&'static str),
    /// Everything after the command, unparsed: a command line of its own (`fatbin nodes`).
    Rest,
}

/// One command: its name, flags, operands and a line of help.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    /// Another name it answers to (`rm` for `remove`).
    pub(crate) alias: Option<&'static str>,
    pub(crate) flags: &'static [Flag],
    pub(crate) operands: Operands,
    pub(crate) about: &'static str,
}

impl Spec {
    /// The usage line after the program's name: operands first, except that a program to
    /// run comes last because the flags must come before it.
    fn usage(&self) -> String {
        let flags: Vec<String> = self
            .flags
            .iter()
            .filter(|f| !f.stops)
            .map(Flag::usage)
            .collect();
        let operands = match self.operands {
            Operands::None => String::new(),
            Operands::Optional(name) => format!("[{name}]"),
            Operands::One(name) => name.to_owned(),
            Operands::Program(name) => format!("{name} [ARGS...]"),
            Operands::Rest => "...".to_owned(),
        };
        let mut words = vec![self.name.to_owned()];
        if matches!(self.operands, Operands::Program(_)) {
            words.extend(flags);
            words.push(operands);
        } else {
            words.push(operands);
            words.extend(flags);
        }
        words.retain(|w| !w.is_empty());
        words.join(" ")
    }
}

/// A whole command line: the flags it takes before a command, and the commands.
#[derive(Debug)]
pub(crate) struct Table {
    /// How the command line is started (`fatbin`, `fatbin nodes`).
    pub(crate) program: &'static str,
    /// The first line of the help.
    pub(crate) about: &'static str,
    /// Flags taken before the command.
    pub(crate) globals: &'static [Flag],
    /// Whether the global flags are taken after the command too.
    pub(crate) globals_anywhere: bool,
    pub(crate) commands: &'static [Spec],
    /// The end of the help: environment, files, exit statuses.
    pub(crate) footer: &'static str,
}

/// A parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// The command, by its main name; `None` when a stopping flag came first.
    pub(crate) command: Option<&'static str>,
    /// Flags in the order given, with their values (empty for switches).
    flags: Vec<(&'static str, OsString)>,
    pub(crate) operands: Vec<OsString>,
    /// The words after the program of a `Program` command, or after a `Rest` command.
    pub(crate) rest: Vec<OsString>,
    /// The stopping flag (`--help`, `--version`) that ended parsing.
    pub(crate) stopped: Option<&'static str>,
}

impl Parsed {
    /// Whether the switch or flag was given.
    pub(crate) fn has(&self, long: &str) -> bool {
        self.flags.iter().any(|(f, _)| *f == long)
    }

    /// The flag's value; the last one when given more than once.
    pub(crate) fn value(&self, long: &str) -> Option<&OsStr> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| *f == long)
            .map(|(_, v)| v.as_os_str())
    }

    /// Every value of a repeated flag, in order.
    pub(crate) fn values<'a>(&'a self, long: &'a str) -> impl Iterator<Item = &'a OsStr> + 'a {
        self.flags
            .iter()
            .filter(move |(f, _)| *f == long)
            .map(|(_, v)| v.as_os_str())
    }
}

/// What was wrong with a command line, for each front end to word.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// No command word at all.
    NoCommand,
    UnknownCommand(String),
    /// A flag this command does not take: the flag, and the command (`None` before one).
    UnknownFlag(String, Option<&'static str>),
    MissingValue(&'static str),
    /// The command's required operand is missing: the command, the operand.
    MissingOperand(&'static str, &'static str),
    /// An operand more than the command takes.
    ExtraOperand(&'static str, OsString),
}

/// A word that may be a flag: `-x`, `--name` or `--name=value`, as UTF-8.
fn flag_word(word: &OsStr) -> Option<(&str, Option<&str>)> {
    let text = word.to_str()?;
    if !text.starts_with('-') || text.len() < 2 {
        return None;
    }
    Some(match text.split_once('=') {
        Some((name, value)) if name.starts_with("--") => (name, Some(value)),
        _ => (text, None),
    })
}

impl Table {
    /// The command named `name` (or its alias).
    fn command(&self, name: &str) -> Option<&'static Spec> {
        self.commands
            .iter()
            .find(|c| c.name == name || c.alias == Some(name))
    }

    /// The commands' names, for messages: `run, which, host`.
    pub(crate) fn command_names(&self) -> String {
        let names: Vec<&str> = self.commands.iter().map(|c| c.name).collect();
        names.join(", ")
    }

    /// Parses the words after the program's name (and after `nodes` for `fatbin nodes`).
    pub(crate) fn parse(&self, args: Vec<OsString>) -> Result<Parsed, ArgError> {
        let mut parsed = Parsed::default();
        let mut words = args.into_iter();
        // The flags before the command, up to the command word.
        let command = loop {
            let Some(word) = words.next() else {
                return Err(ArgError::NoCommand);
            };
            if word == "--" {
                match words.next() {
                    Some(command) => break command,
                    None => return Err(ArgError::NoCommand),
                }
            }
            match flag_word(&word) {
                Some((name, inline)) => {
                    let flag = find_flag(self.globals, name)
                        .ok_or_else(|| ArgError::UnknownFlag(name.to_owned(), None))?;
                    take_flag(flag, inline, &mut words, &mut parsed)?;
                    if parsed.stopped.is_some() {
                        return Ok(parsed);
                    }
                }
                None => break word,
            }
        };
        let name = command.to_string_lossy();
        let spec = self
            .command(&name)
            .ok_or_else(|| ArgError::UnknownCommand(name.into_owned()))?;
        parsed.command = Some(spec.name);
        if spec.operands == Operands::Rest {
            parsed.rest = words.collect();
            return Ok(parsed);
        }
        let mut flags_end = false;
        while let Some(word) = words.next() {
            let flag = if flags_end {
                None
            } else if word == "--" {
                flags_end = true;
                continue;
            } else {
                flag_word(&word)
            };
            let Some((name, inline)) = flag else {
                take_operand(spec, word, &mut words, &mut parsed)?;
                continue;
            };
            let flag = find_flag(spec.flags, name)
                .or_else(|| {
                    self.globals_anywhere
                        .then(|| find_flag(self.globals, name))
                        .flatten()
                })
                .ok_or_else(|| ArgError::UnknownFlag(name.to_owned(), Some(spec.name)))?;
            take_flag(flag, inline, &mut words, &mut parsed)?;
            if parsed.stopped.is_some() {
                return Ok(parsed);
            }
        }
        match spec.operands {
            Operands::One(name) | Operands::Program(name) if parsed.operands.is_empty() => {
                Err(ArgError::MissingOperand(spec.name, name))
            }
            _ => Ok(parsed),
        }
    }

    /// The help text: usage lines, commands, options, and the footer.
    pub(crate) fn help(&self) -> String {
        let mut text = format!("{}\n\nUsage:\n", self.about);
        for spec in self.commands {
            let line = format!("  {} {}", self.program, spec.usage());
            let indent = self.program.len() + spec.name.len() + 4;
            text.push_str(&wrap(&line, indent, WIDTH));
        }
        let globals: Vec<&Flag> = self.globals.iter().filter(|f| f.stops).collect();
        if !globals.is_empty() {
            let flags: Vec<&str> = globals.iter().map(|f| f.long).collect();
            let _ = writeln!(text, "  {} {}", self.program, flags.join(" | "));
        }
        text.push_str("\nCommands:\n");
        let width = self
            .commands
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for spec in self.commands {
            let line = format!("  {:width$}  {}", spec.name, spec.about);
            text.push_str(&wrap(&line, width + 4, WIDTH));
        }
        text.push_str("\nOptions:\n");
        let mut flags: Vec<&Flag> = Vec::new();
        let all = self
            .commands
            .iter()
            .flat_map(|c| c.flags)
            .chain(self.globals);
        for flag in all {
            if !flags.iter().any(|f| f.long == flag.long) {
                flags.push(flag);
            }
        }
        // The stopping flags (help, version) last, as usual.
        flags.sort_by_key(|f| f.stops);
        let width = flags.iter().map(|f| f.signature().len()).max().unwrap_or(0);
        for flag in flags {
            let line = format!("  {:width$}  {}", flag.signature(), flag.help);
            text.push_str(&wrap(&line, width + 4, WIDTH));
        }
        if !self.footer.is_empty() {
            text.push('\n');
            text.push_str(self.footer);
        }
        text
    }
}

fn find_flag(flags: &'static [Flag], name: &str) -> Option<&'static Flag> {
    flags
        .iter()
        .find(|f| f.long == name || f.short == Some(name))
}

/// Records a flag, taking its value from `--flag=VALUE` or from the next word.
fn take_flag(
    flag: &'static Flag,
    inline: Option<&str>,
    words: &mut impl Iterator<Item = OsString>,
    parsed: &mut Parsed,
) -> Result<(), ArgError> {
    let value = match (flag.value, inline) {
        (None, None) => OsString::new(),
        // `--switch=value`: a switch takes no value, so this is not a flag it knows.
        (None, Some(_)) => {
            return Err(ArgError::UnknownFlag(
                format!("{}={}", flag.long, inline.unwrap_or_default()),
                parsed.command,
            ))
        }
        (Some(_), Some(value)) => value.into(),
        (Some(_), None) => words.next().ok_or(ArgError::MissingValue(flag.long))?,
    };
    if flag.stops {
        parsed.stopped = Some(flag.long);
    }
    parsed.flags.push((flag.long, value));
    Ok(())
}

/// Records an operand; for a `Program` command, the rest of the words are the program's.
fn take_operand(
    spec: &Spec,
    word: OsString,
    words: &mut impl Iterator<Item = OsString>,
    parsed: &mut Parsed,
) -> Result<(), ArgError> {
    match spec.operands {
        Operands::Program(_) => {
            parsed.operands.push(word);
            parsed.rest = words.collect();
        }
        Operands::Optional(_) | Operands::One(_) if parsed.operands.is_empty() => {
            parsed.operands.push(word)
        }
        _ => return Err(ArgError::ExtraOperand(spec.name, word)),
    }
    Ok(())
}

/// `line` wrapped at `width` columns, continuation lines indented by `indent`, between words.
fn wrap(line: &str, indent: usize, width: usize) -> String {
    let body = line.trim_start();
    let mut out = String::new();
    let mut current = line[..line.len() - body.len()].to_owned();
    let mut empty = true;
    // Splitting on single spaces keeps runs of spaces (the padding of columns) as empty words.
    for word in body.split(' ') {
        if empty || current.len() + 1 + word.len() <= width {
            if !empty {
                current.push(' ');
            }
            current.push_str(word);
            empty = false;
        } else {
            out.push_str(current.trim_end());
            out.push('\n');
            current = format!("{:indent$}{word}", "");
        }
    }
    out.push_str(current.trim_end());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOT: Flag = Flag::value("--root", "ROOT", "the root");
    const HELP: Flag = Flag::stop("-h", "--help", "print this help");
    const TABLE: Table = Table {
        program: "tool",
        about: "tool: a test",
        globals: &[ROOT, HELP],
        globals_anywhere: false,
        commands: &[
            Spec {
                name: "run",
                alias: None,
                flags: &[ROOT, HELP, Flag::switch("--fast", "go fast")],
                operands: Operands::Program("PROG"),
                about: "run PROG",
            },
            Spec {
                name: "add",
                alias: Some("new"),
                flags: &[
                    Flag::value("--to", "DEST", "where").required(),
                    Flag::value("--tag", "TAG", "a tag").repeats(),
                    HELP,
                ],
                operands: Operands::One("NAME"),
                about: "add NAME",
            },
            Spec {
                name: "show",
                alias: None,
                flags: &[],
                operands: Operands::Optional("NAME"),
                about: "show NAME",
            },
            Spec {
                name: "sub",
                alias: None,
                flags: &[],
                operands: Operands::Rest,
                about: "a command line of its own",
            },
        ],
        footer: "The end.\n",
    };

    fn parse(words: &[&str]) -> Result<Parsed, ArgError> {
        TABLE.parse(words.iter().map(OsString::from).collect())
    }

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_program_command_stops_at_the_program() {
        let p = parse(&[
            "--root", "r1", "run", "--fast", "prog", "--fast", "--help", "x",
        ])
        .unwrap();
        assert_eq!(p.command, Some("run"));
        assert_eq!(p.value("--root"), Some(OsStr::new("r1")));
        assert!(p.has("--fast"));
        assert_eq!(p.operands, os(&["prog"]));
        assert_eq!(p.rest, os(&["--fast", "--help", "x"]));
        assert_eq!(p.stopped, None);
        // `--` ends the flags: the program may start with a dash.
        let p = parse(&["run", "--root=r2", "--", "-prog", "a"]).unwrap();
        assert_eq!(p.value("--root"), Some(OsStr::new("r2")));
        assert_eq!(p.operands, os(&["-prog"]));
        assert_eq!(p.rest, os(&["a"]));
    }

    #[test]
    fn flags_and_operands_mix_and_repeat() {
        let p = parse(&["new", "--tag", "a", "n1", "--to=d", "--tag=b"]).unwrap();
        assert_eq!(p.command, Some("add"), "the alias names the command");
        assert_eq!(p.operands, os(&["n1"]));
        assert_eq!(p.value("--to"), Some(OsStr::new("d")));
        let tags: Vec<&OsStr> = p.values("--tag").collect();
        assert_eq!(tags, ["a", "b"]);
        assert_eq!(p.value("--tag"), Some(OsStr::new("b")), "the last one wins");
        let p = parse(&["show"]).unwrap();
        assert!(p.operands.is_empty());
        let p = parse(&["sub", "--anything", "goes", "--"]).unwrap();
        assert_eq!(p.rest, os(&["--anything", "goes", "--"]));
    }

    #[test]
    fn stopping_flags_end_parsing_where_they_stand() {
        let p = parse(&["--help", "--bogus"]).unwrap();
        assert_eq!((p.command, p.stopped), (None, Some("--help")));
        let p = parse(&["add", "-h", "--bogus"]).unwrap();
        assert_eq!((p.command, p.stopped), (Some("add"), Some("--help")));
    }

    #[test]
    fn every_mistake_has_its_error() {
        use ArgError::*;
        assert_eq!(parse(&[]).unwrap_err(), NoCommand);
        assert_eq!(parse(&["--"]).unwrap_err(), NoCommand);
        assert_eq!(parse(&["--root", "r"]).unwrap_err(), NoCommand);
        assert_eq!(parse(&["frob"]).unwrap_err(), UnknownCommand("frob".into()));
        assert_eq!(
            parse(&["--fast", "run"]).unwrap_err(),
            UnknownFlag("--fast".into(), None)
        );
        assert_eq!(
            parse(&["run", "--bogus", "p"]).unwrap_err(),
            UnknownFlag("--bogus".into(), Some("run"))
        );
        assert_eq!(
            parse(&["run", "--fast=yes", "p"]).unwrap_err(),
            UnknownFlag("--fast=yes".into(), Some("run"))
        );
        // The global flags are not taken after the command unless the table says so.
        assert_eq!(
            parse(&["add", "n", "--root", "r"]).unwrap_err(),
            UnknownFlag("--root".into(), Some("add"))
        );
        assert_eq!(
            parse(&["run", "--root"]).unwrap_err(),
            MissingValue("--root")
        );
        assert_eq!(parse(&["run"]).unwrap_err(), MissingOperand("run", "PROG"));
        assert_eq!(
            parse(&["add", "--to", "d"]).unwrap_err(),
            MissingOperand("add", "NAME")
        );
        assert_eq!(
            parse(&["add", "a", "b"]).unwrap_err(),
            ExtraOperand("add", "b".into())
        );
        assert_eq!(
            parse(&["show", "a", "b"]).unwrap_err(),
            ExtraOperand("show", "b".into())
        );
    }

    #[test]
    fn global_flags_anywhere_when_the_table_says_so() {
        let table = Table {
            globals_anywhere: true,
            ..TABLE
        };
        let p = table
            .parse(os(&["add", "n", "--root", "r", "--to", "d"]))
            .unwrap();
        assert_eq!(p.value("--root"), Some(OsStr::new("r")));
    }

    #[test]
    fn non_utf8_words_are_operands() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(b"-\xff".to_vec());
        let p = TABLE
            .parse(vec!["run".into(), odd.clone(), "x".into()])
            .unwrap();
        assert_eq!(p.operands, [odd]);
    }

    #[test]
    fn the_help_comes_from_the_table() {
        let help = TABLE.help();
        for line in [
            "tool: a test\n",
            "  tool run [--root ROOT] [--fast] PROG [ARGS...]\n",
            "  tool add NAME --to DEST [--tag TAG]...\n",
            "  tool show [NAME]\n",
            "  tool sub ...\n",
            "  tool --help\n",
            "  run   run PROG\n",
            "  --to DEST    where\n",
            "  -h, --help   print this help\n",
            "\nThe end.\n",
        ] {
            assert!(help.contains(line), "{line:?} not in:\n{help}");
        }
    }

    #[test]
    fn long_lines_wrap_under_their_start() {
        let text = wrap("  cmd one two three four", 6, 16);
        assert_eq!(text, "  cmd one two\n      three four\n");
    }
}
