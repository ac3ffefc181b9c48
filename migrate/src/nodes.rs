//! The node inventory: which nodes exist, how to reach them, what they run, where ROOT is there.
//!
//! Three files, merged by node name; the first one that defines a name wins, whole (fields are
//! never mixed between files, so a node's definition can be read in one place):
//!
//! 1. the user's `$XDG_CONFIG_HOME/fatbin/nodes.toml` (default `~/.config/fatbin/nodes.toml`),
//! 2. the layout's `ROOT/nodes.toml` (the cluster admin's list, shared with the layout),
//! 3. the system's `/etc/fatbin/nodes.toml`.
//!
//! `[settings]` keys merge the same way, key by key. See docs/migration.md for the format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fatbin_layout::SlotName;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Where a node definition came from, highest precedence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    User,
    Layout,
    System,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::User => "user",
            Source::Layout => "layout",
            Source::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "user" => Some(Source::User),
            "layout" => Some(Source::Layout),
            "system" => Some(Source::System),
            _ => None,
        }
    }
}

/// One node as written in a `nodes.toml` (the table key is its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// The ssh destination: a `~/.ssh/config` alias, `host`, `user@host` or `ssh://user@host:port`.
    pub ssh: String,
    /// The port, when the destination does not say it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The slots this node can run, e.g. `["aarch64"]` or `["x86_64-v3", "x86_64"]`.
    #[serde(default)]
    pub slots: Vec<SlotName>,
    /// Where ROOT is on the node; default: the same path as here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// Whether the node sees this ROOT (NFS and the like). When false, slot binaries are
    /// shipped into `cache` on the node and run from there.
    #[serde(default = "yes")]
    pub shared: bool,
    /// The content-addressed binary cache on a node without the shared ROOT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<String>,
}

fn yes() -> bool {
    true
}

/// `[settings]`: knobs for migration, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `round-robin` (default), `random` or `least-loaded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// Seconds ssh may take to connect (ssh's ConnectTimeout); default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u32>,
    /// Seconds a node that failed to connect is skipped; default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_for: Option<u64>,
    /// Seconds an idle master connection stays open (ssh's ControlPersist); default 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist: Option<u32>,
}

impl Settings {
    fn fill_from(&mut self, other: &Settings) {
        if self.balance.is_none() {
            self.balance.clone_from(&other.balance);
        }
        self.connect_timeout = self.connect_timeout.or(other.connect_timeout);
        self.down_for = self.down_for.or(other.down_for);
        self.persist = self.persist.or(other.persist);
    }

    pub fn connect_timeout(&self) -> u32 {
        self.connect_timeout.unwrap_or(5).max(1)
    }

    pub fn down_for(&self) -> u64 {
        self.down_for.unwrap_or(60)
    }

    pub fn persist(&self) -> u32 {
        self.persist.unwrap_or(600).max(1)
    }
}

/// One `nodes.toml` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesFile {
    #[serde(default, skip_serializing_if = "is_default")]
    pub settings: Settings,
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeEntry>,
    /// Slurm routes (`[slurm.NAME]`, see [`crate::slurm`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slurm: BTreeMap<String, crate::slurm::SlurmEntry>,
}

fn is_default(s: &Settings) -> bool {
    *s == Settings::default()
}

impl NodesFile {
    /// Reads a nodes file; a missing file is an empty one.
    pub fn read(path: &Path) -> Result<NodesFile, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(NodesFile::default()),
            Err(e) => return Err(Error::usage(format!("cannot read {}: {e}", path.display()))),
        };
        let file: NodesFile = toml::from_str(&text).map_err(|e| {
            Error::usage(format!(
                "{} is not a valid nodes file: {}",
                path.display(),
                e.message()
            ))
        })?;
        for (name, entry) in &file.nodes {
            if let Some(why) = node_name_problem(name) {
                return Err(Error::usage(format!(
                    "{}: node name `{name}`: {why}",
                    path.display()
                )));
            }
            if let Some(why) = destination_problem(&entry.ssh) {
                return Err(Error::usage(format!(
                    "{}: node `{name}`: ssh = {:?}: {why}",
                    path.display(),
                    entry.ssh
                )));
            }
        }
        Ok(file)
    }

    /// Writes the file atomically and durably, creating its directory.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = format!(
            "# fatbin nodes: see docs/migration.md. `fatbin nodes add/remove` rewrite this file.\n{}",
            toml::to_string(self).map_err(|e| Error::usage(format!("cannot write nodes: {e}")))?
        );
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
        }
        fatbin_layout::fsutil::write_atomic(path, text.as_bytes(), 0o644)
            .map_err(|e| Error::usage(format!("cannot write {e}")))
    }
}

/// Node names become file names (control sockets, state): keep them plain.
pub fn node_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 40 {
        Some("it is longer than 40 characters (it names a control socket)")
    } else if name.starts_with(['-', '.']) {
        Some("it starts with `-` or `.`")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("use only letters, digits, `-`, `_` and `.`")
    } else {
        None
    }
}

/// A destination starting with `-` would be read by ssh as an option.
pub fn destination_problem(dest: &str) -> Option<&'static str> {
    if dest.is_empty() {
        Some("it is empty")
    } else if dest.starts_with('-') {
        Some("it starts with `-` (ssh would read it as an option)")
    } else if dest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or control characters")
    } else {
        None
    }
}

/// A node with its definition's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub entry: NodeEntry,
    pub source: Source,
}

