//! Running a program from a layout: the decision ([`plan::decide`]), then its route: exec the
//! slot, exec it under qemu, or migrate.
//!
//! Every shim call the fast launcher hands over takes this path, so it does only what it
//! must: one manifest read, a handful of `stat`s for the permission checks, a 20-byte read of
//! the slot's ELF header, and the `execve`.

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
    let mut decision = plan::decide(req.layout, req.program, manifest, req.forced)?;
    // The route moves out; the rest of the decision stays, for the fallbacks after it.
    let mut route = std::mem::replace(&mut decision.route, Err(Error::Usage(String::new())))?;
    loop {
        match run_route(req, manifest, &decision, route, depth)? {
            Ran::Done(code) => return Ok(code),
            // A migration that provably did not start the program: the next fallback.
            Ran::NotStarted(engine, e) => {
                route = match plan::after(req.layout, req.program, manifest, &decision, engine) {
                    Ok(next) => next,
                    Err(_) => return Ok(e.report()),
                };
                let _ = writeln!(std::io::stderr(), "fatbin: {e}; trying the next fallback");
            }
        }
    }
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
