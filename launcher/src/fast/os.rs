//! The few system services the fast launcher uses, without allocating: paths in a fixed
//! buffer, the environment as the kernel passed it, `lstat`, small reads, `execve`.
//!
//! On static musl x86_64 and aarch64 (`cfg(fatbin_early_start)`, set by `launcher/build.rs`)
//! the fast path runs before the C library starts: the binary's own entry point
//! ([`start`]) calls `main` straight from the kernel's stack, and the fast path makes its
//! system calls itself ([`sys`]), so a shim call skips the C library's start-up (its thread
//! pointer and TLS set-up: two system calls and two written pages). Only a hand-over starts
//! the C library ([`start_c_library`]), which then calls `main` again. Elsewhere (glibc,
//! 32-bit targets) the C library starts first and [`sys`] is its wrappers. So the fast path
//! (`run_natively`) makes every system call through [`sys`] and calls nothing of the C
//! library that keeps state (`errno`, `malloc`, `getauxval`, locale): those would crash
//! before it starts. Its pure functions (`memcpy`, `strlen`) are fine.

use core::ffi::{c_char, CStr};
use core::mem::MaybeUninit;

/// The longest path the kernel accepts (PATH_MAX, with its NUL).
const PATH_MAX: usize = 4096;

/// A NUL-terminated string of at most `N - 1` bytes, built in place.
pub struct CStrBuf<const N: usize = PATH_MAX> {
    buf: [MaybeUninit<u8>; N],
    len: usize,
}

impl<const N: usize> CStrBuf<N> {
    pub const fn new() -> CStrBuf<N> {
        let mut buf = [MaybeUninit::uninit(); N];
        buf[0] = MaybeUninit::new(0);
        CStrBuf { buf, len: 0 }
    }

    /// Appends `bytes`; `None` when the path would be too long or hold a NUL.
    pub fn push(&mut self, bytes: &[u8]) -> Option<()> {
        if self.len + bytes.len() >= N || bytes.contains(&0) {
            return None;
        }
        for (slot, &b) in self.buf[self.len..].iter_mut().zip(bytes) {
            slot.write(b);
        }
        self.len += bytes.len();
        self.buf[self.len].write(0);
        Some(())
    }

    /// Empties the path by writing only (a first read of a fresh .bss page would map the
    /// zero page, and the first write then fault a second time).
    pub fn clear(&mut self) {
        self.len = 0;
        self.buf[0].write(0);
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Cuts the path back to its first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = len.min(self.len);
        self.buf[self.len].write(0);
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the first len bytes were written by push.
        unsafe { core::slice::from_raw_parts(self.buf.as_ptr().cast(), self.len) }
    }

    pub fn as_cstr(&self) -> &CStr {
        // SAFETY: the first len + 1 bytes are written, the last is NUL and push refuses NULs.
        unsafe {
            CStr::from_bytes_with_nul_unchecked(core::slice::from_raw_parts(
                self.buf.as_ptr().cast(),
                self.len + 1,
            ))
        }
    }

    fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr().cast()
    }
}

/// The fast path's working memory. It lives in .bss rather than on the stack: a stack frame
/// with large locals is probed page by page on entry, a page fault each, while a .bss page
/// costs a fault only when something is written to it. Ordered so that what a usual run
/// writes (a short path, a few dozen variables, a manifest of a few slots) lands on two
/// pages: not page-aligned, so its start shares the page where the data segment ends, which
/// the kernel has written already (it zeroes the rest of that page at exec), and the fast
/// path's other variables are in that data (`#[link_section = ".data"]`), not spread over
/// .bss pages of their own. Anything larger is handed to the full launcher.
#[repr(C)]
pub struct Scratch {
    /// `FATBIN_DEPTH=N`.
    pub guard: CStrBuf<32>,
    pub path: CStrBuf<SCRATCH_PATH_MAX>,
    pub env: [MaybeUninit<*const c_char>; MAX_ENV],
    pub manifest: [MaybeUninit<u8>; MAX_MANIFEST],
    /// Where a view's entry links to (`fatbin view`), read only for such calls.
    pub link: [u8; PATH_MAX],
}

