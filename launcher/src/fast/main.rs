//! `fatbin`: the launcher every shim call starts, small enough that a shim call costs little
//! more than the `execve` itself.
//!
//! It does the common case alone: started as `ROOT/shims/PROG`, a manifest in the canonical
//! shape, a slot of this processor's own architecture that runs here, a layout that passes
//! the permission checks. That is a dozen system calls and a few pages of code: the full
//! launcher, a 1.3 MB static binary, costs more page faults to start than all of this work.
//!
//! Everything else (the `fatbin ...` command line, `FATBIN_ARCH`, qemu, migration, every
//! error and anything in doubt) it hands unchanged to the full launcher, `fatbin-full` in
//! the same directory as this binary, telling it the path the caller executed in
//! `FATBIN_EXECFN` (the kernel's `AT_EXECFN` would name `fatbin-full`). The full launcher
//! decides the same way, so handing over is always safe: every rule both apply is
//! `fatbin-core`'s, the decision itself is `fatbin_core::pick`, which the library's tests
//! compare with the full launcher's (`fast_agrees.rs`), and the integration tests run both
//! routes.
//!
//! `no_std`, linked with the C library only (static musl in release builds), which on
//! static musl x86_64 and aarch64 starts only for a hand-over (see os.rs); a panic hands
//! over too.
#![cfg_attr(not(test), no_std)]
#![no_main]
// `cargo clippy --all-targets` also builds this as a (std) test harness, which brings its
// own entry point, so `main` and everything it uses are left out there.
#![cfg_attr(test, allow(dead_code, unused_imports))]

// The C library: start-up code and system calls.
#[link(name = "c")]
extern "C" {}

mod os;

use core::ffi::{c_char, c_int, CStr};
use core::sync::atomic::{AtomicPtr, Ordering};

use fatbin_core::env::{ARCH_VAR, DEPTH_VAR, EXECFN_VAR, FALLBACK_VAR, MAX_DEPTH, ROOT_VAR};
use fatbin_core::manifest::MANIFEST_FILE;
use fatbin_core::{elf, fallback, names, pick, trust, Arch, Slot};
use os::{CStrBuf, EnvList};

/// The full launcher's file name, next to this binary.
const FULL_LAUNCHER: &[u8] = b"fatbin-full";

// In .data, not .bss: one page fewer to fault in (see `os::Scratch`).
#[link_section = ".data"]
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());
#[link_section = ".data"]
static ENVP: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    hand_over(ARGV.load(Ordering::Relaxed), ENVP.load(Ordering::Relaxed))
}

/// The precompiled core library's unwind tables name this personality routine; with
/// panic = "abort" nothing unwinds, so it is never called. (Release builds drop the tables
/// with link-time optimisation; debug builds need the symbol.)
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// The C entry point.
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int {
    ARGV.store(argv.cast_mut(), Ordering::Relaxed);
    ENVP.store(envp.cast_mut(), Ordering::Relaxed);
    // SAFETY: the C runtime passes argc valid C strings in argv and a NULL-terminated envp.
    let args = unsafe { os::c_strings(argv, usize::try_from(argc).unwrap_or(0)) };
    let env = unsafe { EnvList::new(envp) };
    // After a hand-over started the C library, main runs again (see os.rs).
    if os::first_run() {
        run_natively(args, &env);
    }
    hand_over(argv, envp)
}

/// A plain shim call: `ROOT/shims/PROG` executed, nothing forced.
struct ShimCall<'a> {
    /// The shim's directory, as executed.
    shims_dir: &'a [u8],
    /// PROG, the shim's file name: a valid program name.
    name: &'a [u8],
    /// The recursion guard's value so far.
    depth: u32,
}

impl<'a> ShimCall<'a> {
    /// The call, when it is a plain one the fast path may run.
    fn of(args: &[*const c_char], env: &EnvList) -> Option<ShimCall<'a>> {
        // A forced slot, an odd fallback setting or a deep chain of launchers: not plain.
        if env.get(ARCH_VAR.as_bytes()).is_some_and(|v| !v.is_empty())
            || env
                .get(FALLBACK_VAR.as_bytes())
                .is_some_and(|v| !fallback::is_valid(v))
        {
            return None;
        }
        let depth = fatbin_core::env::depth(env.get(DEPTH_VAR.as_bytes()));
        if depth >= MAX_DEPTH {
            return None;
        }
        let executed = os::executed_path()?;
        // SAFETY: args[0] is a C string from main.
        let argv0 = unsafe { CStr::from_ptr(*args.first()?) }.to_bytes();
        let (shims_dir, name) = split_path(executed);
        let (_, dir_name) = split_path(shims_dir);
        // The command line, or perhaps a slot of the launcher itself: the full launcher's.
        if is_launcher_name(name) || is_launcher_name(dir_name) {
            return None;
        }
        // argv[0] with a `/` naming something else: maybe a `#!` interpreter (invocation.rs).
        if argv0.contains(&b'/') && split_path(argv0).1 != name {
            return None;
        }
        let program = core::str::from_utf8(name).ok()?;
        if names::program_name_problem(program).is_some() {
            return None;
        }
        Some(ShimCall {
            shims_dir,
            name,
            depth,
        })
    }
}

