//! `fatbin nodes …`: list, add, remove, probe and check the nodes of the inventory.
//!
//! The command line and what it prints; the inventory and the connections to the nodes are
//! the migration crate's ([`fatbin_migrate::nodes`], [`fatbin_migrate::probe`]).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use fatbin_layout::exit::EXIT_USAGE as EXIT_CONFIG;
use fatbin_layout::SlotName;
use fatbin_migrate::nodes::{
    destination_problem, node_name_problem, Inventory, Node, NodeEntry, NodesFile, Paths, Source,
};
use fatbin_migrate::probe::{Probed, Prober, RootSeen};

pub const HELP: &str = "\
fatbin nodes: the nodes a request can migrate to (see docs/migration.md)

Usage:
  fatbin nodes list
  fatbin nodes add NAME --ssh DEST [--port N] [--slot SLOT]... [--root PATH] [--no-shared]
                   [--cache DIR] [--to user|layout|system]
  fatbin nodes remove NAME [--from user|layout|system]
  fatbin nodes probe [NAME] [--save]   ask nodes over ssh what they can run
  fatbin nodes check [NAME]            reachable? ROOT visible? (clears down marks)

Options for every command:
  --layout DIR    the layout ROOT whose nodes.toml is read (default: FATBIN_ROOT, else the
                  shim's location, else ~/.local/share/fatbin, as for `fatbin run`)

Files, first definition of a node wins: $XDG_CONFIG_HOME/fatbin/nodes.toml (user),
ROOT/nodes.toml (layout), /etc/fatbin/nodes.toml (system). `add` writes the user file unless
--to says otherwise.
";

/// Exit status of `check`/`probe` when a node failed.
const EXIT_NODE_FAILED: i32 = 1;

struct Args {
    words: Vec<OsString>,
}

impl Args {
    /// Removes `--flag VALUE` and returns VALUE (the last one when repeated).
    fn take_all(&mut self, flag: &str) -> Result<Vec<String>, String> {
        let mut values = Vec::new();
        let mut i = 0;
        while i < self.words.len() {
            let w = self.words[i].to_string_lossy().into_owned();
            if w == flag {
                let v = self
                    .words
                    .get(i + 1)
                    .ok_or_else(|| format!("{flag} needs a value"))?
                    .to_str()
                    .ok_or_else(|| format!("{flag}: the value is not UTF-8"))?
                    .to_owned();
                self.words.drain(i..i + 2);
                values.push(v);
            } else if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
                values.push(v.to_owned());
                self.words.remove(i);
            } else {
                i += 1;
            }
        }
        Ok(values)
    }

    fn take(&mut self, flag: &str) -> Result<Option<String>, String> {
        Ok(self.take_all(flag)?.pop())
    }

    fn take_switch(&mut self, flag: &str) -> bool {
        let before = self.words.len();
        self.words.retain(|w| w.as_bytes() != flag.as_bytes());
        self.words.len() != before
    }

    /// The remaining positional words; refuses leftover options.
    fn positional(self) -> Result<Vec<String>, String> {
        self.words
            .into_iter()
            .map(|w| {
                let w = w.to_str().ok_or("arguments must be UTF-8")?.to_owned();
                if w.starts_with('-') {
                    Err(format!("unknown option `{w}` (see `fatbin nodes --help`)"))
                } else {
                    Ok(w)
                }
            })
            .collect()
    }
}

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

