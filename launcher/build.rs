//! Link options for the fast launcher (`fatbin`, src/fast) only.
//!
//! `-z noseparate-code`: the fast launcher is under 50 KiB, and with each segment padded to
//! its own pages its start touches one more file page per segment: a page fault each, on
//! every shim call. Without the padding it starts with about five fewer page faults, which
//! measured 1.32x direct exec against 1.40x (`ci/bench-launcher.sh`). The padding exists to
//! keep read-only data out of executable pages (fewer ROP gadgets); for this small binary,
//! which parses only a few hundred bytes of manifest in safe Rust, the trade is worth it.
//! The full launcher keeps the default layout.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=fatbin=-z");
        println!("cargo:rustc-link-arg-bin=fatbin=noseparate-code");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
