//! `fatbin view`: a node-local resolved view of a layout, so that a call costs one exec.
//!
//! `fatbin view sync DIR` writes, for every program of ROOT, `DIR/PROG`: a symlink straight
//! to the slot this node runs (`ROOT/bin/PROG/SLOT`, the slot's name, which installs rename
//! over but never remove, rather than its content file, which goes two installs later: a view
//! on another node is not re-synced by an install here) when that can never be wrong here, and
//! otherwise a symlink to the program's ordinary shim (`ROOT/shims/PROG`), so the launcher
//! decides at every call. Like AFS's `@sys` or a Nix profile, per node, on the node's disk;
//! with `DIR` first on PATH, a program resolved once is started like a direct exec.
//!
//! A view must never make a node run a slot its CPU or C library cannot execute, even when
//! it is stale. So an entry points straight at a slot only when nothing that can change
//! under it matters: a static slot (no C library to be upgraded or removed) of the node's
//! own architecture that needs no CPU feature beyond that architecture's baseline (every
//! processor that runs the architecture runs it). A slot that needs CPU features (x86-64-v3)
//! or the node's C library goes through the launcher, which asks the CPU and the C library at
//! every call: a view copied to another machine, a CPU model changed under a virtual
//! machine, or a downgraded glibc then costs a launcher run, never a SIGILL. Sync makes the
//! launcher's full decision, checks before exec included, and writes a direct entry only for
//! a slot that passes them.
//!
//! `DIR/.fatbin-view` records what the view was made from: ROOT, ROOT's generation (a digest
//! of every program's manifest: any install or removal changes it), and this node's
//! fingerprint (processor and usable CPU features, C library). `fatbin view check DIR` says
//! what changed since; `cargo fatbin install`, `add` and `remove` re-sync the views of their
//! ROOT known on this node (`fatbin view refresh`), listed in
//! `$XDG_CACHE_HOME/fatbin/views-NODENAME`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fatbin_layout::{Layout, Libc};

use crate::args::{ArgError, Flag, Operands, Parsed, Spec, Table};
use crate::error::{Error, Result};
use crate::host::Host;
use crate::invocation::{self, Root};
use crate::plan::{self, Route};

/// The view's record of what it was made from.
pub(crate) const STATE_FILE: &str = ".fatbin-view";

const ROOT: Flag = Flag::value(
    "--root",
    "ROOT",
    "The layout root. Default: as for `fatbin run` ($FATBIN_ROOT, the shim's location, \
     ~/.local/share/fatbin).",
);
const HELP: Flag = Flag::stop("-h", "--help", "Print this help.");

const TABLE: Table = Table {
    program: "fatbin view",
    about: "fatbin view: a node-local directory of programs resolved for this node",
    globals: &[ROOT, HELP],
    globals_anywhere: true,
    commands: &[
        Spec {
            name: "sync",
            alias: None,
            flags: &[],
            operands: Operands::One("DIR"),
            about: "Write DIR/PROG for every program of ROOT: the slot this node runs when \
                    that is safe, else the program's shim; remove entries of programs gone.",
        },
        Spec {
            name: "check",
            alias: None,
            flags: &[],
            operands: Operands::One("DIR"),
            about: "Say whether DIR is up to date with ROOT and this node (exit 0), or what \
                    changed since the last sync (exit 1).",
        },
        Spec {
            name: "refresh",
            alias: None,
            flags: &[],
            operands: Operands::None,
            about: "Sync every view of ROOT known on this node (cargo fatbin install runs it).",
        },
    ],
    footer: "\
A direct entry is written only for a static slot of this processor that needs no CPU feature
beyond the architecture's baseline; every other program goes through its shim, so a stale
view never runs a slot this CPU or C library cannot execute. See docs/launcher.md.
",
};

/// Runs `fatbin view ARGS`; returns the exit status.
pub(crate) fn main(args: &[OsString], shim_root: Option<PathBuf>) -> i32 {
    let parsed = match TABLE.parse(args.to_vec()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "fatbin view: {}\n\nRun `fatbin view --help` for usage.",
                usage(e)
            );
            return fatbin_layout::exit::EXIT_USAGE;
        }
    };
    match run(parsed, shim_root) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fatbin: {e}");
            e.exit_code()
        }
    }
}

fn usage(e: ArgError) -> String {
    match e {
        ArgError::NoCommand => "no command given (sync, check, refresh)".into(),
        ArgError::UnknownCommand(c) => format!("unknown command `{c}` (sync, check, refresh)"),
        ArgError::UnknownFlag(f, _) => format!("unknown option `{f}`"),
        ArgError::MissingValue(f) => format!("{f} needs a value"),
        ArgError::MissingOperand(c, _) => format!("`fatbin view {c}` needs a directory"),
        ArgError::ExtraOperand(c, _) => format!("`fatbin view {c}` takes one directory"),
    }
}

