//! The rules every part of fatbin must agree on, in one place: `fatbin-core`.
//!
//! The `no_std` fast launcher, the full launcher and the layout library (hence
//! `cargo fatbin`) all decide things about the same files: which processor a slot is for,
//! whether a name is a program, whether a binary's ELF header is its slot's, whether a
//! directory may be trusted, what a manifest says. When two of them answered one of these
//! differently, the fast launcher and the full one could run different binaries for the same
//! call. So each rule lives here once, without std or an allocator, and all three use it:
//!
//! - [`arch`]: the processor table, one row per slot architecture (adding a processor is a
//!   row plus its tests), x86-64 levels, HWCAP feature bits;
//! - [`slot`]: slot names; [`names`]: program names;
//! - [`elf`]: the ELF header check; [`trust`]: the owner and mode rule;
//! - [`clib`]: a slot's program interpreter and the glibc version in a loader's banner;
//! - [`env`]: environment variable names and limits; [`fallback`]: the `FATBIN_FALLBACK`
//!   grammar;
//! - [`manifest`]: the manifest's file name, format version, size limit and rules;
//!   [`canonical`]: the reader of manifests in the shape the layout writes them;
//! - [`pick`] and [`features`]: the fast launcher's decision, here so that the full
//!   launcher's tests can compare it with its own; [`cpuid`]: lazy x86 feature detection.
#![cfg_attr(not(test), no_std)]

pub mod arch;
pub mod canonical;
pub mod clib;
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
pub mod cpuid;
pub mod elf;
pub mod env;
pub mod fallback;
pub mod features;
pub mod manifest;
pub mod names;
pub mod pick;
pub mod slot;
pub mod text;
pub mod trust;

pub use arch::{Arch, ArchInfo, Endian, ARCHES};
pub use slot::Slot;