/// Paths longer than this go to the full launcher.
pub const SCRATCH_PATH_MAX: usize = 1024;
/// Environments of more variables than this go to the full launcher.
const MAX_ENV: usize = 512;
/// Manifests larger than this go to the full launcher (a slot takes about 300 bytes).
pub const MAX_MANIFEST: usize = 8 * 1024;

struct ScratchCell(core::cell::UnsafeCell<Scratch>);

// SAFETY: handed out at most once (see `scratch`), so never shared.
unsafe impl Sync for ScratchCell {}

static SCRATCH: ScratchCell = ScratchCell(core::cell::UnsafeCell::new(Scratch {
    guard: CStrBuf::new(),
    path: CStrBuf::new(),
    env: [MaybeUninit::uninit(); MAX_ENV],
    manifest: [MaybeUninit::uninit(); MAX_MANIFEST],
    link: [0; PATH_MAX],
}));

/// The working memory, the first time; `None` after that.
pub fn scratch() -> Option<&'static mut Scratch> {
    #[link_section = ".data"]
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if TAKEN.swap(true, core::sync::atomic::Ordering::Relaxed) {
        return None;
    }
    // SAFETY: TAKEN makes this the only reference ever made.
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    scratch.guard.clear();
    scratch.path.clear();
    Some(scratch)
}

/// The NULL-terminated array of `n` C strings at `argv`, as a slice.
///
/// # Safety
/// `argv` must point to `n` valid C string pointers.
pub unsafe fn c_strings<'a>(argv: *const *const c_char, n: usize) -> &'a [*const c_char] {
    if argv.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { core::slice::from_raw_parts(argv, n) }
}

/// The process environment as the C runtime passed it.
pub struct EnvList<'a> {
    entries: &'a [*const c_char],
}

impl<'a> EnvList<'a> {
    /// # Safety
    /// `envp` must be a NULL-terminated array of C strings that outlives the list.
    pub unsafe fn new(envp: *const *const c_char) -> EnvList<'a> {
        let mut n = 0;
        // SAFETY: guaranteed by the caller.
        unsafe {
            while !envp.is_null() && !(*envp.add(n)).is_null() {
                n += 1;
            }
            EnvList {
                entries: c_strings(envp, n),
            }
        }
    }

    /// The value of entry `i` when it is `name=value`.
    fn value_at(&self, i: usize, name: &[u8]) -> Option<&'a [u8]> {
        // SAFETY: every entry is a C string (see new).
        unsafe { value_of(self.entries[i], name) }
    }

    /// The value of the first `name=value` entry, as `getenv` finds it.
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        (0..self.entries.len()).find_map(|i| self.value_at(i, name))
    }

    /// This environment without any `name=` entry and with `entry` added, in `storage`.
    pub fn replacing_in<'s>(
        &self,
        name: &[u8],
        entry: &CStr,
        storage: &'s mut [MaybeUninit<*const c_char>],
    ) -> Option<&'s [*const c_char]> {
        if storage.len() < self.entries.len() + 2 {
            return None;
        }
        let mut n = 0;
        for i in 0..self.entries.len() {
            if self.value_at(i, name).is_none() {
                storage[n].write(self.entries[i]);
                n += 1;
            }
        }
        storage[n].write(entry.as_ptr());
        storage[n + 1].write(core::ptr::null());
        // SAFETY: the first n + 2 elements were just written.
        Some(unsafe { core::slice::from_raw_parts(storage.as_ptr().cast(), n + 2) })
    }

    /// [`EnvList::replacing_in`] in memory from `malloc`, for an environment of any size
    /// (the hand-over must not fail). Never freed: an `execve` follows.
    pub fn replacing_any(&self, name: &[u8], entry: &CStr) -> Option<*const *const c_char> {
        let len = self.entries.len() + 2;
        // SAFETY: malloc has no preconditions; the result is checked for NULL.
        let ptr = unsafe { libc::malloc(len * size_of::<*const c_char>()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: ptr holds len pointers' worth of bytes, suitably aligned by malloc.
        let storage = unsafe { core::slice::from_raw_parts_mut(ptr.cast(), len) };
        self.replacing_in(name, entry, storage).map(<[_]>::as_ptr)
    }
}

/// `value` when the C string `entry` is `name=value`. Only a match is measured: the fast
/// path looks up four names and rebuilds the environment once, and measuring every entry
/// each time (`PATH`, `LS_COLORS`: kilobytes) was its largest piece of user time.
///
/// # Safety
/// `entry` must be a C string.
unsafe fn value_of<'e>(entry: *const c_char, name: &[u8]) -> Option<&'e [u8]> {
    let entry = entry.cast::<u8>();
    // Compared byte by byte up to the first difference, so never past the entry's NUL (no
    // name holds a NUL, and `=` is not one).
    for (i, &b) in name.iter().chain(b"=").enumerate() {
        // SAFETY: the bytes before index i matched non-NUL bytes, so i is within the string.
        if unsafe { *entry.add(i) } != b {
            return None;
        }
    }
    // SAFETY: the value is the rest of the C string.
    Some(unsafe { CStr::from_ptr(entry.add(name.len() + 1).cast()) }.to_bytes())
}

/// The path the caller executed, as the kernel recorded it (`AT_EXECFN`).
pub fn executed_path() -> Option<&'static [u8]> {
    // SAFETY: getauxval has no preconditions; for AT_EXECFN it returns 0 or a pointer to a C
    // string on the initial stack, valid for the process's lifetime.
    #[cfg(not(fatbin_early_start))]
    let ptr = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const c_char;
    // Before the C library starts, its getauxval knows nothing yet: the kernel's own vector.
    #[cfg(fatbin_early_start)]
    let ptr = start::aux_value(libc::AT_EXECFN) as *const c_char;
    if ptr.is_null() {
        return None;
    }
    // SAFETY: see above.
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    (!bytes.is_empty()).then_some(bytes)
}

