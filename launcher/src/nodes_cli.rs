//! `fatbin nodes …`: list, add, remove, probe, check and disconnect the nodes of the inventory.
//!
//! The command line and what it prints; the inventory and the connections to the nodes are
//! the migration crate's ([`fatbin_migrate::nodes`], [`fatbin_migrate::probe`]).

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::PathBuf;

use fatbin_layout::exit::EXIT_USAGE as EXIT_CONFIG;
use fatbin_layout::SlotName;
use fatbin_migrate::nodes::{
    destination_problem, node_name_problem, Inventory, Node, NodeEntry, NodesFile, Paths, Source,
};
use fatbin_migrate::probe::{Probed, Prober, RootSeen};
use fatbin_migrate::slurm::{self, SlurmEntry, SlurmRoute};

use crate::args::{ArgError, Flag, Operands, Parsed, Spec, Table};

const LAYOUT: Flag = Flag::value(
    "--layout",
    "DIR",
    "The layout ROOT whose nodes.toml is read (every command; default: FATBIN_ROOT, else the \
     shim's location, else ~/.local/share/fatbin, as for `fatbin run`).",
);
const HELP: Flag = Flag::stop("-h", "--help", "Print this help.");

/// The `fatbin nodes` command line (see [`crate::args`]), which also prints its help.
const TABLE: Table = Table {
    program: "fatbin nodes",
    about: "fatbin nodes: the nodes a request can migrate to (see docs/migration.md)",
    globals: &[LAYOUT, HELP],
    globals_anywhere: true,
    commands: &[
        Spec {
            name: "list",
            alias: None,
            flags: &[],
            operands: Operands::None,
            about: "Every node, its slots, ROOT, shared, and which file defines it.",
        },
        Spec {
            name: "add",
            alias: None,
            flags: &[
                Flag::value(
                    "--ssh",
                    "DEST",
                    "How to reach the node: an ssh alias, host or user@host.",
                ),
                Flag::switch(
                    "--slurm",
                    "A Slurm route instead: srun places each request on a node whose Features \
                     name a slot.",
                ),
                Flag::value("--partition", "P", "Slurm: the partition to submit to."),
                Flag::value(
                    "--srun-arg",
                    "ARG",
                    "Slurm: one more srun argument (repeat).",
                )
                .repeats(),
                Flag::value(
                    "--launcher",
                    "PATH",
                    "The launcher on the node(s). Slurm: default fatbin beside this one. ssh: \
                     optional; it then checks and starts each binary (one process, no `ls`).",
                ),
                Flag::value("--port", "N", "The node's ssh port."),
                Flag::value("--slot", "SLOT", "A slot the node runs (repeat for each).").repeats(),
                Flag::value(
                    "--root",
                    "PATH",
                    "The layout ROOT on the node (absolute; default: the same path as here).",
                ),
                Flag::switch(
                    "--no-shared",
                    "The node does not see ROOT: binaries are shipped to its cache.",
                ),
                Flag::value("--cache", "DIR", "Where shipped binaries go on the node."),
                Flag::value(
                    "--to",
                    "user|layout|system",
                    "The file to write (default: user).",
                ),
            ],
            operands: Operands::One("NAME"),
            about: "Add or update a node (--ssh DEST) or a Slurm route (--slurm).",
        },
        Spec {
            name: "remove",
            alias: Some("rm"),
            flags: &[Flag::value(
                "--from",
                "user|layout|system",
                "The file to remove it from (default: the one that defines it).",
            )],
            operands: Operands::One("NAME"),
            about: "Remove a node.",
        },
        Spec {
            name: "probe",
            alias: None,
            flags: &[Flag::switch(
                "--save",
                "Write the slots found into the node's entry.",
            )],
            operands: Operands::Optional("NAME"),
            about: "Ask nodes over ssh (Slurm: sinfo) what they can run.",
        },
        Spec {
            name: "check",
            alias: None,
            flags: &[],
            operands: Operands::Optional("NAME"),
            about: "Reachable? ROOT visible? (clears down marks)",
        },
        Spec {
            name: "disconnect",
            alias: None,
            flags: &[],
            operands: Operands::Optional("NAME"),
            about: "Close the ssh master connections kept open to the nodes; remove stale locks.",
        },
    ],
    footer: "\
Files, first definition of a node wins: $XDG_CONFIG_HOME/fatbin/nodes.toml (user),
ROOT/nodes.toml (layout), /etc/fatbin/nodes.toml (system). `add` writes the user file unless
--to says otherwise.
",
};

