//! The command line the node's shell runs: a small POSIX sh wrapper around the program.
//!
//! ```sh
//! cd '/the/caller/cwd' || { printf '\036fatbin:fail:cwd\n' >&2; exit 126; }
//! [ -x '/root/bin/prog/aarch64' ] || { printf '\036fatbin:fail:missing\n' >&2; exit 127; }
//! # the trust check: one `ls -ldnL` of every level of the path (see `push_trust_check`)
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
//! - before anything starts, the binary and every directory above it are checked with the
//!   launcher's trust rule, in one process (a warm run's whole overhead is a few
//!   milliseconds, so the check must not fork per directory); a refusal is a `fail:unsafe`
//!   marker and exit 126, after the missing-binary check (127) so a missing slot is still
//!   reported as missing;
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
    /// Whether `binary` is a layout's slot or a shipped copy: where its ROOT is.
    pub binary_kind: BinaryKind,
    pub args: &'a [&'a OsStr],
    /// What the program's argv[0] should be (where the node's shell can set it).
    pub argv0: &'a [u8],
    /// Variables to set, already filtered to valid names.
    pub env: &'a [(String, &'a OsStr)],
    /// The node's launcher (`fatbin-full`), when it has one: the wrapper becomes it
    /// (`node-exec`), which checks, starts and watches the binary in place of the shell's
    /// `ls`, watchdog and status report.
    pub checker: Option<&'a [u8]>,
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
        match self.checker {
            Some(checker) => self.push_launcher_tail(&mut s, checker, &nonce),
            None => self.push_shell_tail(&mut s, &nonce),
        }
        let mut exit_marker = EXIT.to_vec();
        exit_marker.extend_from_slice(nonce.as_bytes());
        exit_marker.push(b':');
        Script {
            text: s,
            exit_marker,
        }
    }

    /// Without a node launcher: the shell checks, starts the watchdog and the program, and
    /// reports.
    fn push_shell_tail(&self, s: &mut Vec<u8>, nonce: &str) {
        push_trust_check(s, self.binary, self.binary_kind);
        s.extend_from_slice(
            b"printf '\\036fatbin:start:%s\\n' \"$$\" >&2\n\
              exec 3>&2 2>/dev/null\n\
              trap : INT TERM\n\
              (trap '' INT TERM; while kill -0 $$ 2>/dev/null; do \
              kill -0 \"$PPID\" 2>/dev/null || { kill -s HUP 0; exit; }; sleep 1; done) \
              </dev/null >/dev/null 2>&1 3>&- &\n",
        );
        self.push_env_and_args(s);
        s.extend_from_slice(b"\nif [ -n \"${BASH_VERSION-}${ZSH_VERSION-}\" ]; then (exec -a ");
        push_quoted(s, self.argv0);
        s.push(b' ');
        push_remote_path(s, self.binary);
        // The redirections go on the program itself, never on the `if`: the shell must keep
        // /dev/null as its own stderr for its "Killed" notices.
        s.extend_from_slice(b" \"$@\" 2>&3 3>&-)\nelse ");
        push_remote_path(s, self.binary);
        s.extend_from_slice(
            b" \"$@\" 2>&3 3>&-; fi\ns=$?; kill -s KILL $!; printf '\\036fatbin:exit:",
        );
        s.extend_from_slice(nonce.as_bytes());
        s.extend_from_slice(b":%s\\n' \"$s\" >&3; exit \"$s\"\n");
    }

    /// With a node launcher: the shell becomes `fatbin node-exec`, which checks, writes the
    /// markers, starts the program, watches the connection and reports
    /// (`launcher/src/node_exec.rs`). A launcher the inventory names but the node lacks is
    /// reported before anything runs.
    fn push_launcher_tail(&self, s: &mut Vec<u8>, checker: &[u8], nonce: &str) {
        s.extend_from_slice(b"[ -x ");
        push_remote_path(s, checker);
        s.extend_from_slice(b" ] || { printf '%s\\n\\036fatbin:fail:launcher\\n' ");
        let mut missing = b"the node has no launcher at ".to_vec();
        missing.extend_from_slice(checker);
        missing.extend_from_slice(b" (the `launcher` of its nodes.toml entry)");
        push_quoted(s, &missing);
        s.extend_from_slice(b" >&2; exit 126; }\n");
        self.push_env_and_args(s);
        s.extend_from_slice(b"\nexec ");
        push_remote_path(s, checker);
        s.extend_from_slice(b" node-exec ");
        s.extend_from_slice(self.binary_kind.root_level().to_string().as_bytes());
        s.extend_from_slice(b" \"$PPID\" ");
        s.extend_from_slice(nonce.as_bytes());
        s.push(b' ');
        push_quoted(s, self.argv0);
        s.push(b' ');
        push_remote_path(s, self.binary);
        s.extend_from_slice(b" \"$@\"\n");
    }

    /// `export K=V ...` (when there is any) and `set -- ARGS`.
    fn push_env_and_args(&self, s: &mut Vec<u8>) {
        if !self.env.is_empty() {
            s.extend_from_slice(b"export");
            for (name, value) in self.env {
                s.push(b' ');
                s.extend_from_slice(name.as_bytes());
                s.push(b'=');
                push_quoted(s, value.as_bytes());
            }
            s.push(b'\n');
        }
        s.extend_from_slice(b"set --");
        for arg in self.args {
            s.push(b' ');
            push_quoted(s, arg.as_bytes());
        }
    }
}

