//! Load balancing: the order in which equally good nodes are tried.
//!
//! - `round-robin` (default): a counter per group of candidates in the cache directory, so
//!   consecutive runs start at consecutive nodes;
//! - `random`: a fresh random start each run;
//! - `least-loaded`: fewest runs from this machine on the node right now (counted from the
//!   seat locks of its master connections; no extra round trip); nodes with equal load are
//!   taken round-robin, so sequential runs (load 0 everywhere) spread like `round-robin`
//!   instead of all landing on the first node of the inventory.
//!
//! Only the start rotates: the other candidates follow, for failover.
//!
//! The counter of a group is the file `rr-HASH` in the cache directory, HASH naming the
//! group's connections (see [`crate::ssh::connection_key`]). `fatbin nodes disconnect`
//! removes counters nobody advanced for a day ([`clean_counters`]).

use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::nodes::Node;
use crate::ssh::{busy_seats, connection_key, lock_file, Ssh};

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
    let round_robin = |group: &mut [&Node]| {
        let key: Vec<String> = group.iter().map(|n| connection_key(n)).collect();
        let start = next_counter(cache_dir, &key.join(","), advance) % group.len();
        group.rotate_left(start);
    };
    match policy {
        Policy::RoundRobin => round_robin(group),
        Policy::Random => group.rotate_left(random() as usize % group.len()),
        Policy::LeastLoaded => {
            // Rotate first, then a stable sort by load: ties keep the rotated order.
            round_robin(group);
            if let Some(ssh) = ssh {
                group.sort_by_cached_key(|n| busy_seats(ssh, n));
            }
        }
    }
}

/// Removes round-robin counters not advanced for `older_than`: groups of nodes that no longer
/// exist (or no longer look alike) would otherwise leave their files forever. Returns how many.
pub fn clean_counters(cache_dir: &Path, older_than: std::time::Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_counter = name.len() == 19
            && name.starts_with("rr-")
            && name[3..].bytes().all(|b| b.is_ascii_hexdigit());
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= older_than);
        if is_counter && old && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
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

    fn node(name: &str) -> Node {
        Node::for_test(name, name, true)
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

    /// Issue 14, item 7: with no load anywhere, least-loaded rotates instead of always
    /// starting at the first node of the inventory.
    #[test]
    fn least_loaded_breaks_ties_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = [node("a"), node("b"), node("c")];
        let mut firsts = Vec::new();
        for _ in 0..3 {
            let mut group: Vec<&Node> = nodes.iter().collect();
            // No ssh: no load measure, every node ties.
            order(Policy::LeastLoaded, &mut group, dir.path(), None, true);
            firsts.push(group[0].name.clone());
        }
        assert_eq!(firsts, ["a", "b", "c"]);
    }

    /// Each group of candidates has a counter of its own: advancing one does not move
    /// another's start.
    #[test]
    fn each_group_counts_for_itself() {
        let dir = tempfile::tempdir().unwrap();
        let nodes: Vec<Node> = ["a", "b", "c", "d", "e", "f", "g", "h"]
            .into_iter()
            .map(node)
            .collect();
        let groups: Vec<&[Node]> = nodes.chunks(2).collect();
        for (i, group) in groups.iter().enumerate() {
            for _ in 0..i {
                let mut g: Vec<&Node> = group.iter().collect();
                order(Policy::RoundRobin, &mut g, dir.path(), None, true);
            }
        }
        for (i, group) in groups.iter().enumerate() {
            let mut g: Vec<&Node> = group.iter().collect();
            order(Policy::RoundRobin, &mut g, dir.path(), None, false);
            assert_eq!(g[0].name, group[i % 2].name, "group {i}");
        }
        let counters = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(counters, groups.len());
    }

    /// Random starts anywhere, keeps every candidate in rotated order, and does not always
    /// start at the same node.
    #[test]
    fn random_rotates_from_a_random_start() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = [node("a"), node("b"), node("c")];
        let mut firsts = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let mut group: Vec<&Node> = nodes.iter().collect();
            order(Policy::Random, &mut group, dir.path(), None, true);
            let names: String = group.iter().map(|n| n.name.as_str()).collect();
            assert!(["abc", "bca", "cab"].contains(&names.as_str()), "{names}");
            firsts.insert(names);
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
        // 64 draws of three starts all alike: (1/3)^63 if the start were uniform.
        assert!(firsts.len() > 1, "{firsts:?}");
    }

    #[test]
    fn only_old_counters_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let nodes = [node("a"), node("b")];
        let mut group: Vec<&Node> = nodes.iter().collect();
        order(Policy::RoundRobin, &mut group, dir.path(), None, true);
        // Other files of the cache directory, as old as can be, named almost like counters.
        let others = [
            "down",
            "rr-0123456789abcdeX",
            "xx-0123456789abcdef",
            "rr-0123",
        ];
        for name in others {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let day = std::time::Duration::from_secs(86400);
        assert_eq!(clean_counters(dir.path(), day), 0, "a fresh counter stays");
        assert_eq!(clean_counters(dir.path(), std::time::Duration::ZERO), 1);
        for name in others {
            assert!(dir.path().join(name).exists(), "only counters go: {name}");
        }
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
