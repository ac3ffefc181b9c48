//! The messages a failed migration prints: what happened, on which node, and what to do.

use std::path::Path;

use fatbin_layout::SlotName;

use crate::nodes::{Inventory, Node};
use crate::session::NotStarted;
use crate::{Request, EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_TRANSPORT};

/// No node in the inventory runs any slot of the program.
pub fn no_node_message(req: &Request<'_>, inv: &Inventory) -> String {
    let slots: Vec<String> = req.slots.iter().map(|s| s.to_string()).collect();
    let nodes: Vec<String> = inv
        .nodes
        .iter()
        .map(|n| {
            let s: Vec<String> = n.entry.slots.iter().map(|s| s.to_string()).collect();
            format!(
                "{} ({})",
                n.name,
                if s.is_empty() {
                    "no slots".into()
                } else {
                    s.join(", ")
                }
            )
        })
        .collect();
    format!(
        "cannot migrate `{}`: no node runs any of its slots ({}); nodes: {}. \
         Add one with `fatbin nodes add NAME --ssh HOST --slot SLOT`",
        req.program,
        slots.join(", "),
        if nodes.is_empty() {
            "none".into()
        } else {
            nodes.join(", ")
        }
    )
}

/// The wrapper or ssh stopped before the program started: the status and the reason.
pub fn not_started_message(
    req: &Request<'_>,
    node: &Node,
    slot: SlotName,
    cwd: &Path,
    binary: &[u8],
    why: NotStarted,
    detail: &str,
) -> (i32, String) {
    let binary = String::from_utf8_lossy(binary);
    match why {
        NotStarted::Cwd => (
            EXIT_CANNOT_EXECUTE,
            format!(
                "node `{}` has no directory {} (the program runs in the caller's working \
                 directory, which must exist at the same path there)",
                node.name,
                cwd.display()
            ),
        ),
        NotStarted::Missing if node.entry.shared => (
            EXIT_NOT_FOUND,
            format!(
                "node `{}` has no executable {binary} (slot {slot} of `{}`): is ROOT at {} there? \
                 Set `root` for the node in nodes.toml, or `shared = false` to ship binaries",
                node.name,
                req.program,
                node.root_on_node(req.root).display()
            ),
        ),
        NotStarted::Missing => (
            EXIT_NOT_FOUND,
            format!(
                "the cached copy {binary} is gone from node `{}`; it will be shipped again on the next run",
                node.name
            ),
        ),
        // `detail` is the wrapper's reason ("refusing to run: ..."), in the same words as a
        // local refusal; the status is a local refusal's too.
        NotStarted::Unsafe => (
            EXIT_CANNOT_EXECUTE,
            format!(
                "node `{}` did not start `{}` (slot {slot}): {}",
                node.name,
                req.program,
                if detail.is_empty() { "its wrapper refused the binary" } else { detail }
            ),
        ),
        // `detail` is the wrapper's line naming the launcher it did not find.
        NotStarted::Launcher => (
            EXIT_CANNOT_EXECUTE,
            format!(
                "node `{}` did not start `{}` (slot {slot}): {}; install fatbin there, or \
                 remove `launcher` from the node's nodes.toml entry",
                node.name,
                req.program,
                if detail.is_empty() { "the node has no launcher" } else { detail }
            ),
        ),
        NotStarted::TooLong => (
            EXIT_CANNOT_EXECUTE,
            format!(
                "cannot migrate `{}`: its arguments and environment are too long to send: \
                 {detail}; pass large data through stdin or a file instead",
                req.program
            ),
        ),
        NotStarted::Transport => (
            EXIT_TRANSPORT,
            format!(
                "could not start `{}` on node `{}`: {}",
                req.program,
                node.name,
                if detail.is_empty() { "ssh failed" } else { detail }
            ),
        ),
    }
}

/// Every candidate node failed before the program started there: each node and why. (Nodes
/// marked down are tried last rather than skipped, so every candidate has a line here.)
pub fn all_down_message(req: &Request<'_>, failures: &[String]) -> String {
    let mut m = format!(
        "cannot migrate `{}`: no node that runs it could run it:",
        req.program
    );
    for f in failures {
        m.push_str("\n  ");
        m.push_str(f);
    }
    m
}
