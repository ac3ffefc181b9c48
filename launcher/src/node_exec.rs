//! `fatbin node-exec`: the node's half of a migrated run when the node has a launcher: check
//! the binary with the trust rule, start it, watch the connection and report its status, in
//! the wrapper's own process.
//!
//! A migrated run's wrapper (`fatbin-migrate`'s `remote.rs`) must refuse a binary that group or
//! others could have replaced before it starts. In POSIX sh that check is a fork and an `ls`
//! of every level of the path, read back by the shell: about 4 ms of CPU on every run, most of
//! a warm run's overhead over a plain multiplexed `ssh NODE BINARY`; and the shell wrapper
//! forks twice more (a copy of itself as the watchdog, which starts `sleep`) besides the
//! program. When the inventory names a launcher on the node (`launcher =
//! "/usr/local/bin/fatbin"`), the wrapper, after `cd` and the environment, `exec`s this:
//!
//! ```text
//! fatbin-full node-exec LEVEL SESSION NONCE ARGV0 BINARY [ARGS...]
//! ```
//!
//! It does what the rest of the shell wrapper did, with one fork, the program's:
//! - checks BINARY and every directory above it exactly as the shell check does (ROOT is
//!   LEVEL levels above the binary: 3 for a layout slot, 1 for a shipped copy), and refuses in
//!   the same words with the same `fail:unsafe` marker and exit 126;
//! - writes the start marker with its own pid, the wrapper's `$$` (sshd made it a process
//!   group leader), to which the launcher forwards signals;
//! - survives SIGINT and SIGTERM (a handler that does nothing, so the program, whose handlers
//!   exec resets, gets them as before) and reports the status;
//! - starts BINARY as its child with ARGV0 as argv[0] (the typed name under any login shell,
//!   dash included) and the environment unchanged;
//! - is the watchdog: it sleeps in `poll` on pidfds of the program and of SESSION (the sshd
//!   process of the connection, the wrapper's `$PPID`), and when the session ends first it
//!   sends SIGHUP to its process group, as the shell's watchdog did; without `pidfd_open`
//!   (Linux before 5.3) a forked child asks `kill(SESSION, 0)` once a second instead;
//! - writes the exit marker with NONCE and the status (128+N after signal N) and exits with it.
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
use std::path::PathBuf;

use fatbin_core::trust;
use fatbin_layout::Error as LayoutError;

/// The wrapper's markers (`fatbin-migrate`'s `remote.rs` owns them; this writes its lines).
const START: &[u8] = b"\x1efatbin:start:";
const EXIT: &[u8] = b"\x1efatbin:exit:";
const UNSAFE: &[u8] = b"\x1efatbin:fail:unsafe\n";

/// The word after `fatbin` that selects this mode (kept out of the command table and help).
pub const COMMAND: &str = "node-exec";

/// Runs `fatbin node-exec` with the words after the command: the program's status.
pub fn main(args: &[OsString]) -> i32 {
    let [level, session, nonce, argv0, binary, rest @ ..] = args else {
        return usage();
    };
    let (Some(level), Some(session)) = (number(level), number(session)) else {
        return usage();
    };
    let nonce = nonce.as_bytes();
    if nonce.is_empty() || !nonce.iter().all(u8::is_ascii_hexdigit) {
        return usage();
    }
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
    survive_int_and_term();
    let session = libc::pid_t::try_from(session).unwrap_or(-1);
    let session_fd = pidfd_open(session);
    // SAFETY: getpid cannot fail.
    let me_pid = unsafe { libc::getpid() };
    let mut start = START.to_vec();
    start.extend_from_slice(me_pid.to_string().as_bytes());
    start.push(b'\n');
    write_stderr(&start);
    // SAFETY: this process has one thread (node-exec starts none), so the child may run any
    // code before its exec; it ends in execve or _exit.
    let program = unsafe { libc::fork() };
    if program == 0 {
        let e = exec(binary, argv0, rest);
        write_stderr(
            format!(
                "fatbin: cannot execute {}: {e}\n",
                String::from_utf8_lossy(binary.as_bytes())
            )
            .as_bytes(),
        );
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        // SAFETY: leaves the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) }
    }
    let status = if program < 0 {
        let e = std::io::Error::last_os_error();
        write_stderr(format!("fatbin: cannot start a process for the program: {e}\n").as_bytes());
        126
    } else {
        watch(program, session, session_fd)
    };
    let mut end = EXIT.to_vec();
    end.extend_from_slice(nonce);
    end.push(b':');
    end.extend_from_slice(status.to_string().as_bytes());
    end.push(b'\n');
    write_stderr(&end);
    status
}