fn run(mut p: Parsed, shim_root: Option<PathBuf>) -> Result<i32> {
    if p.stopped.is_some() {
        print!("{}", TABLE.help());
        return Ok(0);
    }
    let root = invocation::resolve_root(p.value("--root").map(PathBuf::from), shim_root)?;
    let root = Root {
        path: std::path::absolute(&root.path).map_err(|e| io_error(&root.path, e))?,
        source: root.source,
    };
    let dir = std::mem::take(&mut p.operands).into_iter().next();
    match (p.command, dir) {
        (Some("sync"), Some(dir)) => {
            let dir =
                std::path::absolute(PathBuf::from(dir)).map_err(|e| io_error(&root.path, e))?;
            let summary = sync(&root.path, &dir)?;
            println!("{summary}");
            remember_view(&root.path, &dir);
            Ok(0)
        }
        (Some("check"), Some(dir)) => check(&root.path, &PathBuf::from(dir)),
        (Some("refresh"), _) => {
            for dir in known_views(&root.path) {
                match sync(&root.path, &dir) {
                    Ok(summary) => println!("{summary}"),
                    Err(e) => eprintln!("fatbin: view {}: {e}", dir.display()),
                }
            }
            Ok(0)
        }
        _ => unreachable!("the table requires the operands"),
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::CannotExecute(format!("{}: {e}", path.display()))
}

/// What a view was made from; two equal fingerprints mean the same entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    root: String,
    generation: String,
    cpu: String,
    clib: String,
}

impl Fingerprint {
    const FIELDS: [&'static str; 4] = ["root", "generation", "cpu", "clib"];

    fn now(root: &Path) -> Result<Fingerprint> {
        let host = Host::detect();
        let cpu = format!(
            "{}: {}",
            host.arch.map_or("unknown".into(), |a| a.to_string()),
            host.usable_features().join(" ")
        );
        Ok(Fingerprint {
            root: root.display().to_string(),
            generation: generation(root)?,
            cpu,
            clib: crate::clib::describe(host.arch),
        })
    }

    fn values(&self) -> [&str; 4] {
        [&self.root, &self.generation, &self.cpu, &self.clib]
    }

    fn to_text(&self) -> String {
        let mut text = String::from(
            "# fatbin view: what DIR was made from (written by `fatbin view sync`; do not edit)\n",
        );
        for (name, value) in Self::FIELDS.iter().zip(self.values()) {
            let _ = writeln!(text, "{name}\t{value}");
        }
        text
    }

    fn parse(text: &str) -> Option<Fingerprint> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('\t'))
                .map(str::to_owned)
        };
        Some(Fingerprint {
            root: field("root")?,
            generation: field("generation")?,
            cpu: field("cpu")?,
            clib: field("clib")?,
        })
    }
}

/// ROOT's generation: a digest of every program's name and manifest. Every install, reinstall
/// or removal rewrites a manifest (or removes one), so it changes whenever the layout does.
fn generation(root: &Path) -> Result<String> {
    let layout = Layout::new(root);
    let mut all = Vec::new();
    for program in layout.programs().map_err(layout_error)? {
        let manifest = std::fs::read(layout.manifest_path(&program)).unwrap_or_default();
        all.extend_from_slice(program.as_bytes());
        all.push(0);
        all.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
        all.extend_from_slice(&manifest);
    }
    Ok(fatbin_layout::fsutil::sha256_bytes(&all))
}

fn layout_error(e: fatbin_layout::Error) -> Error {
    Error::from_layout(e)
}

/// Where `DIR/PROG` should point, and whether that is the slot itself.
fn entry_for(layout: &Layout, program: &str) -> (PathBuf, bool) {
    let shim = layout.shim_path(program);
    let Ok(manifest) = crate::program::read_manifest(layout, program) else {
        return (shim, false);
    };
    let Ok(decision) = plan::decide(layout, program, &manifest, None) else {
        return (shim, false);
    };
    let Ok(Route::Native { slot, .. }) = &decision.route else {
        return (shim, false);
    };
    let Some(info) = manifest.slots.get(slot) else {
        return (shim, false);
    };
    let needs_nothing = info.features.iter().all(|f| {
        fatbin_core::features::ALWAYS_SATISFIED.contains(&f.as_str())
            || (info.arch == fatbin_layout::Arch::X86_64
                && fatbin_core::features::X86_64_BASELINE.contains(&f.as_str()))
    });
    let own_arch = decision.host.arch == Some(info.arch);
    if info.libc == Libc::Static && slot.level.is_none() && needs_nothing && own_arch {
        // `SLOT`, not the content file the launcher runs: a view on another node is not
        // re-synced by an install here, and content files go two installs later, while
        // `SLOT` is always renamed over, never removed (see docs/launcher.md, Views).
        (layout.slot_path(program, *slot), true)
    } else {
        (shim, false)
    }
}