/// Exit status of `check`/`probe` when a node failed.
const EXIT_NODE_FAILED: i32 = 1;

/// Runs `fatbin nodes ARGS`; returns the exit status.
pub fn main(args: &[OsString], shim_root: Option<PathBuf>) -> i32 {
    // Probing relays ssh's output, where a closed pipe must be an error to handle, not death.
    fatbin_migrate::ignore_sigpipe();
    match dispatch(args, shim_root) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("fatbin nodes: {message}");
            EXIT_CONFIG
        }
    }
}

/// A parse error in the words users have always read.
fn usage_error(e: ArgError) -> String {
    match e {
        ArgError::NoCommand => "no command given (see `fatbin nodes --help`)".into(),
        ArgError::UnknownCommand(other) => format!(
            "unknown command `{other}` (commands: {})",
            TABLE.command_names()
        ),
        ArgError::UnknownFlag(flag, _) => {
            format!("unknown option `{flag}` (see `fatbin nodes --help`)")
        }
        ArgError::MissingValue(flag) => format!("{flag} needs a value"),
        ArgError::MissingOperand(command, name) => format!("{command} needs exactly one {name}"),
        ArgError::ExtraOperand(command @ ("add" | "remove"), _) => {
            format!("{command} needs exactly one NAME")
        }
        ArgError::ExtraOperand("list", _) => "list takes no arguments".into(),
        ArgError::ExtraOperand(command, _) => format!("{command} takes at most one NAME"),
    }
}

fn dispatch(args: &[OsString], shim_root: Option<PathBuf>) -> Result<i32, String> {
    if args.is_empty() || args[0] == "help" {
        print!("{}", TABLE.help());
        return Ok(0);
    }
    let parsed = TABLE.parse(args.to_vec()).map_err(usage_error)?;
    if parsed.stopped.is_some() {
        print!("{}", TABLE.help());
        return Ok(0);
    }
    // Not `--root`: `add --root PATH` is the node's own ROOT.
    let layout = parsed.value("--layout").map(PathBuf::from);
    let root = crate::invocation::resolve_root(layout, shim_root)
        .ok()
        .map(|r| r.path);
    let paths = Paths::new(root.as_deref());
    let name = parsed.operands.first().map(|n| utf8(n)).transpose()?;
    match parsed.command {
        Some("list") => list(&paths),
        Some("add") => add(&paths, &parsed, name.expect("the table requires NAME")),
        Some("remove") => remove(&paths, &parsed, name.expect("the table requires NAME")),
        Some("probe") => probe(&paths, name, parsed.has("--save")),
        Some("check") => check(&paths, root.as_deref(), name),
        Some("disconnect") => {
            for line in fatbin_migrate::disconnect(root.as_deref(), name)? {
                println!("{line}");
            }
            Ok(0)
        }
        other => unreachable!("no command `{other:?}` in the table"),
    }
}

/// An operand as text: node names and slots are UTF-8.
fn utf8(word: &OsStr) -> Result<&str, String> {
    word.to_str()
        .ok_or_else(|| "arguments must be UTF-8".to_owned())
}

