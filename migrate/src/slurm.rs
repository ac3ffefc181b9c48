//! The Slurm route: a request that runs on no slot here goes to the site's scheduler, which
//! places it, as one step, on a node whose Features name a slot of the program.
//!
//! A route is a `[slurm.NAME]` table of a `nodes.toml` (same three files and precedence as
//! the ssh nodes, see [`crate::nodes`]). The slots it serves are its `slots`, or else the node
//! Features that are slot names (`sinfo`). For a request the launcher runs `srun` (found in
//! PATH) with:
//!
//! - `--constraint=A|B|…`: the program's slots the route serves, best first, and
//!   `--prefer=A`, the best of them: an OR-constraint alone lets Slurm take any matching node,
//!   `--prefer` (Slurm 22.05 and later) puts it on a node with the best slot when one is free;
//! - `--ntasks=1 --nodes=1`, `--chdir` the caller's directory, `--quiet`, `--disable-status`
//!   (one Ctrl-C reaches the program instead of printing srun's status), the partition and the
//!   route's extra `srun_args`;
//! - `--export` the same variables the ssh route forwards (the allowlist, `LC_*`, the names in
//!   `FATBIN_ENV`), plus `PATH` (as srun's own default would, so the launcher and whatever the
//!   program starts are found on the node) and `FATBIN_FALLBACK=none`;
//! - the command `LAUNCHER run --root ROOT --argv0 ARGV0 PROG ARGS…`: the launcher on the node
//!   (default: `fatbin` in the directory of this one, which on a cluster is the same path on
//!   every node) picks that node's best slot itself. srun passes argv as it is (no shell), so
//!   arguments arrive byte-exact, and `--argv0` keeps the name typed (slurmstepd would pass the
//!   path it found).
//!
//! srun's stderr is relayed through the launcher, unchanged, so that srun's own failures can
//! be told apart from the program's exit status: a line `srun: error: Unable to allocate
//! resources: …` means no job started (the request may go to the next fallback), and is
//! reported with an exit status of its own (docs/migration.md); anything else is the program's.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use fatbin_layout::exit::{EXIT_NOT_FOUND, EXIT_TRANSPORT, EXIT_USAGE};
use fatbin_layout::SlotName;
use serde::{Deserialize, Serialize};

use crate::nodes::{NodesFile, Paths, Source};
use crate::{Error, Request};

/// One Slurm route as written in a `nodes.toml` (`[slurm.NAME]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmEntry {
    /// The partition to submit to; default: the cluster's default partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// More srun arguments, each one word (e.g. `--account=lab`, `--time=10`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub srun_args: Vec<String>,
    /// The slots the route serves; empty: the node Features that are slot names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<SlotName>,
    /// Where ROOT is on the nodes; default: the same path as here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The launcher on the nodes (an absolute path); default: `fatbin` beside this launcher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launcher: Option<String>,
}

/// A Slurm route with its name and the file that defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmRoute {
    pub name: String,
    pub entry: SlurmEntry,
    pub source: Source,
}

/// The Slurm routes of the three inventory files; the first file that names a route wins.
pub fn load(paths: &Paths) -> Result<Vec<SlurmRoute>, Error> {
    let mut routes: Vec<SlurmRoute> = Vec::new();
    for source in [Source::User, Source::Layout, Source::System] {
        let Some(path) = paths.get(source) else {
            continue;
        };
        for (name, entry) in NodesFile::read(path)?.slurm {
            if !routes.iter().any(|r| r.name == name) {
                routes.push(SlurmRoute {
                    name,
                    entry,
                    source,
                });
            }
        }
    }
    routes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(routes)
}

/// Whether `word` is safe as one srun option value we build (`--partition`, features).
pub fn word_problem(word: &str) -> Option<&'static str> {
    if word.is_empty() {
        Some("it is empty")
    } else if word.starts_with('-') {
        Some("it starts with `-`")
    } else if word.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or control characters")
    } else {
        None
    }
}

/// `srun` (or another Slurm client) in PATH.
pub fn client(name: &str) -> Result<PathBuf, Error> {
    which::which(name).map_err(|_| {
        Error::new(
            EXIT_TRANSPORT,
            format!(
                "the Slurm route needs `{name}` in PATH (Debian: apt-get install slurm-client)"
            ),
        )
    })
}

