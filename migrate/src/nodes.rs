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
    /// A fatbin launcher installed on the node (absolute), which then checks and starts each
    /// migrated binary in one process (`fatbin node-exec`) instead of the wrapper's `ls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<String>,
}

/// What a node runs for the launcher `launcher` named in an inventory: for an absolute
/// `DIR/fatbin`, `DIR/fatbin-full` beside it, which every command but a shim call is handed
/// to (the small `fatbin` would only pass it on: one exec more on every run); else
/// `launcher` itself.
pub(crate) fn full_launcher_of(launcher: &Path) -> PathBuf {
    if launcher.file_name() == Some(std::ffi::OsStr::new("fatbin")) && launcher.is_absolute() {
        launcher.with_file_name("fatbin-full")
    } else {
        launcher.to_owned()
    }
}

/// ControlPersist's default: long enough that a burst or a script's sequence of runs shares
/// one handshake, short enough that a many-node run does not leave a master (an ssh here and an
/// sshd there, ~14 MB together) per node idling for ten minutes.
pub const DEFAULT_PERSIST: u32 = 60;

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
    /// The longest a node that failed to connect is skipped, in seconds; default 60. The first
    /// failure skips it 5 s, each further one in a row twice as long, up to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_for: Option<u64>,
    /// Seconds an idle master connection stays open (ssh's ControlPersist); default 60.
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
        self.persist.unwrap_or(DEFAULT_PERSIST).max(1)
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
                fatbin_layout::manifest::toml_problem(&text, &e)
            ))
        })?;
        file.check(path)?;
        Ok(file)
    }

    /// Refuses what no node may have: odd names, a destination ssh would read as an option,
    /// a relative `root`, `cache` or `launcher` (which would be resolved against whatever
    /// directory the remote command or the caller happens to be in).
    fn check(&self, path: &Path) -> Result<(), Error> {
        for (name, entry) in &self.nodes {
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
            // Port 0 is no port: a config error, not a node to mark down when ssh fails.
            if entry.port == Some(0) {
                return Err(Error::usage(format!(
                    "{}: node `{name}`: port = 0 is not a port (use 1-65535, or leave it out \
                     for ssh's default)",
                    path.display()
                )));
            }
            for (key, value, home_ok) in [
                ("root", &entry.root, false),
                ("cache", &entry.cache, true),
                ("launcher", &entry.launcher, false),
            ] {
                if let Some(why) = value.as_deref().and_then(|v| node_path_problem(v, home_ok)) {
                    return Err(Error::usage(format!(
                        "{}: node `{name}`: {key} = {:?}: {why}",
                        path.display(),
                        value.as_deref().unwrap_or_default()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes the file atomically and durably, creating its directory, with the same modes
    /// whatever the umask: the per-user file 0600 in a 0700 directory (it is nobody else's
    /// business), a layout's or the system's 0644 in 0755 directories (everyone reads them).
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        self.check(path)?;
        let text = format!(
            "# fatbin nodes: see docs/migration.md. `fatbin nodes add/remove` rewrite this file.\n{}",
            toml::to_string(self).map_err(|e| Error::usage(format!("cannot write nodes: {e}")))?
        );
        let private = Paths::new(None).user.as_deref() == Some(path);
        if let Some(dir) = path.parent() {
            let made = if private {
                create_private_dir(dir)
            } else {
                fatbin_layout::fsutil::create_dirs(dir).map_err(|e| e.to_string())
            };
            made.map_err(|e| Error::usage(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mode = if private { 0o600 } else { 0o644 };
        fatbin_layout::fsutil::write_atomic(path, text.as_bytes(), mode)
            .map_err(|e| Error::usage(format!("cannot write {e}")))
    }
}

/// Creates `dir` 0700 (its missing parents 0755), whatever the umask.
fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = dir.parent() {
        fatbin_layout::fsutil::create_dirs(parent).map_err(|e| e.to_string())?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.to_string()),
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

/// A node's `root` must be absolute; its `cache` absolute or under the remote home (`~/`).
pub fn node_path_problem(path: &str, home_ok: bool) -> Option<&'static str> {
    let under_home = path == "~" || path.starts_with("~/");
    if path.starts_with('/') || (home_ok && under_home) {
        None
    } else if home_ok {
        Some("it must be an absolute path or start with `~/`, not be relative")
    } else {
        Some("it must be an absolute path, not a relative one")
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

#[cfg(test)]
impl Node {
    /// A node of the user's inventory reached as `ssh`, with no slots, root or cache, for
    /// unit tests.
    pub(crate) fn for_test(name: &str, ssh: &str, shared: bool) -> Node {
        Node {
            name: name.into(),
            entry: NodeEntry {
                ssh: ssh.into(),
                port: None,
                slots: Vec::new(),
                root: None,
                shared,
                cache: None,
                launcher: None,
            },
            source: Source::User,
        }
    }
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

    /// What the wrapper runs to check and start the binary, when the node has a launcher
    /// ([`full_launcher_of`] the one named).
    pub fn checker_on_node(&self) -> Option<PathBuf> {
        Some(full_launcher_of(Path::new(self.entry.launcher.as_deref()?)))
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

/// The slot trust rule (`fatbin_core::trust`) for an inventory file and its directory: whoever
/// can write a nodes.toml decides which host a run goes to and which file runs there, as
/// the caller. Owners trusted: root, the caller, and for a layout's own file ROOT's owner
/// (its directory is ROOT). A missing file is fine: there is nothing to trust.
fn check_trusted(source: Source, path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    let dir_meta = std::fs::metadata(dir)
        .map_err(|e| Error::usage(format!("cannot read {}: {e}", dir.display())))?;
    let root_owner = (source == Source::Layout).then(|| dir_meta.uid());
    let checked =
        fatbin_layout::perms::check_layout_metadata(dir, &dir_meta, root_owner.unwrap_or(0))
            .and_then(|()| {
                fatbin_layout::perms::check_layout_metadata(path, &meta, root_owner.unwrap_or(0))
            });
    checked.map_err(|e| {
        Error::new(
            crate::EXIT_CANNOT_EXECUTE,
            format!("refusing the node inventory {}: {e}", path.display()),
        )
    })
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
            check_trusted(source, path)?;
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

    /// Issue 11, item 5: relative `root`/`cache` are refused when read and when written.
    #[test]
    fn relative_root_and_cache_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.toml");
        for (line, key) in [
            ("root = \"rel/root\"", "root"),
            ("cache = \"relcache\"", "cache"),
            ("cache = \"./c\"", "cache"),
        ] {
            std::fs::write(&path, format!("[nodes.a]\nssh = \"h\"\n{line}\n")).unwrap();
            let e = NodesFile::read(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("node `a`: {key} = ")), "{e}");
        }
        for line in [
            "root = \"/srv/f\"\ncache = \"~/c\"",
            "cache = \"~\"",
            "cache = \"/c\"",
        ] {
            std::fs::write(&path, format!("[nodes.a]\nssh = \"h\"\n{line}\n")).unwrap();
            NodesFile::read(&path).unwrap();
        }
        let mut file = NodesFile::default();
        file.nodes.insert(
            "a".into(),
            NodeEntry {
                ssh: "h".into(),
                port: None,
                slots: Vec::new(),
                root: None,
                shared: false,
                cache: Some("relcache".into()),
                launcher: None,
            },
        );
        let other = dir.path().join("other.toml");
        assert!(file.write(&other).is_err());
        assert!(!other.exists());
    }

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
    fn sources_have_names_that_parse_back() {
        for (source, name) in [
            (Source::User, "user"),
            (Source::Layout, "layout"),
            (Source::System, "system"),
        ] {
            assert_eq!(source.name(), name);
            assert_eq!(Source::parse(name), Some(source));
        }
        assert_eq!(Source::parse("global"), None);
    }

    #[test]
    fn node_names() {
        assert_eq!(node_name_problem(&"n".repeat(40)), None);
        assert!(node_name_problem(&"n".repeat(41))
            .unwrap()
            .contains("longer than 40"));
        for bad in ["", "-a", ".a", "a b", "a/b", "é"] {
            assert!(node_name_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["a", "arm1.lab", "x86_64-v3", "A-1_b.c"] {
            assert_eq!(node_name_problem(good), None, "{good:?}");
        }
    }

    /// An inventory others could write, or in a directory others could write, is refused:
    /// whoever writes it chooses where runs go.
    #[test]
    fn an_inventory_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let file = write(dir.path(), "nodes.toml", "[nodes.a]\nssh = \"h\"\n");
        chmod(&file, 0o644);
        let paths = |source| Paths {
            user: (source == Source::User).then(|| file.clone()),
            layout: (source == Source::Layout).then(|| file.clone()),
            system: dir.path().join("none.toml"),
        };
        assert!(paths(Source::User).any_exists());
        Inventory::load(&paths(Source::User)).unwrap();
        for (path, mode) in [(file.as_path(), 0o664), (dir.path(), 0o777)] {
            chmod(path, mode);
            let e = Inventory::load(&paths(Source::User)).unwrap_err();
            assert!(
                e.to_string().starts_with("refusing the node inventory"),
                "{e}"
            );
            assert_eq!(e.exit_code(), crate::EXIT_CANNOT_EXECUTE);
            chmod(path, if mode == 0o777 { 0o755 } else { 0o644 });
        }
        // ROOT's owner is trusted for ROOT's own inventory, and only there (only root can
        // give files away, so this part needs root).
        let other = 4242;
        let given = std::os::unix::fs::chown(dir.path(), Some(other), None)
            .and_then(|()| std::os::unix::fs::chown(&file, Some(other), None));
        if given.is_ok() {
            Inventory::load(&paths(Source::Layout)).unwrap();
            let e = Inventory::load(&paths(Source::User)).unwrap_err();
            assert!(
                e.to_string().starts_with("refusing the node inventory"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_inventory_files() {
        let dir = tempfile::tempdir().unwrap();
        let none = Paths {
            user: None,
            layout: Some(dir.path().join("nodes.toml")),
            system: dir.path().join("system.toml"),
        };
        assert!(!none.any_exists());
        write(dir.path(), "system.toml", "");
        assert!(none.any_exists());
        let paths = Paths::new(Some(dir.path()));
        assert_eq!(
            paths.layout.as_deref(),
            Some(dir.path().join("nodes.toml").as_path())
        );
        if std::env::var_os("HOME").is_some() || std::env::var_os("XDG_CONFIG_HOME").is_some() {
            let user = paths.user.expect("a user inventory");
            assert!(
                user.is_absolute() && user.ends_with("fatbin/nodes.toml"),
                "{}",
                user.display()
            );
        }
    }

    /// The user's inventory is nobody else's business: 0600 in a 0700 directory; a layout's
    /// is everyone's to read. Run in a child process, as it sets `XDG_CONFIG_HOME`.
    #[test]
    fn the_user_inventory_is_private() {
        use std::os::unix::fs::PermissionsExt;
        if !crate::own_process::in_own_process("nodes::tests::the_user_inventory_is_private") {
            return;
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("XDG_CONFIG_HOME", dir.path().join("config"));
        let user = Paths::new(None).user.unwrap();
        let f = NodesFile::default();
        f.write(&user).unwrap();
        assert_eq!((mode(&user), mode(user.parent().unwrap())), (0o600, 0o700));
        f.write(&user).unwrap();
        let layout = dir.path().join("root/nodes.toml");
        f.write(&layout).unwrap();
        assert_eq!(
            (mode(&layout), mode(layout.parent().unwrap())),
            (0o644, 0o755)
        );
    }

    #[test]
    fn destinations() {
        for bad in ["", "-oProxyCommand=x", "a b", "a\tb", "a\u{7f}b", "a\nb"] {
            assert!(destination_problem(bad).is_some(), "{bad:?}");
        }
        for good in ["h", "user@host", "ssh://u@h:2222", "alias.lab"] {
            assert_eq!(destination_problem(good), None, "{good:?}");
        }
    }

    /// The best of the wanted slots (best first) the node runs, with its rank there.
    #[test]
    fn best_slot() {
        let mut node = Node::for_test("a", "h", true);
        let slot = |s: &str| -> SlotName { s.parse().unwrap() };
        node.entry.slots = vec![slot("x86_64"), slot("x86_64-v2")];
        let wanted = [slot("x86_64-v3"), slot("x86_64-v2"), slot("x86_64")];
        assert_eq!(node.best_slot(&wanted), Some((1, slot("x86_64-v2"))));
        assert_eq!(node.best_slot(&[slot("aarch64")]), None);
    }

    /// What a node and the settings are when the file leaves them out.
    #[test]
    fn defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "n.toml", "[nodes.a]\nssh = \"h\"\n");
        let a = &NodesFile::read(&p).unwrap().nodes["a"];
        assert!(a.shared, "a node sees ROOT unless it says otherwise");
        let node = Node {
            name: "a".into(),
            entry: a.clone(),
            source: Source::User,
        };
        assert_eq!(node.cache_on_node(), "~/.cache/fatbin/slots");
        assert_eq!(node.root_on_node(Path::new("/l")), Path::new("/l"));
        let s = Settings::default();
        assert_eq!(
            (s.connect_timeout(), s.down_for(), s.persist()),
            (5, 60, DEFAULT_PERSIST)
        );
        // Zero is raised to one second (ssh reads `ControlPersist 0` as forever).
        let s = Settings {
            connect_timeout: Some(0),
            down_for: Some(7),
            persist: Some(0),
            balance: None,
        };
        assert_eq!((s.connect_timeout(), s.down_for(), s.persist()), (1, 7, 1));
    }

    /// A missing file is an empty inventory; one that cannot be read is an error, not an
    /// inventory with no nodes.
    #[test]
    fn only_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let missing = NodesFile::read(&dir.path().join("none.toml")).unwrap();
        assert_eq!(missing, NodesFile::default());
        let e = NodesFile::read(dir.path()).unwrap_err();
        assert!(e.to_string().starts_with("cannot read "), "{e}");
    }

    /// Settings are written when set, and an empty `[settings]` table is not.
    #[test]
    fn settings_are_written_only_when_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nodes.toml");
        let mut f = NodesFile::default();
        f.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("[settings]"), "{text}");
        f.settings.down_for = Some(30);
        f.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("[settings]\ndown_for = 30\n"), "{text}");
        assert_eq!(NodesFile::read(&p).unwrap(), f);
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
                launcher: None,
            },
        );
        let p = dir.path().join("sub/nodes.toml");
        f.write(&p).unwrap();
        assert_eq!(NodesFile::read(&p).unwrap(), f);
    }

    /// A node runs the full launcher beside an absolute `fatbin`, and any other launcher as
    /// named (a bare `fatbin` is looked up on the node's PATH, where nothing says what is
    /// beside it).
    #[test]
    fn the_full_launcher_is_run_beside_an_absolute_fatbin() {
        for (named, runs) in [
            ("/usr/local/bin/fatbin", "/usr/local/bin/fatbin-full"),
            ("/opt/fat/fatbin-full", "/opt/fat/fatbin-full"),
            ("/opt/fat/my-launcher", "/opt/fat/my-launcher"),
            ("fatbin", "fatbin"),
        ] {
            assert_eq!(
                full_launcher_of(Path::new(named)),
                Path::new(runs),
                "{named}"
            );
        }
        let mut node = Node::for_test("n", "host", true);
        assert_eq!(node.checker_on_node(), None);
        node.entry.launcher = Some("/usr/local/bin/fatbin".into());
        assert_eq!(
            node.checker_on_node().as_deref(),
            Some(Path::new("/usr/local/bin/fatbin-full"))
        );
    }

    /// The per-user inventory's directory: 0700 when made here, an existing one accepted, and
    /// a failure to make it reported. The tests run as root, whom a read-only parent would
    /// not stop: a name longer than a file name can be fails for anyone.
    #[test]
    fn private_dirs_are_made_0700_and_their_failures_reported() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("config/fatbin");
        create_private_dir(&private).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&private), 0o700);
        assert_eq!(mode(private.parent().unwrap()) & 0o022, 0);
        create_private_dir(&private).expect("an existing directory is fine");

        let too_long = dir.path().join("n".repeat(300));
        let e = create_private_dir(&too_long).unwrap_err();
        assert!(e.contains("too long"), "{e}");
        assert!(!too_long.exists());
    }
}
