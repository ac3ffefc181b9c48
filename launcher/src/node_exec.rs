//! `fatbin node-exec`: the node's half of a migrated run when the node has a launcher: check
//! the binary with the trust rule, then become it, in one process.
//!
//! A migrated run's wrapper (`fatbin-migrate`'s `remote.rs`) must refuse a binary that group or
//! others could have replaced before it starts. In POSIX sh that check is a fork and an `ls`
//! of every level of the path, read back by the shell: about 4 ms of CPU on every run, most of
//! a warm run's overhead over a plain multiplexed `ssh NODE BINARY`. When the inventory names a
//! launcher on the node (`launcher = "/usr/local/bin/fatbin"`), the wrapper runs this instead,
//! as the program's own process:
//!
//! ```text
//! fatbin-full node-exec LEVEL PGID SESSION ARGV0 BINARY [ARGS...]
//! ```
//!
//! It checks BINARY and every directory above it exactly as the shell check does (ROOT is
//! LEVEL levels above the binary: 3 for a layout slot, 1 for a shipped copy), refuses in the
//! same words with the same `fail:unsafe` marker and exit 126, and otherwise writes the start
//! marker (with PGID, the wrapper's `$$`, to which signals are forwarded) and `execve`s BINARY
//! with ARGV0 as its argv[0] and the environment unchanged. So the program is still the
//! wrapper's child (the wrapper reports its status), and argv[0] is the typed name under any
//! login shell, dash included.
//!
//! It also starts the run's watchdog, which the shell wrapper otherwise forks itself (a copy
//! of the shell that runs `sleep 1` in a loop, two more processes): when SESSION, the sshd
//! process of the connection, ends while the program runs, the program's process group
//! (PGID) gets SIGHUP, as a terminal's would. Here it is a grandchild of this process (so the
//! program never has a child it did not make, which its own `wait` could trip on), ignores
//! SIGINT and SIGTERM (they are for the program), holds nothing but /dev/null and two pidfds,
//! and sleeps in `poll` until the program or the session ends: it leaves as soon as the
//! program does, and costs no process start and no wake-ups. On kernels before 5.3 (no
//! `pidfd_open`) it polls both with `kill(pid, 0)` once a second, as the shell's did.
//!
//! Who vouches for this launcher: the inventory, whose writers already choose the host a run
//! goes to. As a guard against a misplaced install, it also checks its own executable: the
//! file and every directory above it owned by root or the caller and writable by nobody else
//! (sticky directories aside), and refuses to vouch for anything from elsewhere. A launcher
//! others could replace could not be trusted to run that check, which is why the inventory
//! must name one installed like the node's own tools.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use fatbin_core::trust;

/// The wrapper's markers (`fatbin-migrate`'s `remote.rs` owns them; the launcher writes two).
const START: &[u8] = b"\x1efatbin:start:";
const UNSAFE: &[u8] = b"\x1efatbin:fail:unsafe\n";

/// Runs `fatbin node-exec` with the words after the command; returns only on failure.
pub fn main(args: &[OsString]) -> i32 {
    let [level, pgid, session, argv0, binary, rest @ ..] = args else {
        return usage();
    };
    let (Some(level), Some(pgid), Some(session)) = (number(level), number(pgid), number(session))
    else {
        return usage();
    };
    let me = || {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    };
    if let Some(why) = own_problem(me()) {
        return refuse(&why);
    }
    if let Some(why) = problem(binary.as_bytes(), level, stat, me) {
        return refuse(&why);
    }
    start_watchdog(session);
    let mut start = START.to_vec();
    start.extend_from_slice(pgid.to_string().as_bytes());
    start.push(b'\n');
    write_stderr(&start);
    let e = exec(binary, argv0, rest);
    let code = if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    write_stderr(
        format!(
            "fatbin: cannot execute {}: {e}\n",
            String::from_utf8_lossy(binary.as_bytes())
        )
        .as_bytes(),
    );
    code
}

fn usage() -> i32 {
    write_stderr(b"fatbin: usage: fatbin node-exec LEVEL PGID SESSION ARGV0 BINARY [ARGS...]\n");
    2
}

fn number(word: &OsStr) -> Option<u32> {
    word.to_str()?.parse().ok()
}

