//! fatbin-migrate: running a request on another node when this host can run no slot of it.
//!
//! The interface is small: a [`Request`] (the program, its manifest, its slots best first, the
//! command line), an [`Engine`] (the route the request takes: [`Engine::Ssh`], the nodes of the
//! inventory over OpenSSH, or [`Engine::Slurm`], the site's scheduler through `srun`, see
//! [`slurm`]), and the result of
//! [`Engine::run`]: the exit status the launcher exits with, or one [`Error`] that carries its
//! own. The node inventory ([`nodes`]) is public because `fatbin nodes` edits it, and
//! [`probe::Prober`] asks nodes what they run.
//!
//! The ssh route: pick the nodes of the inventory ([`nodes`]) that run the best slot they can,
//! order equally good ones by the balancing policy (`balance`) and skip those recently found
//! down (`faults`); open or reuse a master connection (`ssh`); copy the binary first when the
//! node lacks the shared ROOT (`ship`); run the quoted wrapper (`remote`, `quote`) and relay
//! its streams, status and signals (`session`); failures are worded in `messages`.
//!
//! Exit statuses (docs/migration.md; the numbers live in `fatbin_layout::exit`): the program's
//! own (128+N after signal N); [`EXIT_TRANSPORT`] (255) with a `fatbin:` message when no node
//! could be reached or the connection was lost; 127 when no node runs any slot or the binary is
//! missing on the node; 126 when the caller's directory does not exist there; 2 for a bad
//! inventory.

mod balance;
mod faults;
mod handshake;
mod messages;
pub mod nodes;
#[cfg(test)]
mod own_process;
pub mod probe;
mod quote;
mod remote;
mod session;
mod ship;
mod signals;
pub mod slurm;
mod ssh;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

pub use fatbin_layout::exit::{EXIT_CANNOT_EXECUTE, EXIT_NOT_FOUND, EXIT_TRANSPORT, EXIT_USAGE};
use fatbin_layout::{Manifest, SlotName};

use self::balance::Policy;
use self::faults::{Down, Faults};
use self::handshake::{door_pause, ConnectFailure, DOOR_RETRIES};
use self::messages::{all_down_message, no_node_message, not_started_message};
use self::nodes::{Inventory, Node, Paths};
use self::session::{Ended, NotStarted, Terminal};
use self::ssh::Ssh;

/// Variables forwarded to the remote program besides those named in `FATBIN_ENV`.
const ENV_ALLOWLIST: [&str; 6] = ["LANG", "LANGUAGE", "TZ", "COLORTERM", "NO_COLOR", "TERM"];

/// A request to run `program` somewhere else.
#[derive(Debug)]
pub struct Request<'a> {
    /// The layout root on this node.
    pub root: &'a Path,
    pub program: &'a str,
    pub manifest: &'a Manifest,
    /// The program's slots, best first for the nodes to choose from.
    pub slots: &'a [SlotName],
    /// `argv[0]` as the user typed it, and the arguments after it.
    pub argv0: &'a OsStr,
    pub args: &'a [OsString],
}

/// The route a migrated request takes: the engine that finds a node and runs it there.
///
/// Every engine follows the same rules (docs/migration.md): same streams, exit status and
/// signals as a local run, and a request never runs twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Engine {
    /// The nodes of the inventory (`nodes.toml`), over the system's OpenSSH client.
    Ssh,
    /// The site's Slurm scheduler (`[slurm.NAME]` in `nodes.toml`), through `srun`.
    Slurm,
}