/// A flag's value as text, if given.
fn text_value(parsed: &Parsed, flag: &str) -> Result<Option<String>, String> {
    parsed
        .value(flag)
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{flag}: the value is not UTF-8"))
        })
        .transpose()
}
fn list(paths: &Paths) -> Result<i32, String> {
    let inv = Inventory::load(paths)?;
    let routes = slurm::load(paths)?;
    if !routes.is_empty() {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "SLURM\tPARTITION\tSLOTS\tROOT\tSRUN-ARGS\tFROM");
        for r in &routes {
            let slots: Vec<String> = r.entry.slots.iter().map(|s| s.to_string()).collect();
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                r.name,
                r.entry.partition.as_deref().unwrap_or("(default)"),
                if slots.is_empty() {
                    "(node features)".to_owned()
                } else {
                    slots.join(",")
                },
                r.entry.root.as_deref().unwrap_or("(same as here)"),
                if r.entry.srun_args.is_empty() {
                    "-".to_owned()
                } else {
                    r.entry.srun_args.join(" ")
                },
                r.source.name()
            );
        }
        if inv.nodes.is_empty() {
            return Ok(0);
        }
    }
    if inv.nodes.is_empty() {
        println!("no nodes (add one with `fatbin nodes add NAME --ssh HOST --slot SLOT`)");
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "NAME\tSSH\tSLOTS\tROOT\tSHARED\tLAUNCHER\tFROM");
    for n in &inv.nodes {
        let slots: Vec<String> = n.entry.slots.iter().map(|s| s.to_string()).collect();
        let dest = match n.entry.port {
            Some(p) => format!("{} -p {p}", n.entry.ssh),
            None => n.entry.ssh.clone(),
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            n.name,
            dest,
            if slots.is_empty() {
                "-".into()
            } else {
                slots.join(",")
            },
            n.entry.root.as_deref().unwrap_or("(same as here)"),
            if n.entry.shared { "yes" } else { "no" },
            // The node's own launcher checks and starts the run (`node-exec`); `-` is the
            // shell wrapper's check.
            n.entry.launcher.as_deref().unwrap_or("-"),
            n.source.name()
        );
    }
    Ok(0)
}

fn file_for(paths: &Paths, which: Option<String>) -> Result<(Source, PathBuf), String> {
    let source = match which.as_deref() {
        None => Source::User,
        Some(s) => Source::parse(s)
            .ok_or_else(|| format!("unknown file `{s}` (user, layout or system)"))?,
    };
    let path = paths
        .get(source)
        .ok_or_else(|| match source {
            Source::User => {
                "no user config directory: HOME and XDG_CONFIG_HOME are unset".to_owned()
            }
            _ => "no layout root: pass --layout ROOT or set FATBIN_ROOT".to_owned(),
        })?
        .to_owned();
    Ok((source, path))
}

fn add(paths: &Paths, parsed: &Parsed, name: &str) -> Result<i32, String> {
    if parsed.has("--slurm") {
        return add_slurm(paths, parsed, name);
    }
    for flag in ["--partition", "--srun-arg"] {
        if parsed.value(flag).is_some() {
            return Err(format!("{flag} is for a Slurm route: add --slurm"));
        }
    }
    let dest = text_value(parsed, "--ssh")?
        .ok_or("add needs --ssh DEST (an ssh alias, host or user@host)")?;
    let port = text_value(parsed, "--port")?
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("--port {p}: not a port number"))
        })
        .transpose()?;
    let slots = slot_values(parsed)?;
    let node_root = text_value(parsed, "--root")?;
    let cache = text_value(parsed, "--cache")?;
    let launcher = text_value(parsed, "--launcher")?;
    let shared = !parsed.has("--no-shared");
    let to = text_value(parsed, "--to")?;
    if let Some(why) = node_name_problem(name) {
        return Err(format!("node name `{name}`: {why}"));
    }
    if let Some(why) = destination_problem(&dest) {
        return Err(format!("--ssh {dest:?}: {why}"));
    }
    for (flag, value) in [("--root", &node_root), ("--launcher", &launcher)] {
        if let Some(r) = value {
            if !r.starts_with('/') {
                return Err(format!("{flag} {r}: must be an absolute path on the node"));
            }
        }
    }
    let (source, path) = file_for(paths, to)?;
    let mut file = NodesFile::read(&path)?;
    let replaced = file
        .nodes
        .insert(
            name.to_owned(),
            NodeEntry {
                ssh: dest,
                port,
                slots,
                root: node_root,
                shared,
                cache,
                launcher,
            },
        )
        .is_some();
    file.write(&path)?;
    println!(
        "{} node `{name}` in {} ({})",
        if replaced { "updated" } else { "added" },
        path.display(),
        source.name()
    );
    if let Ok(inv) = Inventory::load(paths) {
        if let Some(n) = inv.get(name) {
            if n.source != source {
                println!(
                    "note: the {} file also defines `{name}` and takes precedence",
                    n.source.name()
                );
            }
        }
    }
    Ok(0)
}

/// The `--slot` values.
fn slot_values(parsed: &Parsed) -> Result<Vec<SlotName>, String> {
    parsed
        .values("--slot")
        .map(|s| {
            s.to_str()
                .ok_or_else(|| "--slot: the value is not UTF-8".to_owned())?
                .parse::<SlotName>()
                .map_err(|e| e.to_string())
        })
        .collect()
}