/// One write of the whole message: the marker lines must not interleave with anything.
fn write_stderr(bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: writes from a live slice within its length.
        let n = unsafe { libc::write(2, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        match usize::try_from(n) {
            Ok(n) if n > 0 => done += n,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return,
        }
    }
}

/// The wrapper's refusal: the reason, the `fail:unsafe` marker, exit 126.
fn refuse(why: &str) -> i32 {
    let mut message = format!("refusing to run: {why}\n").into_bytes();
    message.extend_from_slice(UNSAFE);
    write_stderr(&message);
    126
}

/// Mode and owner of a path, following symlinks (what `ls -ldnL` shows).
fn stat(path: &[u8]) -> std::io::Result<(u32, u32)> {
    let meta = std::fs::metadata(OsStr::from_bytes(path))?;
    Ok((meta.mode(), meta.uid()))
}

/// Why `binary` must not run, by the rule the shell check applies: every level from the
/// binary up to `/`, ROOT `level` levels above the binary. Below ROOT and ROOT itself nothing
/// writable by group or others; above ROOT, sticky directories are fine. Owners: ROOT any,
/// the others root, ROOT's owner or the caller (`me`, asked only when needed). The levels are
/// the path's own prefixes, cut at each `/` as the shell's `${p%/*}` cuts them.
fn problem(
    binary: &[u8],
    level: u32,
    stat: impl Fn(&[u8]) -> std::io::Result<(u32, u32)>,
    me: impl Fn() -> u32,
) -> Option<String> {
    let shown =
        |p: &[u8]| String::from_utf8_lossy(if p.is_empty() { b"/" } else { p }).into_owned();
    if !binary.starts_with(b"/") {
        return Some(format!("{} is not an absolute path", shown(binary)));
    }
    let mut levels: Vec<&[u8]> = Vec::new();
    let mut q = binary;
    while !q.is_empty() {
        levels.push(q);
        q = &q[..q.iter().rposition(|&b| b == b'/').unwrap_or(0)];
    }
    levels.push(b"");
    let mut facts = Vec::with_capacity(levels.len());
    for p in &levels {
        match stat(if p.is_empty() { b"/" } else { p }) {
            Ok(fact) => facts.push(fact),
            Err(e) => {
                return Some(format!(
                    "cannot check the owner and modes of {} and the directories above it: {}: {e}",
                    shown(binary),
                    shown(p)
                ))
            }
        }
    }
    let root = usize::try_from(level)
        .unwrap_or(usize::MAX)
        .min(levels.len() - 1);
    let root_owner = facts[root].1;
    for (n, (p, &(mode, owner))) in levels.iter().zip(&facts).enumerate() {
        let p = shown(p);
        let above_root = n > root;
        let writers =
            trust::other_writers(mode).filter(|_| !(above_root && trust::is_sticky_dir(mode)));
        if let Some(w) = writers {
            return Some(if above_root {
                format!(
                    "{p} is writable by {w} and not sticky, so they could move the layout below \
                     it aside and put their own in its place; fix it with `chmod go-w {p}` (or \
                     `chmod +t {p}` for a shared directory like /tmp)"
                )
            } else {
                format!("{p} is writable by {w}, who could replace what runs; fix it with `chmod go-w {p}`")
            });
        }
        if n != root && !trust::owner_trusted(owner, Some(root_owner), &me) {
            return Some(format!(
                "{p} is owned by uid {owner}, which is neither root, you, nor the owner of the \
                 layout root; anyone with that uid could replace what runs (fix: chown it to the \
                 layout owner)"
            ));
        }
    }
    None
}

/// Why this launcher must not vouch for anything: its own file, or a directory above it,
/// owned by someone other than root or the caller, or writable by others (sticky directories
/// above its own aside).
fn own_problem(me: u32) -> Option<String> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Some(format!("cannot find the node's launcher itself: {e}")),
    };
    let exe = exe.as_os_str().as_bytes();
    let mut q = exe;
    let mut n = 0;
    loop {
        let p = if q.is_empty() { &b"/"[..] } else { q };
        let shown = String::from_utf8_lossy(p);
        let (mode, owner) = match stat(p) {
            Ok(fact) => fact,
            Err(e) => return Some(format!("cannot check the node's launcher {shown}: {e}")),
        };
        let writers = trust::other_writers(mode).filter(|_| !(n > 1 && trust::is_sticky_dir(mode)));
        if let Some(w) = writers {
            return Some(format!(
                "the node's launcher {}: {shown} is writable by {w}, who could replace the \
                 launcher that checks what runs; fix it with `chmod go-w {shown}`",
                String::from_utf8_lossy(exe)
            ));
        }
        if owner != 0 && owner != me {
            return Some(format!(
                "the node's launcher {}: {shown} is owned by uid {owner}, which is neither root \
                 nor you; install the launcher as root",
                String::from_utf8_lossy(exe)
            ));
        }
        if q.is_empty() {
            return None;
        }
        q = &q[..q.iter().rposition(|&b| b == b'/').unwrap_or(0)];
        n += 1;
    }
}

