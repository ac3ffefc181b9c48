//! The transport: the system's OpenSSH client with one shared master connection per node.
//!
//! Every ssh we run gets `BatchMode=yes` (never a password prompt), `ConnectTimeout`,
//! `ServerAliveInterval`/`CountMax` and a `ControlPath` in a private 0700 directory. Nothing
//! else is overridden: the user's ssh config (aliases, keys, known hosts, host-key checking)
//! applies as it does for a plain `ssh`. `FATBIN_SSH` replaces the client program and
//! `FATBIN_SSH_CONFIG` is passed as `-F FILE` (the tests use it).
//!
//! Before reusing a socket we say hello to the master ourselves, with a timeout: a dead socket
//! is removed and a wedged master is abandoned instead of hanging the run. A master that is
//! alive here but whose node froze is found by its own keepalives (`ServerAliveInterval` 2 s,
//! 3 missed: about 6 to 8 s), after which it exits and the sessions waiting on it end.
//!
//! Every session carries a proof of whether it could have started anything, whatever the
//! connection mode: a cold session (no master yet) is `ControlMaster=yes`, so it always makes
//! its own connection and its `LocalCommand` proof file appears once it is authenticated; a
//! warm session (through a master) logs at debug level into a private file (`-v -E`), where the
//! master's reply to the session request (`master session id`) shows that the command was sent.
//! Without the proof, nothing ran and the request may go to another node.
//!
//! The first handshake to a node is made by one run at a time ([`crate::handshake`]).
//!
//! sshd allows `MaxSessions` (10) sessions per connection. A run holds one of
//! [`SEATS_PER_MASTER`] seat locks for its master and may open one more session to forward a
//! signal, so a master never carries more than 10; when all seats are taken, the next run opens
//! another master (`NAME.1`, `NAME.2`, ...), up to [`MAX_MASTERS`]: at most
//! [`MAX_RUNS_PER_NODE`] runs of one user on one machine go to one node at once. Further runs
//! queue for a free seat, at most [`SEAT_WAIT`].

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fatbin_layout::fsutil::{self, LockMode};

use crate::handshake::{door_pause, ConnectFailure, Handshake, DOOR_RETRIES, POLL};
use crate::nodes::{Node, Settings};

/// sshd's default `MaxSessions`: sessions one connection may carry.
const SSHD_MAX_SESSIONS: usize = 10;
/// Sessions a run may hold on one master at once: its own, plus one to forward a signal.
const SESSIONS_PER_SEAT: usize = 2;
/// Seats per master: 10 / 2 = 5.
const SEATS_PER_MASTER: usize = SSHD_MAX_SESSIONS / SESSIONS_PER_SEAT;
/// Masters per node (each one connection, `NAME.0` to `NAME.7`).
const MAX_MASTERS: usize = 8;
/// The per-node cap: runs of one user on one machine on one node at once.
pub const MAX_RUNS_PER_NODE: usize = MAX_MASTERS * SEATS_PER_MASTER;
/// How long a run waits for a free seat when the node already carries [`MAX_RUNS_PER_NODE`].
pub const SEAT_WAIT: Duration = Duration::from_secs(30);
/// sshd's keepalive answers a master waits for: a frozen node is given up in 6 to 8 s.
const SERVER_ALIVE_INTERVAL: u32 = 2;
const SERVER_ALIVE_COUNT_MAX: u32 = 3;

/// How long a master may take to answer our hello before it is treated as wedged.
const HELLO_TIMEOUT: Duration = Duration::from_millis(1500);

/// The ssh client and the options every invocation shares.
#[derive(Debug, Clone)]
pub struct Ssh {
    pub program: PathBuf,
    pub config: Option<OsString>,
    pub connect_timeout: u32,
    pub persist: u32,
    pub control_dir: PathBuf,
}

impl Ssh {
    pub fn new(settings: &Settings) -> Result<Ssh, String> {
        let program = match std::env::var_os("FATBIN_SSH") {
            // A relative path is made absolute: masters run in `/`.
            Some(p) if !p.is_empty() && Path::new(&p).components().count() > 1 => {
                std::env::current_dir()
                    .map(|d| d.join(&p))
                    .unwrap_or_else(|_| PathBuf::from(p))
            }
            Some(p) if !p.is_empty() => which::which(&p).map_err(|_| {
                format!(
                    "FATBIN_SSH={}: no such program on PATH",
                    p.to_string_lossy()
                )
            })?,
            _ => which::which("ssh").map_err(|_| {
                "no `ssh` on PATH: migration uses the system's OpenSSH client \
                 (Debian: apt-get install openssh-client)"
                    .to_owned()
            })?,
        };
        Ok(Ssh {
            program,
            config: config_from_env(),
            connect_timeout: settings.connect_timeout(),
            persist: settings.persist(),
            control_dir: private_dir(&runtime_base()?.join("ssh"))?,
        })
    }

