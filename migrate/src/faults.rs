//! Down-node memory: a node that could not be reached is skipped for a while, so the next run
//! does not wait for its connect timeout again.
//!
//! The state is one small text file, `$XDG_CACHE_HOME/fatbin/down`, a line per node:
//! `NAME<TAB>KEY<TAB>UNIX-SECONDS<TAB>FAILURES<TAB>REASON`, where KEY identifies the connection
//! (see [`crate::ssh::connection_key`]): a mark belongs to a destination, port, user, config
//! file and client, not to a name, so a node moved to another host in `nodes.toml` is tried at
//! once and two layouts that both name a node `a` never share a mark. It is rewritten whole
//! under a lock; a damaged line is ignored, and marks older than [`FORGET_AFTER`] are dropped.
//!
//! Backoff: one blip must not take a node out for long. The first failure skips the node for
//! [`FIRST_PERIOD`] seconds, each further failure in a row doubles that, up to `down_for`
//! (`[settings]`, default 60); a success clears the mark and with it the count. When every
//! node that could serve a request is marked down, the launcher tries them anyway, oldest mark
//! first, before giving up (docs/migration.md, "Down nodes").
//!
//! Only failures the node is to blame for mark it down ([`blames_node`]): a missing ssh
//! program, a broken local ssh config or a command line too long for this machine are local
//! and would otherwise take every healthy node out.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::nodes::Node;
use crate::ssh::connection_key;

/// Seconds a node is skipped after its first failure in a row.
pub const FIRST_PERIOD: u64 = 5;
/// Marks this old are forgotten when the file is next rewritten (a node removed from the
/// inventory must not leave its line forever).
pub const FORGET_AFTER: u64 = 24 * 3600;

/// A node remembered as down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub name: String,
    /// The connection identity the mark belongs to.
    pub key: String,
    /// When the last failure happened.
    pub since: u64,
    /// Failures in a row (1 after the first).
    pub failures: u32,
    pub reason: String,
}

impl Down {
    /// Seconds the node is skipped after its last failure: [`FIRST_PERIOD`], doubled per
    /// further failure in a row, at most `longest`.
    pub fn period(&self, longest: u64) -> u64 {
        let doublings = self.failures.saturating_sub(1).min(32);
        FIRST_PERIOD.saturating_mul(1 << doublings).min(longest)
    }

    /// Whether the mark still keeps the node out at `now`.
    pub fn in_force(&self, now: u64, longest: u64) -> bool {
        now.saturating_sub(self.since) < self.period(longest)
    }
}

/// The down-node file.
#[derive(Debug)]
pub struct Faults {
    path: PathBuf,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether ssh's reason for failing (its last stderr line) puts the blame on the node or the
/// network to it, so that skipping the node for a while helps. Anything else (the client
/// cannot run, a bad local config or option, an argument list too long) is local: every node
/// would fail the same way, and marking them down would only hide the real problem.
pub fn blames_node(reason: &str) -> bool {
    const NODE_FAULTS: [&str; 16] = [
        "connect to host",
        "connection refused",
        "connection timed out",
        "timed out",
        "connection closed",
        "connection reset",
        "no route to host",
        "network is unreachable",
        "host is down",
        "could not resolve hostname",
        "name or service not known",
        "kex_exchange_identification",
        "banner exchange",
        "broken pipe",
        "timeout, server",
        "not responding",
    ];
    let reason = reason.to_ascii_lowercase();
    NODE_FAULTS.iter().any(|f| reason.contains(f))
}

impl Faults {
    pub fn new(cache_dir: &Path) -> Faults {
        Faults {
            path: cache_dir.join("down"),
        }
    }

