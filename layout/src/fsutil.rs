//! File-system steps that make installs atomic: temporary names, staged files, fsync.
//!
//! The recipe is the classic one: write the new content under a temporary name in the same
//! directory, fsync it, `rename(2)` it over the old name, fsync the directory. A reader opens
//! either the old inode or the new one, never a half-written file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A fresh temporary path next to `dest`. Names starting with `.` are never programs or slots,
/// so a temporary file can never be mistaken for one.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A program name may be 255 bytes, the most a file name can be; the temporary name adds
    // about 30, so keep only a prefix of the name (it is there for people reading `ls -a`).
    let mut keep = name.len().min(200);
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    dest.with_file_name(format!(".{}.tmp-{}-{n}", &name[..keep], std::process::id()))
}

/// An exclusive lock on a layout, held while an install or removal reads and rewrites
/// manifests, so two concurrent installs cannot lose each other's slots. Released on drop.
///
/// Two locks, taken in this order:
/// 1. an `flock(2)` on `ROOT/bin/.lock`, opened for writing so that it also works on NFS,
///    where Linux turns `flock` into a POSIX byte-range lock;
/// 2. on a network filesystem only (`statfs` type), an owner file, `ROOT/bin/.lock.owner`,
///    created with `O_EXCL` and holding `HOST PID`: where `flock` never reaches the server
///    (sshfs, NFS with `local_lock`), only the server's exclusive create stops a second
///    client. On a local ROOT nothing but the flock is touched.
///    It is removed on drop. A leftover one is stale, and removed, when it names this host
///    and a process that no longer exists, or when it is older than [`STALE_OWNER`] (an
///    install of another host that died; no install holds the lock that long).
///
/// Readers (the launcher) never lock: renames already give them a consistent view of each
/// file.
#[derive(Debug)]
pub struct LayoutLock {
    _file: File,
    owner: PathBuf,
    token: String,
}

/// How old another host's owner file must be to count as left by a dead install.
pub const STALE_OWNER: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl LayoutLock {
    /// Waits for and takes the lock of the layout whose `bin` directory is `bin_dir`.
    pub fn acquire(bin_dir: &Path) -> Result<LayoutLock> {
        use std::os::fd::AsRawFd;
        create_dirs(bin_dir)?;
        let path = bin_dir.join(".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(&path)
            .map_err(Error::io(&path))?;
        loop {
            // SAFETY: flock on a file descriptor we own; no memory is involved.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(Error::Io { path, source: err });
            }
        }
        let owner = bin_dir.join(".lock.owner");
        let token = format!("{} {}\n", host_name(), std::process::id());
        if !is_network_filesystem(bin_dir) {
            // A local ROOT: the flock is enough, and nothing else in ROOT changes.
            return Ok(LayoutLock {
                _file: file,
                owner,
                token: String::new(),
            });
        }
        loop {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&owner)
            {
                Ok(mut f) => {
                    f.write_all(token.as_bytes()).map_err(Error::io(&owner))?;
                    return Ok(LayoutLock {
                        _file: file,
                        owner,
                        token,
                    });
                }
                // sftp (version 3) has no "exists" error: sshfs reports EPERM for it.
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists
                        || fs::symlink_metadata(&owner).is_ok() =>
                {
                    if owner_is_stale(&owner) {
                        let _ = fs::remove_file(&owner);
                        continue;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => return Err(Error::io(&owner)(e)),
            }
        }
    }
}

/// `statfs(2)` magic numbers of network filesystems, FUSE included (sshfs and the other
/// FUSE clients share one): where `flock` may stay on one client.
const NETWORK_MAGICS: &[u64] = &[
    0x6969,      // NFS
    0x6573_5546, // FUSE
    0x00c3_6400, // CephFS
    0xff53_4d42, // CIFS
    0xfe53_4d42, // SMB3
    0x0102_1997, // 9p
    0x5346_414f, // AFS
    0x6b41_4653, // AFS
    0x4750_4653, // GPFS
    0x0bd0_0bd0, // Lustre
    0x1983_0326, // BeeGFS
    0x7461_636f, // OCFS2
    0x0116_1970, // GFS2
];

/// Whether `dir` is on a network filesystem (see [`NETWORK_MAGICS`]).
fn is_network_filesystem(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs writes into the zeroed struct it is given; c is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    // f_type's C type differs between C libraries; the magic numbers are 32-bit.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64 & 0xffff_ffff;
    NETWORK_MAGICS.contains(&magic)
}

impl Drop for LayoutLock {
    fn drop(&mut self) {
        if self.token.is_empty() {
            return;
        }
        // Only our own: a lock judged stale and taken over by another install stays theirs.
        if fs::read_to_string(&self.owner).is_ok_and(|t| t == self.token) {
            let _ = fs::remove_file(&self.owner);
        }
    }
}

/// This machine's name, as `gethostname(2)` gives it.
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether the owner file at `path` was left by an install that is gone (see [`LayoutLock`]).
fn owner_is_stale(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        // Removed meanwhile: not stale, just try again.
        return false;
    };
    let mut words = text.split_whitespace();
    let (host, pid) = (
        words.next(),
        words.next().and_then(|p| p.parse::<i32>().ok()),
    );
    if let (Some(host), Some(pid)) = (host, pid) {
        if host == host_name() {
            // SAFETY: kill with signal 0 only checks that the process exists.
            let gone = unsafe { libc::kill(pid, 0) } != 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
            return gone;
        }
    }
    // Another host's (or unreadable): stale only when old.
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_OWNER)
}