impl Engine {
    /// The name `FATBIN_FALLBACK` and `which --explain` use for the route.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Ssh => "nodes",
            Engine::Slurm => "slurm",
        }
    }

    /// Whether the route is configured for the layout at `root` (cheap: a stat per inventory
    /// file, so the launcher can ask it on every run that needs a fallback).
    pub fn is_configured(self, root: &Path) -> bool {
        match self {
            Engine::Ssh => Paths::new(Some(root)).any_exists(),
            // Parses the files: asked only when no slot runs here.
            Engine::Slurm => slurm::load(&Paths::new(Some(root))).is_ok_and(|r| !r.is_empty()),
        }
    }

    /// Runs the request on a node that can run one of its slots: `Ok` with the program's exit
    /// status (128+N after signal N), or the failure with the status to exit with.
    pub fn run(self, req: &Request<'_>) -> Result<i32, Error> {
        ignore_sigpipe();
        match self {
            Engine::Ssh => run_ssh(req),
            Engine::Slurm => slurm::run(req),
        }
    }

    /// Writes the lines `fatbin which PROG --explain` shows for this route.
    pub fn explain(self, req: &Request<'_>, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            Engine::Ssh => explain_ssh(req, out),
            Engine::Slurm => slurm::explain(req, out),
        }
    }
}

/// A failed migration: what happened, in words for the user, and the exit status for it.
#[derive(Debug)]
pub struct Error {
    code: i32,
    message: String,
    /// False only when the program provably did not start (nothing ran, no input was read).
    may_have_started: bool,
}

impl Error {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            may_have_started: true,
        }
    }

    /// Marks a failure that happened before anything of the request ran.
    pub(crate) fn not_started(mut self) -> Error {
        self.may_have_started = false;
        self
    }

    /// Whether the program may have started: then the request must not run anywhere else
    /// (a request never runs twice); when not, the launcher may try its next fallback.
    pub fn may_have_started(&self) -> bool {
        self.may_have_started
    }

    /// A bad inventory, setting or `fatbin nodes` argument.
    pub fn usage(message: impl Into<String>) -> Error {
        Error::new(EXIT_USAGE, message)
    }

    /// The exit status for this failure (one of `fatbin_layout::exit`).
    pub fn exit_code(&self) -> i32 {
        self.code
    }

    /// Prints `fatbin: MESSAGE` on stderr and returns the exit status.
    pub fn report(self) -> i32 {
        let _ = writeln!(std::io::stderr(), "fatbin: {}", self.message);
        self.code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for String {
    fn from(e: Error) -> String {
        e.message
    }
}

fn fail<T>(code: i32, message: impl Into<String>) -> Result<T, Error> {
    Err(Error::new(code, message))
}

/// Nodes to try with the slot each runs, best first; then the nodes marked down with the slot
/// each would run, oldest mark first (tried only when every other candidate failed).
type Candidates<'i> = (Vec<(&'i Node, SlotName)>, Vec<(&'i Node, SlotName, Down)>);

/// The loaded inventory and the settings derived from it.
#[derive(Debug)]
struct Plan {
    inventory: Inventory,
    policy: Policy,
    cache_dir: PathBuf,
    faults: Faults,
}

impl Plan {
    fn load(root: &Path) -> Result<Plan, Error> {
        let inventory = Inventory::load(&Paths::new(Some(root)))?;
        let policy = match std::env::var("FATBIN_BALANCE") {
            Ok(p) if !p.is_empty() => Policy::parse(&p),
            _ => Policy::parse(
                inventory
                    .settings
                    .balance
                    .as_deref()
                    .unwrap_or("round-robin"),
            ),
        }
        .or_else(|e| fail(EXIT_USAGE, e))?;
        let cache_dir = ssh::cache_base().or_else(|e| fail(EXIT_USAGE, e))?;
        let faults = Faults::new(&cache_dir);
        Ok(Plan {
            inventory,
            policy,
            cache_dir,
            faults,
        })
    }

    /// Candidates best slot first, balanced within a slot; and the nodes marked down.
    fn candidates(&self, slots: &[SlotName], ssh: Option<&Ssh>, advance: bool) -> Candidates<'_> {
        let down = self.faults.current(self.inventory.settings.down_for());
        let mut marked = Vec::new();
        let mut groups: Vec<Vec<&Node>> = vec![Vec::new(); slots.len()];
        for node in &self.inventory.nodes {
            let Some((rank, slot)) = node.best_slot(slots) else {
                continue;
            };
            let key = ssh::connection_key(node);
            match down.iter().find(|d| d.key == key) {
                Some(d) => marked.push((node, slot, d.clone())),
                None => groups[rank].push(node),
            }
        }
        let mut out = Vec::new();
        for (rank, group) in groups.iter_mut().enumerate() {
            balance::order(self.policy, group, &self.cache_dir, ssh, advance);
            out.extend(group.iter().map(|n| (*n, slots[rank])));
        }
        // The longest-down node first: it has had the most time to come back.
        marked.sort_by_key(|(_, _, d)| d.since);
        (out, marked)
    }
}

