//! The command line the node's shell runs: a small POSIX sh wrapper around the program.
//!
//! ```sh
//! cd '/the/caller/cwd' || { printf '\036fatbin:fail:cwd\n' >&2; exit 126; }
//! [ -x '/root/bin/prog/aarch64' ] || { printf '\036fatbin:fail:missing\n' >&2; exit 127; }
//! printf '\036fatbin:start:%s\n' "$$" >&2
//! exec 3>&2 2>/dev/null
//! trap : INT TERM
//! (trap '' INT TERM; while kill -0 $$ 2>/dev/null; do
//!   kill -0 "$PPID" 2>/dev/null || { kill -s HUP 0; exit; }; sleep 1; done) </dev/null >/dev/null 2>&1 3>&- &
//! export LANG='C.UTF-8' FATBIN_ARGV0='prog'
//! set -- 'arg 1' 'it'\''s'
//! if [ -n "${BASH_VERSION-}${ZSH_VERSION-}" ]; then (exec -a 'prog' '/root/bin/prog/aarch64' "$@" 2>&3 3>&-)
//! else '/root/bin/prog/aarch64' "$@" 2>&3 3>&-; fi
//! s=$?; kill -s KILL $!; printf '\036fatbin:exit:NONCE:%s\n' "$s" >&3; exit "$s"
//! ```
//!
//! Why each part is there:
//! - every word is single-quoted ([`crate::quote`]): arguments are data, never code;
//! - the markers (lines starting with the ASCII record separator, 0x1e, on stderr) tell the
//!   launcher that the program is about to start and, at the end, its exit status, so that a
//!   program exiting 255 is never mistaken for ssh's own 255, and `128+N` after a signal is
//!   reported the way a local shell does. The launcher removes them from the stream;
//! - `$$`, the wrapper's pid, is also its process group (sshd starts each session with
//!   `setsid`), so the launcher forwards SIGINT/SIGTERM with `kill -s SIG -- -PGID` over a
//!   second session: without a tty, ssh itself forwards no signals;
//! - the wrapper traps INT/TERM with a handler (not `''`: an ignored signal would stay ignored in
//!   the program) so it survives them and still reports the program's status;
//! - the watchdog ends the program when the connection dies: sshd then exits, the wrapper's
//!   parent is gone, and the watchdog sends SIGHUP to the whole group. Without a tty nothing
//!   else would stop the program. It ignores INT/TERM (they are for the program), so the wrapper
//!   ends it with SIGKILL, and it also stops by itself once the wrapper is gone;
//! - after the start marker the wrapper's own stderr is /dev/null and the program's is the real
//!   one (fd 3): a shell reports a child killed by a signal ("Killed", "Segmentation fault")
//!   on its stderr, which a local run would not show. The exit marker goes to fd 3;
//! - the exit marker carries NONCE, 128 random bits fresh for every run: the program shares
//!   the marker's stream, and a program that ends its stderr with a marker of its own (and
//!   then loses its wrapper) must not have its made-up status believed. The nonce is in the
//!   wrapper's command line, so a program that goes looking (in its parent's `/proc` entry)
//!   can find it: it guards against output that merely looks like a marker, not against a
//!   program set on lying, which runs as the caller anyway;
//! - the program runs as a foreground child, not `exec`, so the wrapper sees its status, and not
//!   in the background, where a non-interactive shell would make it ignore SIGINT.
//!
//! `argv[0]`: the program gets the name the user typed, as in a local run, when the node's login
//! shell is bash or zsh (Debian's default for users), through `exec -a` in a subshell (the
//! subshell becomes the program, so its status and process group are the program's). POSIX sh
//! (dash) has no `exec -a`: there the program's `argv[0]` is its path on the node. Either way the
//! name is also in `FATBIN_ARGV0`. The arguments are set once with `set --`, so both branches
//! share them and the command stays small.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::quote::{push_quoted, push_remote_path};