/// Makes `dir` the view of `root` on this node; returns a line saying what it holds.
fn sync(root: &Path, dir: &Path) -> Result<String> {
    let layout = Layout::new(root);
    let programs = layout.programs().map_err(layout_error)?;
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    // The fingerprint first: a change during the sync then shows as stale, never as current.
    let fingerprint = Fingerprint::now(root)?;
    let mut direct = 0;
    for program in &programs {
        let (target, is_slot) = entry_for(&layout, program);
        direct += usize::from(is_slot);
        let entry = dir.join(program);
        if std::fs::read_link(&entry).ok().as_deref() == Some(target.as_path()) {
            continue;
        }
        // A new link renamed over the old one: a concurrent call sees one or the other.
        let tmp = fatbin_layout::fsutil::temp_path_for(&entry);
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| io_error(&tmp, e))?;
        std::fs::rename(&tmp, &entry).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_error(&entry, e)
        })?;
    }
    // Entries of programs that are gone: only links into this ROOT, never anything else.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let keep = name
                .to_str()
                .is_some_and(|n| programs.iter().any(|p| p == n));
            let ours = std::fs::read_link(entry.path()).is_ok_and(|t| t.starts_with(root));
            if !keep && ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    fatbin_layout::fsutil::write_atomic(
        &dir.join(STATE_FILE),
        fingerprint.to_text().as_bytes(),
        0o644,
    )
    .map_err(layout_error)?;
    Ok(format!(
        "view {}: {} program(s) of {}, {direct} straight to their slot",
        dir.display(),
        programs.len(),
        root.display()
    ))
}

/// `fatbin view check`: 0 when the view is current, 1 with what changed when it is not.
fn check(root: &Path, dir: &Path) -> Result<i32> {
    let state = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&state) {
        Ok(text) => text,
        Err(e) => {
            println!(
                "view {}: not a view ({}: {e}); run `fatbin view sync {}`",
                dir.display(),
                state.display(),
                dir.display()
            );
            return Ok(1);
        }
    };
    let now = Fingerprint::now(root)?;
    let then = Fingerprint::parse(&text).unwrap_or(Fingerprint {
        root: String::new(),
        generation: String::new(),
        cpu: String::new(),
        clib: String::new(),
    });
    let mut stale = Vec::new();
    for ((name, old), new) in Fingerprint::FIELDS
        .iter()
        .zip(then.values())
        .zip(now.values())
    {
        if old != new {
            stale.push(match *name {
                "root" => format!("made from another ROOT ({old})"),
                "generation" => "ROOT changed since the last sync (an install or removal)".into(),
                "cpu" => format!("the processor changed (was `{old}`, now `{new}`)"),
                _ => format!("the C library changed (was `{old}`, now `{new}`)"),
            });
        }
    }
    // An entry whose target is gone (a program or slot removed behind the view's back).
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if std::fs::read_link(&path).is_ok() && std::fs::metadata(&path).is_err() {
                stale.push(format!("{} leads nowhere", path.display()));
            }
        }
    }
    if stale.is_empty() {
        println!("view {}: up to date with {}", dir.display(), root.display());
        return Ok(0);
    }
    println!("view {}: stale:", dir.display());
    for why in &stale {
        println!("  {why}");
    }
    println!(
        "Entries straight to a slot never depend on what changed (static, baseline slots); run \
         `fatbin view sync --root {} {}` to resolve the rest again.",
        root.display(),
        dir.display()
    );
    Ok(1)
}

/// The list of views on this node, for `refresh`: `$XDG_CACHE_HOME/fatbin/views-NODENAME`.
fn registry() -> Option<PathBuf> {
    let base = fatbin_layout::xdg_dir("XDG_CACHE_HOME", ".cache")?;
    Some(
        base.join("fatbin")
            .join(format!("views-{}", crate::clib::node_name()?)),
    )
}

/// Adds `dir` (a view of `root`) to the list, best effort.
fn remember_view(root: &Path, dir: &Path) {
    let Some(registry) = registry() else { return };
    let (Some(root), Some(dir)) = (root.to_str(), dir.to_str()) else {
        return;
    };
    if root.contains(['\t', '\n']) || dir.contains(['\t', '\n']) {
        return;
    }
    let line = format!("{root}\t{dir}");
    let old = std::fs::read_to_string(&registry).unwrap_or_default();
    if old.lines().any(|l| l == line) {
        return;
    }
    let text = format!("{old}{line}\n");
    if let Some(parent) = registry.parent() {
        let _ = fatbin_layout::fsutil::create_dirs(parent);
    }
    let _ = fatbin_layout::fsutil::write_atomic(&registry, text.as_bytes(), 0o644);
}

/// The views of `root` known on this node that still look like views.
fn known_views(root: &Path) -> Vec<PathBuf> {
    let Some(text) = registry().and_then(|r| std::fs::read_to_string(r).ok()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(r, _)| Path::new(r) == root)
        .map(|(_, d)| PathBuf::from(d))
        .filter(|d| d.join(STATE_FILE).is_file())
        .collect()
}
