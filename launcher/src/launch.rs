//! Running a program from a layout: read its manifest, pick the route, check, exec.
//!
//! This is the fast path every shim call takes, so it does only what it must: one manifest
//! read, a handful of `stat`s for the permission checks, a 20-byte read of the slot's ELF
//! header, and the `execve`.

use std::ffi::{OsStr, OsString};

use std::path::PathBuf;

use fatbin_layout::{Layout, Manifest, SlotName};
use fatbin_migrate::{Engine, Request as MigrateRequest};

use crate::check;
use crate::error::{Error, Result};
use crate::exec;
use crate::host::Host;
use crate::plan::{self, Forced, Inputs, Route};
use crate::qemu;
use crate::select;

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

/// Runs the request. Returns only when the program could not be started locally: with the
/// migrated run's exit status, or with the error.
pub fn launch(req: &Launch<'_>, manifest: &Manifest) -> Result<i32> {
    let depth = exec::enter(req.program)?;
    let host = Host::detect();
    let candidates = select::rank(&host, manifest);
    let fallbacks = plan::fallbacks()?;
    let route = plan::decide(&Inputs {
        host: &host,
        layout: req.layout,
        program: req.program,
        manifest,
        candidates: &candidates,
        forced: req.forced,
        fallbacks: &fallbacks,
    })?;
    match route {
        Route::Native(slot) => {
            let path = checked_slot_path(req, slot)?;
            let mut argv: Vec<&OsStr> = Vec::with_capacity(req.args.len() + 1);
            argv.extend(req.argv0);
            argv.extend(req.args.iter().map(OsString::as_os_str));
            Err(exec::exec(&path, &argv, depth, req.program))
        }
        Route::Emulate { slot, qemu } => {
            let path = checked_slot_path(req, slot)?;
            let info = &manifest.slots[&slot];
            let argv = qemu::argv(&qemu, slot, info, &path, req.argv0, req.args);
            let argv: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
            Err(exec::exec(&qemu, &argv, depth, req.program))
        }
        Route::Migrate => {
            let slots: Vec<_> = candidates.iter().map(|c| c.slot).collect();
            let migrated = Engine::Ssh.run(&MigrateRequest {
                root: req.layout.root(),
                program: req.program,
                manifest,
                slots: &slots,
                argv0: req.argv0.unwrap_or_default(),
                args: req.args,
            });
            Ok(migrated.unwrap_or_else(fatbin_migrate::Error::report))
        }
    }
}

/// The slot's path, after the checks that must pass before anything runs from the layout.
fn checked_slot_path(req: &Launch<'_>, slot: SlotName) -> Result<PathBuf> {
    let root_owner = check::check_layout_dirs(req.layout, req.program)?;
    let path = req.layout.slot_path(req.program, slot);
    check::check_slot(&path, req.program, slot, root_owner)?;
    Ok(path)
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