fn usage() -> i32 {
    write_stderr(b"fatbin: usage: fatbin node-exec LEVEL SESSION NONCE ARGV0 BINARY [ARGS...]\n");
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

/// The levels of the absolute `path` as the shell's `${p%/*}` cuts them: `path` itself, each
/// prefix before one of its `/`s, and `/` last.
fn levels(path: &[u8]) -> Vec<&[u8]> {
    let mut levels = Vec::new();
    let mut q = path;
    while !q.is_empty() {
        levels.push(q);
        q = &q[..q.iter().rposition(|&b| b == b'/').unwrap_or(0)];
    }
    levels.push(b"/");
    levels
}

/// Why `binary` must not run, by the rule the shell check applies: every level from the
/// binary up to `/` ([`levels`]), ROOT `level` levels above the binary. Below ROOT and ROOT
/// itself nothing writable by group or others; above ROOT, sticky directories are fine.
/// Owners: ROOT any, the others root, ROOT's owner or the caller (`me`, asked only when
/// needed).
fn problem(
    binary: &[u8],
    level: u32,
    stat: impl Fn(&[u8]) -> std::io::Result<(u32, u32)>,
    me: impl Fn() -> u32,
) -> Option<String> {
    let shown = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    if !binary.starts_with(b"/") {
        return Some(format!("{} is not an absolute path", shown(binary)));
    }
    let levels = levels(binary);
    let mut facts = Vec::with_capacity(levels.len());
    for p in &levels {
        match stat(p) {
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
        // The local launcher's refusals, word for word.
        let path = PathBuf::from(OsStr::from_bytes(p));
        let above_root = n > root;
        let writers =
            trust::other_writers(mode).filter(|_| !(above_root && trust::is_sticky_dir(mode)));
        if let Some(who) = writers {
            return Some(if above_root {
                LayoutError::UnsafeAncestor { path, who }.to_string()
            } else {
                LayoutError::UnsafePermissions { path, who }.to_string()
            });
        }
        if n != root && !trust::owner_trusted(owner, Some(root_owner), &me) {
            return Some(LayoutError::UnsafeOwner { path, owner }.to_string());
        }
    }
    None
}

/// Why this launcher must not vouch for anything: its own file, or a directory above it,
/// owned by someone other than root or the caller, or writable by others (sticky directories
/// above its own aside).
fn own_problem(me: u32) -> Option<String> {
    match std::env::current_exe() {
        Ok(exe) => launcher_problem(exe.as_os_str().as_bytes(), me, stat),
        Err(e) => Some(format!("cannot find the node's launcher itself: {e}")),
    }
}

/// [`own_problem`] for the launcher at `exe`, with `stat` giving each level's mode and owner.
fn launcher_problem(
    exe: &[u8],
    me: u32,
    stat: impl Fn(&[u8]) -> std::io::Result<(u32, u32)>,
) -> Option<String> {
    // Level 0 is the launcher's file, 1 its directory: neither may be writable by others,
    // even sticky, since either lets them put another launcher at this path.
    for (n, p) in levels(exe).into_iter().enumerate() {
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
        if !trust::owner_trusted(owner, None, || me) {
            return Some(format!(
                "the node's launcher {}: {shown} is owned by uid {owner}, which is neither root \
                 nor you; install the launcher as root",
                String::from_utf8_lossy(exe)
            ));
        }
    }
    None
}

extern "C" fn ignore(_: libc::c_int) {}

/// SIGINT and SIGTERM, forwarded to the whole group, are for the program: this process runs
/// a handler that does nothing (not SIG_IGN, which the program would inherit) and reports.
fn survive_int_and_term() {
    // SAFETY: installs a handler that touches nothing; no SA_RESTART, so poll and waitpid
    // return EINTR and are called again.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = ignore as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
    }
}

fn pidfd_open(pid: libc::pid_t) -> Option<libc::c_int> {
    if pid <= 0 {
        return None;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor (close-on-exec)
    // or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    libc::c_int::try_from(fd).ok().filter(|&fd| fd >= 0)
}

/// Waits for the program, ending its group with SIGHUP if the session ends first; its status
/// as a shell reports it.
fn watch(program: libc::pid_t, session: libc::pid_t, session_fd: Option<libc::c_int>) -> i32 {
    match (pidfd_open(program), session_fd) {
        (Some(program_fd), Some(session_fd)) => loop {
            let mut fds = [program_fd, session_fd].map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
            // SAFETY: polls two live descriptors of ours.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } <= 0 {
                continue; // EINTR: a forwarded signal
            }
            // The program's end first: then the session ending is no news.
            if fds[0].revents == 0 {
                hang_up();
            }
            return reap(program);
        },
        _ => {
            // No pidfds: a child asks after the session once a second, as the shell did.
            // SAFETY: single-threaded, as above; the child ends in _exit.
            let watchdog = unsafe { libc::fork() };
            if watchdog == 0 {
                // SAFETY: plain system calls; kill with signal 0 only asks.
                unsafe {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                    libc::signal(libc::SIGTERM, libc::SIG_IGN);
                    while libc::kill(session, 0) == 0 {
                        libc::sleep(1);
                    }
                }
                hang_up();
                // SAFETY: leaves the child without exit handlers.
                unsafe { libc::_exit(0) }
            }
            let status = reap(program);
            if watchdog > 0 {
                // SAFETY: ends and reaps our own child.
                unsafe {
                    libc::kill(watchdog, libc::SIGKILL);
                    libc::waitpid(watchdog, std::ptr::null_mut(), 0);
                }
            }
            status
        }
    }
}

/// SIGHUP to this process's group (the wrapper's: the program and this process).
fn hang_up() {
    // SAFETY: signals our own process group.
    unsafe { libc::kill(0, libc::SIGHUP) };
}

/// Waits for the program: its exit status, or 128+N after signal N.
fn reap(program: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child.
        if unsafe { libc::waitpid(program, &mut status, 0) } == program {
            break;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return 255;
        }
    }
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
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

    /// A level beyond the path's depth makes `/` ROOT: then nothing on the path may be
    /// writable by others, sticky or not.
    #[test]
    fn a_level_past_the_top_makes_the_root_directory_root() {
        let facts = |p: &[u8]| Ok((if p == b"/tmp" { 0o41777 } else { 0o40755 }, 0));
        assert_eq!(problem(b"/tmp/a/x", 1, facts, || 0), None);
        let why = problem(b"/tmp/a/x", 99, facts, || 0).unwrap();
        assert!(why.starts_with("/tmp is writable by others, who"), "{why}");
    }

    /// The launcher vouches for nothing from a file or directory others could write (its own
    /// directory even when sticky, those above it unless sticky) or owned by anyone but root
    /// or the caller; each level up to `/` is looked at.
    #[test]
    fn the_launcher_refuses_to_vouch_from_a_place_others_could_write_or_own() {
        let exe = b"/opt/fatbin/bin/fatbin-full";
        let with = |level: &'static [u8], mode: u32, owner: u32| {
            move |p: &[u8]| {
                if p == level {
                    Ok((mode, owner))
                } else {
                    Ok((if p == exe { 0o100755 } else { 0o40755 }, 0))
                }
            }
        };
        let ok = |p: &[u8]| Ok((if p == exe { 0o100755 } else { 0o40755 }, 0));
        assert_eq!(launcher_problem(exe, 1000, ok), None);
        let writable = |level, mode| launcher_problem(exe, 1000, with(level, mode, 0));
        let why = writable(exe, 0o100757).unwrap();
        assert_eq!(
            why,
            "the node's launcher /opt/fatbin/bin/fatbin-full: /opt/fatbin/bin/fatbin-full is \
             writable by others, who could replace the launcher that checks what runs; fix it \
             with `chmod go-w /opt/fatbin/bin/fatbin-full`"
        );
        assert!(writable(b"/opt/fatbin/bin", 0o41777)
            .unwrap()
            .contains(": /opt/fatbin/bin is writable by others"));
        assert!(writable(b"/opt/fatbin", 0o40775)
            .unwrap()
            .contains(": /opt/fatbin is writable by its group"));
        assert_eq!(writable(b"/opt/fatbin", 0o41777), None);
        assert_eq!(writable(b"/", 0o41777), None);
        assert!(writable(b"/", 0o40777).is_some());
        // Owners: root or the caller, at every level.
        assert_eq!(launcher_problem(exe, 1000, with(exe, 0o100755, 1000)), None);
        assert_eq!(launcher_problem(exe, 1000, with(b"/", 0o40755, 1000)), None);
        let why = launcher_problem(exe, 1000, with(b"/opt", 0o40755, 1001)).unwrap();
        assert!(
            why.ends_with(
                ": /opt is owned by uid 1001, which is neither root nor you; install \
                           the launcher as root"
            ),
            "{why}"
        );
        assert!(launcher_problem(exe, 0, with(exe, 0o100755, 1000)).is_some());
        let gone = |p: &[u8]| {
            if p == b"/opt" {
                Err(std::io::Error::from_raw_os_error(libc::EACCES))
            } else {
                Ok((0o40755, 0))
            }
        };
        assert!(launcher_problem(exe, 0, gone)
            .unwrap()
            .starts_with("cannot check the node's launcher /opt: "));
    }
}