/// Starts the watchdog (see the module's notes) as a grandchild, so it belongs to no one
/// here: the intermediate child exits at once and is reaped before the program starts.
fn start_watchdog(session: u32) {
    // SAFETY: getpid cannot fail.
    let program = unsafe { libc::getpid() };
    let Ok(session) = libc::pid_t::try_from(session) else {
        return;
    };
    // Opened before the forks, so they name the right processes whatever happens next;
    // close-on-exec (pidfd_open's default), so the program never sees them.
    let (program_fd, session_fd) = (pidfd_open(program), pidfd_open(session));
    // SAFETY: this process has one thread (node-exec starts none), so the child may run
    // any code; each branch ends in `_exit` or returns to the parent's path.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: as above, in the single-threaded child.
            if unsafe { libc::fork() } == 0 {
                watch(program, program_fd, session, session_fd);
            }
            // SAFETY: leaving the intermediate child without running any exit handlers.
            unsafe { libc::_exit(0) }
        }
        child if child > 0 => {
            let mut status = 0;
            // SAFETY: waits for our own child.
            while unsafe { libc::waitpid(child, &mut status, 0) } == -1
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
            }
        }
        // No process to spare: the run goes on without a watchdog, as a plain ssh would.
        _ => {}
    }
    for fd in [program_fd, session_fd].into_iter().flatten() {
        // SAFETY: closes descriptors this function opened.
        unsafe { libc::close(fd) };
    }
}

fn pidfd_open(pid: libc::pid_t) -> Option<libc::c_int> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)
}

/// The watchdog's life: wait for the program or the session to end; HUP the group if the
/// session went first.
fn watch(
    program: libc::pid_t,
    program_fd: Option<libc::c_int>,
    session: libc::pid_t,
    session_fd: Option<libc::c_int>,
) -> ! {
    // SAFETY: plain system calls on this process's own signal dispositions and descriptors.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..=2 {
            libc::dup2(null, fd);
        }
        let keep = [program_fd, session_fd];
        for fd in 3..1024 {
            if !keep.contains(&Some(fd)) {
                libc::close(fd);
            }
        }
    }
    let session_ended = match (program_fd, session_fd) {
        (Some(program_fd), Some(session_fd)) => loop {
            let mut fds = [program_fd, session_fd].map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // SAFETY: polls two live descriptors of ours.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } > 0 {
                // The program's end first: then the session ending is no news.
                break fds[0].revents == 0 && fds[1].revents != 0;
            }
        },
        _ => loop {
            // SAFETY: kill with signal 0 only asks whether the process is there.
            if unsafe { libc::kill(program, 0) } != 0 {
                break false;
            }
            // SAFETY: as above.
            if unsafe { libc::kill(session, 0) } != 0 {
                break true;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
    };
    if session_ended {
        // SAFETY: signals this process's own group, the wrapper's.
        unsafe { libc::kill(0, libc::SIGHUP) };
    }
    // SAFETY: ends the watchdog without running exit handlers.
    unsafe { libc::_exit(0) }
}

extern "C" {
    // The process environment, as the C library keeps it (POSIX `environ`).
    static environ: *const *const libc::c_char;
}

