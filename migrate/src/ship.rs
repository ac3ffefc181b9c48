//! Weak mobility: a node without the shared ROOT gets the slot's binary once, into a
//! content-addressed cache on the node (`CACHE/SHA256`), and runs it from there.
//!
//! The binary is checked here against the manifest's sha256 before it leaves, and again on the
//! node with `sha256sum` before it is renamed into place, so a file named by a hash always has
//! that content; later runs use it as it is. Which (node, hash) pairs were shipped is remembered
//! in `$XDG_CACHE_HOME/fatbin/shipped`, so a warm run costs no extra round trip. If the node's
//! cache was wiped, the wrapper reports the binary missing and it is shipped again.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::nodes::Node;
use crate::quote::{push_quoted, push_remote_path};
use crate::ssh::{Seat, Ssh};

/// The record of what was shipped where.
#[derive(Debug)]
pub struct Shipped {
    path: std::path::PathBuf,
}

impl Shipped {
    pub fn new(cache_dir: &Path) -> Shipped {
        Shipped {
            path: cache_dir.join("shipped"),
        }
    }

    fn line(node: &Node, sha: &str) -> String {
        // Keyed by the connection, not the name: a node moved to another host has nothing yet.
        format!(
            "{}\t{}\t{}\n",
            crate::ssh::connection_key(node),
            node.cache_on_node(),
            sha
        )
    }

    pub fn contains(&self, node: &Node, sha: &str) -> bool {
        let want = Shipped::line(node, sha);
        std::fs::read_to_string(&self.path)
            .map(|t| t.lines().any(|l| want.trim_end() == l))
            .unwrap_or(false)
    }

    pub fn record(&self, node: &Node, sha: &str) {
        let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        else {
            return;
        };
        let _ = f.write_all(Shipped::line(node, sha).as_bytes());
    }

    pub fn forget(&self, node: &Node, sha: &str) {
        let want = Shipped::line(node, sha);
        if let Ok(text) = std::fs::read_to_string(&self.path) {
            let kept: String = text
                .lines()
                .filter(|l| *l != want.trim_end())
                .map(|l| format!("{l}\n"))
                .collect();
            // Atomic: a concurrent run reading the record never sees it cut short.
            let _ = fatbin_layout::fsutil::write_atomic(&self.path, kept.as_bytes(), 0o600);
        }
    }
}

/// The binary's path on the node: `CACHE/SHA256`.
pub fn cached_path(node: &Node, sha: &str) -> Vec<u8> {
    let mut p = node
        .cache_on_node()
        .trim_end_matches('/')
        .as_bytes()
        .to_vec();
    p.push(b'/');
    p.extend_from_slice(sha.as_bytes());
    p
}

/// The receiving end: keep an existing copy, else store stdin under a temporary name, check its
/// hash, then rename it into place.
fn receive_script(node: &Node, sha: &str) -> Vec<u8> {
    let mut s = b"d=".to_vec();
    push_remote_path(
        &mut s,
        node.cache_on_node().trim_end_matches('/').as_bytes(),
    );
    s.extend_from_slice(b"; h=");
    push_quoted(&mut s, sha.as_bytes());
    s.extend_from_slice(
        b"; f=\"$d/$h\"; [ -x \"$f\" ] && exit 0; \
          (umask 022 && mkdir -p \"$d\") && t=\"$d/.tmp.$$\" && cat > \"$t\" && s=$(sha256sum < \"$t\") && \
          [ \"${s%% *}\" = \"$h\" ] && chmod 755 \"$t\" && mv -f \"$t\" \"$f\" && exit 0; \
          rm -f \"$t\"; echo \"fatbin: could not store $h in $d (sha256sum mismatch, \
          missing or disk full)\" >&2; exit 1",
    );
    s
}

/// Copies `binary` (whose sha256 the caller checked) to the node's cache over `seat`.
pub fn ship(ssh: &Ssh, node: &Node, seat: &Seat, binary: &Path, sha: &str) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = ssh.command(node, &seat.socket);
    cmd.args(["-o", "ControlMaster=no", "-T"]);
    Ssh::destination(&mut cmd, node);
    cmd.arg(std::ffi::OsStr::from_bytes(&receive_script(node, sha)));
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", ssh.program.display()))?;
    let mut file = std::fs::File::open(binary)
        .map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    // The node may already have it and close early: a broken pipe here is not an error.
    let _ = std::io::copy(&mut file, &mut stdin);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| format!("ssh failed: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "shipping {} to `{}` failed: {}",
            binary.display(),
            node.name,
            crate::ssh::last_line(&out.stderr).unwrap_or_else(|| out.status.to_string())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ssh: &str) -> Node {
        Node::for_test(name, ssh, false)
    }

    /// Issue 11, item 3: what was shipped to node `a` on one host is not believed to be on the
    /// host `a` is moved to (or on another layout's `a`).
    #[test]
    fn records_belong_to_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let shipped = Shipped::new(dir.path());
        let (old, moved) = (node("a", "host1"), node("a", "host2"));
        shipped.record(&old, "abc");
        assert!(shipped.contains(&old, "abc"));
        assert!(!shipped.contains(&moved, "abc"));
        let mut other_port = old.clone();
        other_port.entry.port = Some(2222);
        assert!(!shipped.contains(&other_port, "abc"));
        shipped.forget(&old, "abc");
        assert!(!shipped.contains(&old, "abc"));
    }

    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;

    /// The cache directories are created 0755 whatever the node's umask (Ubuntu gives users
    /// 002): the wrapper refuses to run from a directory its group could write.
    #[test]
    fn the_cache_directories_are_0755_under_umask_002() {
        let home = tempfile::tempdir().unwrap();
        let mut node = Node::for_test("n", "n", false);
        node.entry.cache = Some("~/cache/slots".into());
        let data = b"binary";
        let sha = fatbin_layout::fsutil::sha256_bytes(data);
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(std::ffi::OsStr::from_bytes(&receive_script(&node, &sha)))
            .env("HOME", home.path())
            .stdin(std::process::Stdio::piped());
        // SAFETY: umask is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o002);
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        assert!(child.wait().unwrap().success());
        for dir in ["cache", "cache/slots"] {
            let mode = std::fs::metadata(home.path().join(dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755, "{dir}");
        }
    }
}
