//! A small cluster on this machine for the migration tests: real `sshd` processes on loopback
//! ports, each with a host key generated for the run, one client key, and an ssh_config that
//! names the nodes (passed to the launcher with `FATBIN_SSH_CONFIG`).
//!
//! Node kinds:
//! - [`Kind::Native`]: an sshd on the host, an x86_64 node;
//! - [`Kind::Aarch64`]: an sshd inside `unshare --user --map-root-user --map-auto --mount` with its
//!   own binfmt_misc mount where qemu-aarch64-static is registered as Debian does, so aarch64 binaries
//!   run there while the host itself refuses them (`Exec format error`);
//! - [`Cluster::add_blackhole`]: a TCP port that accepts and never speaks, a node that hangs.
//!
//! Faults: [`Cluster::kill_node`] (gone: connections refused), [`Cluster::freeze_node`] (every
//! process of the node stopped: connections hang, open masters stop answering),
//! [`Cluster::change_host_key`] (same node, a host key known_hosts does not have).
//!
//! Each cluster gets its own XDG config/cache/runtime directories, so inventory, down-node
//! memory and control sockets never leak between tests or into the user's home.
//!
//! Needs root (sshd changes user), OpenSSH server and client, `uidmap` with a
//! `root:100000:65536` line in /etc/subuid and /etc/subgid, qemu-user-static, and Linux 6.7 or
//! later for the aarch64 node (binfmt_misc instances per user namespace).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Native,
    Aarch64,
}

/// One running sshd.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub port: u16,
    pub kind: Kind,
    child: Option<Child>,
}

/// A listener that accepts connections and never answers: a hung node.
#[derive(Debug)]
pub struct Blackhole {
    pub name: String,
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
}

/// The cluster: its directory (keys, configs, XDG dirs) and its nodes.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    blackholes: Vec<Blackhole>,
}

/// binfmt_misc registration for qemu-aarch64, exactly as Debian's qemu-user-static writes it
/// (/usr/lib/binfmt.d/qemu-aarch64.conf): flag F opens the interpreter at registration, so it
/// works inside the namespace; flag P with the `-binfmt-P` name makes qemu keep the program's
/// `argv[0]`, as on a real node.
pub const BINFMT_AARCH64: &str = ":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF";

