//! Replacing the launcher with the program: `execve` of the slot by its real path.
//!
//! Nothing is copied or wrapped, so pid, signals, exit status, `/proc/self/exe`, core dumps,
//! gdb and perf all see the real binary. argv is passed as given (argv[0] as the user typed
//! it); the environment is passed as is, except for the recursion guard `FATBIN_DEPTH`, which
//! counts launcher runs in a chain of execs so a layout whose slot leads back to a shim fails
//! after a few rounds instead of looping forever (rustup guards its proxies the same way).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{shown, Error, Result};

/// The recursion guard variable and its limit (`fatbin_core::env`, shared with the fast
/// launcher).
pub use fatbin_core::env::{DEPTH_VAR, MAX_DEPTH};

extern "C" {
    // The process environment, as the C library keeps it (POSIX `environ`).
    static environ: *const *const libc::c_char;
}

/// The depth this launcher run is at, refusing a chain that looks like a loop.
pub fn enter(program: &str) -> Result<u32> {
    let value = std::env::var_os(DEPTH_VAR);
    let depth = fatbin_core::env::depth(value.as_deref().map(OsStrExt::as_bytes));
    if depth >= MAX_DEPTH {
        return Err(Error::CannotExecute(format!(
            "{program}: the launcher has run {depth} times in one chain of execs ({DEPTH_VAR}), \
             so a slot leads back to a shim; check `fatbin which {program} --explain` and \
             reinstall the program"
        )));
    }
    Ok(depth + 1)
}

/// Replaces this process with `path` run as `argv`. Returns only on failure.
pub fn exec(path: &Path, argv: &[&OsStr], depth: u32, program: &str) -> Error {
    let c_path = match CString::new(path.as_os_str().as_bytes()) {
        Ok(p) => p,
        Err(_) => {
            return Error::CannotExecute(format!("{program}: {} contains a NUL byte", shown(path)))
        }
    };
    // argv comes from our own argv or paths, which cannot hold NUL bytes.
    let c_args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let mut arg_ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());

    let guard = CString::new(format!("{DEPTH_VAR}={depth}")).expect("no NUL in the guard");
    let mut env_ptrs: Vec<*const libc::c_char> = Vec::with_capacity(64);
    // SAFETY: environ is the NULL-terminated array of C strings the C library maintains;
    // nothing in this process changes the environment, so it is stable while we read it.
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let entry = std::ffi::CStr::from_ptr(*p).to_bytes();
            let is_guard = entry.len() > DEPTH_VAR.len()
                && entry.starts_with(DEPTH_VAR.as_bytes())
                && entry[DEPTH_VAR.len()] == b'=';
            if !is_guard {
                env_ptrs.push(*p);
            }
            p = p.add(1);
        }
    }
    env_ptrs.push(guard.as_ptr());
    env_ptrs.push(std::ptr::null());

    // SAFETY: all three arguments are valid NULL-terminated arrays of C strings that outlive
    // the call; execve only returns on failure.
    unsafe {
        libc::execve(c_path.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr());
    }
    exec_error(std::io::Error::last_os_error(), path, program)
}

/// Explains a failed `execve`.
fn exec_error(e: std::io::Error, path: &Path, program: &str) -> Error {
    let shown = shown(path);
    let why = match e.raw_os_error() {
        // The file was there a moment ago, so what is missing is its ELF interpreter.
        Some(libc::ENOENT) => format!(
            "{shown}: its dynamic loader (ELF interpreter) is not installed on this host ({e}); \
             use a static (musl) slot"
        ),
        Some(libc::ENOEXEC) => {
            format!("{shown}: the kernel cannot execute this binary format ({e})")
        }
        Some(libc::EACCES) => format!(
            "{shown}: permission denied; is it executable (`chmod +x`), and is the filesystem \
             mounted without noexec? ({e})"
        ),
        _ => format!("{shown}: {e}"),
    };
    Error::CannotExecute(format!("{program}: cannot execute {why}"))
}
