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
//! - `--ntasks=1 --nodes=1`, `--job-name=PROG.HOST.PID` (unique: signals find the step by it),
//!   `--chdir` the caller's directory, `--quiet`, `--disable-status`
//!   (one Ctrl-C reaches the program instead of printing srun's status), the partition and the
//!   route's extra `srun_args`;
//! - `--export` the same variables the ssh route forwards (the allowlist, `LC_*`, the names in
//!   `FATBIN_ENV`), plus `PATH` (as srun's own default would, so the launcher and whatever the
//!   program starts are found on the node) and `FATBIN_FALLBACK=none`;
//! - the command `LAUNCHER run --root ROOT --argv0 ARGV0 PROG ARGS…`: the launcher on the node
//!   (default: `fatbin` in the directory of this one, which on a cluster is the same path on
//!   every node; `fatbin-full` beside it is started directly, as `fatbin run` would) picks
//!   that node's best slot itself. srun passes argv as it is (no shell), so
//!   arguments arrive byte-exact, and `--argv0` keeps the name typed (slurmstepd would pass the
//!   path it found).
//!
//! Inside an allocation (`SLURM_JOB_ID`) whose nodes include one with a Feature of the request,
//! the request is a step of it on that node (`--nodelist` instead of the constraint); else a
//! job of its own.
//!
//! srun's stderr is relayed through the launcher, unchanged, so that srun's own failures can
//! be told apart from the program's exit status: a line `srun: error: Unable to allocate
//! resources: …` is reported with an exit status of its own (docs/migration.md), and hands the
//! request on to the next fallback only once `squeue` shows that no job of the request was
//! given a node (the program's own stderr could carry the same line); anything else is the
//! program's.
//!
//! Signals: srun forwards a Ctrl-C (one, with `--disable-status`), SIGUSR1 and SIGUSR2, but
//! turns SIGTERM, SIGHUP and SIGQUIT into killing the step, and a second SIGINT within a second
//! too; SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to the launcher it delivers to the step itself
//! with `scancel --signal`, so the program can catch them.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use fatbin_layout::exit::{EXIT_NOT_FOUND, EXIT_TRANSPORT, EXIT_USAGE};
use fatbin_layout::SlotName;
use serde::{Deserialize, Serialize};

