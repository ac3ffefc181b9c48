//! A bump allocator for the launcher's short life: memory is never given back (the process
//! execs or exits within a millisecond), and handing it out from a static buffer saves the
//! `mmap`/`munmap` pairs musl's malloc makes for small blocks. Requests the buffer cannot
//! satisfy go to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Enough for the manifest, its parse and the exec's argv and envp; in .bss, so untouched
/// pages cost nothing.
const ARENA_BYTES: usize = 256 * 1024;

/// The allocator: a static buffer and how much of it is handed out.
#[derive(Debug)]
pub struct Arena {
    buf: UnsafeCell<[u8; ARENA_BYTES]>,
    used: AtomicUsize,
}

// SAFETY: the buffer is only handed out in disjoint pieces, reserved atomically.
unsafe impl Sync for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena {
            buf: UnsafeCell::new([0; ARENA_BYTES]),
            used: AtomicUsize::new(0),
        }
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        let start = self.buf.get() as usize;
        (start..start + ARENA_BYTES).contains(&(ptr as usize))
    }
}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

// SAFETY: every pointer returned is either a fresh, suitably aligned, in-bounds piece of the
// buffer that no other allocation overlaps, or comes from System; dealloc forwards System's
// pointers back to System and ignores the arena's.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.buf.get() as usize;
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= ARENA_BYTES => end,
                // SAFETY: forwarded with the caller's valid layout.
                _ => return unsafe { System.alloc(layout) },
            };
            match self
                .used
                .compare_exchange_weak(used, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.contains(ptr) {
            // SAFETY: not ours, so System allocated it with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}