/// `execve(binary, [argv0, args...], environ)`: returns only the error.
fn exec(binary: &OsStr, argv0: &OsStr, args: &[OsString]) -> std::io::Error {
    let c = |w: &OsStr| CString::new(w.as_bytes());
    let Ok(path) = c(binary) else {
        return std::io::ErrorKind::InvalidInput.into();
    };
    // Words from this process's own argv, which cannot hold a NUL byte.
    let words: Vec<CString> = std::iter::once(argv0)
        .chain(args.iter().map(OsString::as_os_str))
        .map(|w| c(w).unwrap_or_default())
        .collect();
    let mut argv: Vec<*const libc::c_char> = words.iter().map(|w| w.as_ptr()).collect();
    argv.push(std::ptr::null());
    // SAFETY: path and argv are NUL-terminated C strings and a NULL-terminated array that
    // outlive the call; environ is the C library's own. execve returns only on failure.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), environ) };
    std::io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn me() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    /// `BASE/parent/root/bin/prog/x86_64`, all 0755 up to `BASE`: the slot and its levels.
    fn layout(base: &Path) -> Vec<std::path::PathBuf> {
        let prog = base.join("parent/root/bin/prog");
        std::fs::create_dir_all(&prog).unwrap();
        let slot = prog.join("x86_64");
        std::fs::write(&slot, b"").unwrap();
        let levels: Vec<_> = slot.ancestors().take(6).map(Path::to_owned).collect();
        for p in &levels {
            set_mode(p, 0o755);
        }
        levels
    }

    fn check(path: &Path, level: u32) -> Option<String> {
        problem(path.as_os_str().as_bytes(), level, stat, me)
    }

    /// The shell check's verdicts and words, level by level (remote.rs tests the shell's).
    #[test]
    fn refuses_what_the_shell_check_refuses_in_its_words() {
        let base = tempfile::tempdir().unwrap();
        let levels = layout(base.path());
        let slot = &levels[0];
        assert_eq!(check(slot, 3), None);
        for (i, mode, who) in [
            (0, 0o757, "others"),
            (1, 0o775, "its group"),
            (2, 0o777, "others"),
            (3, 0o1777, "others"),
        ] {
            set_mode(&levels[i], mode);
            let why = check(slot, 3);
            set_mode(&levels[i], 0o755);
            let p = levels[i].display();
            assert_eq!(
                why.as_deref(),
                Some(&*format!(
                    "{p} is writable by {who}, who could replace what runs; fix it with \
                     `chmod go-w {p}`"
                ))
            );
        }
        // Above ROOT a sticky directory is fine, another writable one is not.
        set_mode(&levels[4], 0o1777);
        assert_eq!(check(slot, 3), None);
        set_mode(&levels[4], 0o777);
        let why = check(slot, 3).unwrap();
        set_mode(&levels[4], 0o755);
        assert!(
            why.starts_with(&format!(
                "{} is writable by others and not sticky",
                levels[4].display()
            )),
            "{why}"
        );
        // For a shipped copy the program directory is ROOT: it may be sticky-writable above.
        set_mode(&levels[2], 0o1777);
        assert_eq!(check(slot, 1), None);
        assert!(check(slot, 3).is_some());
        set_mode(&levels[2], 0o755);
        assert!(check(Path::new("rel/x"), 3)
            .unwrap()
            .contains("rel/x is not an absolute path"));
    }

    /// Owners: ROOT any, the rest root, ROOT's owner or the caller; `me` asked only when needed.
    #[test]
    fn owners_are_root_the_caller_or_root_s_owner() {
        let facts = |bad: &[u8]| {
            let bad = bad.to_vec();
            move |p: &[u8]| Ok((0o40755, if p == &bad[..] { 4_000_123 } else { 0 }))
        };
        let asked = std::cell::Cell::new(0);
        let me = || {
            asked.set(asked.get() + 1);
            1000
        };
        let slot = b"/srv/root/bin/prog/x86_64";
        assert_eq!(problem(slot, 3, facts(b"/srv/root"), me), None);
        assert_eq!(asked.get(), 0);
        let why = problem(slot, 3, facts(b"/srv/root/bin"), me).unwrap();
        assert!(
            why.starts_with("/srv/root/bin is owned by uid 4000123, which is neither root, you"),
            "{why}"
        );
        assert_eq!(asked.get(), 1);
        assert!(problem(slot, 3, facts(b"/srv"), me).is_some());
        // ROOT's owner is trusted below it and above it.
        let owned = |p: &[u8]| Ok((0o40755, if p.starts_with(b"/srv/root") { 7 } else { 0 }));
        assert_eq!(problem(slot, 3, owned, me), None);
    }

    /// The levels are the path's prefixes as the shell cuts them, `/` last.
    #[test]
    fn every_prefix_is_checked_up_to_the_root_directory() {
        let seen = std::cell::RefCell::new(Vec::new());
        let record = |p: &[u8]| {
            seen.borrow_mut()
                .push(String::from_utf8_lossy(p).into_owned());
            Ok((0o40755, 0))
        };
        assert_eq!(problem(b"/a b//c/x", 3, record, || 0), None);
        assert_eq!(
            *seen.borrow(),
            ["/a b//c/x", "/a b//c", "/a b/", "/a b", "/"]
        );
    }
}
