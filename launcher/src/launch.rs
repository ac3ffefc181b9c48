//! Running a program from a layout: the decision ([`plan::decide`]), then its route: exec the
//! slot, exec it under qemu, or migrate.
//!
//! Every shim call the fast launcher hands over takes this path, so it does only what it
//! must: one manifest read, a handful of `stat`s for the permission checks, a 20-byte read of
//! the slot's ELF header, and the `execve`.
//!
//! When the file the manifest names for the chosen slot is gone (ENOENT, ESTALE), the manifest
//! is read again and the request decided again, once: an install removes a content file two
//! installs after it was current, so a manifest read just before two quick installs, or one a
//! network filesystem client served from its cache, can name a file that no longer exists
//! (docs/layout.md, Atomicity). A second miss is reported as it is.

use std::ffi::{OsStr, OsString};
use std::io::Write;

use fatbin_layout::{Layout, Manifest};

use fatbin_migrate::{Engine, Request as MigrateRequest};

use crate::error::{Error, Result};
use crate::exec;
use crate::plan::{self, Forced, Route};
use crate::qemu;

/// A request to run a program.
#[derive(Debug)]
pub struct Launch<'a> {
    pub layout: &'a Layout,
    pub program: &'a str,
    /// argv[0] for the program, as the user typed it; `None` when the launcher itself was
    /// started with an empty argv (then so is the program).
    pub argv0: Option<&'a OsStr>,
    pub args: &'a [OsString],
    pub forced: Option<Forced>,
}

/// Runs the request: decides ([`plan::decide`]), then executes the decision. Returns only
/// when the program could not be started locally: with the migrated run's exit status, or
/// with the error.
pub(crate) fn launch(req: &Launch<'_>, manifest: &Manifest) -> Result<i32> {
    let depth = exec::enter(req.program)?;
    let fresh = match attempt(req, manifest, depth) {
        Attempt::Done(result) => return result,
        Attempt::Vanished(e) => match crate::program::read_manifest(req.layout, req.program) {
            Ok(fresh) if fresh != *manifest => fresh,
            _ => return Err(e),
        },
    };
    match attempt(req, &fresh, depth) {
        Attempt::Done(result) => result,
        // Bounded: the file the fresh manifest names is gone too.
        Attempt::Vanished(e) => Err(e),
    }
}

/// How one attempt at a request ended, when it returned at all.
enum Attempt {
    Done(Result<i32>),
    /// The file the manifest names for the chosen slot is gone (the error it gave).
    Vanished(Error),
}

/// Decides with `manifest` and executes the decision.
fn attempt(req: &Launch<'_>, manifest: &Manifest, depth: u32) -> Attempt {
    let mut decision = match plan::decide(req.layout, req.program, manifest, req.forced) {
        Ok(decision) => decision,
        Err(e) => return Attempt::Done(Err(e)),
    };
    let chosen = chosen_file(req, manifest, &decision);
    let gone = || chosen.as_deref().is_some_and(vanished);
    // The route moves out; the rest of the decision stays, for the fallbacks after it.
    let mut route = match std::mem::replace(&mut decision.route, Err(Error::Usage(String::new()))) {
        Ok(route) => route,
        Err(e) if gone() => return Attempt::Vanished(e),
        Err(e) => return Attempt::Done(Err(e)),
    };
    Attempt::Done(loop {
        match run_route(req, manifest, &decision, route, depth) {
            Ok(Ran::Done(code)) => break Ok(code),
            // A migration that provably did not start the program: the next fallback.
            Ok(Ran::NotStarted(engine, e)) => {
                route = match plan::after(req.layout, req.program, manifest, &decision, engine) {
                    Ok(next) => next,
                    Err(_) => break Ok(e.report()),
                };
                let _ = writeln!(std::io::stderr(), "fatbin: {e}; trying the next fallback");
            }
            // The exec failed: the file went between the checks and the `execve`.
            Err(e) if gone() => return Attempt::Vanished(e),
            Err(e) => break Err(e),
        }
    })
}

/// The file the decision runs here, or would have run had its checks passed: the forced slot's,
/// else the best native slot's.
fn chosen_file(
    req: &Launch<'_>,
    manifest: &Manifest,
    decision: &plan::Decision,
) -> Option<std::path::PathBuf> {
    let slot = match decision.forced {
        Some(forced) => forced.slot,
        None => decision.candidates.iter().find(|c| c.is_native())?.slot,
    };
    Some(req.layout.file_of(manifest, req.program, slot))
}

/// Whether `path` is gone: ENOENT, or ESTALE (an NFS file handle of a removed file).
fn vanished(path: &std::path::Path) -> bool {
    matches!(
        std::fs::symlink_metadata(path),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESTALE))
    )
}

/// How a route ended, when it returned at all.
enum Ran {
    Done(i32),
    NotStarted(Engine, fatbin_migrate::Error),
}

