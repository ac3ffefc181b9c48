//! Load balancing: the order in which equally good nodes are tried.
//!
//! - `round-robin` (default): a counter per group of candidates in the cache directory, so
//!   consecutive runs start at consecutive nodes;
//! - `random`: a fresh random start each run;
//! - `least-loaded`: fewest runs from this machine on the node right now (counted from the
//!   seat locks of its master connections; no extra round trip).
//!
//! Only the start rotates: the other candidates follow, for failover.

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::nodes::Node;
use crate::ssh::{busy_seats, lock_file, Ssh};

/// A balancing policy, from `[settings] balance` or `FATBIN_BALANCE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    RoundRobin,
    Random,
    LeastLoaded,
}

impl Policy {
    pub fn parse(s: &str) -> Result<Policy, String> {
        match s {
            "round-robin" => Ok(Policy::RoundRobin),
            "random" => Ok(Policy::Random),
            "least-loaded" => Ok(Policy::LeastLoaded),
            other => Err(format!(
                "unknown balance policy `{other}` (use round-robin, random or least-loaded)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round-robin",
            Policy::Random => "random",
            Policy::LeastLoaded => "least-loaded",
        }
    }
}

/// Reorders `group` (equally good candidates) in place by `policy`.
/// With `advance` false (for `--explain`) the round-robin counter is only read.
pub fn order(
    policy: Policy,
    group: &mut [&Node],
    cache_dir: &Path,
    ssh: Option<&Ssh>,
    advance: bool,
) {
    if group.len() < 2 {
        return;
    }
    match policy {
        Policy::RoundRobin => {
            let key: Vec<&str> = group.iter().map(|n| n.name.as_str()).collect();
            let start = next_counter(cache_dir, &key.join(","), advance) % group.len();
            group.rotate_left(start);
        }
        Policy::Random => group.rotate_left(random() as usize % group.len()),
        Policy::LeastLoaded => {
            if let Some(ssh) = ssh {
                group.sort_by_cached_key(|n| busy_seats(ssh, n));
            }
        }
    }
}

fn random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // A few rounds of xorshift over time and pid: enough to spread starts, not cryptography.
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Returns and increments the round-robin counter for one candidate group.
fn next_counter(cache_dir: &Path, key: &str, advance: bool) -> usize {
    // A small hash keeps the file name short whatever the node names are.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = cache_dir.join(format!("rr-{hash:016x}"));
    let Ok(mut file) = lock_file(&path) else {
        return random() as usize;
    };
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let n: usize = text.trim().parse().unwrap_or(0);
    if !advance {
        return n;
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", n.wrapping_add(1));
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::{NodeEntry, Source};

    fn node(name: &str) -> Node {
        Node {
            name: name.into(),
            entry: NodeEntry {
                ssh: name.into(),
                port: None,
                slots: vec![],
                root: None,
                shared: true,
                cache: None,
            },
            source: Source::User,
        }
    }

    #[test]
    fn round_robin_rotates_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = [node("a"), node("b"), node("c")];
        let mut firsts = Vec::new();
        for _ in 0..4 {
            let mut group: Vec<&Node> = nodes.iter().collect();
            order(Policy::RoundRobin, &mut group, dir.path(), None, true);
            firsts.push(group[0].name.clone());
            assert_eq!(group.len(), 3, "every candidate stays for failover");
        }
        assert_eq!(firsts, ["a", "b", "c", "a"]);
    }

    #[test]
    fn policies_parse() {
        for p in [Policy::RoundRobin, Policy::Random, Policy::LeastLoaded] {
            assert_eq!(Policy::parse(p.name()), Ok(p));
        }
        assert!(Policy::parse("fastest")
            .unwrap_err()
            .contains("round-robin"));
    }
}