/// Panics with what to install or configure when the machine cannot host a test cluster.
pub fn require(aarch64: bool) {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("run the tests as root (sshd must switch to the logged-in user)".to_owned());
    }
    for (path, package) in [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/ssh", "openssh-client"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path}: apt-get install {package}"));
        }
    }
    if aarch64 {
        for (path, package) in [
            ("/usr/bin/unshare", "util-linux"),
            ("/usr/bin/newuidmap", "uidmap"),
            ("/usr/bin/qemu-aarch64-static", "qemu-user-static"),
            (
                "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
                "qemu-user-static",
            ),
        ] {
            if !Path::new(path).exists() {
                missing.push(format!("{path}: apt-get install {package}"));
            }
        }
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse::<u32>().ok());
        let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        if version < (6, 7) {
            missing.push(format!(
                "Linux {}.{} cannot mount binfmt_misc inside a user namespace: the aarch64 node needs 6.7 or later",
                version.0, version.1
            ));
        }
        for file in ["/etc/subuid", "/etc/subgid"] {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if !text.lines().any(|l| l.starts_with("root:")) {
                missing.push(format!(
                    "{file} has no range for root: add the line `root:100000:65536` \
                     (sshd in a user namespace needs more than one mapped uid)"
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the migration tests need a real sshd cluster on this machine; fix:\n  {}",
        missing.join("\n  ")
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn user_name() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "root".into())
}

impl Cluster {
    /// An empty cluster: keys and directories, no nodes yet.
    pub fn new() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("fatbin-cl-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["config", "cache", "run"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        crate::run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "fatbin-test", "-f"])
                .arg(d.join("id")),
            "ssh-keygen (client key)",
        );
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        std::fs::write(d.join("known_hosts"), "").unwrap();
        std::fs::write(d.join("ssh_config"), "").unwrap();
        // privilege separation needs it; a fresh container may not have it yet.
        let _ = std::fs::create_dir_all("/run/sshd");
        Cluster {
            dir,
            nodes: Vec::new(),
            blackholes: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.dir().join("ssh_config")
    }

    fn append(&self, file: &str, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir().join(file))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn host_entry(&self, name: &str, port: u16) {
        let d = self.dir().display();
        self.append(
            "ssh_config",
            &format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User {}\n  IdentityFile {d}/id\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  GlobalKnownHostsFile /dev/null\n  \
                 HostKeyAlias fatbin-{name}\n  StrictHostKeyChecking yes\n  LogLevel ERROR\n\n",
                user_name()
            ),
        );
    }

    /// Starts a node and waits until its sshd accepts connections. Programs run there see
    /// `FATBIN_TEST_NODE=<name>`, so a test can tell which node ran a request.
    pub fn add_node(&mut self, name: &str, kind: Kind) -> &Node {
        self.add_node_with(name, kind, "")
    }

    /// [`Cluster::add_node`] with more sshd_config lines (`ForceCommand`, `MaxStartups`...).
    /// A `SetEnv` line there is merged into the node's own (sshd reads only the first), e.g.
    /// `SetEnv SHLVL=3`, which keeps the node's bash from reading ~/.bashrc for every command
    /// (Debian's bash does for ssh commands unless SHLVL says it is nested): a heavy .bashrc
    /// (pyenv's rehash lock...) would otherwise dominate a load test.
    pub fn add_node_with(&mut self, name: &str, kind: Kind, extra_config: &str) -> &Node {
        let mut set_env = format!("FATBIN_TEST_NODE={name}");
        let extra_config: String = extra_config
            .lines()
            .filter(|line| match line.strip_prefix("SetEnv ") {
                Some(vars) => {
                    set_env.push(' ');
                    set_env.push_str(vars.trim());
                    false
                }
                None => true,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let d = self.dir().to_owned();
        let port = free_port();
        self.new_host_key(name);
        let key = d.join(format!("host-{name}"));
        let config = d.join(format!("sshd-{name}.conf"));
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}/authorized_keys\n\
                 PidFile none\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nPrintMotd no\n\
                 PrintLastLog no\nLogLevel ERROR\nMaxSessions 10\nSetEnv {set_env}\n\
                 Subsystem sftp /usr/lib/openssh/sftp-server\n{extra_config}",
                key.display(),
                d.display()
            ),
        )
        .unwrap();
        self.host_entry(name, port);
        self.nodes.push(Node {
            name: name.to_owned(),
            port,
            kind,
            child: None,
        });
        self.start_sshd(name);
        self.nodes.last().unwrap()
    }

    /// Makes a host key for `name` (replacing any) without telling known_hosts.
    fn new_host_key(&self, name: &str) -> String {
        let key = self.dir().join(format!("host-{name}"));
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        crate::run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(&key),
            "ssh-keygen (host key)",
        );
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        public.join(" ")
    }

    /// (Re)starts node `name`'s sshd from its config and waits until it listens. Its port was
    /// free when [`free_port`] chose it, but nothing holds it until sshd binds it, and tests
    /// run in parallel: when another test's listener took it meanwhile, sshd cannot bind, and
    /// the node moves to a new port (its config and the ssh_config entry with it).
    fn start_sshd(&mut self, name: &str) {
        for attempt in 1.. {
            match self.try_start_sshd(name) {
                Ok(()) => return,
                Err(taken) if attempt < 5 => {
                    eprintln!("node {name}: {taken}; moving it to another port");
                    self.move_to_a_new_port(name);
                }
                Err(taken) => panic!("sshd for node {name}: {taken}, {attempt} times"),
            }
        }
    }

    /// Gives node `name` a port that is free now, in its sshd config and in ssh_config.
    fn move_to_a_new_port(&mut self, name: &str) {
        let d = self.dir().to_owned();
        let node = self.nodes.iter_mut().find(|n| n.name == name).unwrap();
        let (old, new) = (node.port, free_port());
        node.port = new;
        let edit = |file: PathBuf, from: String, to: String| {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.contains(&from), "{}: no {from:?}", file.display());
            std::fs::write(&file, text.replacen(&from, &to, 1)).unwrap();
        };
        edit(
            d.join(format!("sshd-{name}.conf")),
            format!("\nPort {old}\n"),
            format!("\nPort {new}\n"),
        );
        edit(
            d.join("ssh_config"),
            format!("Host {name}\n  HostName 127.0.0.1\n  Port {old}\n"),
            format!("Host {name}\n  HostName 127.0.0.1\n  Port {new}\n"),
        );
    }

    /// Starts node `name`'s sshd and waits until it, not another process, listens on the
    /// node's port and sends its banner. `Err` when the port was taken (see
    /// [`Cluster::start_sshd`]); any other failure panics with sshd's log.
    fn try_start_sshd(&mut self, name: &str) -> Result<(), String> {
        let d = self.dir().to_owned();
        if !std::fs::read_to_string(d.join("known_hosts"))
            .unwrap()
            .contains(&format!("fatbin-{name} "))
        {
            let public = std::fs::read_to_string(d.join(format!("host-{name}.pub"))).unwrap();
            let public: Vec<&str> = public.split_whitespace().take(2).collect();
            self.append(
                "known_hosts",
                &format!("fatbin-{name} {}\n", public.join(" ")),
            );
        }
        let config = d.join(format!("sshd-{name}.conf"));
        let node = self.nodes.iter_mut().find(|n| n.name == name).unwrap();
        let (port, kind) = (node.port, node.kind);
        let log_path = d.join(format!("sshd-{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        // What this start writes to the log, after what earlier starts of the node wrote.
        let log_from = log.metadata().unwrap().len() as usize;
        let sshd = format!("exec /usr/sbin/sshd -D -e -f {}", config.display());
        let mut cmd = match kind {
            Kind::Native => {
                let mut c = Command::new("/bin/sh");
                c.arg("-c").arg(&sshd);
                c
            }
            Kind::Aarch64 => {
                let mut c = Command::new("unshare");
                c.args(["--user", "--map-root-user", "--map-auto", "--mount", "--", "/bin/sh", "-c"])
                    .arg(format!(
                        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && \
                         printf '%s' '{BINFMT_AARCH64}' > /proc/sys/fs/binfmt_misc/register && {sshd}"
                    ));
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let pid = child.id();
        node.child = Some(child);
        // Generous: a loaded machine (the suite starts many nodes at once) is slow to start
        // sshd, and a failed start ends sooner, by sshd's exit.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Its own listening socket, then its banner: another test's sshd that took the
            // port would send a banner too.
            if listens_on(pid, port) {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut b = [0u8; 4];
                    if s.read_exact(&mut b).is_ok() && &b == b"SSH-" {
                        return Ok(());
                    }
                }
            }
            let node = self.nodes.iter_mut().find(|n| n.name == name).unwrap();
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                node.child = None;
                let log = std::fs::read(&log_path).unwrap_or_default();
                let log = String::from_utf8_lossy(log.get(log_from..).unwrap_or_default());
                if log.contains("Address already in use") {
                    return Err(format!("port {port} was taken before sshd bound it"));
                }
                panic!("sshd for node {name} exited ({status}): {log}");
            }
            assert!(
                Instant::now() < deadline,
                "sshd for node {name} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts node `name` with a new host key that known_hosts does not have: what a
    /// reinstalled node, or a man in the middle, looks like to ssh.
    pub fn change_host_key(&mut self, name: &str) {
        self.kill_node(name);
        self.new_host_key(name);
        self.start_sshd(name);
    }

    /// Freezes a node: SIGSTOP to its sshd and every process under it (connections, sessions,
    /// programs), as a hung machine looks from outside: TCP still accepts, nothing answers.
    pub fn freeze_node(&self, name: &str) {
        let node = self.nodes.iter().find(|n| n.name == name).unwrap();
        let pid = node.child.as_ref().expect("a running node").id();
        // A process forked while we walk the tree is caught by the next walk.
        for _ in 0..3 {
            signal_tree(pid, libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lets a frozen node run again (SIGCONT to its whole tree).
    pub fn thaw_node(&self, name: &str) {
        let node = self.nodes.iter().find(|n| n.name == name).unwrap();
        if let Some(child) = &node.child {
            signal_tree(child.id(), libc::SIGCONT);
        }
    }

    /// A "node" whose port accepts TCP connections and never sends a byte.
    pub fn add_blackhole(&mut self, name: &str) -> &Blackhole {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        self.host_entry(name, port);
        self.blackholes.push(Blackhole {
            name: name.to_owned(),
            port,
            accepted,
        });
        self.blackholes.last().unwrap()
    }

    pub fn blackhole(&self, name: &str) -> &Blackhole {
        self.blackholes.iter().find(|b| b.name == name).unwrap()
    }

    /// Starts a killed node's sshd again, with the same host key (on a new port if its own
    /// was taken meanwhile).
    pub fn restart_node(&mut self, name: &str) {
        self.kill_node(name);
        self.start_sshd(name);
    }

    /// The port node `name`'s sshd listens on.
    pub fn port(&self, name: &str) -> u16 {
        self.nodes.iter().find(|n| n.name == name).unwrap().port
    }

    /// Kills a node's sshd and every process it started (its connections and sessions).
    pub fn kill_node(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|n| n.name == name).unwrap();
        if let Some(mut child) = node.child.take() {
            kill_tree(child.id());
            let _ = child.wait();
        }
    }

    /// Sets the launcher's environment: ssh config, private XDG dirs, no system inventory.
    pub fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        let d = self.dir();
        cmd.env("FATBIN_SSH_CONFIG", self.ssh_config())
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("XDG_RUNTIME_DIR", d.join("run"))
            .env("FATBIN_SYSTEM_NODES", d.join("no-system-nodes.toml"))
    }

    /// Writes the user's nodes.toml of this cluster.
    pub fn write_nodes(&self, text: &str) {
        let p = self.dir().join("config/fatbin");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("nodes.toml"), text).unwrap();
    }

    /// The launcher's down-node memory file.
    pub fn down_file(&self) -> PathBuf {
        self.dir().join("cache/fatbin/down")
    }

    /// Runs a command on a node over plain ssh (test plumbing, not the launcher).
    pub fn ssh(&self, node: &str, command: &str) -> std::process::Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .args(["-o", "BatchMode=yes", "-n", node, command])
            .output()
            .unwrap()
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster::new()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                kill_tree(child.id());
                let _ = child.wait();
            }
        }
    }
}

