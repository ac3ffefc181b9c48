//! Migration: running a request on another node over OpenSSH when this host can run no slot.
//!
//! This is the interface the rest of the launcher calls; the bodies are being written.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;

use fatbin_layout::{Manifest, SlotName};

/// A request to run `program` somewhere else.
#[derive(Debug)]
pub struct Request<'a> {
    /// The layout root on this node.
    pub root: &'a Path,
    pub program: &'a str,
    pub manifest: &'a Manifest,
    /// The program's slots, best first for the nodes to choose from.
    pub slots: &'a [SlotName],
    /// argv[0] as the user typed it, and the arguments after it.
    pub argv0: &'a OsStr,
    pub args: &'a [OsString],
}

/// Whether any node is configured at all (cheap: used to decide whether migration is a fallback).
pub fn has_nodes(_root: &Path) -> bool {
    false
}

/// Runs the request on a node that can run one of its slots and returns the exit status the
/// launcher must exit with (see docs/migration.md for transport failures).
pub fn run(req: &Request<'_>) -> i32 {
    let _ = writeln!(
        std::io::stderr(),
        "fatbin: cannot migrate `{}`: migration is not implemented yet",
        req.program
    );
    127
}

/// Writes the lines `fatbin which PROG --explain` shows for the migration route.
pub fn explain(req: &Request<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "  migration: not available for {}", req.program)
}

/// `fatbin nodes ...`: manage and probe the node inventory. Returns the exit status.
pub fn nodes_main(_args: &[OsString]) -> i32 {
    eprintln!("fatbin nodes: not implemented yet");
    2
}
