//! File-system steps every fatbin tool shares: atomic writes, staged installs, locks, hashes.
//!
//! The recipe for replacing a file is the classic one: write the new content under a
//! temporary name in the same directory, fsync it, `rename(2)` it over the old name, fsync the
//! directory. A reader opens either the old inode or the new one, never a half-written file,
//! and after a crash the name holds the old content or the new, never an empty file.
//! [`write_atomic`] and [`replace_with`] do it for one file, [`Staging`] for an install's many;
//! nothing else in the workspace renames a file into place by hand.

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

/// The process id in a name [`temp_path_for`] made (`.NAME.tmp-PID-N`), or `None` for any
/// other name.
pub fn temp_name_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(pid) && digits(n))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Whether process `pid` exists on this machine (a zombie counts: it is still someone's).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
}

/// Removes what interrupted writers left in `dir`: files named by [`temp_path_for`] whose
/// process is gone (a killed install's staged copies can be hundreds of MB each). Only call
/// it holding the layout lock, so no live install of this machine is mid-write; a name whose
/// process id is alive is kept, whoever it is. Returns what was removed.
pub fn remove_dead_temps(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_name_pid) else {
            continue;
        };
        if !process_alive(pid) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            if fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed
}

/// Replaces `dest` atomically and durably with what `make` creates at the temporary path it
/// is given (next to `dest`): a file `make` has written and fsynced, or a symlink. Then the
/// rename, then an fsync of the directory. If anything fails the temporary path is removed and
/// `dest` is left as it was.
pub fn replace_with(dest: &Path, make: impl FnOnce(&Path) -> io::Result<()>) -> Result<()> {
    let tmp = temp_path_for(dest);
    let renamed = make(&tmp)
        .map_err(Error::io(&tmp))
        .and_then(|()| fs::rename(&tmp, dest).map_err(Error::io(dest)));
    if let Err(e) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    match dest.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Writes `bytes` to `path` atomically and durably (see [`replace_with`]): a new file with
/// exactly `mode` (whatever the umask), fsynced, renamed over `path`, the directory fsynced.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    replace_with(path, |tmp| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)?;
        // The umask may have taken bits away: the file gets exactly `mode`.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// How an [`flock(2)`](lock_file) is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

impl LockMode {
    fn op(self) -> libc::c_int {
        match self {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        }
    }
}

/// Opens (creating, mode 0644) a lock file. It is opened for writing so that `flock` also
/// works on NFS, where Linux turns it into a POSIX byte-range lock, which needs a writable file.
pub fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map_err(Error::io(path))
}

/// Opens (creating) the lock file `path` and waits for its lock; released when the returned
/// file is closed. A signal while waiting does not end the wait.
pub fn lock_file(path: &Path, mode: LockMode) -> Result<File> {
    use std::os::fd::AsRawFd;
    let file = open_lock(path)?;
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        if unsafe { libc::flock(file.as_raw_fd(), mode.op()) } == 0 {
            return Ok(file);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(Error::Io {
                path: path.to_owned(),
                source: err,
            });
        }
    }
}

/// Takes the lock of an open lock file without waiting: `Ok(false)` when another open file
/// holds a conflicting one.
pub fn try_lock(file: &File, mode: LockMode) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor the caller owns; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), mode.op() | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(false),
        _ => Err(err),
    }
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
        create_dirs(bin_dir)?;
        let file = lock_file(&bin_dir.join(".lock"), LockMode::Exclusive)?;
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