/// Temporary files written for one install; removed on drop unless they were committed.
#[derive(Debug, Default)]
pub struct Staging {
    /// (temporary path, final path), in the order they are renamed.
    files: Vec<(PathBuf, PathBuf)>,
}

impl Staging {
    /// Copies `source` to a temporary file next to `dest` with `mode`, fsynced.
    pub fn stage_copy(&mut self, source: &Path, dest: &Path, mode: u32) -> Result<()> {
        let tmp = temp_path_for(dest);
        let mut from = File::open(source).map_err(Error::io(source))?;
        let mut to = create_new(&tmp, mode)?;
        self.files.push((tmp.clone(), dest.to_owned()));
        io::copy(&mut from, &mut to).map_err(Error::io(&tmp))?;
        to.sync_all().map_err(Error::io(&tmp))?;
        Ok(())
    }

    /// Like [`Staging::stage_copy`], and fails unless the copy's SHA-256 is `sha256`: the
    /// source was checked before it was copied, and must not have changed in between.
    pub fn stage_copy_checked(
        &mut self,
        source: &Path,
        dest: &Path,
        mode: u32,
        sha256: &str,
    ) -> Result<()> {
        let tmp = temp_path_for(dest);
        let mut from = File::open(source).map_err(Error::io(source))?;
        let mut to = create_new(&tmp, mode)?;
        self.files.push((tmp.clone(), dest.to_owned()));
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        path: source.to_owned(),
                        source: e,
                    })
                }
            };
            hasher.update(&buf[..n]);
            to.write_all(&buf[..n]).map_err(Error::io(&tmp))?;
        }
        if hex(&hasher.finalize()) != sha256 {
            return Err(Error::Io {
                path: source.to_owned(),
                source: io::Error::other(
                    "the file changed while it was being installed; install it again",
                ),
            });
        }
        to.sync_all().map_err(Error::io(&tmp))?;
        Ok(())
    }

    /// Writes `bytes` to a temporary file next to `dest` with `mode`, fsynced.
    pub fn stage_bytes(&mut self, bytes: &[u8], dest: &Path, mode: u32) -> Result<()> {
        let tmp = temp_path_for(dest);
        let mut to = create_new(&tmp, mode)?;
        self.files.push((tmp.clone(), dest.to_owned()));
        to.write_all(bytes).map_err(Error::io(&tmp))?;
        to.sync_all().map_err(Error::io(&tmp))?;
        Ok(())
    }

    /// Hard-links `existing` (a file with the same content) to a temporary name next to `dest`,
    /// so identical binaries share one inode.
    pub fn stage_link(&mut self, existing: &Path, dest: &Path) -> Result<()> {
        let tmp = temp_path_for(dest);
        fs::hard_link(existing, &tmp).map_err(Error::io(&tmp))?;
        self.files.push((tmp, dest.to_owned()));
        Ok(())
    }

    /// The temporary path staged for `dest`, if any (to link a second identical slot to it).
    pub fn staged_for(&self, dest: &Path) -> Option<&Path> {
        self.files
            .iter()
            .find(|(_, d)| d == dest)
            .map(|(tmp, _)| tmp.as_path())
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Renames every staged file into place, in staging order, then fsyncs the directories.
    pub fn commit(mut self) -> Result<()> {
        let files = std::mem::take(&mut self.files);
        let mut dirs: Vec<&Path> = Vec::new();
        for (i, (tmp, dest)) in files.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, dest) {
                // Put the rest back on the list so drop removes them.
                self.files = files[i..].to_vec();
                return Err(Error::Io {
                    path: dest.clone(),
                    source: e,
                });
            }
            if let Some(dir) = dest.parent() {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
            }
        }
        for dir in dirs {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for (tmp, _) in &self.files {
            let _ = fs::remove_file(tmp);
        }
    }
}

fn create_new(path: &Path, mode: u32) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(Error::io(path))?;
    // The umask may have taken bits away; slots must be exactly `mode`.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(Error::io(path))?;
    Ok(file)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io(dir))
}

/// Creates `dir` and its missing parents with mode 0755 (never group- or world-writable).
pub fn create_dirs(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(Error::io(dir))
}

/// The SHA-256 of a file's contents, as lowercase hex, and its size.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(Error::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
