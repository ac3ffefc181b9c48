//! `fatbin nodes …`: list, add, remove, probe and check the nodes of the inventory.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Stdio;

use fatbin_layout::{Arch, SlotName};

use super::faults::Faults;
use super::nodes::{
    destination_problem, node_name_problem, Inventory, Node, NodeEntry, NodesFile, Paths, Source,
};
use super::ssh::{self, Ssh};
use super::EXIT_CONFIG;

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

/// Runs `script` on `node` over its master; returns stdout, or why it failed.
fn remote_output(ssh: &Ssh, node: &Node, script: &str) -> Result<String, String> {
    let seat = ssh.connect(node)?;
    let mut cmd = ssh.command(node, &seat.socket);
    cmd.args(["-o", "ControlMaster=no", "-n", "-T"]);
    Ssh::destination(&mut cmd, node).arg(script);
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    if !out.status.success() {
        return Err(
            ssh::last_line(&out.stderr).unwrap_or_else(|| format!("exited with {}", out.status))
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the node's processor runs: `uname -m`, CPU flags, and qemu registrations in its
/// binfmt_misc (a node may run other architectures through qemu-user).
const PROBE_SCRIPT: &str = "uname -m; grep -m1 -E '^(flags|Features)' /proc/cpuinfo; \
    for f in /proc/sys/fs/binfmt_misc/qemu-*; do [ -f \"$f\" ] && \
    grep -qx enabled \"$f\" && echo \"binfmt ${f##*/}\"; done; true";

/// The slots a node runs according to the probe's output, best first.
pub fn slots_from_probe(text: &str) -> Result<(String, Vec<SlotName>), String> {
    let mut lines = text.lines();
    let machine = lines.next().unwrap_or("").trim();
    let arch = Arch::from_uname(machine).ok_or_else(|| format!("unknown machine `{machine}`"))?;
    let mut flags: Vec<&str> = Vec::new();
    let mut emulated: Vec<Arch> = Vec::new();
    for line in lines {
        if let Some(list) = line
            .split_once(':')
            .filter(|_| line.starts_with("flags") || line.starts_with("Features"))
        {
            flags = list.1.split_whitespace().collect();
        } else if let Some(q) = line.strip_prefix("binfmt qemu-") {
            if let Some(a) = Arch::ALL.into_iter().find(|a| a.qemu_name() == q.trim()) {
                emulated.push(a);
            }
        }
    }
    let mut slots = Vec::new();
    let mut summary = arch.to_string();
    if arch == Arch::X86_64 {
        let level = fatbin_layout::slot::x86_64_level_of(|f| flags.contains(&cpuinfo_name(f)));
        summary.push_str(&format!(", level x86-64-v{level}"));
        for l in (2..=level).rev() {
            slots.push(SlotName {
                arch,
                level: Some(l),
            });
        }
    }
    if arch != Arch::X86_64 && !flags.is_empty() {
        // aarch64 and others: the kernel's HWCAP names, for the admin to read.
        summary.push_str(&format!(", features: {}", flags.join(" ")));
    }
    slots.push(SlotName::baseline(arch));
    for other in arch.also_runs() {
        slots.push(SlotName::baseline(*other));
    }
    for a in emulated {
        let s = SlotName::baseline(a);
        if !slots.contains(&s) {
            summary.push_str(&format!(", {a} through qemu (binfmt_misc)"));
            slots.push(s);
        }
    }
    Ok((summary, slots))
}

/// /proc/cpuinfo's name for a Rust target feature of the x86-64 levels.
fn cpuinfo_name(feature: &str) -> &str {
    match feature {
        "cmpxchg16b" => "cx16",
        "sse3" => "pni",
        "sse4.1" => "sse4_1",
        "sse4.2" => "sse4_2",
        "lzcnt" => "abm",
        other => other,
    }
}

fn probe(paths: &Paths, name: Option<&str>, save: bool) -> Result<i32, String> {
    let inv = Inventory::load(paths)?;
    let ssh = Ssh::new(&inv.settings)?;
    let mut code = 0;
    for node in selected(&inv, name)? {
        match remote_output(&ssh, node, PROBE_SCRIPT).and_then(|t| slots_from_probe(&t)) {
            Ok((summary, slots)) => {
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
    let ssh = Ssh::new(&inv.settings)?;
    let faults = Faults::new(&ssh::cache_base()?);
    let mut code = 0;
    for node in selected(&inv, name)? {
        let script = match (node.entry.shared, root) {
            (true, Some(root)) => {
                let mut s = b"if [ -d ".to_vec();
                let bin = fatbin_layout::Layout::new(node.root_on_node(root)).bin_dir();
                super::quote::push_quoted(&mut s, bin.as_os_str().as_bytes());
                s.extend_from_slice(b" ]; then echo root-ok; else echo root-missing; fi");
                String::from_utf8_lossy(&s).into_owned()
            }
            _ => "echo reachable".to_owned(),
        };
        match remote_output(&ssh, node, &script) {
            Ok(out) => {
                faults.mark_up(&node.name);
                let root_note = match out.trim() {
                    "root-ok" => format!(
                        ", ROOT visible at {}",
                        node.root_on_node(root.unwrap_or("/".as_ref())).display()
                    ),
                    "root-missing" => {
                        code = EXIT_NODE_FAILED;
                        format!(
                            ", but ROOT is not at {} there (set `root`, or `shared = false`)",
                            node.root_on_node(root.unwrap_or("/".as_ref())).display()
                        )
                    }
                    _ if !node.entry.shared => {
                        format!(", binaries shipped to {}", node.cache_on_node())
                    }
                    _ => String::new(),
                };
                println!("{}: reachable{root_note}", node.name);
            }
            Err(why) => {
                faults.mark_down(&node.name, &why);
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

    #[test]
    fn probe_output_to_slots() {
        let text =
            "x86_64\nflags\t\t: fpu cx16 pni sse4_1 sse4_2 ssse3 popcnt\nbinfmt qemu-aarch64\n";
        let (summary, slots) = slots_from_probe(text).unwrap();
        let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["x86_64-v2", "x86_64", "i686", "aarch64"]);
        assert!(
            summary.contains("v2") && summary.contains("qemu"),
            "{summary}"
        );
        let (summary, slots) = slots_from_probe("aarch64\nFeatures\t: fp asimd\n").unwrap();
        assert!(summary.ends_with("features: fp asimd"), "{summary}");
        assert_eq!(slots[0].to_string(), "aarch64");
        assert!(slots_from_probe("pdp11\n").is_err());
    }
}