fn add_slurm(paths: &Paths, parsed: &Parsed, name: &str) -> Result<i32, String> {
    for flag in ["--ssh", "--port", "--cache", "--no-shared"] {
        if parsed.has(flag) || parsed.value(flag).is_some() {
            return Err(format!("{flag} is for an ssh node, not a Slurm route"));
        }
    }
    if let Some(why) = node_name_problem(name) {
        return Err(format!("route name `{name}`: {why}"));
    }
    let partition = text_value(parsed, "--partition")?;
    if let Some(p) = &partition {
        if let Some(why) = slurm::word_problem(p) {
            return Err(format!("--partition {p:?}: {why}"));
        }
    }
    let srun_args = parsed
        .values("--srun-arg")
        .map(|a| {
            a.to_str()
                .map(str::to_owned)
                .ok_or_else(|| "--srun-arg: the value is not UTF-8".to_owned())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let root = text_value(parsed, "--root")?;
    let launcher = text_value(parsed, "--launcher")?;
    for (flag, value) in [("--root", &root), ("--launcher", &launcher)] {
        if let Some(v) = value {
            if !v.starts_with('/') {
                return Err(format!("{flag} {v}: must be an absolute path on the nodes"));
            }
        }
    }
    let entry = SlurmEntry {
        partition,
        srun_args,
        slots: slot_values(parsed)?,
        root,
        launcher,
    };
    let (source, path) = file_for(paths, text_value(parsed, "--to")?)?;
    let mut file = NodesFile::read(&path)?;
    if file.nodes.contains_key(name) {
        return Err(format!(
            "{} has an ssh node `{name}`: a Slurm route needs a name of its own",
            path.display()
        ));
    }
    let replaced = file.slurm.insert(name.to_owned(), entry).is_some();
    file.write(&path)?;
    println!(
        "{} Slurm route `{name}` in {} ({})",
        if replaced { "updated" } else { "added" },
        path.display(),
        source.name()
    );
    Ok(0)
}

fn remove(paths: &Paths, parsed: &Parsed, name: &str) -> Result<i32, String> {
    if let Some(route) = slurm::load(paths)?.into_iter().find(|r| r.name == name) {
        let path = paths.get(route.source).expect("read from there").to_owned();
        let mut file = NodesFile::read(&path)?;
        file.slurm.remove(name);
        file.write(&path)?;
        println!(
            "removed Slurm route `{name}` from {} ({})",
            path.display(),
            route.source.name()
        );
        return Ok(0);
    }
    let from = text_value(parsed, "--from")?;
    let (source, path) = match from {
        Some(f) => file_for(paths, Some(f))?,
        None => {
            let inv = Inventory::load(paths)?;
            let node = inv
                .get(name)
                .ok_or_else(|| format!("no node `{name}` (see `fatbin nodes list`)"))?;
            let path = paths
                .get(node.source)
                .expect("it was read from there")
                .to_owned();
            (node.source, path)
        }
    };
    let mut file = NodesFile::read(&path)?;
    if file.nodes.remove(name).is_none() {
        return Err(format!("{} has no node `{name}`", path.display()));
    }
    file.write(&path)?;
    println!(
        "removed node `{name}` from {} ({})",
        path.display(),
        source.name()
    );
    if let Ok(inv) = Inventory::load(paths) {
        if let Some(n) = inv.get(name) {
            println!(
                "note: `{name}` is still defined in the {} file",
                n.source.name()
            );
        }
    }
    Ok(0)
}

fn selected<'i>(inv: &'i Inventory, name: Option<&str>) -> Result<Vec<&'i Node>, String> {
    match name {
        Some(name) => Ok(vec![inv
            .get(name)
            .ok_or_else(|| format!("no node `{name}` (see `fatbin nodes list`)"))?]),
        None if inv.nodes.is_empty() => Err("no nodes configured".into()),
        None => Ok(inv.nodes.iter().collect()),
    }
}