/// The node Features of the route's partition (or of every node), each once, as `sinfo` says.
pub fn features(entry: &SlurmEntry) -> Result<Vec<String>, Error> {
    let mut cmd = Command::new(client("sinfo")?);
    cmd.args(["--noheader", "--format=%f"]);
    if let Some(p) = &entry.partition {
        cmd.arg(format!("--partition={p}"));
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(EXIT_TRANSPORT, format!("cannot run sinfo: {e}")))?;
    if !out.status.success() {
        return Err(Error::new(
            EXIT_TRANSPORT,
            format!(
                "sinfo failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let mut all: Vec<String> = Vec::new();
    for f in String::from_utf8_lossy(&out.stdout)
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|f| !f.is_empty() && *f != "(null)")
    {
        if !all.iter().any(|a| a == f) {
            all.push(f.to_owned());
        }
    }
    Ok(all)
}

/// The Features that are slot names.
pub fn slot_features(features: &[String]) -> Vec<SlotName> {
    features.iter().filter_map(|f| f.parse().ok()).collect()
}

impl SlurmRoute {
    /// The slots the route serves: its `slots`, else the cluster's slot Features.
    pub fn served(&self) -> Result<Vec<SlotName>, Error> {
        if !self.entry.slots.is_empty() {
            return Ok(self.entry.slots.clone());
        }
        Ok(slot_features(&features(&self.entry)?))
    }

    /// ROOT on the nodes.
    pub fn root_on_node(&self, local_root: &Path) -> PathBuf {
        self.entry
            .root
            .as_ref()
            .map_or_else(|| local_root.to_owned(), PathBuf::from)
    }

    /// The launcher the nodes run.
    pub fn launcher(&self) -> PathBuf {
        if let Some(l) = &self.entry.launcher {
            return PathBuf::from(l);
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("fatbin")))
            .unwrap_or_else(|| PathBuf::from("fatbin"))
    }
}

/// What srun is asked for one request.
#[derive(Debug)]
struct Srun {
    route: SlurmRoute,
    /// The program's slots the route serves, best first.
    slots: Vec<SlotName>,
    /// srun's arguments, the command included.
    args: Vec<OsString>,
    /// Variables forwarded by name (`--export`).
    exported: Vec<String>,
}

/// The first route that serves a slot of the request, and what srun is asked.
fn plan(req: &Request<'_>) -> Result<Srun, Error> {
    let routes = load(&Paths::new(Some(req.root)))?;
    if routes.is_empty() {
        return Err(Error::new(EXIT_NOT_FOUND, "no Slurm route configured").not_started());
    }
    let mut served_none = Vec::new();
    for route in routes {
        let served = route.served().map_err(Error::not_started)?;
        let slots: Vec<SlotName> = req
            .slots
            .iter()
            .copied()
            .filter(|s| served.contains(s))
            .collect();
        // Best first for `--prefer`: the request lists slots that do not run here in slot
        // order (lowest level first); within an architecture the highest level is the best.
        let arch_rank = |s: &SlotName| req.slots.iter().position(|r| r.arch == s.arch);
        let mut slots = slots;
        slots.sort_by_key(|s| (arch_rank(s), std::cmp::Reverse(s.level_number())));
        if slots.is_empty() {
            let names: Vec<String> = served.iter().map(ToString::to_string).collect();
            served_none.push(format!(
                "Slurm route `{}` serves {}",
                route.name,
                if names.is_empty() {
                    "no slot (no node Feature is a slot name)".to_owned()
                } else {
                    names.join(", ")
                }
            ));
            continue;
        }
        let cwd = std::env::current_dir().map_err(|e| {
            Error::new(
                crate::EXIT_CANNOT_EXECUTE,
                format!(
                    "cannot migrate `{}`: the working directory is unreadable: {e}",
                    req.program
                ),
            )
            .not_started()
        })?;
        let exported = exported_names();
        let constraint: Vec<String> = slots.iter().map(ToString::to_string).collect();
        let mut args: Vec<OsString> = vec![
            "--ntasks=1".into(),
            "--nodes=1".into(),
            format!("--constraint={}", constraint.join("|")).into(),
            format!("--prefer={}", constraint[0]).into(),
        ];
        let mut chdir = OsString::from("--chdir=");
        chdir.push(&cwd);
        args.push(chdir);
        args.push(format!("--export={}", exported.join(",")).into());
        if std::env::var_os("FATBIN_SLURM_VERBOSE").is_none_or(|v| v.is_empty()) {
            args.push("--quiet".into());
        }
        args.push("--disable-status".into());
        if let Some(p) = &route.entry.partition {
            args.push(format!("--partition={p}").into());
        }
        args.extend(route.entry.srun_args.iter().map(OsString::from));
        args.push("--".into());
        args.push(route.launcher().into());
        args.push("run".into());
        args.push("--root".into());
        args.push(route.root_on_node(req.root).into());
        args.push("--argv0".into());
        args.push(req.argv0.to_owned());
        args.push("--".into());
        args.push(req.program.into());
        args.extend(req.args.iter().cloned());
        return Ok(Srun {
            route,
            slots,
            args,
            exported,
        });
    }
    let wanted: Vec<String> = req.slots.iter().map(ToString::to_string).collect();
    Err(Error::new(
        EXIT_NOT_FOUND,
        format!(
            "no Slurm route serves a slot of `{}` (its slots: {}); {}",
            req.program,
            wanted.join(", "),
            served_none.join("; ")
        ),
    )
    .not_started())
}

/// The names `--export` lists: the ssh route's (the allowlist, `LC_*`, `FATBIN_ENV`) that are
/// set, `PATH`, and `FATBIN_FALLBACK` (set to `none` in srun's environment).
fn exported_names() -> Vec<String> {
    let mut names: Vec<String> = crate::forwarded_env(OsStr::new(""), true)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "FATBIN_ARGV0")
        .collect();
    if std::env::var_os("PATH").is_some() {
        names.push("PATH".into());
    }
    names.push("FATBIN_FALLBACK".into());
    names
}

/// The srun process to signal (0: none yet).
static SRUN_PID: AtomicI32 = AtomicI32::new(0);

/// Passes a signal sent to the launcher with `kill` on to srun, which forwards it to the step.
/// A signal from the terminal (Ctrl-C) reached srun already: it is in the same process group.
extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands the handler a valid siginfo.
    let code = unsafe { (*info).si_code };
    let pid = SRUN_PID.load(Ordering::SeqCst);
    if pid > 0 && code != libc::SI_KERNEL {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn forward_signals() {
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: a plain sigaction with a handler that only calls kill.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// What srun's own stderr lines said.
#[derive(Debug, Default)]
struct Seen {
    /// `srun: error: Unable to allocate resources: REASON`: no job was started.
    refused: Option<String>,
    /// slurmstepd could not start the launcher on the node.
    exec_failed: Option<String>,
    /// The job was cancelled or hit its time limit.
    ended: Option<String>,
}

/// Copies srun's stderr to ours as it comes, and notes srun's and slurmstepd's own failures.
/// srun's report of a task's non-zero status (`srun: error: NODE: task 0: Exited with exit code
/// N`) is left out: a local run prints nothing of the kind, and the status says it. Text is
/// passed on at once, except a line that may be such a report, held until its end.
fn relay(mut from: impl Read) -> Seen {
    let mut seen = Seen::default();
    let mut to = std::io::stderr();
    // The current line so far, while it may still be one of srun's (else it is passed on).
    let mut line: Vec<u8> = Vec::new();
    let mut passing = false;
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut out: Vec<u8> = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if passing {
                out.push(b);
                passing = b != b'\n';
                continue;
            }
            line.push(b);
            if b == b'\n' {
                note(&mut seen, &line);
                if !is_task_report(&line) {
                    out.extend_from_slice(&line);
                }
                line.clear();
            } else if !maybe_slurms(&line) || line.len() > 4096 {
                out.extend_from_slice(&line);
                line.clear();
                passing = true;
            }
        }
        let _ = to.write_all(&out);
    }
    note(&mut seen, &line);
    if !is_task_report(&line) {
        let _ = to.write_all(&line);
    }
    seen
}

/// Whether a partial line may still turn out to be one of srun's or slurmstepd's own.
fn maybe_slurms(line: &[u8]) -> bool {
    // slurmstepd names itself `slurmstepd` or `slurmstepd-NODE`.
    [&b"srun: "[..], b"slurmstepd"]
        .iter()
        .any(|p| line.starts_with(p) || p.starts_with(line))
}

/// `srun: error: NODE: task 0: Exited with exit code N` (or `: Killed`, `: Terminated`...).
fn is_task_report(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line);
    line.strip_prefix("srun: error: ")
        .and_then(|rest| rest.split_once(": task 0: "))
        .is_some_and(|(node, _)| !node.contains(' '))
}

