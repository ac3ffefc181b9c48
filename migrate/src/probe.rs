//! Asking nodes over ssh what they run and whether they are usable (`fatbin nodes probe` and
//! `fatbin nodes check`); the command line that prints the answers is the launcher's.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use fatbin_layout::{Arch, SlotName};

use crate::faults::{self, Faults};
use crate::nodes::{Inventory, Node};
use crate::ssh::{self, Ssh};
use crate::{Error, EXIT_TRANSPORT};

/// What the node's processor runs: `uname -m`, CPU flags, and qemu registrations in its
/// binfmt_misc (a node may run other architectures through qemu-user); and the node's own
/// launcher: a `fatbin` on its PATH whose `fatbin-full` beside it (where a migrated run looks
/// for it) knows `node-exec`, the word runs are started with (its usage line names it; a
/// launcher from before node-exec calls it an unknown command).
const PROBE_SCRIPT: &str = "uname -m; grep -m1 -E '^(flags|Features)' /proc/cpuinfo; \
    for f in /proc/sys/fs/binfmt_misc/qemu-*; do [ -f \"$f\" ] && \
    grep -qx enabled \"$f\" && echo \"binfmt ${f##*/}\"; done; \
    l=$(command -v fatbin) && case $l in /*) \"${l%/*}/fatbin-full\" node-exec 2>&1 | \
    grep -q 'node-exec LEVEL' && echo \"launcher $l\";; esac; true";

/// Connections to the inventory's nodes for probing and checking.
#[derive(Debug)]
pub struct Prober {
    ssh: Ssh,
    faults: Faults,
}

/// What a probed node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// For people: the architecture, x86-64 level or CPU features, emulated architectures.
    pub summary: String,
    /// The slots it runs, best first (what `nodes.toml` records).
    pub slots: Vec<SlotName>,
    /// The node's own launcher (an absolute path to its `fatbin`), when it has one that can
    /// check and start migrated runs (what `launcher` in `nodes.toml` records).
    pub launcher: Option<String>,
}

/// What `check` found about the layout ROOT on a reachable node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSeen {
    /// The node sees ROOT at this path.
    Visible(PathBuf),
    /// The node should see ROOT at this path (it is `shared`), but does not.
    Missing(PathBuf),
    /// The node does not share ROOT: binaries are shipped to this cache directory.
    Shipped(String),
    /// No local ROOT was known, so ROOT on the node was not looked for.
    Unknown,
}

impl Prober {
    pub fn new(inventory: &Inventory) -> Result<Prober, Error> {
        let ssh = Ssh::new(&inventory.settings).map_err(Error::usage)?;
        let faults = Faults::new(&ssh::cache_base().map_err(Error::usage)?);
        Ok(Prober { ssh, faults })
    }

    /// Asks `node` what it runs.
    pub fn probe(&self, node: &Node) -> Result<Probed, Error> {
        let text = self.remote_output(node, PROBE_SCRIPT)?;
        slots_from_probe(&text).map_err(|e| Error::new(EXIT_TRANSPORT, e))
    }

    /// Whether `node` is reachable and sees the layout at `root` (this node's ROOT); clears
    /// its down mark when it is reachable and sets one when it is not.
    pub fn check(&self, node: &Node, root: Option<&Path>) -> Result<RootSeen, Error> {
        let on_node = root.map(|root| node.root_on_node(root));
        let script = match (node.entry.shared, &on_node) {
            (true, Some(on_node)) => {
                let mut s = b"if [ -d ".to_vec();
                let bin = fatbin_layout::Layout::new(on_node).bin_dir();
                crate::quote::push_quoted(&mut s, bin.as_os_str().as_bytes());
                s.extend_from_slice(b" ]; then echo root-ok; else echo root-missing; fi");
                String::from_utf8_lossy(&s).into_owned()
            }
            _ => "echo reachable".to_owned(),
        };
        let (tried_at, seen) = (faults::now(), self.faults.get(node));
        match self.remote_output(node, &script) {
            Ok(out) => {
                self.faults.mark_up(node);
                Ok(match (out.trim(), on_node) {
                    ("root-ok", Some(path)) => RootSeen::Visible(path),
                    ("root-missing", Some(path)) => RootSeen::Missing(path),
                    _ if !node.entry.shared => RootSeen::Shipped(node.cache_on_node().to_owned()),
                    _ => RootSeen::Unknown,
                })
            }
            Err(e) => {
                if faults::blames_node(&e.to_string()) {
                    self.faults
                        .mark_down(node, &e.to_string(), tried_at, seen.as_ref());
                }
                Err(e)
            }
        }
    }