impl Node {
    /// ROOT on the node: its `root`, or the local ROOT's path.
    pub fn root_on_node(&self, local_root: &Path) -> PathBuf {
        match &self.entry.root {
            Some(root) => PathBuf::from(root),
            None => local_root.to_owned(),
        }
    }

    /// The cache directory on the node for shipped binaries.
    pub fn cache_on_node(&self) -> &str {
        self.entry
            .cache
            .as_deref()
            .unwrap_or("~/.cache/fatbin/slots")
    }

    /// The best of `wanted` (ordered best first) this node runs, with its rank.
    pub fn best_slot(&self, wanted: &[SlotName]) -> Option<(usize, SlotName)> {
        wanted
            .iter()
            .enumerate()
            .find(|(_, s)| self.entry.slots.contains(s))
            .map(|(i, s)| (i, *s))
    }
}

/// The three inventory files, by precedence.
#[derive(Debug, Clone)]
pub struct Paths {
    pub user: Option<PathBuf>,
    pub layout: Option<PathBuf>,
    pub system: PathBuf,
}

impl Paths {
    pub fn new(root: Option<&Path>) -> Paths {
        Paths {
            user: user_config_dir().map(|d| d.join("fatbin/nodes.toml")),
            layout: root.map(|r| fatbin_layout::Layout::new(r).nodes_file()),
            system: PathBuf::from(
                std::env::var_os("FATBIN_SYSTEM_NODES")
                    .unwrap_or_else(|| "/etc/fatbin/nodes.toml".into()),
            ),
        }
    }

    pub fn get(&self, source: Source) -> Option<&Path> {
        match source {
            Source::User => self.user.as_deref(),
            Source::Layout => self.layout.as_deref(),
            Source::System => Some(&self.system),
        }
    }

    fn in_order(&self) -> impl Iterator<Item = (Source, &Path)> {
        [Source::User, Source::Layout, Source::System]
            .into_iter()
            .filter_map(|s| self.get(s).map(|p| (s, p)))
    }

    /// Whether any inventory file exists (a stat each: cheap enough for every launch).
    pub fn any_exists(&self) -> bool {
        self.in_order().any(|(_, p)| p.exists())
    }
}

/// `$XDG_CONFIG_HOME` or `~/.config`.
fn user_config_dir() -> Option<PathBuf> {
    fatbin_layout::xdg_dir("XDG_CONFIG_HOME", ".config")
}

/// The merged inventory.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub nodes: Vec<Node>,
    pub settings: Settings,
}

impl Inventory {
    pub fn load(paths: &Paths) -> Result<Inventory, Error> {
        let mut inv = Inventory::default();
        for (source, path) in paths.in_order() {
            let file = NodesFile::read(path)?;
            inv.settings.fill_from(&file.settings);
            for (name, entry) in file.nodes {
                if !inv.nodes.iter().any(|n| n.name == name) {
                    inv.nodes.push(Node {
                        name,
                        entry,
                        source,
                    });
                }
            }
        }
        inv.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(inv)
    }

    pub fn get(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn first_file_wins_whole_node_and_settings_merge_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let user = write(
            dir.path(),
            "user.toml",
            "[settings]\nbalance = \"random\"\n[nodes.a]\nssh = \"user-a\"\nslots = [\"aarch64\"]\n",
        );
        let layout = write(
            dir.path(),
            "layout.toml",
            "[settings]\nbalance = \"least-loaded\"\nconnect_timeout = 9\n\
             [nodes.a]\nssh = \"layout-a\"\nslots = [\"x86_64\"]\nroot = \"/x\"\n\
             [nodes.b]\nssh = \"b\"\nshared = false\n",
        );
        let paths = Paths {
            user: Some(user),
            layout: Some(layout),
            system: dir.path().join("missing.toml"),
        };
        let inv = Inventory::load(&paths).unwrap();
        let a = inv.get("a").unwrap();
        assert_eq!(a.entry.ssh, "user-a");
        assert_eq!(a.entry.root, None, "fields are not mixed between files");
        assert_eq!(a.source, Source::User);
        assert!(!inv.get("b").unwrap().entry.shared);
        assert_eq!(inv.settings.balance.as_deref(), Some("random"));
        assert_eq!(inv.settings.connect_timeout(), 9);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("[nodes.a]\nssh = \"-oProxyCommand=x\"\n", "option"),
            ("[nodes.\"a/b\"]\nssh = \"h\"\n", "letters"),
            ("[nodes.a]\nssh = \"h\"\nslots = [\"intel\"]\n", "intel"),
            ("[nodes.a]\nssh = \"h\"\nbogus = 1\n", "bogus"),
        ] {
            let p = write(dir.path(), "n.toml", text);
            let err = NodesFile::read(&p).unwrap_err();
            assert!(err.to_string().contains(needle), "{text}: {err}");
            assert_eq!(err.exit_code(), crate::EXIT_USAGE);
        }
    }

    #[test]
    fn write_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = NodesFile::default();
        f.nodes.insert(
            "arm1".into(),
            NodeEntry {
                ssh: "root@arm1".into(),
                port: Some(2222),
                slots: vec!["aarch64".parse().unwrap()],
                root: Some("/srv/fatbin".into()),
                shared: false,
                cache: None,
            },
        );
        let p = dir.path().join("sub/nodes.toml");
        f.write(&p).unwrap();
        assert_eq!(NodesFile::read(&p).unwrap(), f);
    }
}