/// Runs the best native slot, replacing this process; returns when the full launcher must
/// decide instead.
fn run_natively(args: &[*const c_char], env: &EnvList) -> Option<()> {
    // 32-bit launchers may run on a 64-bit kernel, so they always hand over.
    let host_arch = Arch::NATIVE_64?;
    let ShimCall {
        shims_dir,
        name,
        depth,
    } = ShimCall::of(args, env)?;

    let os::Scratch {
        guard,
        path,
        env: env_storage,
        manifest,
        link,
    } = os::scratch()?;
    let root_var = env.get(ROOT_VAR.as_bytes()).filter(|v| !v.is_empty());
    let shims_parent = root_var.is_none();
    let mut shims_dir = shims_dir;
    let mut root = root_text(root_var, shims_dir)?;
    let mut root_len = push_manifest_path(path, root, name)?;
    let len = match os::read_small_file_len(path, manifest) {
        Some(len) => len,
        // Not a program of the ROOT the shim's location names: perhaps a view's entry
        // (`DIR/PROG -> ROOT/shims/PROG`), which the full launcher follows the same way
        // (only when ROOT comes from the shim; see invocation.rs).
        None if shims_parent => {
            shims_dir = os::shims_dir_linked(name, link)?;
            root = root_text(None, shims_dir)?;
            root_len = push_manifest_path(path, root, name)?;
            os::read_small_file_len(path, manifest)?
        }
        None => return None,
    };
    // SAFETY: read_small_file_len wrote the first `len` bytes.
    let text = unsafe { os::filled(manifest, len) };
    let text = core::str::from_utf8(text).ok()?;
    let features = fatbin_core::features::HostFeatures::new();
    // The slot, and its file: the content file the manifest names (`SLOT.<hex>`, never
    // replaced by an install), or `SLOT` in a manifest written before content files.
    let pick::Pick { slot: chosen, file } = pick::pick(text, host_arch, &mut |f| features.has(f))?;

    // The permission checks (`fatbin_core::trust`): ROOT may have any owner, who is then
    // trusted below it; nothing may be writable by group or others. Every path is `lstat`ed,
    // so a symlink anywhere (which shows as mode 0777 and fails every rule) is handed to the
    // full launcher, which checks the real path's directories too.
    if shims_parent {
        path.clear();
        path.push(shims_dir)?;
        if os::lstat(path)?.is_symlink() {
            return None;
        }
        path.clear();
        path.push(root)?;
    }
    path.truncate(root_len);
    let root_owner = os::lstat(path)
        .filter(|s| trust::other_writers(s.mode).is_none())?
        .uid;
    // ROOT's ancestors, StrictModes-like: from its parent up to `/`.
    let mut end = root_len;
    while let Some(slash) = root[..end].iter().rposition(|&b| b == b'/') {
        path.truncate(slash.max(1));
        os::lstat(path).filter(|s| trust::ancestor_trusted(s.mode, s.uid, root_owner, os::euid))?;
        end = slash;
    }
    path.clear();
    path.push(root)?;
    // The user's own id is asked only when an owner is neither root nor ROOT's owner (one
    // system call saved in the usual layouts).
    let trusted = |s: &os::Stat| trust::trusted(s.mode, s.uid, Some(root_owner), os::euid);
    path.push(b"/bin")?;
    os::lstat(path).filter(trusted)?;
    path.push(b"/")?;
    path.push(name)?;
    os::lstat(path).filter(trusted)?;
    path.push(b"/")?;
    path.push(file.as_bytes())?;
    let header = os::read_elf_header(path, trusted)?;
    if !elf::matches(&header, chosen.arch) {
        return None;
    }

    guard.push(DEPTH_VAR.as_bytes())?;
    guard.push(b"=")?;
    guard.push(os::format_u32(depth + 1, &mut [0; 10]))?;
    os::exec(
        path,
        args,
        env.replacing_in(DEPTH_VAR.as_bytes(), guard.as_cstr(), env_storage)?,
    );
    // execve failed: the full launcher explains why.
    None
}

/// ROOT as text: FATBIN_ROOT, or the directory that holds the shims directory (which is
/// `shims/..` as long as `shims` is no symlink: checked before use). Its ancestors are checked
/// by name, so it must be absolute; a relative one is the full launcher's.
fn root_text<'a>(root_var: Option<&'a [u8]>, shims_dir: &'a [u8]) -> Option<&'a [u8]> {
    let root = root_var.unwrap_or_else(|| split_path(shims_dir).0);
    (root.first() == Some(&b'/')).then_some(root)
}