    /// `ssh [-F CONFIG] -o BatchMode=yes … -S SOCKET [-p PORT]`, ready for more options and then
    /// [`Ssh::destination`].
    pub fn command(&self, node: &Node, socket: &Path) -> Command {
        let mut cmd = Command::new(&self.program);
        if let Some(config) = &self.config {
            cmd.arg("-F").arg(config);
        }
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("ConnectTimeout={}", self.connect_timeout),
            "-o",
            &format!("ServerAliveInterval={SERVER_ALIVE_INTERVAL}"),
            "-o",
            &format!("ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}"),
            "-o",
        ])
        .arg(format!("ControlPersist={}", self.persist))
        .arg("-S")
        .arg(ssh_escaped(socket));
        if let Some(port) = node.entry.port {
            cmd.arg("-p").arg(port.to_string());
        }
        cmd
    }

    /// Ends the options and names the node (`--` so no destination is read as an option).
    pub fn destination<'c>(cmd: &'c mut Command, node: &Node) -> &'c mut Command {
        cmd.arg("--").arg(&node.entry.ssh)
    }

    /// The control socket of master `index` for `node`: `NAME-KEY.INDEX`, KEY naming the
    /// connection (see [`connection_key`]) and NAME only there for people reading the directory.
    pub fn socket(&self, node: &Node, index: usize) -> PathBuf {
        self.control_dir
            .join(format!("{}-{}.{index}", node.name, connection_key(node)))
    }

    /// Takes a seat on a live master for `node`, opening the master when needed (for
    /// `fatbin nodes`, which runs its own commands over it).
    ///
    /// `Err` means the node could not be reached: nothing ran there.
    pub fn connect(&self, node: &Node) -> Result<Seat, String> {
        let mut seat = self.seat(node)?;
        if !seat.warm {
            self.open_master(node, &mut seat).map_err(|f| {
                f.show(node);
                f.reason
            })?;
        }
        Ok(seat)
    }

    /// Takes a seat, waiting up to [`SEAT_WAIT`] for one when every master is full.
    pub fn seat(&self, node: &Node) -> Result<Seat, String> {
        let deadline = Instant::now() + SEAT_WAIT;
        loop {
            if let Some(seat) = self.try_seat(node)? {
                return Ok(seat);
            }
            if Instant::now() >= deadline {
                return Err(self.busy_message(node));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Why a node that stayed full for [`SEAT_WAIT`] was not used.
    pub fn busy_message(&self, node: &Node) -> String {
        format!(
            "all {MAX_RUNS_PER_NODE} seats on `{}` stayed busy for {} s ({MAX_MASTERS} \
             connections of {SEATS_PER_MASTER} runs)",
            node.name,
            SEAT_WAIT.as_secs()
        )
    }

    /// Takes a seat without connecting or waiting: `None` when every master is full, else a
    /// seat whose `warm` says whether its master is alive. A dead or wedged socket is cleared
    /// so that the next ssh can become the master.
    pub fn try_seat(&self, node: &Node) -> Result<Option<Seat>, String> {
        // ssh binds the master at SOCKET.XXXXXXXXXXXXXXXX, then renames it; sun_path holds 107
        // bytes. Too long a path would make every master fail, which must not read as a dead node.
        let longest = self.socket(node, MAX_MASTERS - 1);
        if longest.as_os_str().len() + 17 > 107 {
            return Err(format!(
                "the control socket path {} is too long for a Unix socket: set XDG_RUNTIME_DIR \
                 (or XDG_CACHE_HOME) to a shorter directory",
                longest.display()
            ));
        }
        for index in 0..MAX_MASTERS {
            let socket = self.socket(node, index);
            let Some(lock) = take_seat(&socket)? else {
                continue;
            };
            let warm = match master_state(&socket) {
                MasterState::Alive => true,
                MasterState::Missing => false,
                MasterState::Dead | MasterState::Wedged => {
                    // A wedged master keeps its connection until ServerAlive ends it; new runs
                    // just stop using its path.
                    let _ = std::fs::remove_file(&socket);
                    false
                }
            };
            return Ok(Some(Seat {
                socket,
                warm,
                _lock: lock,
            }));
        }
        Ok(None)
    }

    /// For a cold `seat`: waits for the right to make the node's handshake (one at a time per
    /// node, see [`crate::handshake`]). `Ok(None)` when the master came up meanwhile (the seat
    /// is warm now); `Ok(Some)` when this run is to connect; `Err` when the wait ran out or the
    /// run before gave up on the node: nothing ran.
    pub fn handshake(
        &self,
        node: &Node,
        seat: &mut Seat,
    ) -> Result<Option<Handshake>, ConnectFailure> {
        // Named after the node's first socket, so it follows however sockets are named.
        let handshake = Handshake::acquire(&self.socket(node, 0), self.handshake_wait())?;
        match master_state(&seat.socket) {
            MasterState::Alive => {
                seat.warm = true;
                Ok(None)
            }
            MasterState::Missing => Ok(Some(handshake)),
            MasterState::Dead | MasterState::Wedged => {
                let _ = std::fs::remove_file(&seat.socket);
                Ok(Some(handshake))
            }
        }
    }

    /// How long a run waits for another run's handshake to the same node: its connect
    /// timeout and its retries, with room for authentication.
    fn handshake_wait(&self) -> Duration {
        let attempt = u64::from(self.connect_timeout) + 3;
        Duration::from_secs(attempt * u64::from(DOOR_RETRIES + 1))
    }

    /// The options for a session on `seat`, with what proves afterwards whether it could have
    /// started anything. Warm: through the master (`ControlMaster=no`), logging into `log`
    /// (see [`session_was_opened`]). Cold: this ssh connects itself and becomes the master
    /// (`ControlMaster=yes` + `ControlPersist`: one handshake, as cheap as a plain ssh; never
    /// `auto`, which could join another run's master and leave no proof), and `LocalCommand`
    /// creates `proof` once it is authenticated, so a failure without `proof` ran nothing.
    ///
    /// `log` is `None` for a tty session: at debug level the ssh of a tty session prints
    /// "Shared connection to HOST closed." on the user's terminal, whatever `-E` says. Such a
    /// warm session has no proof, so a failure before its start marker is not failed over
    /// (safe, as before; tty runs are interactive).
    pub fn session_options(
        &self,
        cmd: &mut Command,
        seat: &Seat,
        proof: &Path,
        log: Option<&Path>,
    ) {
        if seat.warm {
            cmd.args(["-o", "ControlMaster=no"]);
            if let Some(log) = log {
                cmd.args(["-v", "-E"]).arg(log);
            }
            return;
        }
        let mut touch = b": > ".to_vec();
        crate::quote::push_quoted(&mut touch, proof.as_os_str().as_encoded_bytes());
        // ssh expands %-tokens in LocalCommand: keep a literal % literal.
        let touch = String::from_utf8_lossy(&touch).replace('%', "%%");
        // This ssh may stay as the background master for ControlPersist seconds: keep it out of
        // the caller's directory (a kept cwd keeps a filesystem busy).
        cmd.current_dir("/");
        cmd.args([
            "-o",
            "ControlMaster=yes",
            "-o",
            "PermitLocalCommand=yes",
            "-o",
        ])
        .arg(format!("LocalCommand={touch}"));
    }

    /// Opens the master for `seat` explicitly (`ssh -M -N -f`): no command runs, so a failure
    /// here provably ran nothing. Makes the node's handshake in turn with other runs, and
    /// retries a connection cut at the door.
    pub fn open_master(&self, node: &Node, seat: &mut Seat) -> Result<(), ConnectFailure> {
        let Some(handshake) = self.handshake(node, seat)? else {
            return Ok(());
        };
        let socket = &seat.socket;
        let mut attempt = 0;
        loop {
            let mut cmd = self.command(node, socket);
            cmd.args(["-o", "ControlMaster=yes", "-N", "-f"])
                .current_dir("/");
            Ssh::destination(&mut cmd, node);
            // `-f` forks after authentication and the background master points its stdio at
            // /dev/null, so reading stderr to its end waits for exactly the connection attempt.
            let out = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| {
                    ConnectFailure::new(format!("cannot run {}: {e}", self.program.display()))
                })?;
            if out.status.success() {
                seat.warm = true;
                handshake.release();
                return Ok(());
            }
            let failure = ConnectFailure::from_stderr(&out.stderr, || {
                format!("ssh exited with {}", out.status)
            });
            if failure.cut_at_the_door() && attempt < DOOR_RETRIES {
                attempt += 1;
                std::thread::sleep(door_pause(attempt));
                continue;
            }
            handshake.failed(&failure);
            return Err(failure);
        }
    }
}

/// Whether a warm session's debug log (`-v -E LOG`) shows that its command may have reached
/// the node: the master answered the session request (it sends the command to the node before
/// it answers), or ssh fell back to a connection of its own and authenticated. Neither: the
/// session never got that far, and nothing ran.
pub fn session_was_opened(log: &str) -> bool {
    ["master session id", "Authenticated to", "Sending command"]
        .iter()
        .any(|s| log.contains(s))
}

/// The last line of a warm session's debug log that is not debug chatter: its reason.
pub fn log_reason(log: &str) -> Option<String> {
    log.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("debug") && !l.starts_with("OpenSSH_"))
        .map(str::to_owned)
}

