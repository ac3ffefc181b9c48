//! The fat-program layout: one directory per program, one binary per processor slot.
//!
//! ```text
//! ROOT/bin/PROG/SLOT          one binary per slot (x86_64, x86_64-v3, aarch64, ...)
//! ROOT/bin/PROG/SLOT.HEX      its content file (16 hex of its sha256): what launchers run
//! ROOT/bin/PROG/fatbin.toml   the manifest: per-slot facts, each slot's content file
//! ROOT/bin/.lock              installers' lock (flock), never read by the launcher
//! ROOT/bin/.lock.owner        installers' lock across clients (O_EXCL, host and pid)
//! ROOT/shims/PROG             what users put on PATH
//! ROOT/nodes.toml             the cluster's nodes
//! ```
//!
//! The rules both launchers must apply alike (the processor table, slot and program names,
//! the ELF check, the trust rule, the manifest's limits) live in `fatbin-core`, which this
//! crate re-exports where its API names them ([`Arch`], [`names`], [`slot`]).
//!
//! This crate is the contract both front ends share: slot names ([`slot`]), the manifest
//! ([`manifest`]), binary identification ([`identify`]), atomic installs ([`install`]),
//! verification ([`verify`]), telling fatbin's shims from other files ([`shims`]) and the
//! permission rules for running from a layout ([`perms`]). The format is written down in
//! `docs/layout.md`.

pub mod arch;
pub mod error;
pub mod exit;
pub mod fstype;
pub mod fsutil;
pub mod identify;
pub mod install;
pub mod layout;
pub mod manifest;
pub mod perms;
pub mod shims;
pub mod slot;
pub mod verify;

/// Program names: the rule is `fatbin_core`'s.
pub use fatbin_core::names;

pub use arch::{Arch, Endian};
pub use error::{Error, Result};
pub use identify::{identify_bytes, identify_path, Identity, Libc};
pub use install::{
    install, read_shim, remove_program, remove_slot, script_shim_launcher, script_shim_text,
    write_script_shim, write_shim, InstallReport, NewSlot, ShimForm,
};
pub use layout::{default_root, validate_program_name, xdg_dir, Layout};
pub use manifest::{Manifest, SlotInfo, FORMAT_VERSION, MANIFEST_FILE};
pub use slot::SlotName;
