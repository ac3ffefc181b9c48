//! A file server and its clients for the shared-filesystem tests: a directory exported by a
//! test cluster's sshd (its `Subsystem sftp`) and mounted with Debian's `sshfs` (FUSE) at a
//! path on this machine, the "client node", unmounted when the [`Mount`] is dropped.
//!
//! Three cachings are tested, chosen with [`Caching`]:
//! - [`Caching::Default`]: sshfs as a user mounts it, no options: the kernel caches pages and
//!   attributes, sshfs caches directory entries and attributes (20 s), so a client can still
//!   see a name that was replaced on the server, as on NFS with its default `actimeo`;
//! - [`Caching::Off`]: `-o cache=no,dir_cache=no`: every lookup goes to the server, the
//!   closest thing to NFS with `lookupcache=none,actimeo=0`.
//! - [`Caching::DirectIo`]: that and `-o direct_io`, so file contents bypass the client's
//!   page cache as well.
//!
//! Every mount also has `allow_other` (root may set it without /etc/fuse.conf), so a test can
//! run programs through it as another user, and `idmap=none`, sshfs's default: the client
//! sees the server's uids and gids unchanged, as NFS without idmapping does.
//!
//! Needs what [`crate::cluster`] needs, plus `sshfs` (Debian package `sshfs`) and `/dev/fuse`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;

/// How much a client caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// sshfs's defaults.
    Default,
    /// `cache=no,dir_cache=no`: no attribute or directory-entry cache in sshfs.
    Off,
    /// [`Caching::Off`] and `direct_io`: file contents bypass the client's page cache too.
    DirectIo,
}

impl Caching {
    /// sshfs `-o` options for this caching.
    pub fn options(self) -> &'static str {
        match self {
            Caching::Default => "",
            Caching::Off => ",cache=no,dir_cache=no",
            Caching::DirectIo => ",cache=no,dir_cache=no,direct_io",
        }
    }
}

/// Panics with what to install when this machine cannot mount sshfs.
pub fn require() {
    crate::cluster::require(false);
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/sshfs").exists() {
        missing.push("/usr/bin/sshfs: apt-get install sshfs");
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push("/dev/fuse is missing: FUSE is not available (a container without it?)");
    }
    if !Path::new("/usr/lib/openssh/sftp-server").exists() {
        missing.push("/usr/lib/openssh/sftp-server: apt-get install openssh-sftp-server");
    }
    assert!(
        missing.is_empty(),
        "the shared-filesystem tests need sshfs; fix:\n  {}",
        missing.join("\n  ")
    );
}

/// A directory of a node, mounted at a client path with sshfs. Dropping it unmounts it.
#[derive(Debug)]
pub struct Mount {
    /// Where the client sees the export.
    pub path: PathBuf,
    /// The exported directory, as the server sees it.
    pub export: PathBuf,
    /// Holds the mount point's parent (removed after the unmount).
    _dir: tempfile::TempDir,
}

impl Mount {
    /// Mounts `export` of cluster node `node` (which must be running) with `caching`.
    pub fn new(cluster: &Cluster, node: &str, export: &Path, caching: Caching) -> Mount {
        let dir = crate::temp_dir();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("sshfs")
            .arg("-F")
            .arg(cluster.ssh_config())
            .arg(format!("{node}:{}", export.display()))
            .arg(&path)
            .arg("-o")
            .arg(format!("allow_other,BatchMode=yes{}", caching.options()))
            .output()
            .expect("run sshfs");
        assert!(
            out.status.success(),
            "sshfs {node}:{} failed: {}",
            export.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // sshfs daemonizes once the mount is up; wait until the kernel shows it, to be sure.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !is_mount_point(&path) {
            assert!(Instant::now() < deadline, "sshfs mount did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mount {
            path,
            export: export.to_owned(),
            _dir: dir,
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy, so a program still running from the mount cannot keep it (or the test) alive.
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.path)
            .status();
    }
}

/// Whether `path` is listed in /proc/self/mountinfo as a mount point.
pub fn is_mount_point(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let wanted = path.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|p| p == wanted))
}