fn run_ssh(req: &Request<'_>) -> Result<i32, Error> {
    // From here on a SIGINT, SIGTERM or SIGHUP is noted rather than fatal, so that it can end
    // the request cleanly: before the program started, nothing may run anywhere after it.
    let _signals = signals::Catch::install();
    let plan = Plan::load(req.root)?;
    signals::check(req)?;
    let ssh_client = Ssh::new(&plan.inventory.settings).or_else(|e| fail(EXIT_TRANSPORT, e))?;
    // A client that cannot run is this machine's problem: say so once, mark no node down.
    if let Err(e) = std::fs::metadata(&ssh_client.program).and_then(|m| {
        use std::os::unix::fs::PermissionsExt;
        if m.is_file() && m.permissions().mode() & 0o111 != 0 {
            Ok(())
        } else {
            Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
        }
    }) {
        return Err(Error::new(
            EXIT_TRANSPORT,
            format!(
                "cannot migrate `{}`: the ssh client {} cannot run: {e} (check FATBIN_SSH)",
                req.program,
                ssh_client.program.display()
            ),
        )
        .not_started());
    }
    let (candidates, marked) = plan.candidates(req.slots, Some(&ssh_client), true);
    if candidates.is_empty() && marked.is_empty() {
        // Nothing was attempted: the next fallback may run it.
        return Err(
            Error::new(EXIT_NOT_FOUND, no_node_message(req, &plan.inventory)).not_started(),
        );
    }
    let cwd = std::env::current_dir().or_else(|e| {
        fail(
            EXIT_CANNOT_EXECUTE,
            format!(
                "cannot migrate `{}`: the working directory is unreadable: {e}",
                req.program
            ),
        )
    })?;
    let term = Terminal::detect();
    let env = forwarded_env(req.argv0, term.tty);
    let env_refs: Vec<(String, &OsStr)> = env
        .iter()
        .map(|(k, v)| (k.clone(), v.as_os_str()))
        .collect();
    let args: Vec<&OsStr> = req.args.iter().map(OsString::as_os_str).collect();
    let shipped = ship::Shipped::new(&plan.cache_dir);
    let mut failures: Vec<String> = Vec::new();
    // 255 unless every attempt got as far as the node and failed there for another reason.
    let mut code_if_all_fail = None;
    // Nodes marked down come after every other candidate, oldest mark first: a blip must not
    // leave a request with nowhere to go while the nodes may well be back.
    let attempts = candidates
        .into_iter()
        .map(|(node, slot)| (node, slot, None))
        .chain(marked.iter().map(|(node, slot, d)| (*node, *slot, Some(d))))
        .collect();
    let mut seats = SeatQueue::new(attempts);
    'nodes: while let Some((node, slot, mark, mut seat)) = seats.next(&ssh_client, &mut failures) {
        signals::check(req)?;
        // After a failure, skip a node another run found down meanwhile: a run that meets a
        // frozen rack pays for the first of its nodes, not for each. (Nodes marked down before
        // this run chose are tried anyway, last.)
        if !failures.is_empty() && mark.is_none() {
            if let Some(down) = newly_down(&plan, node) {
                failures.push(format!(
                    "node `{}` ({}): skipped, found down {} s ago by another run: {}",
                    node.name,
                    node.entry.ssh,
                    faults::now().saturating_sub(down.since),
                    down.reason
                ));
                continue;
            }
        }
        let tried_at = faults::now();
        let tried_anyway = mark.map_or(String::new(), |d| {
            format!(
                " (marked down {} s ago, tried anyway)",
                faults::now().saturating_sub(d.since)
            )
        });
        // Nothing ran on `node`: say so (OpenSSH's lines for a host key), remember it as down
        // when the node is to blame, unless its host key is the matter (that is shown on every
        // run, never skipped quietly), and try the next node.
        let unreachable = |failure: ConnectFailure, failures: &mut Vec<String>| {
            failure.show(node);
            if failure.host_key.is_none() && faults::blames_node(&failure.reason) {
                plan.faults.mark_down(node, &failure.reason, tried_at, mark);
            }
            failures.push(format!(
                "node `{}` ({}): {}{tried_anyway}",
                node.name, node.entry.ssh, failure.reason
            ));
        };
        // Shipping needs the connection before the session: open the master explicitly.
        if !seat.warm && needs_shipping(req, node, slot, &shipped) {
            if let Err(failure) = ssh_client.open_master(node, &mut seat) {
                // Nothing ran: only the connection was attempted. Remember, and try the next.
                code_if_all_fail = Some(EXIT_TRANSPORT);
                unreachable(failure, &mut failures);
                continue;
            }
        }
        // Cold: one handshake per node at a time; the others wait for its master.
        let handshake = if seat.warm {
            None
        } else {
            match ssh_client.handshake(node, &mut seat) {
                Ok(handshake) => handshake,
                Err(failure) => {
                    code_if_all_fail = Some(EXIT_TRANSPORT);
                    unreachable(failure, &mut failures);
                    continue;
                }
            }
        };
        let checker = node.checker_on_node();
        let mut reshipped = false;
        let mut door_retries = 0;
        loop {
            signals::check(req)?;
            let binary = match binary_on_node(req, node, slot, &ssh_client, &seat, &shipped) {
                Ok(binary) => binary,
                Err(e) => {
                    // Shipping only copies a file: nothing of the request ran yet.
                    signals::check(req)?;
                    return Err(e);
                }
            };
            let script = remote::RemoteCommand {
                cwd: cwd.as_os_str().as_bytes(),
                binary: &binary,
                binary_kind: if node.entry.shared {
                    remote::BinaryKind::LayoutSlot
                } else {
                    remote::BinaryKind::CachedCopy
                },
                args: &args,
                argv0: req.argv0.as_bytes(),
                env: &env_refs,
                checker: checker.as_ref().map(|c| c.as_os_str().as_bytes()),
            }
            .script();
            let cold = !seat.warm;
            match session::run(&ssh_client, node, &seat, handshake.as_ref(), &script, term) {
                Ended::Finished(code) => {
                    plan.faults.mark_up(node);
                    return Ok(code);
                }
                Ended::Unreachable(failure) => {
                    // Cut at the door before anything ran (a full MaxStartups queue): try the
                    // same node again, still holding its handshake.
                    if cold && failure.cut_at_the_door() && door_retries < DOOR_RETRIES {
                        door_retries += 1;
                        std::thread::sleep(door_pause(door_retries));
                        continue;
                    }
                    if let Some(h) = &handshake {
                        h.failed(&failure);
                    }
                    code_if_all_fail = Some(EXIT_TRANSPORT);
                    unreachable(failure, &mut failures);
                    continue 'nodes;
                }
                Ended::Lost(detail) => {
                    let message = format!(
                        "the connection to node `{}` ended while `{}` was running there \
                         ({detail}); it was stopped there, its work may be incomplete",
                        node.name, req.program
                    );
                    return fail(EXIT_TRANSPORT, message);
                }
                Ended::NotStarted(why, detail) => {
                    if why == NotStarted::TooLong {
                        // A limit of this machine, the same for every node: nothing was sent,
                        // and a later fallback (which does not go through ssh) may serve it.
                        let (code, message) =
                            not_started_message(req, node, slot, &cwd, &binary, why, &detail);
                        return Err(Error::new(code, message).not_started());
                    }
                    if why != NotStarted::Transport {
                        // The wrapper answered: whatever went wrong, the node is not down.
                        plan.faults.mark_up(node);
                    }
                    signals::check(req)?;
                    let (code, message) =
                        not_started_message(req, node, slot, &cwd, &binary, why, &detail);
                    if why == NotStarted::Missing && !node.entry.shared {
                        if let Some(sha) = slot_sha(req, slot) {
                            shipped.forget(node, sha);
                        }
                        // The node's cache lost the copy: ship it again and retry, once, when no
                        // stdin was forwarded (nothing of it can have been consumed).
                        if term.no_stdin && !reshipped {
                            reshipped = true;
                            continue;
                        }
                    }
                    // Without forwarded stdin nothing was consumed, so another node may try; with
                    // stdin, ssh may already have read some of it and a retry would lose it.
                    if term.no_stdin && why != NotStarted::Transport {
                        failures.push(message);
                        code_if_all_fail = code_if_all_fail.or(Some(code));
                        continue 'nodes;
                    }
                    return fail(code, message);
                }
            }
        }
    }
    signals::check(req)?;
    // Every way out of the loop above that may have started the program returns; reaching
    // here, nothing ran anywhere, so the launcher's next fallback may serve the request.
    Err(Error::new(
        code_if_all_fail.unwrap_or(EXIT_TRANSPORT),
        all_down_message(req, &failures),
    )
    .not_started())
}