/// The marker byte that starts a wrapper line (ASCII RS: never in normal text output).
pub const MARK: u8 = 0x1e;
pub const START: &[u8] = b"\x1efatbin:start:";
pub const EXIT: &[u8] = b"\x1efatbin:exit:";
pub const FAIL: &[u8] = b"\x1efatbin:fail:";

/// A wrapper script and the exit marker (with this run's nonce) that only it writes.
#[derive(Debug)]
pub struct Script {
    text: Vec<u8>,
    /// `EXIT` + the nonce + `:`; the status follows it.
    exit_marker: Vec<u8>,
}

impl Script {
    /// The start of the exit line this script writes: `\x1efatbin:exit:NONCE:`.
    pub fn exit_marker(&self) -> &[u8] {
        &self.exit_marker
    }
}

impl std::ops::Deref for Script {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.text
    }
}

/// 128 random bits as 32 hex digits, from the kernel's generator.
fn nonce() -> String {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: writes at most the remaining length into the buffer.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        match usize::try_from(n) {
            Ok(n) => filled += n,
            Err(_) if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {
            }
            // Before Linux 3.17 there is no getrandom: /dev/urandom says the same.
            Err(_) => {
                use std::io::Read;
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut bytes))
                    .expect("the kernel's random numbers (/dev/urandom)");
                break;
            }
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the wrapper runs where.
#[derive(Debug)]
pub struct RemoteCommand<'a> {
    pub cwd: &'a [u8],
    /// The binary on the node (may start with `~/` for a cache under the node's home).
    pub binary: &'a [u8],
    pub args: &'a [&'a OsStr],
    /// What the program's argv[0] should be (where the node's shell can set it).
    pub argv0: &'a [u8],
    /// Variables to set, already filtered to valid names.
    pub env: &'a [(String, &'a OsStr)],
}

impl RemoteCommand<'_> {
    /// The script, as the single word ssh sends, with a fresh nonce in its exit marker.
    pub fn script(&self) -> Script {
        let nonce = nonce();
        let mut s = Vec::with_capacity(512 + self.args.iter().map(|a| a.len() + 3).sum::<usize>());
        s.extend_from_slice(b"cd ");
        push_quoted(&mut s, self.cwd);
        s.extend_from_slice(b" || { printf '\\036fatbin:fail:cwd\\n' >&2; exit 126; }\n[ -x ");
        push_remote_path(&mut s, self.binary);
        s.extend_from_slice(b" ] || { printf '\\036fatbin:fail:missing\\n' >&2; exit 127; }\n");
        push_trust_check(&mut s, self.binary);
        s.extend_from_slice(
            b"printf '\\036fatbin:start:%s\\n' \"$$\" >&2\n\
              exec 3>&2 2>/dev/null\n\
              trap : INT TERM\n\
              (trap '' INT TERM; while kill -0 $$ 2>/dev/null; do \
              kill -0 \"$PPID\" 2>/dev/null || { kill -s HUP 0; exit; }; sleep 1; done) \
              </dev/null >/dev/null 2>&1 3>&- &\n",
        );
        if !self.env.is_empty() {
            s.extend_from_slice(b"export");
            for (name, value) in self.env {
                s.push(b' ');
                s.extend_from_slice(name.as_bytes());
                s.push(b'=');
                push_quoted(&mut s, value.as_bytes());
            }
            s.push(b'\n');
        }
        s.extend_from_slice(b"set --");
        for arg in self.args {
            s.push(b' ');
            push_quoted(&mut s, arg.as_bytes());
        }
        s.extend_from_slice(b"\nif [ -n \"${BASH_VERSION-}${ZSH_VERSION-}\" ]; then (exec -a ");
        push_quoted(&mut s, self.argv0);
        s.push(b' ');
        push_remote_path(&mut s, self.binary);
        // The redirections go on the program itself, never on the `if`: the shell must keep
        // /dev/null as its own stderr for its "Killed" notices.
        s.extend_from_slice(b" \"$@\" 2>&3 3>&-)\nelse ");
        push_remote_path(&mut s, self.binary);
        s.extend_from_slice(
            b" \"$@\" 2>&3 3>&-; fi\ns=$?; kill -s KILL $!; printf '\\036fatbin:exit:",
        );
        s.extend_from_slice(nonce.as_bytes());
        s.extend_from_slice(b":%s\\n' \"$s\" >&3; exit \"$s\"\n");
        let mut exit_marker = EXIT.to_vec();
        exit_marker.extend_from_slice(nonce.as_bytes());
        exit_marker.push(b':');
        Script {
            text: s,
            exit_marker,
        }
    }
}