    /// Every mark, in force or not.
    pub fn all(&self) -> Vec<Down> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let mut parts = line.splitn(5, '\t');
                Some(Down {
                    name: parts.next()?.to_owned(),
                    key: parts.next()?.to_owned(),
                    since: parts.next()?.parse().ok()?,
                    failures: parts.next()?.parse().ok()?,
                    reason: parts.next().unwrap_or("").to_owned(),
                })
            })
            .collect()
    }

    /// The marks still in force, with `longest` the longest period (`down_for`).
    pub fn current(&self, longest: u64) -> Vec<Down> {
        let now = now();
        self.all()
            .into_iter()
            .filter(|d| d.in_force(now, longest))
            .collect()
    }

    fn update(&self, change: impl FnOnce(&mut Vec<Down>)) {
        let lock = self.path.with_extension("lock");
        let Ok(_guard) = crate::ssh::lock_file(&lock) else {
            return;
        };
        let mut all = self.all();
        let before = all.clone();
        change(&mut all);
        let now = now();
        all.retain(|d| now.saturating_sub(d.since) < FORGET_AFTER);
        if all == before {
            return;
        }
        let text: String = all
            .iter()
            .map(|d| {
                let reason = d.reason.replace(['\n', '\t'], " ");
                format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    d.name, d.key, d.since, d.failures, reason
                )
            })
            .collect();
        // Best effort: a lost mark only costs the next run one connect timeout.
        let _ = fatbin_layout::fsutil::write_atomic(&self.path, text.as_bytes(), 0o600);
    }

    /// The mark of `node`, in force or not.
    pub fn get(&self, node: &Node) -> Option<Down> {
        let key = connection_key(node);
        self.all().into_iter().find(|d| d.key == key)
    }

    /// Remembers that `node` could not be reached, and why: one more failure in a row. `seen`
    /// is the mark in force when the attempt began at `tried_at` (None: the node was not
    /// skipped). Runs that fail together saw one outage and count once: a mark another run set
    /// or raised during this attempt is left as it is, so a burst does not push the backoff to
    /// its cap at once.
    pub fn mark_down(&self, node: &Node, reason: &str, tried_at: u64, seen: Option<&Down>) {
        let key = connection_key(node);
        self.update(|all| {
            let failures = match (all.iter().find(|d| d.key == key), seen) {
                (None, _) => 0,
                // Raised by another run since this one saw it.
                (Some(d), Some(seen)) if d != seen => d.failures.saturating_sub(1),
                // Set by another run during this attempt (a mark in force when it began would
                // have been seen; an expired one is older than the attempt).
                (Some(d), None) if d.since >= tried_at => d.failures.saturating_sub(1),
                (Some(d), _) => d.failures,
            };
            all.retain(|d| d.key != key);
            all.push(Down {
                name: node.name.clone(),
                key,
                since: now(),
                failures: failures.saturating_add(1),
                reason: reason.to_owned(),
            });
        });
    }

    /// Forgets `node`'s failures (it answered): the next failure starts the backoff afresh.
    pub fn mark_up(&self, node: &Node) {
        let key = connection_key(node);
        if self.all().iter().any(|d| d.key == key) {
            self.update(|all| all.retain(|d| d.key != key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ssh: &str) -> Node {
        Node::for_test(name, ssh, true)
    }

    #[test]
    fn remembers_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        let (a, b) = (node("a", "host-a"), node("b", "host-b"));
        assert!(f.current(60).is_empty());
        f.mark_down(&a, "Connection refused\tagain", now(), None);
        f.mark_down(&b, "timeout", now(), None);
        let down = f.current(60);
        assert_eq!(down.len(), 2);
        assert_eq!(down[0].reason, "Connection refused again");
        assert!(f.current(0).is_empty(), "expired entries are not current");
        f.mark_up(&a);
        let names: Vec<String> = f.current(60).into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["b"]);
    }

    /// Issue 11, item 3: a mark belongs to the connection, not the name.
    #[test]
    fn a_moved_node_is_not_down() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        f.mark_down(&node("a", "old-host"), "Connection refused", now(), None);
        let moved = node("a", "new-host");
        let down = f.current(60);
        assert_eq!(down.len(), 1);
        assert_ne!(down[0].key, connection_key(&moved));
        assert_eq!(down[0].key, connection_key(&node("a", "old-host")));
    }

    /// Issue 14, item 2: short first, doubling per failure in a row, capped; reset on success.
    #[test]
    fn the_down_period_backs_off_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        let a = node("a", "a");
        let mut periods = Vec::new();
        for _ in 0..6 {
            // Each attempt saw the last mark (tried anyway): failures in a row.
            let seen = f.get(&a);
            f.mark_down(&a, "Connection refused", now(), seen.as_ref());
            periods.push(f.all()[0].period(60));
        }
        assert_eq!(periods, [5, 10, 20, 40, 60, 60]);
        f.mark_up(&a);
        f.mark_down(&a, "Connection refused", now(), None);
        assert_eq!(f.all()[0].failures, 1);
        assert_eq!(f.all()[0].period(60), 5);
        assert_eq!(
            f.all()[0].period(3),
            3,
            "down_for caps even the first period"
        );
        let mark = &f.all()[0];
        assert!(mark.in_force(mark.since + 4, 60));
        assert!(!mark.in_force(mark.since + 5, 60));
    }

    /// Runs that fail together count one failure; a later attempt counts one more.
    #[test]
    fn concurrent_failures_count_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        let a = node("a", "a");
        // Eight runs found it up and failed together.
        let began = now();
        for _ in 0..8 {
            f.mark_down(&a, "Connection refused", began, None);
        }
        assert_eq!(f.all()[0].failures, 1);
        // Eight runs saw that mark, tried anyway and failed together.
        let seen = f.get(&a);
        for _ in 0..8 {
            f.mark_down(&a, "Connection refused", now(), seen.as_ref());
        }
        assert_eq!(f.all()[0].failures, 2);
        // The mark expired (set long ago); a run that found the node up fails again.
        let expired = "a\t".to_owned() + &connection_key(&a) + "\t1000\t2\tx\n";
        std::fs::write(dir.path().join("down"), expired).unwrap();
        f.mark_down(&a, "Connection refused", now(), None);
        assert_eq!(
            f.all()[0].failures,
            3,
            "a failure in a row after the period"
        );
    }

    #[test]
    fn old_and_damaged_lines_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        std::fs::write(
            dir.path().join("down"),
            "old\tk1\t1\t1\tgone\nbroken line\nname-only\tk2\n",
        )
        .unwrap();
        assert_eq!(f.all().len(), 1, "damaged lines are ignored");
        // Two hours old: kept (a day is the limit).
        let recent = format!("recent\tk3\t{}\t1\tx\n", now() - 7200);
        let mut text = std::fs::read_to_string(dir.path().join("down")).unwrap();
        text.push_str(&recent);
        std::fs::write(dir.path().join("down"), text).unwrap();
        f.mark_down(&node("b", "b"), "Connection refused", now(), None);
        let names: Vec<String> = f.all().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["recent", "b"], "a mark from 1970 is forgotten");
    }

    /// [`FORGET_AFTER`] is the age at which a mark goes: one that old is dropped at the next
    /// rewrite (a second later than that it would be dropped either way).
    #[test]
    fn a_mark_exactly_forget_after_old_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        let day_old = format!("old\tk1\t{}\t1\tx\n", now() - FORGET_AFTER);
        std::fs::write(dir.path().join("down"), day_old).unwrap();
        f.mark_down(&node("b", "b"), "Connection refused", now(), None);
        let names: Vec<String> = f.all().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["b"]);
    }

    /// Issue 14, item 8: local failures never blame the node.
    #[test]
    fn only_node_faults_blame_the_node() {
        for node_fault in [
            "ssh: connect to host 127.0.0.1 port 2222: Connection refused",
            "ssh: connect to host 10.0.0.9 port 22: Connection timed out",
            "Connection timed out during banner exchange",
            "kex_exchange_identification: read: Connection reset by peer",
            "ssh: Could not resolve hostname nowhere: Name or service not known",
            "Connection closed by 127.0.0.1 port 2222",
            "Timeout, server 127.0.0.1 not responding.",
        ] {
            assert!(blames_node(node_fault), "{node_fault}");
        }
        for local in [
            "cannot run /nonexistent/ssh: No such file or directory (os error 2)",
            "cannot run /usr/bin/ssh: Argument list too long (os error 7)",
            "Can't open user config file /x/ssh_config: No such file or directory",
            "/x/ssh_config: line 1: Bad configuration option: bogus",
            "command-line line 0: unsupported option \"x\".",
            "ssh exited with 255 before connecting",
        ] {
            assert!(!blames_node(local), "{local}");
        }
    }
}