/// Writes `ROOT/bin/NAME/fatbin.toml` into `path`; answers the length of its ROOT part.
fn push_manifest_path<const N: usize>(
    path: &mut os::CStrBuf<N>,
    root: &[u8],
    name: &[u8],
) -> Option<usize> {
    path.clear();
    path.push(root)?;
    let root_len = path.len();
    path.push(b"/bin/")?;
    path.push(name)?;
    path.push(b"/")?;
    path.push(MANIFEST_FILE.as_bytes())?;
    Some(root_len)
}

/// Replaces this process with the full launcher, same arguments and environment, plus the
/// path the caller executed. Never returns: on failure it reports and exits 126.
fn hand_over(argv: *const *const c_char, envp: *const *const c_char) -> ! {
    os::start_c_library(argv);
    let mut own: CStrBuf = CStrBuf::new();
    let mut full: CStrBuf = CStrBuf::new();
    let found = os::own_path(&mut own).and_then(|()| full_launcher_path(own.bytes(), &mut full));
    if found.is_some() {
        // Room for the name and any path the kernel accepts.
        let mut execfn: CStrBuf<{ 4096 + 32 }> = CStrBuf::new();
        // SAFETY: envp is the NULL-terminated environment main received.
        let env = unsafe { EnvList::new(envp) };
        let with_execfn = os::executed_path()
            .and_then(|path| {
                execfn.push(EXECFN_VAR.as_bytes())?;
                execfn.push(b"=")?;
                execfn.push(path)
            })
            .and_then(|()| env.replacing_any(EXECFN_VAR.as_bytes(), execfn.as_cstr()));
        // SAFETY: argv and the environment are NULL-terminated arrays of C strings.
        unsafe { os::execve_raw(&full, argv, with_execfn.unwrap_or(envp)) };
    }
    let why = os::last_error_text();
    // ENOEXEC for our own binary: we run under qemu-user, and execve left the emulator.
    let hint: &[u8] = if os::last_error_is_exec_format() {
        b"; under qemu-user without binfmt_misc, run fatbin-full itself"
    } else {
        b""
    };
    if let Some((program, slot)) = as_program_slot(own.bytes()) {
        // A slot that is a copy of the launcher (a link to a shim ends up in the full
        // launcher, which says the same).
        os::fail(&[
            b"fatbin: ",
            program,
            b": slot `",
            slot,
            b"` (",
            own.bytes(),
            b") is the fatbin launcher itself (a copy, or a link to a shim), not the program, so \
              it would only start the launcher again; reinstall the program\n",
        ]);
    }
    let full = match found {
        Some(()) => full.bytes(),
        None => b"next to this launcher (where is this launcher?)",
    };
    os::fail(&[
        b"fatbin: cannot start the full launcher ",
        full,
        b" (",
        why,
        hint,
        b"); install `fatbin-full` in the same directory as `fatbin` (see docs/launcher.md)\n",
    ])
}

/// Where the full launcher is, given this binary's path: `fatbin-full` in the same
/// directory, or, for a launcher installed as a fat program (`ROOT/bin/fatbin/SLOT`, run by
/// the portable shim), the same slot of `ROOT/bin/fatbin-full`.
fn full_launcher_path(own: &[u8], out: &mut CStrBuf) -> Option<()> {
    if let Some((bin_dir, b"fatbin", slot)) = as_slot_path(own) {
        out.push(bin_dir)?;
        out.push(b"/")?;
        out.push(FULL_LAUNCHER)?;
        out.push(b"/")?;
        return out.push(slot);
    }
    out.push(split_path(own).0)?;
    out.push(b"/")?;
    out.push(FULL_LAUNCHER)
}

/// `(PROG, SLOT)` when `path` is a slot of a program other than the launcher.
fn as_program_slot(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let (_, program, slot) = as_slot_path(path)?;
    (!is_launcher_name(program)).then_some((program, slot))
}

/// `(ROOT/bin, PROG, SLOT)` when `path` looks like a slot's file, `.../bin/PROG/SLOT` or its
/// content file `.../bin/PROG/SLOT.<hex>`.
fn as_slot_path(path: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let (dir, file) = split_path(path);
    let (bin_dir, program) = split_path(dir);
    let file = core::str::from_utf8(file).ok()?;
    let slot = fatbin_core::manifest::slot_part(file);
    let is_slot = Slot::parse(slot).is_ok();
    (is_slot && split_path(bin_dir).1 == b"bin").then_some((bin_dir, program, slot.as_bytes()))
}

/// `fatbin` or `fatbin-full`.
fn is_launcher_name(name: &[u8]) -> bool {
    name == b"fatbin" || name == FULL_LAUNCHER
}

/// `(directory, file name)` of a path: the directory is `.` for a bare name and `/` for
/// one in the root, like `Path::parent`.
fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b".", path),
    }
}