/// The node-side half of the trust rule (`fatbin_core::trust`, docs/security.md): before the
/// program starts, the binary and every directory above it are checked with `ls -ldnL`, the
/// way the launcher checks them here, and a failure says the same words and ends the wrapper
/// with a `fail:unsafe` marker, so nothing runs. Below ROOT (for a shared layout,
/// `ROOT/bin/PROG/SLOT`; for a shipped copy, the cache directory) nothing may be writable by
/// group or others; ROOT may have any owner, who is then trusted with root and the caller;
/// ROOT's ancestors may be writable by others only as sticky directories (like `/tmp`).
fn push_trust_check(s: &mut Vec<u8>, binary: &[u8]) {
    // How many levels up ROOT is: a layout slot is ROOT/bin/PROG/SLOT (or its content file
    // ROOT/bin/PROG/SLOT.HEX), a shipped copy CACHE/SHA256 (its cache plays ROOT's part).
    let parts: Vec<&[u8]> = binary.rsplit(|&b| b == b'/').take(4).collect();
    let is_slot = parts.len() == 4
        && parts[2] == b"bin"
        && std::str::from_utf8(parts[0])
            .is_ok_and(|n| fatbin_layout::manifest::slot_of_file_name(n).is_some());
    let root_level = if is_slot { 3 } else { 1 };
    s.extend_from_slice(
        b"fatbin_refuse() { printf '%s\\n' \"refusing to run: $1\" >&2; \
          printf '\\036fatbin:fail:unsafe\\n' >&2; exit 126; }\n\
          set -f; u=$(id -u); p=",
    );
    push_remote_path(s, binary);
    s.extend_from_slice(b"; set -- $(ls -ldnL -- \"${p%");
    for _ in 0..root_level {
        s.extend_from_slice(b"/*");
    }
    let level = root_level.to_string();
    s.extend_from_slice(
        b"}\"); r=${3-}; n=0\nwhile :; do set -- $(ls -ldnL -- \"${p:-/}\")\n\
          case ${1-} in ????????w*) w=others;; ?????w*) w='its group';; *) w=;; esac\n",
    );
    // Above ROOT, a sticky directory (`/tmp`) is fine: nobody can rename what is not theirs.
    s.extend_from_slice(b"if [ $n -gt ");
    s.extend_from_slice(level.as_bytes());
    s.extend_from_slice(
        b" ]; then case $1 in d????????[tT]*) w=;; esac\n\
          [ -z \"$w\" ] || fatbin_refuse \"${p:-/} is writable by $w and not sticky, so they could \
          move the layout below it aside and put their own in its place; fix it with \\`chmod go-w \
          ${p:-/}\\` (or \\`chmod +t ${p:-/}\\` for a shared directory like /tmp)\"; fi\n\
          [ -z \"$w\" ] || fatbin_refuse \"${p:-/} is writable by $w, who could replace what runs; \
          fix it with \\`chmod go-w ${p:-/}\\`\"\n[ $n = ",
    );
    s.extend_from_slice(level.as_bytes());
    s.extend_from_slice(
        b" ] || [ \"${3-}\" = 0 ] || [ \"${3-}\" = \"$u\" ] || [ \"${3-}\" = \"$r\" ] || \
          fatbin_refuse \"${p:-/} is owned by uid ${3-?}, which is neither root, you, nor the owner \
          of the layout root; anyone with that uid could replace what runs (fix: chown it to the \
          layout owner)\"\n[ -n \"$p\" ] || break; p=${p%/*}; n=$((n+1)); done; set +f\n",
    );
}