/// What the wrapper runs, which says where the trust rule's ROOT is above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryKind {
    /// A slot of a layout the node shares: `ROOT/bin/PROG/SLOT...`, ROOT three levels up.
    LayoutSlot,
    /// A copy shipped to the node's cache, `CACHE/SHA256`: the cache plays ROOT's part.
    CachedCopy,
}

impl BinaryKind {
    /// How many levels above the binary its ROOT is.
    fn root_level(self) -> u32 {
        match self {
            BinaryKind::LayoutSlot => 3,
            BinaryKind::CachedCopy => 1,
        }
    }
}

/// The node-side half of the trust rule (`fatbin_core::trust`, docs/security.md): before the
/// program starts, the binary and every directory above it are checked the way the launcher
/// checks them here, and a failure says the same words and ends the wrapper with a
/// `fail:unsafe` marker, so nothing runs. Below ROOT (for a shared layout,
/// `ROOT/bin/PROG/SLOT`; for a shipped copy, the cache directory) nothing may be writable by
/// group or others; ROOT may have any owner, who is then trusted with root and the caller;
/// ROOT's ancestors may be writable by others only as sticky directories (like `/tmp`).
///
/// It costs one process on every run, however deep the path: a single
/// `LC_ALL=C ls -ldnL -- PATH PARENT ... /` lists every level. `ls` sorts its operands (GNU's
/// and busybox's alike), and in the C locale (byte order) a prefix of a path sorts before the
/// longer ones, so line `i` is the level with `i - 1` components: `/` first, the binary last.
/// The caller's uid is asked (`id -u`, a second process) only when a level's owner is neither
/// root nor ROOT's owner, which a layout owned by root or by the caller never needs. Only the
/// mode and owner fields are read, so spaces or globs in names do not matter; a name with a
/// newline would add a line (POSIX's `-q` would prevent that, but busybox's `ls` lacks it), and
/// a line count other than the paths' is refused, never guessed.
fn push_trust_check(s: &mut Vec<u8>, binary: &[u8], kind: BinaryKind) {
    let level = kind.root_level().to_string();
    s.extend_from_slice(
        b"fatbin_refuse() { printf '%s\\n' \"refusing to run: $1\" >&2; \
          printf '\\036fatbin:fail:unsafe\\n' >&2; exit 126; }\n\
          fatbin_fields() { m=${1-} o=${3-}; }\n\
          set -f; u=; p=",
    );
    push_remote_path(s, binary);
    s.extend_from_slice(
        b"; case $p in /*) ;; *) fatbin_refuse \"$p is not an absolute path\";; esac\n\
          q=$p; set --; while [ -n \"$q\" ]; do set -- \"$@\" \"$q\"; q=${q%/*}; done\n\
          k=$(($#+1)); IFS='\n'; set -- $(LC_ALL=C ls -ldnL -- \"$@\" /); IFS=' '\n\
          [ $# = $k ] || fatbin_refuse \"cannot check the owner and modes of $p and the \
          directories above it: ls listed $# lines for $k paths (a newline in a name?)\"\n\
          i=$(($#-",
    );
    s.extend_from_slice(level.as_bytes());
    s.extend_from_slice(
        b")); [ $i -ge 1 ] || i=1; eval \"fatbin_fields \\${$i}\"; r=$o; i=$#; n=0\n\
          while [ $i -gt 0 ]; do eval \"fatbin_fields \\${$i}\"\n\
          case $m in ????????w*) w=others;; ?????w*) w='its group';; *) w=;; esac\n",
    );
    // Above ROOT, a sticky directory (`/tmp`) is fine: nobody can rename what is not theirs.
    s.extend_from_slice(b"if [ $n -gt ");
    s.extend_from_slice(level.as_bytes());
    s.extend_from_slice(
        b" ]; then case $m in d????????[tT]*) w=;; esac\n\
          [ -z \"$w\" ] || fatbin_refuse \"${p:-/} is writable by $w and not sticky, so they could \
          move the layout below it aside and put their own in its place; fix it with \\`chmod go-w \
          ${p:-/}\\` (or \\`chmod +t ${p:-/}\\` for a shared directory like /tmp)\"; fi\n\
          [ -z \"$w\" ] || fatbin_refuse \"${p:-/} is writable by $w, who could replace what runs; \
          fix it with \\`chmod go-w ${p:-/}\\`\"\n[ $n = ",
    );
    s.extend_from_slice(level.as_bytes());
    s.extend_from_slice(
        b" ] || [ \"$o\" = 0 ] || [ \"$o\" = \"$r\" ] || \
          { [ -n \"$u\" ] || u=$(id -u); [ \"$o\" = \"$u\" ]; } || \
          fatbin_refuse \"${p:-/} is owned by uid ${o:-?}, which is neither root, you, nor the owner \
          of the layout root; anyone with that uid could replace what runs (fix: chown it to the \
          layout owner)\"\np=${p%/*}; i=$((i-1)); n=$((n+1)); done; set +f; unset IFS\n",
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
            binary_kind: BinaryKind::CachedCopy,
            args: &args,
            argv0: b"sh",
            env: &env,
            checker: None,
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
            binary_kind: BinaryKind::CachedCopy,
            args: &[],
            argv0: b"true",
            env: &[],
            checker: None,
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
            binary_kind: BinaryKind::CachedCopy,
            args: &args,
            argv0: b"typed name",
            env: &[],
            checker: None,
        }
        .script();
        for (shell, expected) in [("bash", &b"typed name"[..]), ("dash", b"/bin/sh")] {
            let out = run_script(shell, &script);
            assert_eq!(out.status.code(), Some(0), "{shell}");
            assert_eq!(out.stdout, expected, "{shell}");
        }
    }

    /// With a node launcher the shell checks nothing itself: a launcher the node lacks is
    /// named with its own marker before anything starts, and no `ls` or watchdog is in the
    /// script (the launcher does both; tests/tests/integration/migration.rs runs it).
    #[test]
    fn a_node_launcher_the_node_lacks_is_named_before_start() {
        let script = RemoteCommand {
            cwd: b"/",
            binary: b"/bin/true",
            binary_kind: BinaryKind::LayoutSlot,
            args: &[],
            argv0: b"true",
            env: &[],
            checker: Some(b"/nonexistent/fatbin-full"),
        }
        .script();
        let text = String::from_utf8_lossy(&script);
        assert!(
            !text.contains("ls -ldnL") && !text.contains("sleep 1"),
            "{text}"
        );
        let out = run_script("dash", &script);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{err}");
        assert!(
            err.contains("the node has no launcher at /nonexistent/fatbin-full")
                && err.contains("\x1efatbin:fail:launcher\n")
                && !err.contains("fatbin:start"),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_cwd_is_reported_before_start() {
        let script = RemoteCommand {
            cwd: b"/nonexistent/dir",
            binary: b"/bin/true",
            binary_kind: BinaryKind::CachedCopy,
            args: &[],
            argv0: b"true",
            env: &[],
            checker: None,
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
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::Command;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Runs the wrapper for the layout slot `binary` under dash: (status, stderr).
    fn run(binary: &Path) -> (Option<i32>, String) {
        run_with(binary, BinaryKind::LayoutSlot, None)
    }

    /// The shell wrapper (no node launcher) for `binary` of `kind`, run as `prog` in `/`.
    fn script_for(binary: &Path, kind: BinaryKind) -> Script {
        RemoteCommand {
            cwd: b"/",
            binary: binary.as_os_str().as_bytes(),
            binary_kind: kind,
            args: &[],
            argv0: b"prog",
            env: &[],
            checker: None,
        }
        .script()
    }

    /// Runs the wrapper for `binary` of `kind` under dash, with `path` as PATH if given.
    fn run_with(binary: &Path, kind: BinaryKind, path: Option<&Path>) -> (Option<i32>, String) {
        let script = script_for(binary, kind);
        let mut dash = Command::new("dash");
        dash.arg("-c").arg(OsStr::from_bytes(&script));
        if let Some(path) = path {
            dash.env("PATH", path);
        }
        let out = dash.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A directory of logging stand-ins for `ls` and `id`: each appends its name to `log`, then
    /// runs the real tool (`ls` may be busybox's). PATH for the wrapper, and the log.
    fn counting_tools(dir: &Path, ls: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let bin = dir.join("tools");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.join("log");
        for (name, real) in [("ls", ls), ("id", "/usr/bin/id")] {
            let tool = bin.join(name);
            std::fs::write(
                &tool,
                format!(
                    "#!/bin/sh\necho {name} >>'{}'\nexec {real} \"$@\"\n",
                    log.display()
                ),
            )
            .unwrap();
            set_mode(&tool, 0o755);
        }
        let path = format!("{}:/usr/bin:/bin", bin.display());
        (path.into(), log)
    }

    /// `BASE/parent/ROOT/bin/prog/x86_64` (a copy of `true`), all 0755, and its paths.
    fn layout() -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
        let base = tempfile::tempdir().unwrap();
        let paths = layout_at(&base.path().join("parent"), "x86_64");
        (base, paths)
    }

    /// `PARENT/root/bin/prog/SLOT_FILE` (a copy of `true`), the layout's part 0755, and its
    /// paths from the slot up to PARENT.
    fn layout_at(parent: &Path, slot_file: &str) -> Vec<std::path::PathBuf> {
        let root = parent.join("root");
        let prog = root.join("bin/prog");
        std::fs::create_dir_all(&prog).unwrap();
        // Every directory made above ROOT too, up to the temporary one: 0755, whatever the
        // umask of this test process (which other tests may change).
        let mut above = parent.to_owned();
        while above
            .file_name()
            .is_some_and(|n| !n.as_bytes().starts_with(b".tmp"))
        {
            set_mode(&above, 0o755);
            above.pop();
        }
        let slot = prog.join(slot_file);
        std::fs::copy("/bin/true", &slot).unwrap();
        let paths = vec![slot, prog, root.join("bin"), root, parent.to_owned()];
        for p in &paths {
            set_mode(p, 0o755);
        }
        paths
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
        // Owned by the caller (neither root nor ROOT's owner): the one case that asks `id`.
        std::os::unix::fs::chown(&paths[4], Some(0), None).unwrap();
        std::os::unix::fs::chown(slot, Some(other), None).unwrap();
        let script = script_for(slot, BinaryKind::LayoutSlot);
        // The wrapper's parent is of the same account, as sshd's session is (the watchdog
        // signals the parent to see whether it is still there).
        let mut dash = Command::new("dash");
        dash.args(["-c", "dash -c \"$0\""])
            .arg(OsStr::from_bytes(&script))
            .process_group(0);
        let as_other = dash.uid(other).output().unwrap();
        let err = String::from_utf8_lossy(&as_other.stderr);
        assert_eq!(as_other.status.code(), Some(0), "{err}");
        let (code, err) = run(slot);
        assert_eq!(code, Some(126), "{err}");
    }

    /// The check is one `ls` however deep the slot is, and no `id` when every owner is root or
    /// ROOT's owner. It was an `id` and an `ls` per level (ten processes here), which made a
    /// warm migrated run 1.59x a plain multiplexed ssh command instead of 1.10x.
    #[test]
    fn the_check_costs_one_ls_however_deep_the_slot_is() {
        let base = tempfile::tempdir().unwrap();
        let parent = base.path().join("a/b/c/d/parent");
        let paths = layout_at(&parent, "x86_64");
        let (tools, log) = counting_tools(base.path(), "/bin/ls");
        let (code, err) = run_with(&paths[0], BinaryKind::LayoutSlot, Some(&tools));
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ls\n");
        // A refusal, deep or high, costs the same.
        std::fs::remove_file(&log).unwrap();
        let b = base.path().join("a/b");
        set_mode(&b, 0o777);
        let (code, err) = run_with(&paths[0], BinaryKind::LayoutSlot, Some(&tools));
        assert_eq!(code, Some(126), "{err}");
        assert!(
            err.contains(&format!(
                "{} is writable by others and not sticky",
                b.display()
            )),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ls\n");
    }

    /// One `ls` lists every level, sorted: line i must still be the level it names when the
    /// names hold spaces, globs, a leading `-`, bytes below `/` and non-UTF-8, and with
    /// busybox's `ls` (a node's `ls` may be busybox's) as with GNU's.
    #[test]
    fn every_level_is_read_from_its_own_line_with_gnu_and_busybox_ls() {
        let busybox = Path::new("/usr/bin/busybox");
        assert!(busybox.exists(), "busybox is missing: run ci/setup.sh");
        for ls in ["/bin/ls", "/usr/bin/busybox"] {
            let base = tempfile::tempdir().unwrap();
            let odd = OsStr::from_bytes(b"-a b*?[x] \xff!");
            let parent = base.path().join(odd).join("#%").join("parent");
            let paths = layout_at(&parent, "x86_64");
            let mut dirs = paths.clone();
            dirs.push(parent.join(".."));
            dirs.push(base.path().join(odd));
            let real = if ls.ends_with("busybox") {
                "/usr/bin/busybox ls"
            } else {
                ls
            };
            let (tools, log) = counting_tools(base.path(), real);
            let (code, err) = run_with(&paths[0], BinaryKind::LayoutSlot, Some(&tools));
            assert_eq!(code, Some(0), "{ls}: {err}");
            // Each level in turn open to its group: the refusal names that level.
            for dir in &dirs {
                let dir = std::fs::canonicalize(dir).unwrap();
                set_mode(&dir, 0o775);
                let (code, err) = run_with(&paths[0], BinaryKind::LayoutSlot, Some(&tools));
                set_mode(&dir, 0o755);
                assert_eq!(code, Some(126), "{ls} {}: {err}", dir.display());
                let shown = String::from_utf8_lossy(dir.as_os_str().as_bytes()).into_owned();
                assert!(
                    err.contains(&format!(
                        "refusing to run: {shown} is writable by its group"
                    )),
                    "{ls} {}: {err}",
                    dir.display()
                );
            }
            assert!(std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .all(|l| l == "ls"));
        }
    }

    /// A name with a newline would give `ls` an extra line: the check refuses rather than
    /// read a level's mode from another's line.
    #[test]
    fn a_newline_in_a_name_is_refused_not_misread() {
        let base = tempfile::tempdir().unwrap();
        let paths = layout_at(&base.path().join("two\nlines"), "x86_64");
        let (code, err) = run(&paths[0]);
        assert_eq!(code, Some(126), "{err}");
        assert!(
            err.contains("ls listed") && err.contains("fatbin:fail:unsafe"),
            "{err}"
        );
        assert!(!err.contains("fatbin:start"), "{err}");
    }

    /// The caller says where ROOT is: for a layout slot named by its content
    /// (`SLOT.<16 hex>`, not a slot name) ROOT is still three levels up, so ROOT open to
    /// others is refused there, not accepted as a sticky directory above ROOT; for a shipped
    /// copy, the cache directory is its ROOT.
    #[test]
    fn the_caller_says_whether_it_runs_a_slot_or_a_cached_copy() {
        let base = tempfile::tempdir().unwrap();
        let paths = layout_at(&base.path().join("parent"), "x86_64.0123456789abcdef");
        let root = &paths[3];
        set_mode(root, 0o1777);
        let (code, err) = run_with(&paths[0], BinaryKind::LayoutSlot, None);
        assert_eq!(code, Some(126), "{err}");
        assert!(
            err.contains(&format!(
                "refusing to run: {} is writable by others, who could replace what runs",
                root.display()
            )),
            "{err}"
        );
        // As a cached copy, the program directory is the cache; ROOT above it may be sticky.
        let (code, err) = run_with(&paths[0], BinaryKind::CachedCopy, None);
        assert_eq!(code, Some(0), "{err}");
    }
}
