//! Down-node memory: a node that could not be reached is skipped for a while, so the next run
//! does not wait for its connect timeout again.
//!
//! The state is one small text file, `$XDG_CACHE_HOME/fatbin/down`, a line per node:
//! `NAME<TAB>UNIX-SECONDS<TAB>REASON`. It is rewritten whole under a lock; a damaged line is
//! ignored. `fatbin nodes check` clears the entry of every node it reaches.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A node remembered as down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Down {
    pub name: String,
    pub since: u64,
    pub reason: String,
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

impl Faults {
    pub fn new(cache_dir: &Path) -> Faults {
        Faults {
            path: cache_dir.join("down"),
        }
    }

    fn read(&self) -> Vec<Down> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, '\t');
                Some(Down {
                    name: parts.next()?.to_owned(),
                    since: parts.next()?.parse().ok()?,
                    reason: parts.next().unwrap_or("").to_owned(),
                })
            })
            .collect()
    }

    /// The nodes down within the last `ttl` seconds.
    pub fn current(&self, ttl: u64) -> Vec<Down> {
        let now = now();
        self.read()
            .into_iter()
            .filter(|d| now.saturating_sub(d.since) < ttl)
            .collect()
    }

    fn update(&self, change: impl FnOnce(&mut Vec<Down>)) {
        let lock = self.path.with_extension("lock");
        let Ok(_guard) = crate::ssh::lock_file(&lock) else {
            return;
        };
        let mut all = self.read();
        let before = all.clone();
        change(&mut all);
        if all == before {
            return;
        }
        let text: String = all
            .iter()
            .map(|d| {
                let reason = d.reason.replace(['\n', '\t'], " ");
                format!("{}\t{}\t{}\n", d.name, d.since, reason)
            })
            .collect();
        // Best effort: a lost mark only costs the next run one connect timeout.
        let _ = fatbin_layout::fsutil::write_atomic(&self.path, text.as_bytes(), 0o600);
    }

    /// Remembers that `name` could not be reached, and why.
    pub fn mark_down(&self, name: &str, reason: &str) {
        self.update(|all| {
            all.retain(|d| d.name != name);
            all.push(Down {
                name: name.to_owned(),
                since: now(),
                reason: reason.to_owned(),
            });
        });
    }

    /// Forgets `name`'s failure (it answered).
    pub fn mark_up(&self, name: &str) {
        if self.read().iter().any(|d| d.name == name) {
            self.update(|all| all.retain(|d| d.name != name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let f = Faults::new(dir.path());
        assert!(f.current(60).is_empty());
        f.mark_down("a", "Connection refused\tagain");
        f.mark_down("b", "timeout");
        let down = f.current(60);
        assert_eq!(down.len(), 2);
        assert_eq!(down[0].reason, "Connection refused again");
        assert!(f.current(0).is_empty(), "expired entries are not current");
        f.mark_up("a");
        let names: Vec<String> = f.current(60).into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["b"]);
    }
}