/// The command that forwards `signal` to the wrapper's process group.
pub fn kill_script(signal: &str, pgid: u32) -> String {
    format!("kill -s {signal} -- -{pgid} 2>/dev/null || kill -s {signal} -{pgid}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs a wrapper script the way sshd does: `SHELL -c SCRIPT`.
    fn run_script(shell: &str, script: &[u8]) -> std::process::Output {
        Command::new(shell)
            .arg("-c")
            .arg(OsStr::from_bytes(script))
            .output()
            .unwrap()
    }

    #[test]
    fn the_wrapper_runs_under_dash_and_reports_status() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().as_os_str().as_bytes();
        let args: Vec<&OsStr> = vec![OsStr::new("-c"), OsStr::new("printf '%s' \"$PWD\"; exit 7")];
        let lang = OsStr::new("it's C");
        let env = vec![("FATBIN_T".to_owned(), lang)];
        let script = RemoteCommand {
            cwd,
            binary: b"/bin/sh",
            args: &args,
            argv0: b"sh",
            env: &env,
        }
        .script();
        let out = run_script("/bin/sh", &script);
        assert_eq!(out.status.code(), Some(7));
        assert_eq!(out.stdout, cwd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("\x1efatbin:start:"), "{err:?}");
        let mut end = script.exit_marker().to_vec();
        end.extend_from_slice(b"7\n");
        assert!(out.stderr.ends_with(&end), "{err:?}");
    }

    /// Each run's exit marker has its own 32-hex-digit nonce.
    #[test]
    fn every_script_has_a_fresh_nonce() {
        let cmd = RemoteCommand {
            cwd: b"/",
            binary: b"/bin/true",
            args: &[],
            argv0: b"true",
            env: &[],
        };
        let (a, b) = (cmd.script(), cmd.script());
        assert_ne!(a.exit_marker(), b.exit_marker());
        let nonce = &a.exit_marker()[EXIT.len()..a.exit_marker().len() - 1];
        assert_eq!(nonce.len(), 32);
        assert!(nonce.iter().all(u8::is_ascii_hexdigit));
    }

    /// The program's argv[0] is the typed name under bash and zsh, its path under POSIX sh.
    #[test]
    fn argv0_is_the_typed_name_where_the_shell_can_set_it() {
        let args: Vec<&OsStr> = vec![OsStr::new("-c"), OsStr::new("printf '%s' \"$0\"")];
        let script = RemoteCommand {
            cwd: b"/",
            binary: b"/bin/sh",
            args: &args,
            argv0: b"typed name",
            env: &[],
        }
        .script();
        for (shell, expected) in [("bash", &b"typed name"[..]), ("dash", b"/bin/sh")] {
            let out = run_script(shell, &script);
            assert_eq!(out.status.code(), Some(0), "{shell}");
            assert_eq!(out.stdout, expected, "{shell}");
        }
    }

    #[test]
    fn a_missing_cwd_is_reported_before_start() {
        let script = RemoteCommand {
            cwd: b"/nonexistent/dir",
            binary: b"/bin/true",
            args: &[],
            argv0: b"true",
            env: &[],
        }
        .script();
        let out = run_script("/bin/sh", &script);
        assert_eq!(out.status.code(), Some(126));
        assert!(String::from_utf8_lossy(&out.stderr).contains("\x1efatbin:fail:cwd"));
    }
}

