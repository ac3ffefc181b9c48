//! One handshake at a time per node: a burst of cold runs makes one connection, not N.
//!
//! sshd drops new unauthenticated connections at random once ten are pending
//! (`MaxStartups 10:30:100`), so twenty runs that all find no master and all connect lose some
//! of their handshakes, and each loser read as a dead node. Instead, the first cold run to a
//! node takes the node's handshake lock (`NODE.handshake` next to the control sockets) and holds
//! it from before its ssh starts until that ssh is authenticated (its master is listening then)
//! or it gives up. The others wait for the lock, bounded, then find the master up and go through
//! it warm. When the holder gives up, it leaves the reason in `NODE.failed`: a run that waited
//! and finds a failure newer than its wait does not connect again, it fails over at once, as if
//! it had failed itself (nothing ran: it never connected).
//!
//! A connection that provably never started anything and was cut at the door (sshd's
//! `MaxStartups`, other clients' bursts) is retried under the same lock, a few times with a short
//! growing pause. A host-key verification failure is never retried and never quiet: OpenSSH's
//! own lines are shown on every run that meets it (see [`ConnectFailure::show`]).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use fatbin_layout::fsutil::{self, LockMode};

use crate::nodes::Node;

/// How often a waiting run looks at a lock again.
pub(crate) const POLL: Duration = Duration::from_millis(20);
/// Retries of a connection cut at the door, after the first attempt.
pub const DOOR_RETRIES: u32 = 3;

/// Why ssh never got as far as running anything on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFailure {
    /// ssh's last line, or ours.
    pub reason: String,
    /// OpenSSH's own lines, when the failure was the node's host key: shown to the user.
    pub host_key: Option<String>,
}

impl ConnectFailure {
    pub fn new(reason: impl Into<String>) -> ConnectFailure {
        ConnectFailure {
            reason: reason.into(),
            host_key: None,
        }
    }

    /// The failure described by ssh's stderr (`stderr`), or by `fallback` when it said nothing.
    pub fn from_stderr(stderr: &[u8], fallback: impl FnOnce() -> String) -> ConnectFailure {
        let text = String::from_utf8_lossy(stderr);
        let reason = crate::ssh::last_line(stderr).unwrap_or_else(fallback);
        let host_key = text
            .contains("Host key verification failed")
            .then(|| ssh_lines(&text));
        ConnectFailure { reason, host_key }
    }

    /// Whether sshd cut the connection before authentication in the way a full `MaxStartups`
    /// queue (or a restarting sshd) does: worth another try, since nothing can have run.
    pub fn cut_at_the_door(&self) -> bool {
        self.host_key.is_none()
            && [
                "kex_exchange_identification",
                // "by peer" while reading the banner, "by HOST port N" once it was read.
                "Connection reset by",
                "Connection closed by",
            ]
            .iter()
            .any(|s| self.reason.contains(s))
    }