fn probe(paths: &Paths, name: Option<&str>, save: bool) -> Result<i32, String> {
    let routes = slurm::load(paths)?;
    if let Some(route) = name.and_then(|n| routes.iter().find(|r| r.name == n)) {
        return probe_slurm(paths, route, save);
    }
    let inv = Inventory::load(paths)?;
    let prober = Prober::new(&inv)?;
    let mut code = 0;
    for node in selected(&inv, name)? {
        match prober.probe(node) {
            Ok(Probed {
                summary,
                slots,
                launcher,
            }) => {
                let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
                println!("{}: {summary}; runs slots {}", node.name, names.join(", "));
                match (&launcher, &node.entry.launcher) {
                    (Some(found), None) => println!(
                        "  launcher {found}: it can check and start runs there (faster than \
                         the shell wrapper){}",
                        if save { "" } else { "; --save records it" }
                    ),
                    (Some(found), Some(named)) if found != named => println!(
                        "  launcher {found} on its PATH; the inventory names {named}, kept"
                    ),
                    _ => {}
                }
                if save {
                    let path = paths.get(node.source).expect("read from there").to_owned();
                    let mut file = NodesFile::read(&path)?;
                    if let Some(e) = file.nodes.get_mut(&node.name) {
                        e.slots = slots;
                        // A launcher the inventory already names was chosen by someone; the
                        // one on PATH only fills a gap.
                        if e.launcher.is_none() {
                            e.launcher = launcher;
                        }
                    }
                    file.write(&path)?;
                    println!("  saved to {}", path.display());
                }
            }
            Err(why) => {
                println!("{}: cannot probe: {why}", node.name);
                code = EXIT_NODE_FAILED;
            }
        }
    }
    Ok(code)
}

/// `probe` of a Slurm route: the node Features that are slot names (`sinfo`).
fn probe_slurm(paths: &Paths, route: &SlurmRoute, save: bool) -> Result<i32, String> {
    let features = slurm::features(&route.entry)?;
    let slots: Vec<SlotName> = slurm::slot_features(&features);
    let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
    println!(
        "{}: Slurm features {}; runs slots {}",
        route.name,
        features.join(","),
        names.join(", ")
    );
    if save {
        let path = paths.get(route.source).expect("read from there").to_owned();
        let mut file = NodesFile::read(&path)?;
        if let Some(e) = file.slurm.get_mut(&route.name) {
            e.slots = slots;
        }
        file.write(&path)?;
        println!("  saved to {}", path.display());
    }
    Ok(0)
}

/// `check` of a Slurm route: srun found, the controller answers, which slot Features exist,
/// and ROOT visible on a node of each (one small step per Feature).
fn check_slurm(route: &SlurmRoute, root: Option<&std::path::Path>) -> Result<i32, String> {
    let srun = slurm::client("srun")?;
    let features = match slurm::features(&route.entry) {
        Ok(f) => f,
        Err(e) => {
            println!("{}: controller does not answer: {e}", route.name);
            return Ok(EXIT_NODE_FAILED);
        }
    };
    let slots = match route.served() {
        Ok(s) => s,
        Err(e) => {
            println!("{}: {e}", route.name);
            return Ok(EXIT_NODE_FAILED);
        }
    };
    println!(
        "{}: srun {}, controller answers, features {}",
        route.name,
        srun.display(),
        features.join(",")
    );
    let mut code = 0;
    if slots.is_empty() {
        println!(
            "  no slot served: no node{} has a Feature that is a slot name",
            match &route.entry.partition {
                Some(p) => format!(" of partition `{p}`"),
                None => String::new(),
            }
        );
        code = EXIT_NODE_FAILED;
    }
    for slot in &slots {
        let Some(root) = root else { break };
        let root = route.root_on_node(root);
        let mut cmd = std::process::Command::new(&srun);
        cmd.args(["--quiet", "--ntasks=1", "--nodes=1", "--chdir=/"])
            .arg(format!("--constraint={slot}"));
        if let Some(p) = &route.entry.partition {
            cmd.arg(format!("--partition={p}"));
        }
        let ok = cmd
            .args(&route.entry.srun_args)
            .args(["--", "/bin/test", "-d"])
            .arg(&root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            println!(
                "  slot {slot}: ROOT visible at {} on a node",
                root.display()
            );
        } else {
            code = EXIT_NODE_FAILED;
            println!(
                "  slot {slot}: ROOT not visible at {} (or no node ran the check)",
                root.display()
            );
        }
    }
    Ok(code)
}