/// Issue 11, item 2 (the node's half): the wrapper checks owner and modes of what it runs, as
/// the launcher does locally, and refuses with the same words.
#[cfg(test)]
mod trust_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::Command;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Runs the wrapper for `binary` under dash: (status, stderr).
    fn run(binary: &Path) -> (Option<i32>, String) {
        let script = RemoteCommand {
            cwd: b"/",
            binary: binary.as_os_str().as_bytes(),
            args: &[],
            argv0: b"prog",
            env: &[],
        }
        .script();
        let out = Command::new("dash")
            .arg("-c")
            .arg(OsStr::from_bytes(&script))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `BASE/parent/ROOT/bin/prog/x86_64` (a copy of `true`), all 0755, and its paths.
    fn layout() -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
        let base = tempfile::tempdir().unwrap();
        let parent = base.path().join("parent");
        let root = parent.join("root");
        let prog = root.join("bin/prog");
        std::fs::create_dir_all(&prog).unwrap();
        let slot = prog.join("x86_64");
        std::fs::copy("/bin/true", &slot).unwrap();
        let paths = vec![slot, prog, root.join("bin"), root, parent];
        for p in &paths {
            set_mode(p, 0o755);
        }
        (base, paths)
    }

    #[test]
    fn modes_are_checked_up_to_root_and_root_s_ancestors_like_strict_modes() {
        let (_base, paths) = layout();
        let slot = &paths[0];
        let (code, err) = run(slot);
        assert_eq!(code, Some(0), "{err}");
        for (i, mode, who) in [
            (0, 0o757, "others"),
            (1, 0o775, "its group"),
            (2, 0o777, "others"),
            (3, 0o1777, "others"),
        ] {
            set_mode(&paths[i], mode);
            let (code, err) = run(slot);
            set_mode(&paths[i], 0o755);
            let path = paths[i].display();
            assert_eq!(code, Some(126), "{path} {mode:o}: {err}");
            assert!(
                err.contains(&format!(
                    "refusing to run: {path} is writable by {who}, who could replace what runs; \
                     fix it with `chmod go-w {path}`"
                )) && err.contains("\x1efatbin:fail:unsafe"),
                "{path} {mode:o}: {err}"
            );
            assert!(!err.contains("fatbin:start"), "{err}");
        }
        // Above ROOT, the rule of OpenSSH's StrictModes: a sticky directory (like /tmp) is
        // fine, another writable one is not.
        set_mode(&paths[4], 0o777);
        let (code, err) = run(slot);
        assert_eq!(code, Some(126), "{err}");
        let parent = paths[4].display();
        assert!(
            err.contains(&format!(
                "refusing to run: {parent} is writable by others and not sticky"
            )),
            "{err}"
        );
        set_mode(&paths[4], 0o1777);
        let (code, err) = run(slot);
        assert_eq!(code, Some(0), "{err}");
    }

    #[test]
    fn owners_are_root_the_caller_or_root_s_owner() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return; // chown to another uid needs root
        }
        let (_base, paths) = layout();
        let slot = &paths[0];
        let other = 4_000_123;
        // ROOT may have any owner, who is then trusted below it.
        for p in &paths[..4] {
            std::os::unix::fs::chown(p, Some(other), None).unwrap();
        }
        let (code, err) = run(slot);
        assert_eq!(code, Some(0), "{err}");
        // A third account below ROOT, or above it, is not.
        std::os::unix::fs::chown(&paths[3], Some(0), None).unwrap();
        let (code, err) = run(slot);
        assert_eq!(code, Some(126), "{err}");
        assert!(
            err.contains(&format!(
                "refusing to run: {} is owned by uid {other}, which is neither root, you, nor the \
                 owner of the layout root",
                paths[0].display()
            )),
            "{err}"
        );
        for p in &paths[..3] {
            std::os::unix::fs::chown(p, Some(0), None).unwrap();
        }
        std::os::unix::fs::chown(&paths[4], Some(other), None).unwrap();
        let (code, err) = run(slot);
        assert_eq!(code, Some(126), "{err}");
        assert!(
            err.contains(&format!("{} is owned by uid {other}", paths[4].display())),
            "{err}"
        );
    }
}
