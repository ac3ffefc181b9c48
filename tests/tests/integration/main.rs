//! The integration tests: one binary, a module per area. They drive the real binaries, real
//! cross builds, real qemu-user and a real sshd; see each module's header for what it needs.

mod cargo_fatbin;
mod launcher;
mod layout;
mod migration;
mod migration_faults;
mod migration_state;
mod processors;
mod sharedfs;
mod slurm;
mod trust;
mod zig_toolchain;