    /// Prints OpenSSH's host-key lines, then ours, on stderr (a changed host key is never
    /// silent). Does nothing for other failures.
    pub fn show(&self, node: &Node) {
        let Some(lines) = &self.host_key else {
            return;
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(lines.as_bytes());
        let _ = writeln!(
            err,
            "fatbin: node `{}` ({}): its host key did not verify (OpenSSH's words above); \
             nothing ran there and it is not used until the key verifies. If the change is \
             expected, update known_hosts (`ssh-keygen -R HOST`, then connect once with ssh)",
            node.name, node.entry.ssh
        );
    }
}

/// ssh's own lines (without the wrapper's markers and our multiplexing notice), each ending
/// in a newline.
fn ssh_lines(text: &str) -> String {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('\u{1e}'))
        .filter(|l| !(l.starts_with("ControlSocket ") && l.contains("disabling multiplexing")))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The right to make the handshake to a node: held until the master is up or the attempt is
/// given up. Clones share the one lock (a watcher thread releases it when ssh authenticates).
#[derive(Debug, Clone)]
pub struct Handshake {
    lock: Arc<Mutex<Option<File>>>,
    record: PathBuf,
}

impl Handshake {
    /// Waits (at most `wait`) for the handshake lock of the node whose first control socket is
    /// `socket` (the lock and the failure record are named after it). `Err` when the wait ran
    /// out, or when the run that held the lock meanwhile gave up on the node (its failure).
    pub fn acquire(socket: &Path, wait: Duration) -> Result<Handshake, ConnectFailure> {
        let path = with_suffix(socket, ".handshake");
        let record = with_suffix(socket, ".failed");
        let began = SystemTime::now();
        let deadline = Instant::now() + wait;
        let file = fsutil::open_lock(&path)
            .map_err(|e| ConnectFailure::new(format!("cannot open {e}")))?;
        let mut waited = false;
        loop {
            match fsutil::try_lock(&file, LockMode::Exclusive) {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    return Err(ConnectFailure::new(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )))
                }
            }
            if Instant::now() >= deadline {
                return Err(ConnectFailure::new(format!(
                    "another run was still connecting to it after {} s",
                    wait.as_secs()
                )));
            }
            waited = true;
            std::thread::sleep(POLL);
        }
        if waited {
            if let Some(failure) = failure_since(&record, began) {
                return Err(failure);
            }
        }
        Ok(Handshake {
            lock: Arc::new(Mutex::new(Some(file))),
            record,
        })
    }

    /// Lets the waiting runs go (the master is up, or they may try themselves).
    pub fn release(&self) {
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
    }

    /// Gives up on the node: leaves `failure` for the runs waiting for this handshake, then
    /// lets them go.
    pub fn failed(&self, failure: &ConnectFailure) {
        let Ok(mut lock) = self.lock.lock() else {
            return;
        };
        if lock.is_some() {
            let mut text = failure.reason.replace('\n', " ");
            text.push('\n');
            text.push_str(failure.host_key.as_deref().unwrap_or(""));
            // Best effort: without it a waiter connects itself, which costs time, not safety.
            let _ = fsutil::write_atomic(&self.record, text.as_bytes(), 0o600);
        }
        lock.take();
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The failure recorded in `record` at or after `since`, if any.
fn failure_since(record: &Path, since: SystemTime) -> Option<ConnectFailure> {
    let modified = std::fs::metadata(record).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(record).ok()?;
    let (reason, lines) = text.split_once('\n').unwrap_or((&text, ""));
    Some(ConnectFailure {
        reason: reason.to_owned(),
        host_key: (!lines.is_empty()).then(|| lines.to_owned()),
    })
}

/// The pause before retry `n` (1, 2, ...) of a connection cut at the door: growing, and spread
/// by the process id so that runs cut together do not come back together.
pub fn door_pause(n: u32) -> Duration {
    let spread = u64::from(std::process::id() % 97);
    Duration::from_millis(150 * u64::from(n) + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_key_failure_keeps_opensshs_lines() {
        let stderr =
            b"@@@@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
            Host key for fatbin-a has changed and you have requested strict checking.\r\n\
            Host key verification failed.\r\n";
        let f = ConnectFailure::from_stderr(stderr, String::new);
        assert_eq!(f.reason, "Host key verification failed.");
        let lines = f.host_key.as_deref().unwrap();
        assert!(lines.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"));
        assert!(lines.ends_with("Host key verification failed.\n"));
        assert!(!f.cut_at_the_door());
        let refused = ConnectFailure::from_stderr(
            b"ssh: connect to host 127.0.0.1 port 1: Connection refused\n",
            String::new,
        );
        assert_eq!(refused.host_key, None);
        assert!(!refused.cut_at_the_door(), "a refused port is not retried");
    }

    #[test]
    fn only_opensshs_own_lines_are_shown() {
        let text = "ControlSocket /r/a.0 already exists, disabling multiplexing\r\n\
            ControlSocket note kept\n\u{1e}fatbin:fail:cwd\n\n\
            Host key verification failed.\r\n";
        assert_eq!(
            ssh_lines(text),
            "ControlSocket note kept\nHost key verification failed.\n"
        );
    }

    #[test]
    fn maxstartups_drops_are_cut_at_the_door() {
        for line in [
            "kex_exchange_identification: read: Connection reset by peer",
            "kex_exchange_identification: Connection closed by remote host",
            "Connection closed by 127.0.0.1 port 2222",
            "Connection reset by 127.0.0.1 port 2222",
        ] {
            assert!(ConnectFailure::new(line).cut_at_the_door(), "{line}");
        }
        assert!(
            !ConnectFailure::new("Connection timed out during banner exchange").cut_at_the_door()
        );
    }

    #[test]
    fn waiters_learn_the_holders_failure_and_only_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path().join("a.0");
        let held = Handshake::acquire(&n, Duration::from_secs(1)).unwrap();
        // A second acquirer waits out its bound while the lock is held.
        let err = Handshake::acquire(&n, Duration::from_millis(100)).unwrap_err();
        assert!(err.reason.contains("still connecting"), "{err:?}");
        let waiter = {
            let n = n.clone();
            std::thread::spawn(move || Handshake::acquire(&n, Duration::from_secs(5)))
        };
        std::thread::sleep(Duration::from_millis(100));
        held.failed(&ConnectFailure::new(
            "Connection timed out during banner exchange",
        ));
        let got = waiter.join().unwrap().unwrap_err();
        assert_eq!(got.reason, "Connection timed out during banner exchange");
        // A run that did not wait does not inherit an old failure: it tries itself.
        let fresh = Handshake::acquire(&n, Duration::from_secs(1));
        assert!(fresh.is_ok());
    }

    #[test]
    fn a_record_counts_only_from_the_wait_on_and_keeps_host_key_lines() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("c.0");
        let before = SystemTime::now() - Duration::from_secs(5);
        let held = Handshake::acquire(&socket, Duration::from_secs(1)).unwrap();
        held.failed(&ConnectFailure {
            reason: "Host key verification failed.".into(),
            host_key: Some("@@@ WARNING @@@\nHost key verification failed.\n".into()),
        });
        let record = with_suffix(&socket, ".failed");
        let got = failure_since(&record, before).expect("a failure after `before`");
        assert_eq!(got.reason, "Host key verification failed.");
        assert_eq!(
            got.host_key.as_deref(),
            Some("@@@ WARNING @@@\nHost key verification failed.\n")
        );
        let later = SystemTime::now() + Duration::from_secs(5);
        assert_eq!(failure_since(&record, later), None, "an older failure");
        // Without OpenSSH's lines, the record is a plain failure.
        let held = Handshake::acquire(&socket, Duration::from_secs(1)).unwrap();
        held.failed(&ConnectFailure::new("Connection refused"));
        assert_eq!(failure_since(&record, before).unwrap().host_key, None);
    }

    /// A record written at the very moment the wait began is that wait's failure.
    #[test]
    fn a_record_from_the_instant_the_wait_began_counts() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("d.0.failed");
        std::fs::write(&record, "Connection refused\n").unwrap();
        let modified = std::fs::metadata(&record).unwrap().modified().unwrap();
        let got = failure_since(&record, modified).expect("written when the wait began");
        assert_eq!(got.reason, "Connection refused");
    }

    /// A changed host key is never silent: OpenSSH's lines, then ours naming the node, on
    /// stderr; other failures print nothing. Run in a child process to read its stderr.
    #[test]
    fn a_host_key_failure_is_shown() {
        const CHILD: &str = "FATBIN_HANDSHAKE_TEST_SHOW";
        let node = Node::for_test("n1", "n1.invalid", true);
        if std::env::var_os(CHILD).is_some() {
            ConnectFailure::new("Connection refused").show(&node);
            eprintln!("--");
            ConnectFailure::from_stderr(
                b"@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\r\n\
                Host key verification failed.\r\n",
                String::new,
            )
            .show(&node);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "handshake::tests::a_host_key_failure_is_shown",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let (other, host_key) = stderr.split_once("--\n").expect("the child ran");
        assert_eq!(other, "", "only a host key failure is shown");
        assert!(
            host_key.starts_with(
                "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\n\
                 Host key verification failed.\n\
                 fatbin: node `n1` (n1.invalid): its host key did not verify"
            ),
            "{stderr}"
        );
    }

    #[test]
    fn door_pauses_grow_and_stay_short() {
        let pauses: Vec<Duration> = (1..=DOOR_RETRIES).map(door_pause).collect();
        for (i, p) in pauses.iter().enumerate() {
            let base = Duration::from_millis(150 * (i as u64 + 1));
            assert!(*p >= base && *p < base + Duration::from_millis(97), "{p:?}");
        }
    }

    #[test]
    fn release_lets_the_next_run_in_without_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path().join("b.0");
        let held = Handshake::acquire(&n, Duration::from_secs(1)).unwrap();
        let waiter = {
            let n = n.clone();
            std::thread::spawn(move || Handshake::acquire(&n, Duration::from_secs(5)))
        };
        std::thread::sleep(Duration::from_millis(60));
        held.release();
        assert!(waiter.join().unwrap().is_ok());
    }
}