fn check(paths: &Paths, root: Option<&std::path::Path>, name: Option<&str>) -> Result<i32, String> {
    let routes = slurm::load(paths)?;
    if let Some(route) = name.and_then(|n| routes.iter().find(|r| r.name == n)) {
        return check_slurm(route, root);
    }
    let inv = Inventory::load(paths)?;
    let prober = Prober::new(&inv)?;
    let mut code = 0;
    for node in selected(&inv, name)? {
        match prober.check(node, root) {
            Ok(seen) => {
                let root_note = match seen {
                    RootSeen::Visible(path) => format!(", ROOT visible at {}", path.display()),
                    RootSeen::Missing(path) => {
                        code = EXIT_NODE_FAILED;
                        format!(
                            ", but ROOT is not at {} there (set `root`, or `shared = false`)",
                            path.display()
                        )
                    }
                    RootSeen::Shipped(cache) => format!(", binaries shipped to {cache}"),
                    RootSeen::Unknown => String::new(),
                };
                println!("{}: reachable{root_note}", node.name);
            }
            Err(why) => {
                println!("{}: unreachable: {why}", node.name);
                code = EXIT_NODE_FAILED;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Parsed, String> {
        TABLE
            .parse(words.iter().map(OsString::from).collect())
            .map_err(usage_error)
    }

    #[test]
    fn add_takes_its_flags_anywhere_and_slots_repeat() {
        let p = parse(&[
            "add",
            "--slot",
            "aarch64",
            "arm1",
            "--ssh=arm1.lab",
            "--slot=armv7",
            "--no-shared",
            "--layout",
            "/r",
        ])
        .unwrap();
        assert_eq!(p.command, Some("add"));
        assert_eq!(p.operands, ["arm1"]);
        assert_eq!(
            text_value(&p, "--ssh").unwrap().as_deref(),
            Some("arm1.lab")
        );
        let slots: Vec<&OsStr> = p.values("--slot").collect();
        assert_eq!(slots, ["aarch64", "armv7"]);
        assert!(p.has("--no-shared"));
        assert_eq!(p.value("--layout"), Some(OsStr::new("/r")));
        // `--layout` before the command, and `rm` for `remove`.
        let p = parse(&["--layout", "/r", "rm", "arm1", "--from", "user"]).unwrap();
        assert_eq!(
            (p.command, p.operands.as_slice()),
            (Some("remove"), &["arm1".into()][..])
        );
        let p = parse(&["probe", "--save"]).unwrap();
        assert!(p.has("--save") && p.operands.is_empty());
        assert_eq!(
            parse(&["check", "-h", "--bogus"]).unwrap().stopped,
            Some("--help")
        );
    }

    /// The wording users have always read (docs/migration.md); unknown flags are errors.
    #[test]
    fn usage_errors_keep_their_words() {
        for (words, message) in [
            (
                &["frob"][..],
                "unknown command `frob` (commands: list, add, remove, probe, check, disconnect)",
            ),
            (&["list", "extra"], "list takes no arguments"),
            (
                &["list", "--save"],
                "unknown option `--save` (see `fatbin nodes --help`)",
            ),
            (
                &["add", "--bogus", "n"],
                "unknown option `--bogus` (see `fatbin nodes --help`)",
            ),
            (&["add", "--ssh", "h"], "add needs exactly one NAME"),
            (
                &["add", "a", "b", "--ssh", "h"],
                "add needs exactly one NAME",
            ),
            (&["remove"], "remove needs exactly one NAME"),
            (&["add", "n", "--ssh"], "--ssh needs a value"),
            (&["probe", "a", "b"], "probe takes at most one NAME"),
            (&["--layout"], "--layout needs a value"),
        ] {
            assert_eq!(parse(words).unwrap_err(), message, "{words:?}");
        }
    }

    /// docs/migration.md shows the commands the help prints (up to line breaks).
    #[test]
    fn the_docs_show_the_usage_the_help_prints() {
        let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
        let docs = words(include_str!("../../docs/migration.md"));
        let help = TABLE.help();
        let usage = help.split("\n\nCommands:").next().unwrap();
        for line in words(usage).split("fatbin nodes ").skip(1) {
            let line = format!("fatbin nodes {}", line.trim());
            assert!(docs.contains(&line), "docs/migration.md lacks `{line}`");
        }
    }
}