/// Whether `dir` is on a filesystem other machines may share (see
/// [`crate::fstype::may_be_networked`]).
fn is_network_filesystem(dir: &Path) -> bool {
    crate::fstype::magic(dir).is_some_and(crate::fstype::may_be_networked)
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

    /// The final paths of the staged files, in staging order.
    pub fn destinations(&self) -> Vec<PathBuf> {
        self.files.iter().map(|(_, dest)| dest.clone()).collect()
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

/// Whether `a` and `b` are the same regular file (two hard links of one inode).
pub fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => a.file_type().is_file() && (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_dead_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mine = temp_path_for(&dir.path().join("x86_64"));
        let name = mine.file_name().unwrap().to_str().unwrap();
        assert_eq!(temp_name_pid(name), Some(std::process::id()));
        assert_eq!(temp_name_pid(".a.b.tmp-12-3"), Some(12));
        for other in [
            "x86_64",
            "manifest.toml",
            ".a.tmp-",
            ".a.tmp-1",
            ".a.tmp-x-1",
            ".a.tmp-1-x",
            ".a.tmp-1-",
            "a.tmp-1-2",
        ] {
            assert_eq!(temp_name_pid(other), None, "{other}");
        }
        // A pid above the kernel's pid_max can never be alive.
        let dead = dir.path().join(".x86_64.tmp-4999999-0");
        fs::write(&dead, b"staged").unwrap();
        fs::write(&mine, b"staged").unwrap();
        fs::write(dir.path().join("x86_64"), b"slot").unwrap();
        assert_eq!(remove_dead_temps(dir.path()), vec![dead.clone()]);
        assert!(!dead.exists() && mine.exists() && dir.path().join("x86_64").exists());
    }
    use std::os::unix::fs::MetadataExt;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_atomic_creates_and_replaces_leaving_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"one", 0o600).unwrap();
        let old_inode = fs::metadata(&path).unwrap().ino();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        // A new inode: a reader holding the old file keeps reading the old content whole.
        assert_ne!(fs::metadata(&path).unwrap().ino(), old_inode);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(entries(dir.path()), ["state"]);
    }

    #[test]
    fn a_failed_replacement_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"old", 0o644).unwrap();
        let err = replace_with(&path, |tmp| {
            fs::write(tmp, b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(entries(dir.path()), ["state"]);
        // A directory that does not exist: an error naming the path, nothing left behind.
        let err = write_atomic(&dir.path().join("no/such"), b"x", 0o644).unwrap_err();
        assert!(err.to_string().contains("no/"), "{err}");
    }

    #[test]
    fn replace_with_installs_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("shim");
        replace_with(&link, |tmp| std::os::unix::fs::symlink("a", tmp)).unwrap();
        replace_with(&link, |tmp| std::os::unix::fs::symlink("b", tmp)).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("b"));
        assert_eq!(entries(dir.path()), ["shim"]);
    }

    #[test]
    fn locks_exclude_each_other_across_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.lock");
        let held = lock_file(&path, LockMode::Exclusive).unwrap();
        let other = open_lock(&path).unwrap();
        assert!(!try_lock(&other, LockMode::Shared).unwrap());
        drop(held);
        assert!(try_lock(&other, LockMode::Shared).unwrap());
        let second = open_lock(&path).unwrap();
        assert!(
            try_lock(&second, LockMode::Shared).unwrap(),
            "shared locks share"
        );
        assert!(!try_lock(&open_lock(&path).unwrap(), LockMode::Exclusive).unwrap());
    }

    #[test]
    fn temporary_names_keep_a_prefix_of_long_names_on_a_character_boundary() {
        let dir = Path::new("/d");
        let name = |dest: &str| {
            let tmp = temp_path_for(&dir.join(dest));
            assert_eq!(tmp.parent(), Some(dir));
            tmp.file_name().unwrap().to_str().unwrap().to_owned()
        };
        let short = name("x86_64");
        assert!(short.starts_with(".x86_64.tmp-"), "{short}");
        assert_eq!(temp_name_pid(&short), Some(std::process::id()));
        assert_ne!(name("x86_64"), short, "a fresh name each time");
        let long = name(&"a".repeat(255));
        assert!(
            long.starts_with(&format!(".{}.tmp-", "a".repeat(200))),
            "{long}"
        );
        // Byte 200 falls inside a two-byte character: the prefix stops before it.
        let wide = name(&format!("a{}", "é".repeat(127)));
        assert!(
            wide.starts_with(&format!(".a{}.tmp-", "é".repeat(99))),
            "{wide}"
        );
    }

    #[test]
    fn processes_are_alive_while_they_exist() {
        assert!(process_alive(std::process::id()));
        // Init exists whoever asks (EPERM for an unprivileged caller still means alive).
        assert!(process_alive(1));
        assert!(!process_alive(4_999_999), "above any pid_max");
        // 0 would be our process group and u32::MAX -1 (every process): neither is a pid.
        assert!(!process_alive(0));
        assert!(!process_alive(u32::MAX));
    }

    #[test]
    fn a_local_lock_is_the_flock_alone() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        let lock = LayoutLock::acquire(&bin).unwrap();
        assert!(!is_network_filesystem(&bin));
        assert_eq!(entries(&bin), [".lock"]);
        assert!(!try_lock(&open_lock(&bin.join(".lock")).unwrap(), LockMode::Shared).unwrap());
        drop(lock);
        assert!(try_lock(&open_lock(&bin.join(".lock")).unwrap(), LockMode::Exclusive).unwrap());
    }

    #[test]
    fn host_names_are_the_kernels() {
        let kernel = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(host_name(), kernel.trim_end());
    }

    #[test]
    fn an_owner_file_is_stale_when_its_install_is_gone_or_old() {
        let dir = tempfile::tempdir().unwrap();
        let owner = dir.path().join(".lock.owner");
        let me = host_name();
        let age = |path: &Path, secs: u64| {
            let then = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(then)
                .unwrap();
        };
        assert!(!owner_is_stale(&owner), "removed meanwhile: try again");
        fs::write(&owner, format!("{me} 4999999\n")).unwrap();
        assert!(owner_is_stale(&owner));
        // Right after a dead one (errno says ESRCH): a live install is still alive.
        fs::write(&owner, format!("{me} {}\n", std::process::id())).unwrap();
        assert!(!owner_is_stale(&owner));
        // However old, an install of this host that is alive holds it.
        age(&owner, 3600);
        assert!(!owner_is_stale(&owner));
        fs::write(&owner, format!("{me} 4999999\n")).unwrap();
        assert!(owner_is_stale(&owner));
        // Another host's: stale only after STALE_OWNER.
        for text in [
            "other-host 1\n".to_owned(),
            "garbage".into(),
            format!("{me} x\n"),
        ] {
            fs::write(&owner, &text).unwrap();
            age(&owner, 5 * 60);
            assert!(!owner_is_stale(&owner), "{text}");
            age(&owner, STALE_OWNER.as_secs() + 60);
            assert!(owner_is_stale(&owner), "{text}");
        }
    }

    #[test]
    fn staged_files_are_renamed_into_place_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("source"), b"binary").unwrap();
        let mut staging = Staging::default();
        assert!(staging.is_empty());
        staging
            .stage_copy(&d.join("source"), &d.join("copy"), 0o751)
            .unwrap();
        staging
            .stage_bytes(b"text", &d.join("bytes"), 0o640)
            .unwrap();
        staging
            .stage_link(&d.join("source"), &d.join("link"))
            .unwrap();
        assert!(!staging.is_empty());
        assert_eq!(
            staging.destinations(),
            [d.join("copy"), d.join("bytes"), d.join("link")]
        );
        let staged = staging.staged_for(&d.join("bytes")).unwrap().to_owned();
        assert_eq!(fs::read(&staged).unwrap(), b"text");
        assert_eq!(staging.staged_for(&d.join("source")), None);
        // Nothing is visible before the commit.
        assert_eq!(entries(d).iter().filter(|n| !n.starts_with('.')).count(), 1);
        staging.commit().unwrap();
        assert_eq!(entries(d), ["bytes", "copy", "link", "source"]);
        assert_eq!(fs::read(d.join("copy")).unwrap(), b"binary");
        assert_eq!(fs::metadata(d.join("copy")).unwrap().mode() & 0o7777, 0o751);
        assert_eq!(
            fs::metadata(d.join("bytes")).unwrap().mode() & 0o7777,
            0o640
        );
        assert!(same_inode(&d.join("link"), &d.join("source")));
        assert!(!same_inode(&d.join("copy"), &d.join("source")));

        // Dropped uncommitted: the temporary files go, the destinations are untouched.
        let mut staging = Staging::default();
        staging
            .stage_bytes(b"new", &d.join("bytes"), 0o644)
            .unwrap();
        staging
            .stage_copy_checked(
                &d.join("source"),
                &d.join("checked"),
                0o755,
                &sha256_bytes(b"binary"),
            )
            .unwrap();
        drop(staging);
        assert_eq!(entries(d), ["bytes", "copy", "link", "source"]);
        assert_eq!(fs::read(d.join("bytes")).unwrap(), b"text");
        // A source that cannot be read fails, and leaves nothing behind.
        let mut staging = Staging::default();
        let e = staging
            .stage_copy_checked(d, &d.join("checked"), 0o755, &sha256_bytes(b""))
            .unwrap_err();
        assert!(matches!(&e, Error::Io { path, .. } if path == d), "{e}");
        drop(staging);
        assert_eq!(entries(d), ["bytes", "copy", "link", "source"]);
        // A source that is not what was checked is refused.
        let mut staging = Staging::default();
        let e = staging
            .stage_copy_checked(
                &d.join("source"),
                &d.join("checked"),
                0o755,
                &sha256_bytes(b"other"),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("the file changed while it was being installed"),
            "{e}"
        );
    }

    #[test]
    fn hashes_are_sha256_in_lowercase_hex() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_bytes(b"abc"), abc);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"abc").unwrap();
        assert_eq!(sha256_file(&path).unwrap(), (abc.to_owned(), 3));
        // More than one read's worth.
        let big = vec![7u8; 200_000];
        fs::write(&path, &big).unwrap();
        assert_eq!(sha256_file(&path).unwrap(), (sha256_bytes(&big), 200_000));
        assert!(sync_dir(&dir.path().join("missing")).is_err());
        sync_dir(dir.path()).unwrap();
    }
}
