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

#[cfg(test)]
mod tests {
    use super::*;

    /// The disposition of `sig` now.
    fn disposition(sig: libc::c_int) -> libc::sighandler_t {
        // SAFETY: sigaction only writes the struct we pass.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            assert_eq!(libc::sigaction(sig, std::ptr::null(), &mut old), 0);
            old.sa_sigaction
        }
    }

    /// Signals before the start are noted and end the request with 128+N; an ignored one
    /// stays ignored; the dispositions are back afterwards. Dispositions are the process's,
    /// so this runs in a child process of its own.
    #[test]
    fn signals_before_the_start_end_the_request() {
        if !crate::own_process::in_own_process(
            "signals::tests::signals_before_the_start_end_the_request",
        ) {
            return;
        }
        let manifest = fatbin_layout::Manifest::new("prog");
        let req = Request {
            root: std::path::Path::new("/nonexistent"),
            program: "prog",
            manifest: &manifest,
            slots: &[],
            argv0: std::ffi::OsStr::new("prog"),
            args: &[],
        };
        // SAFETY: setting dispositions to SIG_DFL or SIG_IGN, and raising signals this
        // process catches or ignores. A shell starts background jobs with SIGINT ignored,
        // which install rightly leaves ignored: the test starts from the defaults.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
        }
        let before = disposition(libc::SIGTERM);
        for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
            let catch = Catch::install();
            assert!(check(&req).is_ok(), "nothing noted yet");
            assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
            assert_eq!(pending(), None, "an ignored SIGHUP stays ignored");
            assert_eq!(unsafe { libc::raise(sig) }, 0);
            assert_eq!(pending(), Some(sig));
            let e = check(&req).unwrap_err();
            assert_eq!(e.exit_code(), 128 + sig);
            assert_eq!(
                e.to_string(),
                format!("interrupted by {name} before `prog` started; it was not run anywhere")
            );
            drop(catch);
        }
        assert_eq!(disposition(libc::SIGTERM), before, "restored");
        assert_eq!(disposition(libc::SIGHUP), libc::SIG_IGN);
        // A SIGHUP caught (not ignored) is named too.
        unsafe { libc::signal(libc::SIGHUP, libc::SIG_DFL) };
        let _catch = Catch::install();
        assert_eq!(unsafe { libc::raise(libc::SIGHUP) }, 0);
        let e = check(&req).unwrap_err();
        assert_eq!(e.exit_code(), 128 + libc::SIGHUP);
        assert!(e.to_string().starts_with("interrupted by SIGHUP"), "{e}");
    }
}