fn dispatch(args: &[OsString], shim_root: Option<PathBuf>) -> Result<i32, String> {
    let Some(command) = args.first().and_then(|a| a.to_str()) else {
        print!("{HELP}");
        return Ok(if args.is_empty() { 0 } else { EXIT_CONFIG });
    };
    let mut rest = Args {
        words: args[1..].to_vec(),
    };
    if rest.take_switch("--help")
        || rest.take_switch("-h")
        || command == "--help"
        || command == "help"
    {
        print!("{HELP}");
        return Ok(0);
    }
    // Not `--root`: `add --root PATH` is the node's own ROOT.
    let layout = rest.take("--layout")?.map(PathBuf::from);
    let root = crate::invocation::resolve_root(layout, shim_root)
        .ok()
        .map(|r| r.path);
    let paths = Paths::new(root.as_deref());
    match command {
        "list" => {
            rest.positional()?
                .is_empty()
                .then_some(())
                .ok_or("list takes no arguments")?;
            list(&paths)
        }
        "add" => add(&paths, rest),
        "remove" | "rm" => remove(&paths, rest),
        "probe" => {
            let save = rest.take_switch("--save");
            let names = rest.positional()?;
            probe(&paths, names.first().map(String::as_str), save)
        }
        "check" => {
            let names = rest.positional()?;
            check(&paths, root.as_deref(), names.first().map(String::as_str))
        }
        other => Err(format!(
            "unknown command `{other}` (commands: list, add, remove, probe, check)"
        )),
    }
}

fn list(paths: &Paths) -> Result<i32, String> {
    let inv = Inventory::load(paths)?;
    if inv.nodes.is_empty() {
        println!("no nodes (add one with `fatbin nodes add NAME --ssh HOST --slot SLOT`)");
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "NAME\tSSH\tSLOTS\tROOT\tSHARED\tFROM");
    for n in &inv.nodes {
        let slots: Vec<String> = n.entry.slots.iter().map(|s| s.to_string()).collect();
        let dest = match n.entry.port {
            Some(p) => format!("{} -p {p}", n.entry.ssh),
            None => n.entry.ssh.clone(),
        };
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            n.name,
            dest,
            if slots.is_empty() {
                "-".into()
            } else {
                slots.join(",")
            },
            n.entry.root.as_deref().unwrap_or("(same as here)"),
            if n.entry.shared { "yes" } else { "no" },
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

fn add(paths: &Paths, mut rest: Args) -> Result<i32, String> {
    let dest = rest
        .take("--ssh")?
        .ok_or("add needs --ssh DEST (an ssh alias, host or user@host)")?;
    let port = rest
        .take("--port")?
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("--port {p}: not a port number"))
        })
        .transpose()?;
    let slots = rest
        .take_all("--slot")?
        .iter()
        .map(|s| s.parse::<SlotName>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let node_root = rest.take("--root")?;
    let cache = rest.take("--cache")?;
    let shared = !rest.take_switch("--no-shared");
    let to = rest.take("--to")?;
    let names = rest.positional()?;
    let [name] = names.as_slice() else {
        return Err("add needs exactly one NAME".into());
    };
    if let Some(why) = node_name_problem(name) {
        return Err(format!("node name `{name}`: {why}"));
    }
    if let Some(why) = destination_problem(&dest) {
        return Err(format!("--ssh {dest:?}: {why}"));
    }
    if let Some(r) = &node_root {
        if !r.starts_with('/') {
            return Err(format!("--root {r}: must be an absolute path on the node"));
        }
    }
    let (source, path) = file_for(paths, to)?;
    let mut file = NodesFile::read(&path)?;
    let replaced = file
        .nodes
        .insert(
            name.clone(),
            NodeEntry {
                ssh: dest,
                port,
                slots,
                root: node_root,
                shared,
                cache,
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

fn remove(paths: &Paths, mut rest: Args) -> Result<i32, String> {
    let from = rest.take("--from")?;
    let names = rest.positional()?;
    let [name] = names.as_slice() else {
        return Err("remove needs exactly one NAME".into());
    };
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
    let inv = Inventory::load(paths)?;
    let prober = Prober::new(&inv)?;
    let mut code = 0;
    for node in selected(&inv, name)? {
        match prober.probe(node) {
            Ok(Probed { summary, slots }) => {
                let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
                println!("{}: {summary}; runs slots {}", node.name, names.join(", "));
                if save {
                    let path = paths.get(node.source).expect("read from there").to_owned();
                    let mut file = NodesFile::read(&path)?;
                    if let Some(e) = file.nodes.get_mut(&node.name) {
                        e.slots = slots;
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

fn check(paths: &Paths, root: Option<&std::path::Path>, name: Option<&str>) -> Result<i32, String> {
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