/// Whether process `pid` holds a TCP socket listening on loopback `port` (its exec'd sshd:
/// the aarch64 node's `unshare` and `sh` exec it too, so the pid is the same).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")) else {
        return false;
    };
    // `sl local_address rem_address st ... inode`: addresses in hex, LISTEN is state 0A.
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() > 9 && fields[1] == local && fields[3] == "0A")
                .then(|| format!("socket:[{}]", fields[9]))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            inodes
                .iter()
                .any(|inode| target.as_os_str() == inode.as_str())
        })
    })
}

/// SIGKILLs `pid` and all its descendants (found through /proc), children first found first.
pub fn kill_tree(pid: u32) {
    signal_tree(pid, libc::SIGKILL);
}

/// Sends `signal` to `pid` and all its descendants (found through /proc).
pub fn signal_tree(pid: u32, signal: libc::c_int) {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        all.extend(children_of(parent));
        i += 1;
    }
    for p in all {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(p as libc::pid_t, signal) };
    }
}

/// The processes whose parent is `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    pids()
        .filter(|&pid| parent_of(pid) == Some(parent))
        .collect()
}

/// Every process but this one whose command line has `needle` as a word: (pid, parent pid,
/// command line).
pub fn processes_with(needle: &str) -> Vec<(u32, u32, Vec<u8>)> {
    let me = std::process::id();
    pids()
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            cmdline
                .split(|&b| b == 0)
                .any(|w| w == needle.as_bytes())
                .then(|| (pid, parent_of(pid).unwrap_or(0), cmdline))
        })
        .collect()
}

/// Whether any process's command line contains `needle` (to prove a remote program ended).
pub fn process_running(needle: &str) -> bool {
    !processes_with(needle).is_empty()
}

/// The pids in /proc.
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// The parent of `pid`, from /proc/PID/stat.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields follow the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Commands (`/proc/PID/comm`) of the processes whose working directory is `dir`: what a run
/// started there left behind, even after it was reparented away from sshd.
pub fn processes_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|p| p.parse::<u32>().is_ok())
        })
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|c| c == dir))
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}