/// The owner and mode of a file.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub uid: u32,
    pub mode: u32,
    // `off_t`: 64 bits on musl and 64-bit glibc, 32 on 32-bit glibc.
    size: libc::off_t,
}

impl Stat {
    fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

fn stat_of(st: &libc::stat) -> Stat {
    Stat {
        uid: st.st_uid,
        mode: st.st_mode,
        size: st.st_size,
    }
}

/// `lstat`: the path itself, a final symlink not followed (so it shows as a symlink, mode
/// 0777, which no trust rule accepts).
pub fn lstat<const N: usize>(path: &CStrBuf<N>) -> Option<Stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: path is a C string and st is large enough for a stat.
    unsafe { sys::lstat(path.as_ptr(), st.as_mut_ptr()) }.ok()?;
    // SAFETY: lstat succeeded, so it filled st.
    Some(stat_of(unsafe { st.assume_init_ref() }))
}

impl Stat {
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

pub fn euid() -> u32 {
    sys::geteuid()
}

/// An open file descriptor, closed by the `execve` that ends this process.
///
/// A system call costs about 3 µs in a freshly exec'd process in a VM with page table
/// isolation (measured: the fast path's nine checking calls cost 0.1x direct exec), so
/// descriptors are never closed: they are opened close-on-exec, and this process always ends
/// in an `execve` (the slot's, or the full launcher's) or exits.
struct Fd(libc::c_int);

impl Fd {
    /// Opens for reading without blocking, so a FIFO in a file's place cannot hang us; with
    /// `follow` false, a symlink fails to open (`O_NOFOLLOW`).
    fn open<const N: usize>(path: &CStrBuf<N>, follow: bool) -> Option<(Fd, Stat)> {
        let mut flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        if !follow {
            flags |= libc::O_NOFOLLOW;
        }
        // The system call itself: the C library's open() follows O_CLOEXEC with an fcntl
        // for kernels older than 2.6.23.
        // SAFETY: path is a C string.
        let fd = Fd(unsafe { sys::openat(path.as_ptr(), flags) }.ok()?);
        let mut st = MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fd is open and st is large enough for a stat.
        unsafe { sys::fstat(fd.0, st.as_mut_ptr()) }.ok()?;
        // SAFETY: fstat succeeded.
        let stat = stat_of(unsafe { st.assume_init_ref() });
        stat.is_file().then_some((fd, stat))
    }