/// `FATBIN_SSH_CONFIG`, made absolute because masters run in `/`.
fn config_from_env() -> Option<OsString> {
    std::env::var_os("FATBIN_SSH_CONFIG")
        .filter(|c| !c.is_empty())
        .map(|c| match std::env::current_dir() {
            Ok(cwd) => cwd.join(c).into_os_string(),
            Err(_) => c,
        })
}

/// What identifies the connection to `node`, as 12 hex digits: a hash of its destination
/// (with the user in it), port, the ssh config file and the client program. Everything kept
/// per node (control sockets, down marks, shipped records) is keyed by it, not by the node's
/// name: when `nodes.toml` moves a node to another host, nothing of the old host is used, and
/// two layouts that both name a node `a` share state only if they reach the same place.
pub fn connection_key(node: &Node) -> String {
    let program = std::env::var_os("FATBIN_SSH").unwrap_or_default();
    let config = config_from_env().unwrap_or_default();
    let port = node.entry.port.map(|p| p.to_string()).unwrap_or_default();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    // Each field ends with a NUL (none can contain one), so fields never run into each other.
    for field in [
        node.entry.ssh.as_bytes(),
        port.as_bytes(),
        config.as_encoded_bytes(),
        program.as_encoded_bytes(),
    ] {
        for &b in field.iter().chain(&[0]) {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{:012x}", hash >> 16)
}

/// What [`disconnect`] did.
#[derive(Debug, Default)]
pub struct Disconnected {
    /// The masters closed, by socket file name (`NAME-KEY.INDEX`).
    pub closed: Vec<String>,
    /// Lock and leftover files removed.
    pub cleaned: usize,
}

/// Closes the masters of node `name` (every connection identity it had: an old host's master
/// too), or of every node, with `ssh -O exit`; then removes the lock files (seats, master
/// opening) of masters that are gone and that no run holds, and connection proofs left by
/// runs that died.
///
/// A run that holds a seat keeps its master: `-O exit` lets running sessions finish, and its
/// locks stay. Removing a free lock file is safe for the next run, which creates it afresh.
pub fn disconnect(ssh: &Ssh, name: Option<&str>) -> Disconnected {
    let mut done = Disconnected::default();
    let Ok(entries) = std::fs::read_dir(&ssh.control_dir) else {
        return done;
    };
    let mut files: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    files.sort();
    let ours = |file: &str| match name {
        None => true,
        Some(name) => file
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| rest.len() > 13 && rest.as_bytes()[12] == b'.'),
    };
    for file in files.iter().filter(|f| ours(f)) {
        let path = ssh.control_dir.join(file);
        let is_socket = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
        if !is_socket {
            continue;
        }
        if master_state(&path) == MasterState::Alive {
            let mut cmd = Command::new(&ssh.program);
            if let Some(config) = &ssh.config {
                cmd.arg("-F").arg(config);
            }
            // The destination is not used with -O, but ssh wants one.
            let _ = cmd
                .arg("-S")
                .arg(ssh_escaped(&path))
                .args(["-O", "exit", "--", "fatbin-master"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            done.closed.push(file.clone());
            // The master acknowledges, then unlinks its socket and exits: give it a moment.
            for _ in 0..50 {
                if master_state(&path) != MasterState::Alive {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if master_state(&path) != MasterState::Alive {
            let _ = std::fs::remove_file(&path);
        }
    }
    for file in &files {
        let path = ssh.control_dir.join(file);
        let lock_of = file
            .rsplit_once(".seat")
            .filter(|(_, n)| n.parse::<usize>().is_ok())
            .map(|(socket, _)| socket)
            // The first-handshake lock and its failure record (crate::handshake).
            .or_else(|| file.strip_suffix(".handshake"))
            .or_else(|| file.strip_suffix(".failed"));
        let removable = match lock_of {
            Some(socket) => ours(socket) && !ssh.control_dir.join(socket).exists(),
            // `.up-PID`: a cold session's connection proof, left when the run was killed.
            None => file
                .strip_prefix(".up-")
                .and_then(|pid| pid.parse::<i32>().ok())
                // SAFETY: kill with signal 0 only checks that the process exists.
                .is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0),
        };
        if !removable {
            continue;
        }
        if lock_of.is_some() {
            // Only a lock nobody holds, and only of a master that is gone. A run that opened the
            // file just before it is unlinked may still lock the old inode while the next run
            // creates a new one: then two runs share one seat of the new master, and if every
            // other seat is taken too, sshd (MaxSessions) may refuse one session. That needs a
            // run starting during a disconnect, on a node whose 5 seats then all fill up.
            let Ok(lock) = File::open(&path) else {
                continue;
            };
            if !matches!(fsutil::try_lock(&lock, LockMode::Exclusive), Ok(true)) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                done.cleaned += 1;
            }
        } else if std::fs::remove_file(&path).is_ok() {
            done.cleaned += 1;
        }
    }
    done
}

/// A session slot on a master: held (by a file lock) for the whole run.
#[derive(Debug)]
pub struct Seat {
    pub socket: PathBuf,
    /// Whether a live master serves this socket.
    pub warm: bool,
    _lock: File,
}

/// Tries each seat lock of a master; `None` when all are held by other runs.
fn take_seat(socket: &Path) -> Result<Option<File>, String> {
    for seat in 0..SEATS_PER_MASTER {
        let path = with_suffix(socket, &format!(".seat{seat}"));
        let file = fsutil::open_lock(&path).map_err(|e| format!("cannot open lock {e}"))?;
        if fsutil::try_lock(&file, LockMode::Exclusive)
            .map_err(|e| format!("cannot lock {}: {e}", path.display()))?
        {
            return Ok(Some(file));
        }
    }
    Ok(None)
}

/// How many seats of `node`'s masters other runs hold now (the local load measure).
pub(crate) fn busy_seats(ssh: &Ssh, node: &Node) -> usize {
    let mut busy = 0;
    for index in 0..MAX_MASTERS {
        let socket = ssh.socket(node, index);
        if index > 0 && !socket.exists() {
            break;
        }
        for seat in 0..SEATS_PER_MASTER {
            let path = with_suffix(&socket, &format!(".seat{seat}"));
            let Ok(file) = File::open(&path) else {
                continue;
            };
            if matches!(fsutil::try_lock(&file, LockMode::Shared), Ok(false)) {
                busy += 1;
            }
        }
    }
    busy
}

/// Opens (creating) `path` and waits for an exclusive lock on it.
pub(crate) fn lock_file(path: &Path) -> Result<File, String> {
    fsutil::lock_file(path, LockMode::Exclusive).map_err(|e| format!("cannot lock {e}"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[derive(Debug, PartialEq, Eq)]
enum MasterState {
    Missing,
    Dead,
    Wedged,
    Alive,
}

/// Connects to a control socket and waits (bounded) for the master's MUX_MSG_HELLO, the first
/// message of OpenSSH's multiplexing protocol (PROTOCOL.mux): `u32 len, u32 type=1, u32 ver`.
fn master_state(socket: &Path) -> MasterState {
    let mut stream = match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return MasterState::Missing,
        Err(_) => return MasterState::Dead,
    };
    let _ = stream.set_read_timeout(Some(HELLO_TIMEOUT));
    let mut hello = [0u8; 12];
    match stream.read_exact(&mut hello) {
        Ok(()) if hello[4..8] == [0, 0, 0, 1] => MasterState::Alive,
        Ok(()) => MasterState::Dead,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            MasterState::Wedged
        }
        Err(_) => MasterState::Dead,
    }
}

/// `path` as ssh reads a `ControlPath`: ssh expands `%` tokens in it (`-S` too), so a `%` in
/// `XDG_RUNTIME_DIR` or the cache directory would name another socket or make ssh fail.
fn ssh_escaped(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::with_capacity(path.as_os_str().len());
    for &b in path.as_os_str().as_bytes() {
        if b == b'%' {
            out.push(b'%');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// `$XDG_RUNTIME_DIR/fatbin`, else `$XDG_CACHE_HOME/fatbin` (default `~/.cache/fatbin`).
pub fn runtime_base() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_absolute()) {
        return private_dir(&Path::new(&d).join("fatbin"));
    }
    cache_base()
}

/// `$XDG_CACHE_HOME/fatbin` (default `~/.cache/fatbin`): down nodes, shipped binaries, counters.
pub(crate) fn cache_base() -> Result<PathBuf, String> {
    let base = fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache")
        .ok_or("neither XDG_CACHE_HOME nor HOME is set: nowhere to keep ssh sockets")?;
    private_dir(&base.join("fatbin"))
}

/// Creates `dir` with mode 0700 if needed, and refuses one others could enter or that
/// belongs to someone else: whoever can reach a control socket can use our connections.
pub fn private_dir(dir: &Path) -> Result<PathBuf, String> {
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        return Err(format!("cannot create {}: {e}", dir.display()));
    }
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to you: refusing to keep ssh sockets there",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
    }
    Ok(dir.to_owned())
}

/// The last non-empty line of ssh's stderr: its reason for failing.
pub fn last_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('\u{1e}'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_signs_reach_ssh_doubled() {
        assert_eq!(
            ssh_escaped(Path::new("/run/a%b/%%/c")),
            OsString::from("/run/a%%b/%%%%/c")
        );
    }

    #[test]
    fn missing_and_dead_sockets_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        assert_eq!(master_state(&path), MasterState::Missing);
        // A socket file nobody listens on: what a crashed master leaves behind.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert_eq!(master_state(&path), MasterState::Dead);
    }

    #[test]
    fn a_silent_master_is_wedged_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(master_state(&path), MasterState::Wedged);
    }

    /// What `ssh -v -E LOG` writes for a warm session (OpenSSH 9.2), cut short.
    #[test]
    fn a_warm_sessions_log_tells_whether_the_command_may_have_left() {
        let opened = "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024\r\n\
            debug1: Reading configuration data /tmp/ssh_config\r\n\
            debug1: mux_client_request_session: master session id: 2\r\n";
        assert!(session_was_opened(opened));
        let master_died = "OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024\r\n\
            debug1: Reading configuration data /tmp/ssh_config\r\n\
            mux_client_request_session: read from master failed: Broken pipe\r\n";
        assert!(!session_was_opened(master_died));
        assert_eq!(
            log_reason(master_died).as_deref(),
            Some("mux_client_request_session: read from master failed: Broken pipe")
        );
        // The master was gone and ssh connected on its own: it may have run the command.
        assert!(session_was_opened(
            "debug1: Authenticated to n1 ([127.0.0.1]:2222) using \"publickey\".\n"
        ));
        assert_eq!(log_reason("OpenSSH_9.2p1\ndebug1: x\n"), None);
    }

    #[test]
    fn seats_run_out_per_master() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("n.0");
        let held: Vec<File> = (0..SEATS_PER_MASTER)
            .map(|_| take_seat(&socket).unwrap().expect("a free seat"))
            .collect();
        assert!(take_seat(&socket).unwrap().is_none());
        drop(held);
        assert!(take_seat(&socket).unwrap().is_some());
    }

    #[test]
    fn private_dirs_are_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        private_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
    }

    /// An `Ssh` whose control directory is `dir` (nothing here starts a real ssh).
    fn ssh_in(dir: &Path) -> Ssh {
        Ssh {
            program: PathBuf::from("/usr/bin/ssh"),
            config: Some("/etc/fatbin/ssh_config".into()),
            connect_timeout: 5,
            persist: 60,
            control_dir: dir.to_owned(),
        }
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_ssh_gets_the_shared_options_and_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = ssh_in(&dir.path().join("50%"));
        let mut node = crate::nodes::Node::for_test("n1", "user@host", false);
        node.entry.port = Some(2222);
        let socket = ssh.socket(&node, 3);
        assert_eq!(
            socket,
            dir.path()
                .join(format!("50%/n1-{}.3", connection_key(&node)))
        );
        let mut cmd = ssh.command(&node, &socket);
        Ssh::destination(&mut cmd, &node);
        assert_eq!(cmd.get_program(), "/usr/bin/ssh");
        let escaped = format!(
            "{}/50%%/n1-{}.3",
            dir.path().display(),
            connection_key(&node)
        );
        assert_eq!(
            args(&cmd),
            [
                "-F",
                "/etc/fatbin/ssh_config",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "ServerAliveInterval=2",
                "-o",
                "ServerAliveCountMax=3",
                "-o",
                "ControlPersist=60",
                "-S",
                &escaped,
                "-p",
                "2222",
                "--",
                "user@host",
            ]
        );
    }

    #[test]
    fn a_session_carries_its_proof_warm_or_cold() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = ssh_in(dir.path());
        let seat = |warm| Seat {
            socket: dir.path().join("s"),
            warm,
            _lock: File::open(dir.path()).unwrap(),
        };
        let proof = dir.path().join("up 100%");
        let log = dir.path().join("log");

        let mut warm = Command::new("ssh");
        ssh.session_options(&mut warm, &seat(true), &proof, Some(&log));
        let log_arg = log.display().to_string();
        assert_eq!(
            args(&warm),
            ["-o", "ControlMaster=no", "-v", "-E", &log_arg]
        );
        let mut tty = Command::new("ssh");
        ssh.session_options(&mut tty, &seat(true), &proof, None);
        assert_eq!(args(&tty), ["-o", "ControlMaster=no"]);

        let mut cold = Command::new("ssh");
        ssh.session_options(&mut cold, &seat(false), &proof, Some(&log));
        let touch = format!("LocalCommand=: > '{}/up 100%%'", dir.path().display());
        assert_eq!(
            args(&cold),
            [
                "-o",
                "ControlMaster=yes",
                "-o",
                "PermitLocalCommand=yes",
                "-o",
                &touch
            ]
        );
        assert_eq!(cold.get_current_dir(), Some(Path::new("/")));
        // The wait for another run's handshake covers each of its attempts.
        assert_eq!(
            ssh.handshake_wait(),
            Duration::from_secs((5 + 3) * u64::from(DOOR_RETRIES + 1))
        );
    }

    #[test]
    fn connection_keys_name_where_a_node_is_reached() {
        let node = |ssh: &str, port| {
            let mut n = crate::nodes::Node::for_test("n", ssh, false);
            n.entry.port = port;
            connection_key(&n)
        };
        let key = node("user@host", None);
        assert_eq!(key.len(), 12);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        assert_eq!(key, node("user@host", None));
        assert_ne!(key, node("user@host", Some(22)));
        assert_ne!(key, node("other@host", None));
        // Fields end with a NUL: one field's end never reads as the next one's start.
        assert_ne!(node("h2", None), node("h", Some(2)));
        if std::env::var_os("FATBIN_SSH").is_none()
            && std::env::var_os("FATBIN_SSH_CONFIG").is_none()
        {
            // 64-bit FNV-1a of "n1\0\0\0\0" and "root@arm1\02222\0\0\0", shifted right 16.
            assert_eq!(node("n1", None), "28be61677f4d");
            assert_eq!(node("root@arm1", Some(2222)), "18b3ebb21dc1");
        }
    }

    #[test]
    fn control_socket_paths_must_fit_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::nodes::Node::for_test("n1", "h", false);
        // The longest socket, `NAME-KEY.7`, plus ssh's 17-byte temporary suffix: 107 at most.
        let tail = format!("/n1-{}.7", connection_key(&node)).len();
        let fits = 107 - 17 - tail;
        let base = dir.path().display().to_string();
        let padded =
            |len: usize| PathBuf::from(format!("{base}/{}", "d".repeat(len - base.len() - 1)));
        let ok = padded(fits);
        std::fs::create_dir(&ok).unwrap();
        let seat = ssh_in(&ok).try_seat(&node).unwrap().expect("a free seat");
        assert_eq!(seat.socket.as_os_str().len() + 17, 107);
        assert!(!seat.warm);
        let long = padded(fits + 1);
        std::fs::create_dir(&long).unwrap();
        let e = ssh_in(&long).try_seat(&node).unwrap_err();
        assert!(e.contains("is too long for a Unix socket"), "{e}");
    }

    #[test]
    fn a_node_carries_at_most_its_seats_and_busy_ones_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = ssh_in(dir.path());
        let node = crate::nodes::Node::for_test("n1", "h", false);
        assert_eq!(SEATS_PER_MASTER * SESSIONS_PER_SEAT, SSHD_MAX_SESSIONS);
        let mut seats: Vec<Seat> = (0..MAX_RUNS_PER_NODE)
            .map(|_| ssh.try_seat(&node).unwrap().expect("a free seat"))
            .collect();
        assert_eq!(MAX_RUNS_PER_NODE, 40);
        assert!(ssh.try_seat(&node).unwrap().is_none());
        assert_eq!(
            ssh.busy_message(&node),
            "all 40 seats on `n1` stayed busy for 30 s (8 connections of 5 runs)"
        );
        // Seats of masters whose socket is gone are not load; the first master's always are.
        assert_eq!(busy_seats(&ssh, &node), SEATS_PER_MASTER);
        for index in 1..MAX_MASTERS {
            std::fs::write(ssh.socket(&node, index), b"").unwrap();
        }
        assert_eq!(busy_seats(&ssh, &node), MAX_RUNS_PER_NODE);
        drop(seats.pop());
        assert_eq!(busy_seats(&ssh, &node), MAX_RUNS_PER_NODE - 1);

        // A full node is waited for: a seat freed meanwhile is taken.
        seats.push(ssh.try_seat(&node).unwrap().expect("the seat just freed"));
        let freed = seats.pop();
        let (seat, waited) = std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                drop(freed);
            });
            let start = Instant::now();
            (ssh.seat(&node), start.elapsed())
        });
        assert!(seat.is_ok(), "{seat:?}");
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
    }

    /// A control socket whose listener answers each connection with `reply`, as a master's
    /// MUX_MSG_HELLO would be (`u32 len, u32 type, u32 version`), then closes it.
    fn answering_socket(path: &Path, reply: &'static [u8]) -> std::thread::JoinHandle<()> {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            if let Ok((mut stream, _)) = listener.accept() {
                use std::io::Write;
                let _ = stream.write_all(reply);
            }
        })
    }

    #[test]
    fn a_master_is_alive_only_when_it_says_hello() {
        let dir = tempfile::tempdir().unwrap();
        let hello = dir.path().join("hello");
        let answered = answering_socket(&hello, &[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4]);
        assert_eq!(master_state(&hello), MasterState::Alive);
        answered.join().unwrap();
        let other = dir.path().join("other");
        let answered = answering_socket(&other, &[0, 0, 0, 8, 0, 0, 0, 2, 0, 0, 0, 4]);
        assert_eq!(master_state(&other), MasterState::Dead);
        answered.join().unwrap();
        // Closed at once: dead, not wedged.
        let closed = dir.path().join("closed");
        let answered = answering_socket(&closed, &[]);
        assert_eq!(master_state(&closed), MasterState::Dead);
        answered.join().unwrap();
    }

    #[test]
    fn ssh_reasons_are_the_last_lines_that_are_not_chatter() {
        assert_eq!(
            last_line(b"Warning: x\nssh: connect to host h port 22: Connection refused\n  \n"),
            Some("ssh: connect to host h port 22: Connection refused".into())
        );
        assert_eq!(
            last_line(b"Permission denied (publickey).\n\x1efatbin:fail:cwd\n"),
            Some("Permission denied (publickey).".into())
        );
        assert_eq!(last_line(b"\n \n\x1efatbin:x\n"), None);
        let log = "OpenSSH_9.2p1\r\nControl socket connect(/s): Connection refused\r\n\
                   debug1: x\r\n  \r\nOpenSSH_9.2p1 again\r\n";
        assert_eq!(
            log_reason(log).as_deref(),
            Some("Control socket connect(/s): Connection refused")
        );
        assert_eq!(log_reason(""), None);
    }

    #[test]
    fn disconnect_removes_what_is_gone_and_keeps_what_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let ssh = ssh_in(dir.path());
        let n1 = crate::nodes::Node::for_test("n1", "h1", false);
        let key = connection_key(&n1);
        let path = |name: &str| dir.path().join(name);
        // A master that died (its socket left), another node's, a name that only starts
        // like n1's, and a file that is not a socket.
        for socket in [
            format!("n1-{key}.0"),
            format!("n10-{key}.0"),
            "n1-short.0".into(),
        ] {
            drop(std::os::unix::net::UnixListener::bind(path(&socket)).unwrap());
        }
        std::fs::write(path(&format!("n1-{key}.1")), b"").unwrap();
        // Seat locks of the dead master: one free, one held by a run; the handshake lock and
        // failure record; connection proofs of a dead run and of this live one.
        for file in [".seat0", ".seat1", ".handshake", ".failed"] {
            std::fs::write(path(&format!("n1-{key}.0{file}")), b"").unwrap();
        }
        // Seats of another node's dead master, and of an n1 socket that is still there.
        std::fs::write(path(&format!("n10-{key}.0.seat0")), b"").unwrap();
        std::fs::write(path(&format!("n1-{key}.1.seat0")), b"").unwrap();
        let held =
            fsutil::lock_file(&path(&format!("n1-{key}.0.seat1")), LockMode::Exclusive).unwrap();
        let dead_proof = path(".up-4999999");
        let live_proof = path(&format!(".up-{}", std::process::id()));
        std::fs::write(&dead_proof, b"").unwrap();
        std::fs::write(&live_proof, b"").unwrap();

        let done = disconnect(&ssh, Some("n1"));
        assert!(done.closed.is_empty());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = vec![
            live_proof.file_name().unwrap().to_str().unwrap().to_owned(),
            format!("n1-{key}.0.seat1"),
            format!("n1-{key}.1"),
            format!("n1-{key}.1.seat0"),
            "n1-short.0".into(),
            format!("n10-{key}.0"),
            format!("n10-{key}.0.seat0"),
        ];
        expected.sort();
        assert_eq!(left, expected);
        // The seat, the handshake lock, the failure record and the dead run's proof.
        assert_eq!(done.cleaned, 4);

        // Every node: the other sockets and their seats go too, the held seat stays, and so
        // does the seat of a socket that is still there.
        let done = disconnect(&ssh, None);
        assert_eq!(done.cleaned, 1);
        assert!(path(&format!("n1-{key}.1.seat0")).exists());
        assert!(!path(&format!("n10-{key}.0")).exists() && !path("n1-short.0").exists());
        drop(held);
        assert_eq!(disconnect(&ssh, None).cleaned, 1);
    }

    #[test]
    fn a_private_dir_of_another_account_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        // Only root may give a directory away.
        let given = std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).is_ok();
        if !given {
            eprintln!("not root: cannot make a directory another account's");
            return;
        }
        let e = private_dir(&theirs).unwrap_err();
        assert!(e.contains("belongs to uid 65534, not to you"), "{e}");
    }

    /// A node that closes every connection as soon as it is made (what sshd does past its
    /// `MaxStartups`), reached with the real ssh client: the connection is retried
    /// [`DOOR_RETRIES`] times, then given up with ssh's reason, and nothing ran. Whether the
    /// node closes in order (as sshd does) or resets the connection (a close with the client's
    /// version line unread: ssh then says "Connection reset by HOST port N").
    #[test]
    fn a_connection_cut_at_the_door_is_retried_then_given_up() {
        for read_first in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let door = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = door.local_addr().unwrap().port();
            let knocks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = knocks.clone();
            std::thread::spawn(move || {
                for stream in door.incoming() {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Ok(stream) = stream else { continue };
                    if read_first {
                        // The client's version line read, the close is an orderly one.
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut line = Vec::new();
                        let _ = std::io::BufRead::read_until(
                            &mut std::io::BufReader::new(&stream),
                            b'\n',
                            &mut line,
                        );
                    } else {
                        // Wait for the version line, leave it unread: the close resets.
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            });
            let mut ssh = ssh_in(dir.path());
            ssh.program =
                which::which("ssh").expect("the OpenSSH client (ci/setup.sh installs it)");
            ssh.config = Some("/dev/null".into());
            let mut node = crate::nodes::Node::for_test("door", "127.0.0.1", false);
            node.entry.port = Some(port);
            let reason = ssh.connect(&node).unwrap_err();
            assert!(
                ConnectFailure::new(reason.clone()).cut_at_the_door(),
                "read first: {read_first}: {reason}"
            );
            assert_eq!(
                knocks.load(std::sync::atomic::Ordering::SeqCst),
                DOOR_RETRIES as usize + 1,
                "read first: {read_first}: {reason}"
            );
            assert_eq!(master_state(&ssh.socket(&node, 0)), MasterState::Missing);
        }
    }

    #[test]
    fn sockets_and_state_live_in_a_private_fatbin_directory() {
        // Where every run keeps them (made, if missing, as a run would make them).
        for base in [runtime_base().unwrap(), cache_base().unwrap()] {
            assert!(
                base.is_absolute() && base.ends_with("fatbin"),
                "{}",
                base.display()
            );
            assert_eq!(std::fs::metadata(&base).unwrap().mode() & 0o777, 0o700);
        }
    }
}