/// `node`'s down mark, made by another run after this one chose its candidates (a node marked
/// then is among the marked ones, tried last and never skipped here).
fn newly_down(plan: &Plan, node: &Node) -> Option<Down> {
    let key = ssh::connection_key(node);
    plan.faults
        .current(plan.inventory.settings.down_for())
        .into_iter()
        .find(|d| d.key == key)
}

/// A node to try, the slot it would run, and its down mark when it is tried anyway.
type Attempt<'i> = (&'i Node, SlotName, Option<&'i Down>);

/// The candidates in order, each with a seat on its masters. A node whose seats are all taken
/// is passed over for now; when no other candidate is left, the run queues for the first seat
/// that frees on any of them, at most [`ssh::SEAT_WAIT`] (the per-node cap, docs/migration.md).
struct SeatQueue<'i> {
    ahead: std::collections::VecDeque<Attempt<'i>>,
    full: Vec<Attempt<'i>>,
    deadline: Option<std::time::Instant>,
}

impl<'i> SeatQueue<'i> {
    fn new(candidates: Vec<Attempt<'i>>) -> SeatQueue<'i> {
        SeatQueue {
            ahead: candidates.into(),
            full: Vec::new(),
            deadline: None,
        }
    }

    fn next(
        &mut self,
        ssh_client: &Ssh,
        failures: &mut Vec<String>,
    ) -> Option<(&'i Node, SlotName, Option<&'i Down>, ssh::Seat)> {
        while let Some((node, slot, mark)) = self.ahead.pop_front() {
            match ssh_client.try_seat(node) {
                Ok(Some(seat)) => return Some((node, slot, mark, seat)),
                Ok(None) => self.full.push((node, slot, mark)),
                Err(reason) => failures.push(format!(
                    "node `{}` ({}): {reason}",
                    node.name, node.entry.ssh
                )),
            }
        }
        if self.full.is_empty() {
            return None;
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| std::time::Instant::now() + ssh::SEAT_WAIT);
        loop {
            for i in 0..self.full.len() {
                let (node, slot, mark) = self.full[i];
                match ssh_client.try_seat(node) {
                    Ok(Some(seat)) => {
                        self.full.remove(i);
                        return Some((node, slot, mark, seat));
                    }
                    Ok(None) => {}
                    Err(reason) => {
                        self.full.remove(i);
                        failures.push(format!(
                            "node `{}` ({}): {reason}",
                            node.name, node.entry.ssh
                        ));
                        break;
                    }
                }
            }
            if self.full.is_empty() {
                return None;
            }
            if std::time::Instant::now() >= deadline {
                for (node, _, _) in self.full.drain(..) {
                    failures.push(format!(
                        "node `{}` ({}): {}",
                        node.name,
                        node.entry.ssh,
                        ssh_client.busy_message(node)
                    ));
                }
                return None;
            }
            std::thread::sleep(handshake::POLL);
        }
    }
}

fn needs_shipping(req: &Request<'_>, node: &Node, slot: SlotName, shipped: &ship::Shipped) -> bool {
    !node.entry.shared && slot_sha(req, slot).is_some_and(|sha| !shipped.contains(node, sha))
}

fn slot_sha<'m>(req: &'m Request<'_>, slot: SlotName) -> Option<&'m str> {
    req.manifest.slots.get(&slot).map(|i| i.sha256.as_str())
}

/// The binary's path on the node: the shared ROOT's file of the slot (its content file, which
/// an install never replaces; see docs/layout.md), or the shipped copy.
fn binary_on_node(
    req: &Request<'_>,
    node: &Node,
    slot: SlotName,
    ssh_client: &Ssh,
    seat: &ssh::Seat,
    shipped: &ship::Shipped,
) -> Result<Vec<u8>, Error> {
    let layout = fatbin_layout::Layout::new(node.root_on_node(req.root));
    if node.entry.shared {
        return Ok(layout
            .file_of(req.manifest, req.program, slot)
            .into_os_string()
            .into_vec());
    }
    let Some(sha) = slot_sha(req, slot) else {
        return fail(
            EXIT_NOT_FOUND,
            format!("the manifest of `{}` has no slot {slot}", req.program),
        );
    };
    if !shipped.contains(node, sha) {
        let local = fatbin_layout::Layout::new(req.root).file_of(req.manifest, req.program, slot);
        let (actual, _) = fatbin_layout::fsutil::sha256_file(&local).or_else(|e| {
            fail(
                EXIT_NOT_FOUND,
                format!("cannot read {}: {e}", local.display()),
            )
        })?;
        if actual != sha {
            return fail(
                EXIT_CANNOT_EXECUTE,
                format!(
                    "{} does not match its manifest (sha256 {actual}, manifest says {sha}); \
                     not shipping it to `{}`: reinstall the program",
                    local.display(),
                    node.name
                ),
            );
        }
        ship::ship(ssh_client, node, seat, &local, sha).or_else(|e| fail(EXIT_TRANSPORT, e))?;
        shipped.record(node, sha);
    }
    Ok(ship::cached_path(node, sha))
}

/// The allowlist, every `LC_*`, the names in `FATBIN_ENV`, and `FATBIN_ARGV0`.
fn forwarded_env(argv0: &OsStr, tty: bool) -> Vec<(String, OsString)> {
    let extra: Vec<String> = std::env::var("FATBIN_ENV")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let mut env: Vec<(String, OsString)> = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let wanted = (ENV_ALLOWLIST.contains(&name) && (name != "TERM" || tty))
            || name.starts_with("LC_")
            || extra.iter().any(|e| e == name);
        if wanted && quote::is_env_name(name) && name != "FATBIN_ARGV0" {
            env.push((name.to_owned(), value));
        }
    }
    for name in &extra {
        if !quote::is_env_name(name) {
            let _ = writeln!(
                std::io::stderr(),
                "fatbin: warning: FATBIN_ENV names `{name}`, which is not a variable name; not forwarded"
            );
        }
    }
    env.sort();
    env.push(("FATBIN_ARGV0".to_owned(), argv0.to_owned()));
    env
}