    /// Reads until `buf` is full or the file ends; the bytes read.
    fn read_into<'b>(&self, buf: &'b mut [MaybeUninit<u8>]) -> Option<&'b [u8]> {
        let mut done = 0;
        while done < buf.len() {
            // SAFETY: the range is inside buf.
            let n = unsafe { sys::read(self.0, buf[done..].as_mut_ptr().cast(), buf.len() - done) };
            match n {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(libc::EINTR) => {}
                Err(_) => return None,
            }
        }
        // SAFETY: the first done bytes were written by read.
        Some(unsafe { core::slice::from_raw_parts(buf.as_ptr().cast(), done) })
    }
}

fn errno() -> libc::c_int {
    // SAFETY: musl's and glibc's errno location is always valid for this thread.
    unsafe { *libc::__errno_location() }
}

/// The whole of a regular file smaller than `buf`; `None` for anything else.
pub fn read_small_file<'b, const N: usize>(
    path: &CStrBuf<N>,
    buf: &'b mut [MaybeUninit<u8>],
) -> Option<&'b [u8]> {
    let (fd, stat) = Fd::open(path, true)?;
    let size = usize::try_from(stat.size).ok().filter(|&s| s < buf.len())?;
    // Read what fstat said is there: no extra read to see the end of the file.
    let bytes = fd.read_into(&mut buf[..size])?;
    (bytes.len() == size).then_some(bytes)
}

/// [`read_small_file`], answering only how many bytes it read into `buf` (so the caller can
/// try another path with the same buffer before it looks at them).
pub fn read_small_file_len<const N: usize>(
    path: &CStrBuf<N>,
    buf: &mut [MaybeUninit<u8>],
) -> Option<usize> {
    read_small_file(path, buf).map(<[u8]>::len)
}

/// The first `len` bytes of `buf`.
///
/// # Safety
/// They must have been written (by [`read_small_file_len`]).
pub unsafe fn filled(buf: &[MaybeUninit<u8>], len: usize) -> &[u8] {
    // SAFETY: guaranteed by the caller; the range is checked.
    unsafe { core::slice::from_raw_parts(buf[..len].as_ptr().cast(), len) }
}

/// The shims directory a view's entry leads to: when the executed path is a symlink whose
/// target is an absolute `ROOT/shims/NAME` (what `fatbin view sync` writes for a program that
/// goes through the launcher), `ROOT/shims`, read into `buf`.
pub fn shims_dir_linked<'b>(name: &[u8], buf: &'b mut [u8; PATH_MAX]) -> Option<&'b [u8]> {
    let mut executed: CStrBuf = CStrBuf::new();
    executed.push(executed_path()?)?;
    let n = readlink(executed.as_ptr(), buf)?;
    let target = &buf[..n];
    let dir = target.strip_suffix(name)?.strip_suffix(b"/")?;
    (target.first() == Some(&b'/') && dir.ends_with(b"/shims")).then_some(dir)
}

/// The first 20 bytes of a regular file, not a symlink (one the full launcher follows and
/// checks where it leads), whose owner and mode pass `trusted`.
pub fn read_elf_header<const N: usize>(
    path: &CStrBuf<N>,
    trusted: impl Fn(&Stat) -> bool,
) -> Option<[u8; 20]> {
    let (fd, stat) = Fd::open(path, false)?;
    if !trusted(&stat) {
        return None;
    }
    let mut buf = [MaybeUninit::uninit(); 20];
    let bytes = fd.read_into(&mut buf)?;
    bytes.try_into().ok()
}