fn note(seen: &mut Seen, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    if let Some(why) = line.strip_prefix("srun: error: Unable to allocate resources: ") {
        seen.refused.get_or_insert_with(|| why.trim().to_owned());
    } else if line.starts_with("srun: error: ")
        && line.contains("Unable to contact slurm controller")
    {
        seen.refused
            .get_or_insert_with(|| line["srun: error: ".len()..].trim().to_owned());
    } else if line.starts_with("slurmstepd") && line.contains(": error: execve(): ") {
        seen.exec_failed
            .get_or_insert_with(|| line.trim().to_owned());
    } else if line.contains("CANCELLED AT") || line.contains("DUE TO TIME LIMIT") {
        seen.ended
            .get_or_insert_with(|| line.trim().trim_matches('*').trim().to_owned());
    }
}

pub(crate) fn run(req: &Request<'_>) -> Result<i32, Error> {
    let srun = plan(req)?;
    let mut cmd = Command::new(client("srun").map_err(Error::not_started)?);
    cmd.args(&srun.args)
        .env("FATBIN_FALLBACK", "none")
        .stderr(Stdio::piped());
    // Inside an allocation srun would start a step of it, on its nodes whatever their
    // Features: the request is a job of its own.
    for var in ["SLURM_JOB_ID", "SLURM_JOBID"] {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(EXIT_TRANSPORT, format!("cannot run srun: {e}")).not_started())?;
    SRUN_PID.store(child.id() as i32, Ordering::SeqCst);
    forward_signals();
    let stderr = child.stderr.take().expect("piped");
    let relay = std::thread::spawn(move || relay(stderr));
    let status = child.wait();
    let seen = relay.join().unwrap_or_default();
    let status =
        status.map_err(|e| Error::new(EXIT_TRANSPORT, format!("waiting for srun: {e}")))?;
    use std::os::unix::process::ExitStatusExt;
    let code = match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => EXIT_TRANSPORT,
    };
    let name = &srun.route.name;
    if let Some(why) = seen.refused {
        let code = if why.contains("controller") {
            EXIT_TRANSPORT
        } else if why.contains("partition") {
            EXIT_USAGE
        } else {
            EXIT_NOT_FOUND
        };
        let slots: Vec<String> = srun.slots.iter().map(ToString::to_string).collect();
        return Err(Error::new(
            code,
            format!(
                "Slurm route `{name}`: no job started for `{}` (constraint {}): {why}",
                req.program,
                slots.join("|")
            ),
        )
        .not_started());
    }
    if let Some(line) = seen.exec_failed {
        return Err(Error::new(
            EXIT_NOT_FOUND,
            format!(
                "Slurm route `{name}`: the node could not start the launcher {} ({line}); \
                 install fatbin on the nodes or set `launcher`",
                srun.route.launcher().display()
            ),
        ));
    }
    if let Some(line) = seen.ended {
        return Err(Error::new(
            code.max(1),
            format!(
                "Slurm route `{name}`: `{}` was stopped by Slurm: {line}",
                req.program
            ),
        ));
    }
    Ok(code)
}

