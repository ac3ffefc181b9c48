//! What kind of filesystem ROOT is on, for `fatbin which --explain`: a network filesystem
//! caches names and attributes on each client, so an install on another machine shows up
//! late, and the launcher says so (docs/layout.md, "Shared filesystems").
//!
//! The install lock asks too ([`may_be_networked`]): where `flock` may stay on one client,
//! it takes an owner file as well.
//!
//! The kind comes from `statfs(2)`'s `f_type` magic number; FUSE filesystems all share one,
//! so for them the mount's type in /proc/self/mountinfo (`fuse.sshfs`) names the real one.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `statfs` magic numbers of network and cluster filesystems (linux/magic.h and the
/// filesystems' own sources), with their usual names.
const NETWORK: &[(u64, &str)] = &[
    (0x6969, "NFS"),
    (0x00c3_6400, "CephFS"),
    (0xff53_4d42, "CIFS"),
    (0xfe53_4d42, "SMB3"),
    (0x0102_1997, "9p"),
    (0x5346_414f, "AFS"),
    (0x6b41_4653, "AFS"),
    (0x4750_4653, "GPFS"),
    (0x0bd0_0bd0, "Lustre"),
    (0x1983_0326, "BeeGFS"),
    (0x7461_636f, "OCFS2"),
    (0x0116_1970, "GFS2"),
];
/// FUSE's magic number: the real filesystem is the mount's subtype.
const FUSE: u64 = 0x6573_5546;
/// FUSE subtypes that reach another machine.
const NETWORK_FUSE: &[&str] = &[
    "sshfs",
    "glusterfs",
    "ceph-fuse",
    "ceph",
    "s3fs",
    "rclone",
    "gcsfuse",
    "juicefs",
    "lustre",
    "beegfs",
    "cvmfs",
];

/// Where ROOT is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsKind {
    /// A network filesystem, by name (`NFS`, `fuse.sshfs`).
    Network(String),
    /// A FUSE filesystem not known to be networked (its type, `fuse.NAME`, when known).
    Fuse(String),
    /// Anything else: a local disk, tmpfs, overlayfs.
    Local,
}

/// The `statfs` magic number of the filesystem holding `path`.
pub fn magic(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct it is given; c is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    // f_type's C type differs between C libraries; the magic numbers are 32-bit.
    #[allow(clippy::unnecessary_cast)]
    Some(st.f_type as u64 & 0xffff_ffff)
}

/// The kind of `magic`, with the FUSE mount type `fuse_type` (`fuse.sshfs`) when it is FUSE.
pub fn classify(magic: u64, fuse_type: Option<&str>) -> FsKind {
    if let Some((_, name)) = NETWORK.iter().find(|(m, _)| *m == magic) {
        return FsKind::Network((*name).to_owned());
    }
    if magic != FUSE {
        return FsKind::Local;
    }
    let Some(kind) = fuse_type else {
        return FsKind::Fuse("fuse".to_owned());
    };
    let sub = kind
        .strip_prefix("fuse.")
        .or_else(|| kind.strip_prefix("fuseblk."))
        .unwrap_or(kind);
    if NETWORK_FUSE.contains(&sub) {
        FsKind::Network(kind.to_owned())
    } else {
        FsKind::Fuse(kind.to_owned())
    }
}

/// The type (`fuse.sshfs`) of the mount holding `path`: the longest mount point in
/// /proc/self/mountinfo that contains it.
fn mount_type(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines()
        .filter_map(|line| {
            // Fields: ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS... - TYPE SOURCE SUPER
            let point = unescape(line.split(' ').nth(4)?);
            let kind = line.split(" - ").nth(1)?.split(' ').next()?;
            path.starts_with(&point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// A mountinfo path with its octal escapes (`\040` for a blank) undone.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The kind of filesystem `path` is on, `None` when statfs fails (no such ROOT).
pub fn kind_of(path: &Path) -> Option<(FsKind, u64)> {
    let magic = magic(path)?;
    let fuse_type = if magic == FUSE {
        mount_type(path)
    } else {
        None
    };
    Some((classify(magic, fuse_type.as_deref()), magic))
}

/// Whether a filesystem of this magic number may be shared with other machines: a known
/// network one, or any FUSE filesystem (sshfs and the other FUSE clients share one number,
/// and the install lock does not read mountinfo to tell them apart).
pub fn may_be_networked(magic: u64) -> bool {
    magic == FUSE || NETWORK.iter().any(|(m, _)| *m == magic)
}

/// One line for `--explain`.
pub fn describe(path: &Path) -> String {
    match kind_of(path) {
        None => "unknown (statfs failed)".to_owned(),
        Some((FsKind::Local, magic)) => format!("local (statfs type {magic:#x})"),
        Some((FsKind::Fuse(kind), magic)) => {
            format!("FUSE, {kind} (statfs type {magic:#x}); network or not is unknown")
        }
        Some((FsKind::Network(name), magic)) => {
            format!("network: {name} (statfs type {magic:#x}); clients may see an install late")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_network_filesystems_and_fuse_subtypes() {
        assert_eq!(classify(0x6969, None), FsKind::Network("NFS".into()));
        assert_eq!(
            classify(0x00c3_6400, None),
            FsKind::Network("CephFS".into())
        );
        assert_eq!(
            classify(FUSE, Some("fuse.sshfs")),
            FsKind::Network("fuse.sshfs".into())
        );
        assert_eq!(
            classify(FUSE, Some("fuse.fuse-overlayfs")),
            FsKind::Fuse("fuse.fuse-overlayfs".into())
        );
        assert_eq!(classify(0xef53, None), FsKind::Local); // ext4
        assert_eq!(classify(0x0102_1994, None), FsKind::Local); // tmpfs
    }

    #[test]
    fn fuse_and_network_filesystems_may_be_networked() {
        assert!(may_be_networked(FUSE) && may_be_networked(0x6969));
        assert!(!may_be_networked(0xef53) && !may_be_networked(0x0102_1994));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape("/mnt/my\\040root"), "/mnt/my root");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn this_machines_root_is_not_network() {
        let (kind, _) = kind_of(Path::new("/proc")).unwrap();
        assert_eq!(kind, FsKind::Local);
    }
}
