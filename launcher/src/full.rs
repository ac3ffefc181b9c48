//! `fatbin-full`: the whole launcher, for everything the fast launcher `fatbin`
//! (src/fast) hands over: the command line, forced slots, qemu, migration, every error. The
//! work is in the library (`fatbin::main`).
//!
//! The binary defines the C `main` itself (`no_main`) instead of Rust's: std's start-up would
//! set SIGPIPE to "ignore", which every exec'd program would inherit (an ignored signal stays
//! ignored across `execve`), and would reopen closed standard descriptors on /dev/null, which
//! the program would inherit too. The launcher must hand the program the process exactly as
//! it got it; skipping that start-up also saves a handful of system calls on every run.
//!
//! A closed standard descriptor is still filled before anything else is opened, so that no
//! file the launcher opens (a migration's seat lock, say) becomes the program's stderr or the
//! place remote output is written to; [`occupy_standard_fds`] opens /dev/null close-on-exec
//! there, so the exec'd program still finds the descriptor closed.
#![no_main]

use std::ffi::{CStr, OsString};
use std::os::unix::ffi::OsStringExt;

#[global_allocator]
static ALLOCATOR: fatbin::arena::Arena = fatbin::arena::Arena::new();

/// The C entry point, called by the C library's start-up code with the process's arguments.
#[unsafe(no_mangle)]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    occupy_standard_fds();
    let args = (0..usize::try_from(argc).unwrap_or(0))
        .map(|i| {
            // SAFETY: the C runtime passes argc valid NUL-terminated strings in argv.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            OsString::from_vec(arg.to_bytes().to_vec())
        })
        .collect();
    let code = fatbin::main(args);
    // Flush what the reporting commands printed: returning from C main skips Rust's own
    // stdout flush at exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    code
}

/// Puts /dev/null (close-on-exec) on each of fds 0, 1 and 2 that is closed.
///
/// `open` returns the lowest free descriptor, and the lower ones are open by the time each is
/// filled, so every closed standard descriptor gets its own /dev/null.
fn occupy_standard_fds() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD on any integer is harmless; it fails with EBADF on a closed fd.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: a constant NUL-terminated path. The descriptor is deliberately kept.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        }
    }
}