use crate::nodes::{full_launcher_of, NodesFile, Paths, Source};
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
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(Error::new(
            EXIT_TRANSPORT,
            if controller_unreachable(&why) {
                format!("the Slurm controller does not answer (sinfo: {why})")
            } else {
                format!("sinfo failed: {why}")
            },
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

    /// What srun starts on the node: [`full_launcher_of`] the launcher, the one `fatbin run`
    /// always hands over to, so each request costs one exec less on the node (measured:
    /// docs/migration.md).
    fn node_command(&self) -> PathBuf {
        full_launcher_of(&self.launcher())
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
    /// The job (or step) name, unique to this request, by which a signal finds its step.
    name: String,
    /// Inside an allocation with a node that has a Feature of the request: the job, and the
    /// node the request runs on as a step of it.
    step_of: Option<(String, String)>,
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
        let name = job_name(req.program);
        let step_of = allocation_node(&slots);
        let mut args: Vec<OsString> = vec![
            "--ntasks=1".into(),
            "--nodes=1".into(),
            format!("--job-name={name}").into(),
        ];
        match &step_of {
            // A step of the allocation, on its node that has the best matching Feature.
            Some((_, node)) => args.push(format!("--nodelist={node}").into()),
            None => args.extend([
                format!("--constraint={}", constraint.join("|")).into(),
                format!("--prefer={}", constraint[0]).into(),
            ]),
        }
        let mut chdir = OsString::from("--chdir=");
        chdir.push(&cwd);
        args.push(chdir);
        args.push(format!("--export={}", exported.join(",")).into());
        if std::env::var_os("FATBIN_SLURM_VERBOSE").is_none_or(|v| v.is_empty()) {
            args.push("--quiet".into());
        }
        args.push("--disable-status".into());
        if let (Some(p), None) = (&route.entry.partition, &step_of) {
            args.push(format!("--partition={p}").into());
        }
        args.extend(route.entry.srun_args.iter().map(OsString::from));
        args.push("--".into());
        args.push(route.node_command().into());
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
            name,
            step_of,
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

/// A job name unique to this request (`PROG.HOST.PID`): a signal for the program finds the
/// request's step by it (`squeue --steps`), and `squeue` users still see the program's name.
fn job_name(program: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let clean = |s: &str| -> String {
        s.trim()
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect()
    };
    format!(
        "{}.{}.{}",
        clean(program),
        clean(host.split('.').next().unwrap_or_default()),
        std::process::id()
    )
}

/// Inside an allocation (`SLURM_JOB_ID` and its node list set, as under `salloc` or in a batch
/// script): the job and its node with the best of `slots` (best first) as a Feature, if one
/// has it. Anything unknown (no node list, `sinfo` failing) means a job of its own.
fn allocation_node(slots: &[SlotName]) -> Option<(String, String)> {
    let job = ["SLURM_JOB_ID", "SLURM_JOBID"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|j| !j.is_empty()))?;
    let list = ["SLURM_JOB_NODELIST", "SLURM_NODELIST"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|l| !l.is_empty()))?;
    let out = Command::new(client("sinfo").ok()?)
        .args(["--noheader", "--Node", "--format=%N %f"])
        .arg(format!("--nodes={list}"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let nodes: Vec<(String, Vec<String>)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (node, features) = l.trim().split_once(' ')?;
            Some((
                node.to_owned(),
                features.split(',').map(|f| f.trim().to_owned()).collect(),
            ))
        })
        .collect();
    slots.iter().find_map(|slot| {
        let slot = slot.to_string();
        nodes
            .iter()
            .find(|(_, features)| features.contains(&slot))
            .map(|(node, _)| (job.clone(), node.clone()))
    })
}

/// The srun process to signal (0: none yet).
static SRUN_PID: AtomicI32 = AtomicI32::new(0);
/// The write end of the pipe through which the signal handler hands a signal to
/// [`deliver`] (-1: none).
static DELIVER_PIPE: AtomicI32 = AtomicI32::new(-1);
/// Set once a signal was delivered to the step through `scancel`: slurmstepd then reports the
/// step as "CANCELLED", which here means only that the program got the signal.
static DELIVERED: AtomicBool = AtomicBool::new(false);

/// Passes a signal sent to the launcher on to the program. A signal from the terminal (Ctrl-C;
/// `si_code` SI_KERNEL) reached srun already: they share the process group. SIGUSR1 and
/// SIGUSR2 srun forwards to the step itself. SIGTERM, SIGHUP and SIGQUIT it would turn into
/// killing the step, and a SIGINT it takes as a Ctrl-C: a second one within a second (the same
/// signal sent to the whole process group reaches srun directly too) kills the step. Those go
/// to the step through `scancel --signal` ([`deliver`]).
extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel hands the handler a valid siginfo.
    let code = unsafe { (*info).si_code };
    let pid = SRUN_PID.load(Ordering::SeqCst);
    if pid <= 0 || code == libc::SI_KERNEL {
        return;
    }
    let pipe = DELIVER_PIPE.load(Ordering::SeqCst);
    if matches!(
        sig,
        libc::SIGINT | libc::SIGTERM | libc::SIGHUP | libc::SIGQUIT
    ) && pipe >= 0
    {
        let byte = sig as u8;
        // SAFETY: write is async-signal-safe; a full pipe drops the signal, as the kernel
        // merges pending signals.
        unsafe { libc::write(pipe, std::ptr::addr_of!(byte).cast(), 1) };
    } else {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

fn forward_signals(step_name: String) {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
        // SAFETY: fds[0] is ours alone from here on.
        let from = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[0]) };
        let spawned = std::thread::Builder::new()
            .name("slurm-signals".into())
            .spawn(move || deliver(from, &step_name));
        if spawned.is_ok() {
            DELIVER_PIPE.store(fds[1], Ordering::SeqCst);
        }
    }
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: a plain sigaction with a handler that only calls kill and write.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Delivers each signal read from `from` to the request's step: `scancel --signal=N STEP`, the
/// step found by its name among the user's (`squeue --steps`). Until the step exists (the job
/// is still queued) nothing has started: the signal goes to srun, which cancels the job.
fn deliver(mut from: std::fs::File, step_name: &str) {
    let mut byte = [0u8; 1];
    while matches!(from.read(&mut byte), Ok(1)) {
        let sig = i32::from(byte[0]);
        let step = Command::new("squeue")
            .args(["--steps", "--me", "--noheader", "--format=%i %j"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
                    let (id, name) = l.trim().split_once(' ')?;
                    (name == step_name).then(|| id.to_owned())
                })
            });
        let delivered = step.is_some_and(|step| {
            DELIVERED.store(true, Ordering::SeqCst);
            Command::new("scancel")
                .arg(format!("--signal={sig}"))
                .arg(step)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        // Zero once srun was waited for: kill(0, ...) would signal our own process group.
        let pid = SRUN_PID.load(Ordering::SeqCst);
        if !delivered && pid > 0 {
            // SAFETY: signalling the srun we started and have not waited for yet.
            unsafe { libc::kill(pid, sig) };
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
                if !is_task_report(&line) && !is_delivery_report(&line) {
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
    if !is_task_report(&line) && !is_delivery_report(&line) {
        let _ = to.write_all(&line);
    }
    seen
}

/// slurmstepd's `*** STEP N ON NODE CANCELLED AT ... ***` after a signal this launcher
/// delivered with `scancel --signal`: the program got the signal, and a local run would have
/// printed nothing.
fn is_delivery_report(line: &[u8]) -> bool {
    DELIVERED.load(Ordering::SeqCst)
        && line.starts_with(b"slurmstepd")
        && String::from_utf8_lossy(line).contains("CANCELLED AT")
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
    if srun.step_of.is_none() {
        // Inside an allocation none of whose nodes has a Feature of the request, srun would
        // start a step of it on a node that cannot run it: the request is a job of its own.
        for var in ["SLURM_JOB_ID", "SLURM_JOBID"] {
            cmd.env_remove(var);
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(EXIT_TRANSPORT, format!("cannot run srun: {e}")).not_started())?;
    SRUN_PID.store(child.id() as i32, Ordering::SeqCst);
    forward_signals(srun.name.clone());
    let stderr = child.stderr.take().expect("piped");
    let relay = std::thread::spawn(move || relay(stderr));
    let status = child.wait();
    SRUN_PID.store(0, Ordering::SeqCst);
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
        let reason = if controller_unreachable(&why) {
            format!("the Slurm controller does not answer ({why})")
        } else {
            why.clone()
        };
        let code = if controller_unreachable(&why) {
            EXIT_TRANSPORT
        } else if why.contains("partition") {
            EXIT_USAGE
        } else {
            EXIT_NOT_FOUND
        };
        let slots: Vec<String> = srun.slots.iter().map(ToString::to_string).collect();
        let refused = |started: &str| {
            Error::new(
                code,
                format!(
                    "Slurm route `{name}`: {started} `{}` (constraint {}): {reason}",
                    req.program,
                    slots.join("|")
                ),
            )
        };
        // The line may be the program's own stderr (a script that runs srun itself): it proves
        // nothing ran only when no job of this request exists (a finished job stays listed for
        // the controller's MinJobAge, 300 s by default), or when the controller is unreachable
        // now too.
        match job_listed(&srun.name) {
            Some(false) => return Err(refused("no job started for").not_started()),
            None if controller_unreachable(&why) => {
                return Err(refused("no job started for").not_started())
            }
            None => return Err(refused("cannot tell whether a job started for")),
            Some(true) => {}
        }
    }
    if let Some(line) = seen.exec_failed {
        return Err(Error::new(
            EXIT_NOT_FOUND,
            format!(
                "Slurm route `{name}`: the node could not start the launcher {} ({line}); \
                 install fatbin on the nodes or set `launcher`",
                srun.route.node_command().display()
            ),
        ));
    }
    if let Some(line) = seen.ended.filter(|_| !DELIVERED.load(Ordering::SeqCst)) {
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

/// Whether the controller lists a job named `name` of this user that was given a node, in any
/// state (`None`: it did not answer). A job refused at submission may be listed too (FAILED,
/// reason BadConstraints), without a node: it never ran.
fn job_listed(name: &str) -> Option<bool> {
    let out = Command::new("squeue")
        .args(["--me", "--states=all", "--noheader", "--format=%N|%j"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .any(|(nodes, job)| job == name && !nodes.trim().is_empty()),
    )
}

/// Whether srun's or sinfo's reason says the controller did not answer: refused connections
/// (`Unable to contact slurm controller`) and a controller that accepts but never replies
/// (a frozen or overloaded slurmctld: `Socket timed out on send/recv operation`).
fn controller_unreachable(why: &str) -> bool {
    why.contains("Unable to contact slurm controller")
        || why.contains("Socket timed out")
        || why.contains("Zero Bytes were transmitted or received")
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
            match (&srun.step_of, &srun.route.entry.partition) {
                (Some((job, node)), _) => writeln!(
                    out,
                    "    inside allocation {job}: a step of it on {node}, which has the Feature"
                )?,
                (None, Some(p)) => writeln!(out, "    partition: {p}")?,
                (None, None) => {}
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
    fn an_unreachable_or_frozen_controller_is_told_apart() {
        // A stopped slurmctld, a frozen one, and reasons that are the cluster's answer.
        assert!(controller_unreachable(
            "Unable to contact slurm controller (connect failure)"
        ));
        assert!(controller_unreachable(
            "Socket timed out on send/recv operation"
        ));
        assert!(!controller_unreachable(
            "Requested node configuration is not available"
        ));
        assert!(!controller_unreachable("Invalid partition name specified"));
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