    /// Runs `script` on `node` over its master; returns stdout, or why it failed.
    fn remote_output(&self, node: &Node, script: &str) -> Result<String, Error> {
        let transport = |e: String| Error::new(EXIT_TRANSPORT, e);
        let seat = self.ssh.connect(node).map_err(transport)?;
        let mut cmd = self.ssh.command(node, &seat.socket);
        cmd.args(["-o", "ControlMaster=no", "-n", "-T"]);
        Ssh::destination(&mut cmd, node).arg(script);
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .map_err(|e| transport(format!("cannot run ssh: {e}")))?;
        if !out.status.success() {
            return Err(transport(
                ssh::last_line(&out.stderr)
                    .unwrap_or_else(|| format!("exited with {}", out.status)),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The slots a node runs according to the probe's output, best first.
fn slots_from_probe(text: &str) -> Result<Probed, String> {
    let mut lines = text.lines();
    let machine = lines.next().unwrap_or("").trim();
    let arch = Arch::from_uname(machine).ok_or_else(|| format!("unknown machine `{machine}`"))?;
    let mut flags: Vec<&str> = Vec::new();
    let mut emulated: Vec<Arch> = Vec::new();
    let mut launcher = None;
    for line in lines {
        if let Some(list) = line
            .split_once(':')
            .filter(|_| line.starts_with("flags") || line.starts_with("Features"))
        {
            flags = list.1.split_whitespace().collect();
        } else if let Some(q) = line.strip_prefix("binfmt qemu-") {
            if let Some(a) = Arch::ALL.into_iter().find(|a| a.qemu_name() == q.trim()) {
                emulated.push(a);
            }
        } else if let Some(path) = line.strip_prefix("launcher ") {
            // The inventory takes only absolute paths (a relative one would be resolved
            // against whatever directory a run starts in).
            launcher = Some(path.to_owned()).filter(|p| p.starts_with('/'));
        }
    }
    let mut slots = Vec::new();
    let mut summary = arch.to_string();
    if arch == Arch::X86_64 {
        let level = fatbin_layout::slot::x86_64_level_of(|f| flags.contains(&cpuinfo_name(f)));
        summary.push_str(&format!(", level x86-64-v{level}"));
        for l in (2..=level).rev() {
            slots.push(SlotName {
                arch,
                level: Some(l),
            });
        }
    }
    if arch != Arch::X86_64 && !flags.is_empty() {
        // aarch64 and others: the kernel's HWCAP names, for the admin to read.
        summary.push_str(&format!(", features: {}", flags.join(" ")));
    }
    slots.push(SlotName::baseline(arch));
    for other in arch.also_runs() {
        slots.push(SlotName::baseline(*other));
    }
    for a in emulated {
        let s = SlotName::baseline(a);
        if !slots.contains(&s) {
            summary.push_str(&format!(", {a} through qemu (binfmt_misc)"));
            slots.push(s);
        }
    }
    Ok(Probed {
        summary,
        slots,
        launcher,
    })
}

/// /proc/cpuinfo's name for a Rust target feature of the x86-64 levels.
fn cpuinfo_name(feature: &str) -> &str {
    match feature {
        "cmpxchg16b" => "cx16",
        "sse3" => "pni",
        "sse4.1" => "sse4_1",
        "sse4.2" => "sse4_2",
        "lzcnt" => "abm",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_to_slots() {
        let text =
            "x86_64\nflags\t\t: fpu cx16 pni sse4_1 sse4_2 ssse3 popcnt\nbinfmt qemu-aarch64\n";
        let Probed {
            summary,
            slots,
            launcher,
        } = slots_from_probe(text).unwrap();
        let names: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["x86_64-v2", "x86_64", "i686", "aarch64"]);
        assert!(
            summary.contains("v2") && summary.contains("qemu"),
            "{summary}"
        );
        assert_eq!(launcher, None);
        let Probed {
            summary,
            slots,
            launcher,
        } = slots_from_probe("aarch64\nFeatures\t: fp asimd\nlauncher /opt/fat/bin/fatbin\n")
            .unwrap();
        assert!(summary.ends_with("features: fp asimd"), "{summary}");
        assert_eq!(slots[0].to_string(), "aarch64");
        assert_eq!(launcher.as_deref(), Some("/opt/fat/bin/fatbin"));
        assert!(slots_from_probe("pdp11\n").is_err());
    }

    #[test]
    fn a_relative_launcher_is_not_taken() {
        let probed = slots_from_probe("x86_64\nlauncher bin/fatbin\n").unwrap();
        assert_eq!(probed.launcher, None);
    }
}
