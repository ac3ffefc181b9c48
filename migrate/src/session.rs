//! One migrated run: the ssh session, its streams, the wrapper's markers and signal forwarding.
//!
//! Streams: stdin and stdout go straight to ssh (binary-safe, no copy through us). The stream
//! that carries the wrapper's markers (stderr without a tty; stdout with one, since a tty merges
//! them) is read here, markers are removed, the rest is written through as it arrives. Only a
//! tail that could be the start of the final exit marker is held back, and only while it still
//! could be.
//!
//! Signals: SIGINT, SIGTERM and SIGHUP sent to the launcher are forwarded to the remote
//! program's process group over a second session on the same master (`kill -s SIG -- -PGID`),
//! as soon as the wrapper has reported the group. Without a tty, ssh is put in its own process
//! group so that a terminal's Ctrl-C reaches the program only through that forwarding, once.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;

use crate::handshake::{ConnectFailure, Handshake};
use crate::nodes::Node;
use crate::remote::{kill_script, Script, FAIL, MARK, START};
use crate::ssh::{last_line, log_reason, session_was_opened, Seat, Ssh};

/// How the local standard streams look, which decides `-n`, `-T`/`-tt` and process groups.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    /// stdin is /dev/null or closed: nothing to forward (`ssh -n`).
    pub no_stdin: bool,
    /// stdin is a terminal: ssh must stay in our (foreground) process group to read it.
    pub stdin_tty: bool,
    /// stdin and stdout are terminals: the user has a tty, so the program gets one (`-tt`).
    pub tty: bool,
}

impl Terminal {
    pub fn detect() -> Terminal {
        // SAFETY: isatty only inspects the descriptor.
        let stdin_tty = unsafe { libc::isatty(0) } == 1;
        let stdout_tty = unsafe { libc::isatty(1) } == 1;
        Terminal {
            no_stdin: stdin_is_null(),
            stdin_tty,
            tty: stdin_tty && stdout_tty,
        }
    }
}

/// Whether fd 0 is closed or is the null device.
fn stdin_is_null() -> bool {
    // SAFETY: fstat/stat write into the zeroed structs we pass; no other memory is touched.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(0, &mut st) != 0 {
            return true;
        }
        let mut null: libc::stat = std::mem::zeroed();
        (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::stat(c"/dev/null".as_ptr(), &mut null) == 0
            && st.st_rdev == null.st_rdev
    }
}

/// Why a session ended without the program having started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStarted {
    /// The caller's working directory does not exist on the node.
    Cwd,
    /// The binary is not on the node (or not executable).
    Missing,
    /// This machine could not start ssh with the command: it is longer than one argument may
    /// be here (E2BIG). Nothing was sent anywhere, and no node would take it.
    TooLong,
    /// The node's wrapper refused the binary: it, or a directory above it, could be replaced
    /// by someone the caller does not trust there (the trust rule, checked on the node).
    Unsafe,
    /// The node's inventory entry names a `launcher` the node does not have.
    Launcher,
    /// ssh failed before the wrapper said anything.
    Transport,
}