/// `n` in decimal, in `buf`.
pub fn format_u32(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `execve(path, argv, env)`; returns only when it failed.
pub fn exec<const N: usize>(path: &CStrBuf<N>, argv: &[*const c_char], env: &[*const c_char]) {
    // argv from main is NULL-terminated right after its last element.
    // SAFETY: path is a C string; argv and env are NULL-terminated arrays of C strings.
    unsafe { sys::execve(path.as_ptr(), argv.as_ptr(), env.as_ptr()) }
}

/// `execve` with raw arrays, through the C library (so `errno` tells why it failed, for
/// [`last_error_text`]); returns only when it failed.
///
/// # Safety
/// `argv` and `envp` must be NULL-terminated arrays of C strings.
pub unsafe fn execve_raw<const N: usize>(
    path: &CStrBuf<N>,
    argv: *const *const c_char,
    envp: *const *const c_char,
) {
    // SAFETY: guaranteed by the caller; path is a C string.
    unsafe { libc::execve(path.as_ptr(), argv, envp) };
}

/// This binary's path: `/proc/self/exe`, or, without /proc, the path the caller executed
/// with its symlinks followed (a shim -> `fatbin` -> the launcher).
pub fn own_path(out: &mut CStrBuf) -> Option<()> {
    let mut buf = [0u8; PATH_MAX];
    let len = match readlink(c"/proc/self/exe".as_ptr(), &mut buf) {
        Some(len) => len,
        None => resolve_links(&mut buf)?,
    };
    out.push(&buf[..len])
}

fn readlink(path: *const c_char, buf: &mut [u8; PATH_MAX]) -> Option<usize> {
    // SAFETY: path is a C string; buf has room for PATH_MAX - 1 bytes and the NUL.
    let n = unsafe { sys::readlink(path, buf.as_mut_ptr().cast(), PATH_MAX - 1) }.ok()?;
    buf[n] = 0;
    Some(n)
}

/// Follows the symlinks of the executed path into `buf`; its length.
fn resolve_links(buf: &mut [u8; PATH_MAX]) -> Option<usize> {
    let mut current: CStrBuf = CStrBuf::new();
    current.push(executed_path()?)?;
    for _ in 0..40 {
        let Some(n) = readlink(current.as_ptr(), buf) else {
            // Not a symlink: the binary itself.
            let len = current.len();
            buf[..len].copy_from_slice(current.bytes());
            return Some(len);
        };
        let target = &buf[..n];
        if target.first() == Some(&b'/') {
            current.truncate(0);
        } else {
            let dir = current
                .bytes()
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(0, |i| i + 1);
            current.truncate(dir);
        }
        current.push(target)?;
    }
    None
}

/// Writes the parts to stderr as one message and exits with 126 (found but cannot be
/// executed), like the full launcher.
pub fn fail(parts: &[&[u8]]) -> ! {
    for part in parts {
        // SAFETY: writing a valid buffer to fd 2; a failure has nowhere to be reported.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(126) }
}

/// Whether the last error is ENOEXEC ("Exec format error").
pub fn last_error_is_exec_format() -> bool {
    errno() == libc::ENOEXEC
}

/// The C library's text for the last error (`strerror(errno)`).
pub fn last_error_text() -> &'static [u8] {
    // SAFETY: strerror returns a static C string for any error number.
    unsafe { CStr::from_ptr(libc::strerror(errno())) }.to_bytes()
}

/// Whether `main` should try the fast path: the first time it runs (on early-start targets
/// `main` runs a second time after a hand-over started the C library).
pub fn first_run() -> bool {
    #[link_section = ".data"]
    static RAN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    !RAN.swap(true, core::sync::atomic::Ordering::Relaxed)
}

/// Makes sure the C library has started before the hand-over uses it (`malloc`, `errno`,
/// `strerror`). Where the fast path runs first ([`start`]), this starts it now, which calls
/// `main` again and does not return; elsewhere it has started already.
pub fn start_c_library(argv: *const *const c_char) {
    #[cfg(fatbin_early_start)]
    start::c_library(argv);
    #[cfg(not(fatbin_early_start))]
    let _ = argv;
}

/// The system calls of the fast path: `Err` holds the error number.
#[cfg(not(fatbin_early_start))]
mod sys {
    use core::ffi::{c_char, c_int, c_void};

    fn result(r: isize) -> Result<usize, c_int> {
        usize::try_from(r).map_err(|_| super::errno())
    }

    pub unsafe fn openat(path: *const c_char, flags: c_int) -> Result<c_int, c_int> {
        // SAFETY: guaranteed by the caller.
        let fd = unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, path, flags) };
        result(fd as isize).map(|fd| fd as c_int)
    }

    pub unsafe fn fstat(fd: c_int, st: *mut libc::stat) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller.
        result(unsafe { libc::fstat(fd, st) } as isize)
    }

    pub unsafe fn lstat(path: *const c_char, st: *mut libc::stat) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller.
        result(unsafe { libc::lstat(path, st) } as isize)
    }

    pub unsafe fn read(fd: c_int, buf: *mut c_void, len: usize) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller.
        result(unsafe { libc::read(fd, buf, len) })
    }

    pub unsafe fn readlink(
        path: *const c_char,
        buf: *mut c_char,
        len: usize,
    ) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller.
        result(unsafe { libc::readlink(path, buf, len) })
    }

    pub unsafe fn execve(
        path: *const c_char,
        argv: *const *const c_char,
        envp: *const *const c_char,
    ) {
        // SAFETY: guaranteed by the caller.
        unsafe { libc::execve(path, argv, envp) };
    }

    pub fn geteuid() -> u32 {
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() }
    }
}