fn explain_ssh(req: &Request<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let plan = match Plan::load(req.root) {
        Ok(plan) => plan,
        Err(e) => return writeln!(out, "  migration: unavailable: {e}"),
    };
    if plan.inventory.nodes.is_empty() {
        return writeln!(
            out,
            "  migration: no nodes configured (fatbin nodes add NAME --ssh HOST --slot SLOT)"
        );
    }
    let (candidates, marked) = plan.candidates(req.slots, None, false);
    writeln!(out, "  migration: balance {}", plan.policy.name())?;
    for (i, (node, slot)) in candidates.iter().enumerate() {
        let where_ = if node.entry.shared {
            format!(
                "runs {}",
                fatbin_layout::Layout::new(node.root_on_node(req.root))
                    .file_of(req.manifest, req.program, *slot)
                    .display()
            )
        } else {
            format!("ships slot {slot} to {}", node.cache_on_node())
        };
        writeln!(
            out,
            "    {}. node {} (ssh {}) slot {slot}: {where_}{}",
            i + 1,
            node.name,
            node.entry.ssh,
            if i == 0 { "  <- next" } else { "" }
        )?;
    }
    let longest = plan.inventory.settings.down_for();
    let now = faults::now();
    for (node, _, d) in &marked {
        let ago = now.saturating_sub(d.since);
        writeln!(
            out,
            "    -  node {} (ssh {}): skipped, marked down {ago} s ago ({} failure{} in a row, \
             skipped {} s more; tried anyway if every other node fails): {}",
            node.name,
            node.entry.ssh,
            d.failures,
            if d.failures == 1 { "" } else { "s" },
            d.period(longest).saturating_sub(ago),
            d.reason
        )?;
    }
    for node in &plan.inventory.nodes {
        if node.best_slot(req.slots).is_none() {
            writeln!(out, "    -  node {}: runs none of these slots", node.name)?;
        }
    }
    Ok(())
}