/// The lines `fatbin which PROG --explain` shows for the Slurm route.
pub(crate) fn explain(req: &Request<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    match plan(req) {
        Ok(srun) => {
            writeln!(
                out,
                "  slurm: route {} ({}), slots {}",
                srun.route.name,
                srun.route.source.name(),
                srun.slots
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            if let Some(p) = &srun.route.entry.partition {
                writeln!(out, "    partition: {p}")?;
            }
            writeln!(out, "    exported: {}", srun.exported.join(","))?;
            let words: Vec<String> = std::iter::once(OsStr::new("srun"))
                .chain(srun.args.iter().map(OsString::as_os_str))
                .map(|w| shown_word(w.as_bytes()))
                .collect();
            writeln!(out, "    runs: {}", words.join(" "))
        }
        Err(e) => writeln!(out, "  slurm: unavailable: {e}"),
    }
}

/// A word as a shell would need it typed (for reading, not for running).
fn shown_word(w: &[u8]) -> String {
    let plain = !w.is_empty()
        && w.iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:+@%|".contains(b));
    if plain && !w.contains(&b'|') {
        String::from_utf8_lossy(w).into_owned()
    } else {
        let mut q = Vec::new();
        crate::quote::push_quoted(&mut q, w);
        String::from_utf8_lossy(&q).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srun_lines_are_told_apart_from_the_program() {
        let seen = relay(
            &b"hello\nsrun: error: Unable to allocate resources: Requested node configuration is not available\n"[..],
        );
        assert_eq!(
            seen.refused.as_deref(),
            Some("Requested node configuration is not available")
        );
        let seen = relay(&b"slurmstepd: error: execve(): /x/fatbin: Exec format error\nsrun: error: v3: task 0: Exited with exit code 8"[..]);
        assert!(seen.refused.is_none() && seen.exec_failed.is_some());
        let seen = relay(
            &b"slurmstepd-arm: error: *** STEP 34.0 ON arm CANCELLED AT 2026-11-30T15:17:30 ***\n"
                [..],
        );
        assert!(seen.ended.is_some());
        let seen =
            relay(&b"slurmstepd-v3: error: execve(): /x/fatbin: No such file or directory\n"[..]);
        assert!(seen.exec_failed.is_some());
        let seen = relay(&b"program says srun: error: Unable to allocate resources: no\n"[..]);
        assert!(seen.refused.is_none());
        assert!(is_task_report(
            b"srun: error: arm: task 0: Exited with exit code 3\n"
        ));
        assert!(is_task_report(b"srun: error: v3: task 0: Killed\n"));
        assert!(!is_task_report(
            b"srun: error: Unable to allocate resources: x\n"
        ));
    }

    #[test]
    fn slot_features_skip_other_features() {
        let f: Vec<String> = ["x86_64", "gpu", "x86_64-v3", "aarch64"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let s: Vec<String> = slot_features(&f).iter().map(ToString::to_string).collect();
        assert_eq!(s, ["x86_64", "x86_64-v3", "aarch64"]);
    }
}