/// The system calls of the fast path, made directly (the C library's wrappers would write
/// `errno`, which lives in thread-local storage the C library has not set up yet): `Err`
/// holds the error number.
#[cfg(fatbin_early_start)]
mod sys {
    use core::arch::asm;
    use core::ffi::{c_char, c_int, c_long, c_void};

    /// A system call with up to four arguments: the kernel's answer, `-errno` on failure.
    ///
    /// # Safety
    /// The arguments must be what system call `n` expects.
    #[cfg(target_arch = "x86_64")]
    unsafe fn call(n: c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: guaranteed by the caller; `syscall` clobbers rcx and r11 only.
        unsafe {
            asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
                in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _,
                options(nostack))
        };
        ret
    }

    /// A system call with up to four arguments: the kernel's answer, `-errno` on failure.
    ///
    /// # Safety
    /// The arguments must be what system call `n` expects.
    #[cfg(target_arch = "aarch64")]
    unsafe fn call(n: c_long, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: guaranteed by the caller; `svc 0` changes x0 only.
        unsafe {
            asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
                in("x2") c, in("x3") d, options(nostack))
        };
        ret
    }

    fn result(r: isize) -> Result<usize, c_int> {
        usize::try_from(r).map_err(|_| -r as c_int)
    }

    const AT_FDCWD: usize = libc::AT_FDCWD as usize;

    pub unsafe fn openat(path: *const c_char, flags: c_int) -> Result<c_int, c_int> {
        // SAFETY: guaranteed by the caller.
        let fd = unsafe { call(libc::SYS_openat, AT_FDCWD, path as usize, flags as usize, 0) };
        result(fd).map(|fd| fd as c_int)
    }

    pub unsafe fn fstat(fd: c_int, st: *mut libc::stat) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller; musl's `struct stat` is the kernel's here.
        result(unsafe { call(libc::SYS_fstat, fd as usize, st as usize, 0, 0) })
    }

    /// `lstat` as aarch64 has it (and x86_64 too): `fstatat` without following a symlink.
    pub unsafe fn lstat(path: *const c_char, st: *mut libc::stat) -> Result<usize, c_int> {
        let nofollow = libc::AT_SYMLINK_NOFOLLOW as usize;
        // SAFETY: guaranteed by the caller; musl's `struct stat` is the kernel's here.
        result(unsafe {
            call(
                libc::SYS_newfstatat,
                AT_FDCWD,
                path as usize,
                st as usize,
                nofollow,
            )
        })
    }

    pub unsafe fn read(fd: c_int, buf: *mut c_void, len: usize) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller.
        result(unsafe { call(libc::SYS_read, fd as usize, buf as usize, len, 0) })
    }

    pub unsafe fn readlink(
        path: *const c_char,
        buf: *mut c_char,
        len: usize,
    ) -> Result<usize, c_int> {
        // SAFETY: guaranteed by the caller.
        result(unsafe {
            call(
                libc::SYS_readlinkat,
                AT_FDCWD,
                path as usize,
                buf as usize,
                len,
            )
        })
    }

    pub unsafe fn execve(
        path: *const c_char,
        argv: *const *const c_char,
        envp: *const *const c_char,
    ) {
        // SAFETY: guaranteed by the caller.
        unsafe {
            call(
                libc::SYS_execve,
                path as usize,
                argv as usize,
                envp as usize,
                0,
            )
        };
    }

    pub fn geteuid() -> u32 {
        // SAFETY: geteuid takes no arguments and cannot fail.
        unsafe { call(libc::SYS_geteuid, 0, 0, 0, 0) as u32 }
    }
}