fn run_route(
    req: &Launch<'_>,
    manifest: &Manifest,
    decision: &plan::Decision,
    route: Route,
    depth: u32,
) -> Result<Ran> {
    match route {
        Route::Native { path, .. } => {
            let mut argv: Vec<&OsStr> = Vec::with_capacity(req.args.len() + 1);
            argv.extend(req.argv0);
            argv.extend(req.args.iter().map(OsString::as_os_str));
            Err(exec::exec(&path, &argv, depth, req.program))
        }
        Route::Emulate { slot, qemu, path } => {
            let argv = qemu::argv(
                &qemu,
                slot,
                &manifest.slots[&slot],
                &path,
                req.argv0,
                req.args,
            );
            let argv: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
            Err(exec::exec(&qemu, &argv, depth, req.program))
        }
        Route::Migrate(engine) => {
            let slots = decision.slots();
            let migrated = engine.run(&MigrateRequest {
                root: req.layout.root(),
                program: req.program,
                manifest,
                slots: &slots,
                argv0: req.argv0.unwrap_or_default(),
                args: req.args,
            });
            Ok(match migrated {
                Ok(code) => Ran::Done(code),
                Err(e) if !e.may_have_started() => Ran::NotStarted(engine, e),
                Err(e) => Ran::Done(e.report()),
            })
        }
    }
}

/// The program name as text: program names are UTF-8 (see the layout's naming rules).
pub fn program_name(name: &OsStr) -> Result<&str> {
    name.to_str().ok_or_else(|| {
        Error::NotFound(format!(
            "{}: not a valid program name (program names are UTF-8)",
            name.to_string_lossy()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use fatbin_layout::{Arch, Endian, Libc, SlotInfo, SlotName};

    use super::*;

    /// A manifest of `prog` with one x86_64 slot whose sha256 is `byte` repeated: its content
    /// file is `x86_64.<byte x 8>`.
    fn manifest(byte: &str) -> Manifest {
        let sha256 = byte.repeat(32);
        let slot: SlotName = "x86_64".parse().unwrap();
        let mut m = Manifest::new("prog");
        m.slots.insert(
            slot,
            SlotInfo {
                target: String::new(),
                arch: Arch::X86_64,
                bits: 64,
                endian: Endian::Little,
                libc: Libc::Static,
                glibc: None,
                cpu: None,
                features: Vec::new(),
                size: 20,
                file: Some(fatbin_layout::manifest::content_name(slot, &sha256)),
                sha256,
                krate: None,
                version: None,
            },
        );
        m
    }

    /// The ELF header of an x86_64 executable and nothing else: it passes the checks before
    /// exec, and `execve` refuses it (ENOEXEC), so the test process is never replaced.
    fn header_only(path: &std::path::Path) {
        let mut header = vec![0x7f, b'E', b'L', b'F', 2, 1];
        header.resize(18, 0);
        header.extend(62u16.to_le_bytes());
        std::fs::write(path, &header).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A manifest that names a content file already removed (read before two installs, or
    /// served stale by a network filesystem client) is read again, once: the fresh one's file
    /// is what runs. When the fresh manifest is the same, or its file is gone too, the miss is
    /// reported, with no second retry.
    #[test]
    fn a_vanished_file_rereads_the_manifest_once() {
        if crate::host::Host::detect().arch != Some(Arch::X86_64) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let program_dir = layout.program_dir("prog");
        std::fs::create_dir_all(&program_dir).unwrap();
        for d in [dir.path(), &layout.bin_dir(), &program_dir] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (stale, fresh, gone) = (manifest("cd"), manifest("ab"), manifest("ef"));
        header_only(&program_dir.join("x86_64.abababababababab"));
        let write = |m: &Manifest| std::fs::write(layout.manifest_path("prog"), m.to_toml());
        let req = Launch {
            layout: &layout,
            program: "prog",
            argv0: Some(OsStr::new("prog")),
            args: &[],
            forced: None,
        };
        let run = |m: &Manifest| launch(&req, m).unwrap_err().to_string();

        write(&fresh).unwrap();
        let e = run(&stale);
        assert!(
            e.contains("x86_64.abababababababab") && e.contains("cannot execute"),
            "the fresh manifest's file did not run: {e}"
        );
        // Nothing newer to read: the miss, as it is.
        write(&stale).unwrap();
        let e = run(&stale);
        assert!(
            e.contains("x86_64.cdcdcdcdcdcdcdcd") && e.contains("is missing"),
            "{e}"
        );
        // The fresh manifest's file is gone too: one retry only.
        write(&gone).unwrap();
        let e = run(&stale);
        assert!(
            e.contains("x86_64.efefefefefefefef") && e.contains("is missing"),
            "{e}"
        );
    }
}