/// Closes the master connections of node `name` (or of every node) and removes the state no
/// run needs any more: free lock files of closed masters, connection proofs of dead runs,
/// round-robin counters not advanced for a day. Returns one line per closed master, then one
/// summary line (`fatbin nodes disconnect`).
pub fn disconnect(root: Option<&Path>, name: Option<&str>) -> Result<Vec<String>, Error> {
    let inventory = Inventory::load(&Paths::new(root))?;
    if let Some(name) = name {
        if inventory.get(name).is_none() {
            return Err(Error::usage(format!("no node `{name}` in the inventory")));
        }
    }
    let ssh_client = Ssh::new(&inventory.settings).or_else(|e| fail(EXIT_TRANSPORT, e))?;
    let done = ssh::disconnect(&ssh_client, name);
    let cache_dir = ssh::cache_base().or_else(|e| fail(EXIT_USAGE, e))?;
    let counters = balance::clean_counters(&cache_dir, std::time::Duration::from_secs(86400));
    let mut lines: Vec<String> = done
        .closed
        .iter()
        .map(|socket| format!("closed {socket}"))
        .collect();
    lines.push(format!(
        "{} connection{} closed, {} stale file{} removed",
        done.closed.len(),
        if done.closed.len() == 1 { "" } else { "s" },
        done.cleaned + counters,
        if done.cleaned + counters == 1 {
            ""
        } else {
            "s"
        },
    ));
    Ok(lines)
}

/// The launcher keeps SIGPIPE at its default for the programs it execs; a migration (and
/// `fatbin nodes`, which runs ssh too) relays streams and feeds ssh, where a closed pipe must
/// be an error to handle, not death. [`Engine::run`] calls it itself.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition has no memory effects.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