/// The entry point of a static musl `fatbin` on x86_64 and aarch64, linked with
/// `-e fatbin_start` and `-no-pie` (`launcher/build.rs`).
///
/// It calls `main` before the C library starts, and only a hand-over starts the C library
/// (musl's `__libc_start_main`, as its `crt1.o` would at entry), which calls `main` again.
/// Position-dependent, the binary has nothing to relocate: rustc's static-PIE start file
/// (`rcrt1.o`, still linked but unused) would first relocate the binary, writing to its
/// data pages. Together (measured with `ci/bench-launcher.sh`) this leaves a shim call two
/// system calls and four page faults short of the C library's start.
#[cfg(fatbin_early_start)]
mod start {
    use core::ffi::{c_char, c_int};
    use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    // Like musl's crt_arch.h: the stack pointer at entry points at argc, then argv; the
    // frame pointer (and on aarch64 the link register) is zeroed to end backtraces here.
    #[cfg(all(not(test), target_arch = "x86_64"))]
    core::arch::global_asm!(
        ".globl fatbin_start",
        ".type fatbin_start, @function",
        "fatbin_start:",
        "xor ebp, ebp",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {start_c}",
        "ud2",
        start_c = sym start_c,
    );
    #[cfg(all(not(test), target_arch = "aarch64"))]
    core::arch::global_asm!(
        ".globl fatbin_start",
        ".type fatbin_start, %function",
        "fatbin_start:",
        "mov x29, #0",
        "mov x30, #0",
        "mov x0, sp",
        "and sp, x0, #-16",
        "b {start_c}",
        start_c = sym start_c,
    );

    type Main = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;

    extern "C" {
        fn main(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
        /// musl's: starts the C library (auxiliary vector, thread pointer and TLS,
        /// `environ`), runs the initialisers, then `exit(main(argc, argv, envp))`. It ignores
        /// its last three arguments (musl calls `_init` itself).
        fn __libc_start_main(
            main: Main,
            argc: c_int,
            argv: *const *const c_char,
            init: usize,
            fini: usize,
            ldso: usize,
        ) -> !;
    }

    /// argc, and the kernel's auxiliary vector (after the environment's NULL).
    #[link_section = ".data"]
    static ARGC: AtomicUsize = AtomicUsize::new(0);
    #[link_section = ".data"]
    static AUXV: AtomicPtr<usize> = AtomicPtr::new(core::ptr::null_mut());
    /// Whether the C library has started (or is starting).
    #[link_section = ".data"]
    static C_LIBRARY: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// # Safety
    /// Only as the process's entry point: `sp` is the initial stack pointer.
    #[cfg(not(test))]
    unsafe extern "C" fn start_c(sp: *mut usize) -> ! {
        // SAFETY: the kernel's initial stack: argc, argc argv pointers and a NULL, the
        // environment's pointers and a NULL, then the auxiliary vector.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1);
            let envp = argv.add(argc + 1);
            let mut auxv = envp;
            while *auxv != 0 {
                auxv = auxv.add(1);
            }
            ARGC.store(argc, Ordering::Relaxed);
            AUXV.store(auxv.add(1), Ordering::Relaxed);
            main(argc as c_int, argv.cast(), envp.cast());
            // main ends in an exec or a hand-over; should it ever return, the C library's
            // start calls it again, and it hands over.
            C_LIBRARY.store(true, Ordering::Relaxed);
            __libc_start_main(main, argc as c_int, argv.cast(), 0, 0, 0)
        }
    }

    /// The value of auxiliary vector entry `key`, or 0.
    pub fn aux_value(key: libc::c_ulong) -> usize {
        let mut entry = AUXV.load(Ordering::Relaxed);
        if entry.is_null() {
            return 0;
        }
        // SAFETY: AUXV points at the kernel's (key, value) pairs, ended by key 0 (AT_NULL).
        unsafe {
            while *entry != 0 {
                if *entry == key as usize {
                    return *entry.add(1);
                }
                entry = entry.add(2);
            }
        }
        0
    }

    /// Starts the C library, which calls `main` again, the first time; returns at once
    /// after that (the C library has started).
    pub fn c_library(argv: *const *const c_char) {
        if C_LIBRARY.swap(true, Ordering::Relaxed) {
            return;
        }
        let argc = ARGC.load(Ordering::Relaxed) as c_int;
        // SAFETY: argv is the kernel's, argc long, as at entry.
        unsafe { __libc_start_main(main, argc, argv, 0, 0, 0) }
    }
}
