//! Signals that arrive before the program started: a Ctrl-C (SIGINT), SIGTERM or SIGHUP while
//! the launcher connects, ships or fails over must end the request, with 128+N and nothing
//! started anywhere, not be swallowed while the next node runs the program.
//!
//! [`Catch::install`] notes such signals for the length of a migration (a signal ignored when
//! the launcher started, as under `nohup`, stays ignored); the session's own handler, which
//! forwards signals once the program runs, notes them too ([`note`]). The failover loop asks
//! [`check`] before every step that could start something. When the migration returns, the
//! dispositions the launcher started with are back, so a later route (another fallback) is
//! never entered with a signal swallowed.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::{Error, Request};

/// The signals a migration notes.
const NOTED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// The last signal noted, 0 for none.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// Notes `sig` (async-signal-safe: one atomic store).
pub(crate) fn note(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
}

extern "C" fn on_signal(sig: libc::c_int) {
    note(sig);
}

/// The noted signal, if any.
pub(crate) fn pending() -> Option<libc::c_int> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// `Err` with 128+N when signal N arrived: the request ends here, having started nothing.
pub(crate) fn check(req: &Request<'_>) -> Result<(), Error> {
    let Some(sig) = pending() else {
        return Ok(());
    };
    let name = match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    };
    // may_have_started stays true: no other route may run the request after this.
    Err(Error::new(
        128 + sig,
        format!(
            "interrupted by {name} before `{}` started; it was not run anywhere",
            req.program
        ),
    ))
}

/// The dispositions to restore when the migration returns.
#[derive(Debug)]
pub(crate) struct Catch {
    saved: Vec<(libc::c_int, libc::sigaction)>,
}

impl Catch {
    /// Notes [`NOTED`] signals from now until the value is dropped.
    pub(crate) fn install() -> Catch {
        PENDING.store(0, Ordering::SeqCst);
        let mut saved = Vec::new();
        for sig in NOTED {
            // SAFETY: sigaction reads and writes the structs we pass; the handler only stores
            // an atomic.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0
                    || old.sa_sigaction == libc::SIG_IGN
                {
                    continue;
                }
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigaction(sig, &sa, std::ptr::null_mut());
                saved.push((sig, old));
            }
        }
        Catch { saved }
    }
}

impl Drop for Catch {
    fn drop(&mut self) {
        for (sig, old) in &self.saved {
            // SAFETY: restores a disposition sigaction gave us.
            unsafe { libc::sigaction(*sig, old, std::ptr::null_mut()) };
        }
    }
}
