//! Link options for the fast launcher (`fatbin`, src/fast) only: a small page layout, and a
//! static binary however it is built.
//!
//! `-z noseparate-code`: the fast launcher is under 50 KiB, and with each segment padded to
//! its own pages its start touches one more file page per segment: a page fault each, on
//! every shim call. Without the padding it starts with about five fewer page faults, which
//! measured 1.32x direct exec against 1.40x (`ci/bench-launcher.sh`). The padding exists to
//! keep read-only data out of executable pages (fewer ROP gadgets); for this small binary,
//! which parses only a few hundred bytes of manifest in safe Rust, the trade is worth it.
//! The full launcher keeps the default layout.
//!
//! Static on gnu targets too: `cargo install --path launcher` and a workspace
//! `cargo build --release` use the host's default target, `*-linux-gnu`, where rustc links
//! the C library dynamically, and a dynamically linked fast launcher costs the dynamic
//! loader's start-up on every shim call (measured 3x direct exec, against 1.3x static). A
//! package cannot ask for `+crt-static` (only RUSTFLAGS or a cargo config can, and
//! `cargo install` reads neither from the package), and `-static` alone does not help:
//! rustc passes the C library as `-Wl,-Bdynamic -lc`, which wins over `-static` and leaves
//! a binary that needs `libc.so.6` but has no program interpreter, and crashes at start.
//! So the fast launcher gets its own `libc.so` first on the library path: a linker script
//! naming the static `libc.a` (the way glibc's own `libc.so` is a linker script naming
//! `libc.so.6`), plus `-static -no-pie`. Without a `libc.a` (no static C library
//! installed), the build says so and the launcher stays dynamic: correct, only slower.
//!
//! Position-dependent on musl x86_64 and aarch64 too: rustc links a static musl binary as a
//! static PIE with musl's `rcrt1.o`, whose start relocates the binary (writing its relocated
//! data pages) before the C library's own start-up. `-no-pie` alone crashes (`rcrt1.o` still
//! runs and looks for a dynamic section that is gone), and `-C relocation-model=static`
//! would take RUSTFLAGS for the whole build. So the fast launcher has its own entry point
//! (`-e fatbin_start`, src/fast/os.rs), which also runs the fast path before the C library
//! starts (`cfg(fatbin_early_start)`), and `-z norelro` with, for lld, `--no-rosegment`
//! leaves two segments (code with read-only data, data): a page fault fewer for each segment
//! not mapped. musl never write-protects RELRO in a static binary, so `-z norelro` gives up
//! nothing there. The figures are in docs/launcher.md (Performance).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo::rustc-check-cfg=cfg(fatbin_early_start)");
    if env("CARGO_CFG_TARGET_OS").as_deref() != Some("linux") {
        return;
    }
    println!("cargo:rustc-link-arg-bin=fatbin=-z");
    println!("cargo:rustc-link-arg-bin=fatbin=noseparate-code");
    let crt_static = env("CARGO_CFG_TARGET_FEATURE")
        .is_some_and(|features| features.split(',').any(|f| f == "crt-static"));
    let target_env = env("CARGO_CFG_TARGET_ENV");
    if target_env.as_deref() == Some("gnu") && !crt_static {
        link_glibc_statically();
    }
    let arch = env("CARGO_CFG_TARGET_ARCH");
    if target_env.as_deref() == Some("musl")
        && matches!(arch.as_deref(), Some("x86_64" | "aarch64"))
    {
        link_musl_position_dependent();
    }
}

/// The arguments that make the musl fast launcher position-dependent, started by its own
/// entry point (`fatbin_start` in src/fast/os.rs), in two segments.
fn link_musl_position_dependent() {
    println!("cargo:rustc-cfg=fatbin_early_start");
    for arg in ["-no-pie", "-e", "fatbin_start", "-z", "norelro"] {
        println!("cargo:rustc-link-arg-bin=fatbin={arg}");
    }
    // lld keeps read-only data in a segment of its own even without separate code; GNU ld
    // merges it into the code's with `-z noseparate-code` (above) and has no such option.
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let linker = env("RUSTC_LINKER").unwrap_or_default();
    let linker_name = Path::new(&linker).file_name().unwrap_or_default();
    if linker_name.to_string_lossy().contains("lld") {
        println!("cargo:rustc-link-arg-bin=fatbin=--no-rosegment");
    }
}

/// The linker script and arguments that make the fast launcher static against glibc.
fn link_glibc_statically() {
    let compiler = c_compiler();
    let archives: Option<Vec<PathBuf>> = ["libc.a", "libgcc.a", "libgcc_eh.a"]
        .iter()
        .map(|name| find_library(&compiler, name))
        .collect();
    let Some(archives) = archives else {
        println!(
            "cargo:warning=no static C library (libc.a) found with `{compiler}`: the `fatbin` \
             fast launcher is linked dynamically, which makes every shim call slower; install \
             the C library's development package (Debian: libc6-dev) or build for a musl target"
        );
        return;
    };
    let out_dir = PathBuf::from(env("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script_dir = out_dir.join("static-libc");
    std::fs::create_dir_all(&script_dir).expect("create OUT_DIR/static-libc");
    let names: Vec<String> = archives.iter().map(|a| a.display().to_string()).collect();
    let script = format!(
        "/* The static C library, for the fatbin fast launcher (see launcher/build.rs). */\n\
         GROUP ( {} )\n",
        names.join(" ")
    );
    std::fs::write(script_dir.join("libc.so"), script).expect("write the libc.so linker script");
    // For the fast launcher only: `fatbin-full` uses std, which links more of the C library
    // than a static glibc serves well (name lookups), and starts far less often. (`-L` given
    // after `-lc` still applies to it: the linker reads every search path first.)
    println!("cargo:rustc-link-arg-bin=fatbin=-L{}", script_dir.display());
    println!("cargo:rustc-link-arg-bin=fatbin=-static");
    println!("cargo:rustc-link-arg-bin=fatbin=-no-pie");
}

/// The C compiler that links for the target: `$CC_<target>`/`$CC`, `cc` on the host's own
/// target, else the Debian cross compiler (`arm-linux-gnueabihf-gcc` for
/// `armv7-unknown-linux-gnueabihf`: Debian names 32-bit Arm, and RISC-V, without Rust's
/// ISA suffixes).
fn c_compiler() -> String {
    let target = env("TARGET").unwrap_or_default();
    let under = target.replace('-', "_");
    for var in [format!("CC_{target}"), format!("CC_{under}"), "CC".into()] {
        println!("cargo:rerun-if-env-changed={var}");
        if let Some(cc) = env(&var).filter(|cc| !cc.is_empty()) {
            return cc;
        }
    }
    if env("HOST").as_deref() == Some(target.as_str()) {
        "cc".into()
    } else {
        let debian = target.replace("-unknown", "");
        let (arch, rest) = debian.split_once('-').unwrap_or((&debian, "linux-gnu"));
        let arch = match arch {
            "armv7" | "thumbv7neon" | "armv6" => "arm",
            "riscv64gc" => "riscv64",
            other => other,
        };
        format!("{arch}-{rest}-gcc")
    }
}

/// The full path of a library the compiler links with, when it has one.
fn find_library(compiler: &str, name: &str) -> Option<PathBuf> {
    let out = Command::new(compiler)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // An unknown library is printed back as its bare name.
    (out.status.success() && path.is_absolute() && Path::new(&path).is_file()).then_some(path)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