/// How a session ended.
#[derive(Debug)]
pub enum Ended {
    /// The wrapper reported the program's exit status.
    Finished(i32),
    /// The program never started; `detail` is what ssh or the wrapper said.
    NotStarted(NotStarted, String),
    /// The program started, then the connection ended without its status.
    Lost(String),
    /// Provably nothing ran: a cold ssh never authenticated (no proof file), or a warm one's
    /// session request was never answered by its master (it died first: a frozen node).
    Unreachable(ConnectFailure),
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Noted for the failover loop too: a signal before the program started ends the request.
    crate::signals::note(sig);
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = sig as u8;
        // SAFETY: write(2) is async-signal-safe; the byte lives on this stack frame.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

const FORWARDED: [(libc::c_int, &str); 3] = [
    (libc::SIGINT, "INT"),
    (libc::SIGTERM, "TERM"),
    (libc::SIGHUP, "HUP"),
];

/// Runs `script` on `node` through `seat`'s master. On a cold seat this ssh makes the
/// connection itself, under `handshake`, which is released as soon as it is authenticated (the
/// master listens then) and kept when it fails, for the caller to retry or give up.
pub fn run(
    ssh: &Ssh,
    node: &Node,
    seat: &Seat,
    handshake: Option<&Handshake>,
    script: &Script,
    term: Terminal,
) -> Ended {
    // Cold: the proof file says this ssh authenticated. Warm: the log says the session opened.
    let proof = seat
        .socket
        .with_file_name(format!(".up-{}", std::process::id()));
    let log = seat
        .socket
        .with_file_name(format!(".log-{}", std::process::id()));
    let _ = std::fs::remove_file(&proof);
    let _ = std::fs::remove_file(&log);
    let log_proof = seat.warm && !term.tty;
    let mut cmd = ssh.command(node, &seat.socket);
    ssh.session_options(&mut cmd, seat, &proof, log_proof.then_some(log.as_path()));
    if term.tty {
        // A tty session ends with "Shared connection to HOST closed." at ssh's default
        // LogLevel; a local run prints nothing like it. Errors still show.
        cmd.args(["-tt", "-o", "LogLevel=ERROR"]);
    } else {
        cmd.arg("-T");
    }
    if term.no_stdin {
        cmd.arg("-n").stdin(Stdio::null());
    }
    Ssh::destination(&mut cmd, node).arg(OsStr::from_bytes(&script[..]));
    if term.tty {
        cmd.stdout(Stdio::piped());
    } else {
        cmd.stderr(Stdio::piped());
    }
    if !term.stdin_tty {
        cmd.process_group(0);
    }

    let (sig_read, sig_write) = match signal_pipe() {
        Ok(p) => p,
        Err(e) => return Ended::NotStarted(NotStarted::Transport, e),
    };
    SIGNAL_PIPE.store(sig_write.as_raw_fd(), Ordering::SeqCst);
    for (sig, _) in FORWARDED {
        // SAFETY: installs a handler that only calls write(2); SA_RESTART keeps reads going.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }

    let mut child: Child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == Some(libc::E2BIG) => {
            return Ended::NotStarted(
                NotStarted::TooLong,
                format!(
                    "the command for the node is {} bytes, more than this system passes in one \
                     argument to ssh (E2BIG)",
                    script.len()
                ),
            )
        }
        Err(e) => {
            return Ended::NotStarted(
                NotStarted::Transport,
                format!("cannot run {}: {e}", ssh.program.display()),
            )
        }
    };
    let ended = Arc::new(AtomicBool::new(false));
    let watcher = handshake.filter(|_| !seat.warm).map(|h| {
        let (h, proof, ended) = (h.clone(), proof.clone(), Arc::clone(&ended));
        std::thread::spawn(move || release_when_authenticated(&h, &proof, &ended))
    });
    let pgid = Arc::new(AtomicU32::new(0));
    let forwarder = {
        let pgid = Arc::clone(&pgid);
        let ssh = ssh.clone();
        let node = node.clone();
        let socket = seat.socket.clone();
        std::thread::spawn(move || forward_signals(sig_read, &pgid, &ssh, &node, &socket))
    };

    let (stream, out_fd): (Box<dyn Read>, i32) = match (child.stdout.take(), child.stderr.take()) {
        (Some(out), _) => (Box::new(out), 1),
        (None, Some(err)) => (Box::new(err), 2),
        (None, None) => unreachable!("one stream is piped"),
    };
    let mut pump = Pump::new(out_fd, script.exit_marker().to_vec());
    pump.run(stream, &pgid);
    let status = child.wait();
    ended.store(true, Ordering::SeqCst);
    if let Some(w) = watcher {
        let _ = w.join();
    }

    // Stop the forwarder: a zero byte is not a signal.
    let _ = (&sig_write).write_all(&[0]);
    let _ = forwarder.join();
    SIGNAL_PIPE.store(-1, Ordering::SeqCst);

    let ssh_code = status.ok().and_then(|s| s.code());
    let connected = std::fs::remove_file(&proof).is_ok();
    let log = if log_proof {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        text
    } else {
        String::new()
    };
    // ssh's reason: on stderr (cold), or in the debug log (warm).
    let reason = last_line(&pump.pre).or_else(|| log_reason(&log));
    match (pump.started, pump.exit, pump.fail) {
        (true, Some(code), _) => Ended::Finished(code),
        (true, None, _) => match ssh_code {
            Some(code) if code != 255 => Ended::Finished(code),
            _ => Ended::Lost(reason.unwrap_or_else(|| {
                "the connection closed without the program's exit status".into()
            })),
        },
        (false, _, Some(why)) => Ended::NotStarted(why, reason.unwrap_or_default()),
        (false, _, None) if !seat.warm && !connected => {
            Ended::Unreachable(ConnectFailure::from_stderr(&pump.pre, || {
                ssh_ended(ssh_code, "connecting")
            }))
        }
        (false, _, None) if log_proof && !session_was_opened(&log) => {
            Ended::Unreachable(ConnectFailure::new(reason.unwrap_or_else(|| {
                "the master connection ended before the session opened".into()
            })))
        }
        (false, _, None) => Ended::NotStarted(
            NotStarted::Transport,
            reason.unwrap_or_else(|| ssh_ended(ssh_code, "the program started")),
        ),
    }
}

/// Holds the node's handshake until this cold ssh is authenticated (its `LocalCommand` wrote
/// `proof`: the master is listening), then lets the runs waiting for it through. When ssh ends
/// without the proof, the handshake stays held: the caller retries or gives up on the node.
fn release_when_authenticated(handshake: &Handshake, proof: &std::path::Path, ended: &AtomicBool) {
    loop {
        if proof.exists() {
            handshake.release();
            return;
        }
        if ended.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// How ssh ended before `what`, in words (never a Rust `Some(255)`).
fn ssh_ended(code: Option<i32>, what: &str) -> String {
    match code {
        Some(code) => format!("ssh exited with {code} before {what}"),
        None => format!("ssh was killed before {what}"),
    }
}

fn signal_pipe() -> Result<(std::fs::File, std::fs::File), String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

/// Waits for signals (bytes on the self-pipe) and forwards each to the remote group once it is
/// known. A zero byte ends the thread.
fn forward_signals(
    mut pipe: std::fs::File,
    pgid: &AtomicU32,
    ssh: &Ssh,
    node: &Node,
    socket: &std::path::Path,
) {
    let mut byte = [0u8; 1];
    while let Ok(1) = pipe.read(&mut byte) {
        let Some((_, name)) = FORWARDED.iter().find(|(s, _)| *s == i32::from(byte[0])) else {
            return;
        };
        // The group is reported when the wrapper starts; a signal before that waits for it.
        let mut group = pgid.load(Ordering::SeqCst);
        while group == 0 {
            std::thread::sleep(std::time::Duration::from_millis(5));
            group = pgid.load(Ordering::SeqCst);
        }
        if group == u32::MAX {
            return;
        }
        let mut cmd = ssh.command(node, socket);
        cmd.args(["-o", "ControlMaster=no", "-n", "-T"]);
        Ssh::destination(&mut cmd, node).arg(kill_script(name, group));
        let _ = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .status();
    }
}

/// Reads the marker stream, strips the wrapper's lines and writes the rest through.
#[derive(Debug)]
struct Pump {
    out_fd: i32,
    /// Bytes before the start marker: login noise or ssh's own error messages.
    pre: Vec<u8>,
    started: bool,
    held: Vec<u8>,
    /// This run's exit line prefix (with its nonce): only the wrapper knows it.
    exit_marker: Vec<u8>,
    exit: Option<i32>,
    fail: Option<NotStarted>,
    broken: bool,
}

impl Pump {
    fn new(out_fd: i32, exit_marker: Vec<u8>) -> Pump {
        Pump {
            out_fd,
            pre: Vec::new(),
            started: false,
            held: Vec::new(),
            exit_marker,
            exit: None,
            fail: None,
            broken: false,
        }
    }

    fn run(&mut self, mut stream: Box<dyn Read>, pgid: &AtomicU32) {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            self.feed(&buf[..n], pgid);
        }
        self.finish(pgid);
    }

    fn feed(&mut self, chunk: &[u8], pgid: &AtomicU32) {
        if self.started {
            self.running(chunk);
            return;
        }
        self.pre.extend_from_slice(chunk);
        if let Some((at, end, group)) = find_line(&self.pre, START) {
            let group: u32 = std::str::from_utf8(&group)
                .ok()
                .and_then(|g| g.parse().ok())
                .unwrap_or(u32::MAX);
            pgid.store(group, Ordering::SeqCst);
            self.started = true;
            let pre = std::mem::take(&mut self.pre);
            self.emit(&without_our_noise(&pre[..at]));
            self.pre = pre[..at].to_vec();
            self.running(&pre[end..]);
        } else if let Some((_, _, why)) = find_line(&self.pre, FAIL) {
            self.fail = Some(match why.as_slice() {
                b"cwd" => NotStarted::Cwd,
                b"missing" => NotStarted::Missing,
                b"unsafe" => NotStarted::Unsafe,
                b"launcher" => NotStarted::Launcher,
                _ => NotStarted::Transport,
            });
        }
    }

    fn running(&mut self, chunk: &[u8]) {
        if self.held.is_empty() && !chunk.contains(&MARK) {
            // The common case: program output with nothing to look at.
            self.emit(chunk);
            return;
        }
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(chunk);
        match buf.iter().rposition(|&b| b == MARK) {
            Some(i) if could_be_exit(&buf[i..], &self.exit_marker) => {
                self.emit(&buf[..i]);
                self.held = buf[i..].to_vec();
            }
            _ => self.emit(&buf),
        }
    }

    fn finish(&mut self, pgid: &AtomicU32) {
        if !self.started {
            // Never started: wake a waiting forwarder and keep what was said as the reason.
            pgid.store(u32::MAX, Ordering::SeqCst);
            return;
        }
        let held = std::mem::take(&mut self.held);
        match parse_exit(&held, &self.exit_marker) {
            Some(code) => self.exit = Some(code),
            None => self.emit(&held),
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.broken {
            return;
        }
        // Unbuffered, straight to the descriptor: output must appear as the program writes it.
        let mut out = std::mem::ManuallyDrop::new(unsafe {
            // SAFETY: fd 1 or 2 stays open for the process's life; ManuallyDrop never closes it.
            std::fs::File::from_raw_fd(self.out_fd)
        });
        if out.write_all(bytes).is_err() {
            self.broken = true;
        }
    }
}

/// Pre-start output minus ssh's notice that a concurrent cold run became the master first
/// ("ControlSocket … already exists, disabling multiplexing"): ours, not the user's business.
fn without_our_noise(pre: &[u8]) -> Vec<u8> {
    pre.split_inclusive(|&b| b == b'\n')
        .filter(|line| {
            const NOTICE: &[u8] = b"disabling multiplexing";
            !(line.starts_with(b"ControlSocket ")
                && line.windows(NOTICE.len()).any(|w| w == NOTICE))
        })
        .flatten()
        .copied()
        .collect()
}

/// Finds a complete `MARKER…\n` line in `buf`: (start, end after the newline, payload).
fn find_line(buf: &[u8], marker: &[u8]) -> Option<(usize, usize, Vec<u8>)> {
    let at = buf.windows(marker.len()).position(|w| w == marker)?;
    let rest = &buf[at + marker.len()..];
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let payload = rest[..nl]
        .strip_suffix(b"\r")
        .unwrap_or(&rest[..nl])
        .to_vec();
    Some((at, at + marker.len() + nl + 1, payload))
}

/// Whether `tail` (starting at a marker byte) is, or may still become, the final exit line.
fn could_be_exit(tail: &[u8], exit: &[u8]) -> bool {
    if tail.len() <= exit.len() {
        return exit.starts_with(tail);
    }
    let Some(rest) = tail.strip_prefix(exit) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let after = &rest[digits..];
    digits <= 3 && matches!(after, b"" | b"\r" | b"\n" | b"\r\n")
}

fn parse_exit(tail: &[u8], exit: &[u8]) -> Option<i32> {
    let rest = tail.strip_prefix(exit)?;
    let rest = rest.strip_suffix(b"\n")?;
    let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
    std::str::from_utf8(rest).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_tails() {
        let m: &[u8] = b"\x1efatbin:exit:n0nce:";
        assert!(could_be_exit(b"\x1e", m));
        assert!(could_be_exit(b"\x1efatbin:ex", m));
        assert!(could_be_exit(b"\x1efatbin:exit:n0nce:25", m));
        assert!(could_be_exit(b"\x1efatbin:exit:n0nce:255\n", m));
        assert!(!could_be_exit(b"\x1efatbin:exit:n0nce:255\nmore", m));
        assert!(!could_be_exit(b"\x1eother", m));
        assert_eq!(parse_exit(b"\x1efatbin:exit:n0nce:255\n", m), Some(255));
        assert_eq!(parse_exit(b"\x1efatbin:exit:n0nce:3\r\n", m), Some(3));
        assert_eq!(parse_exit(b"\x1efatbin:exit:n0nce:3", m), None);
        // Without the nonce (what a program could print): not this run's marker.
        assert!(!could_be_exit(b"\x1efatbin:exit:0\n", m));
        assert_eq!(parse_exit(b"\x1efatbin:exit:0\n", m), None);
    }

    /// Issue 11, poor errors: "ssh exited with Some(255)" was a Rust Debug value.
    #[test]
    fn ssh_endings_are_in_words() {
        assert_eq!(
            ssh_ended(Some(255), "connecting"),
            "ssh exited with 255 before connecting"
        );
        assert_eq!(
            ssh_ended(None, "connecting"),
            "ssh was killed before connecting"
        );
    }

    #[test]
    fn start_lines() {
        let (at, end, pid) = find_line(b"noise\n\x1efatbin:start:42\r\nout", START).unwrap();
        assert_eq!((at, end, pid.as_slice()), (6, 24, &b"42"[..]));
        assert!(find_line(b"\x1efatbin:start:4", START).is_none());
    }
}

#[cfg(test)]
mod pump_tests {
    use super::*;

    /// Feeds `chunks` through a pump writing to a pipe and returns (output, pump).
    fn pump(chunks: &[&[u8]]) -> (Vec<u8>, Pump) {
        let (r, w) = signal_pipe().unwrap();
        let mut p = Pump::new(w.as_raw_fd(), b"\x1efatbin:exit:N:".to_vec());
        let group = AtomicU32::new(0);
        for c in chunks {
            p.feed(c, &group);
        }
        p.finish(&group);
        drop(w);
        let mut out = Vec::new();
        let mut r = r;
        r.read_to_end(&mut out).unwrap();
        (out, p)
    }

    #[test]
    fn markers_are_removed_and_split_markers_found() {
        let (out, p) = pump(&[
            b"\x1efatbin:st",
            b"art:77\nhello \x1e",
            b"fatbin:exit:N:25",
            b"5\n",
        ]);
        assert_eq!(out, b"hello ");
        assert_eq!(p.exit, Some(255));
        assert!(p.started);
    }

    #[test]
    fn marker_text_inside_program_output_is_output() {
        let (out, p) = pump(&[
            b"\x1efatbin:start:1\n",
            b"a\x1efatbin:exit:3\nb",
            b"\x1efatbin:exit:N:0\n",
        ]);
        assert_eq!(out, b"a\x1efatbin:exit:3\nb");
        assert_eq!(p.exit, Some(0));
    }

    /// Issue 11, item 12: a marker without this run's nonce at the end of the program's
    /// stderr (its wrapper then killed) is output, and no status is believed.
    #[test]
    fn a_forged_exit_marker_is_not_believed() {
        let (out, p) = pump(&[b"\x1efatbin:start:1\n", b"x\x1efatbin:exit:0\n"]);
        assert_eq!(out, b"x\x1efatbin:exit:0\n");
        assert_eq!(p.exit, None);
    }

    #[test]
    fn our_multiplexing_notice_is_dropped_other_noise_kept() {
        let (out, _) = pump(&[
            b"ControlSocket /r/n.0 already exists, disabling multiplexing\r\nmotd\n\x1efatbin:start:5\nx",
            b"\x1efatbin:exit:N:0\n",
        ]);
        assert_eq!(out, b"motd\nx");
    }

    #[test]
    fn no_start_keeps_the_reason() {
        let (out, p) = pump(&[b"ssh: connect to host x port 22: Connection refused\r\n"]);
        assert!(out.is_empty());
        assert!(!p.started);
        assert_eq!(
            last_line(&p.pre).unwrap(),
            "ssh: connect to host x port 22: Connection refused"
        );
        let (_, p) = pump(&[b"\x1efatbin:fail:cwd\n"]);
        assert_eq!(p.fail, Some(NotStarted::Cwd));
        let (_, p) =
            pump(&[b"refusing to run: /r is writable by others\n\x1efatbin:fail:unsafe\n"]);
        assert_eq!(p.fail, Some(NotStarted::Unsafe));
    }
}
