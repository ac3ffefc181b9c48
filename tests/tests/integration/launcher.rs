//! The launcher (`fatbin`, issue 4), driven as shipped: the static musl build, reached
//! through real shims, choosing among real probe builds for four x86-64 levels and aarch64,
//! with the choice checked under qemu-user's CPU models (`qemu-x86_64-static -cpu ...`).
//!
//! Needs: the x86_64-unknown-linux-musl and aarch64-unknown-linux-musl targets, and Debian's
//! qemu-user-static, bash, python3, findutils (xargs, find).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fatbin_tests::launcher_support::{
    clean_env, output, output_within, require_qemu, stderr, stdout, TestLayout,
};
use fatbin_tests::probe_binary;

const X86: &str = "x86_64-unknown-linux-musl";
const ARM: &str = "aarch64-unknown-linux-musl";

/// A layout with `probe` built for every x86-64 level and for aarch64.
fn levels_layout() -> TestLayout {
    let t = TestLayout::new();
    t.install_probes(
        "probe",
        &[
            ("x86_64", X86, None),
            ("x86_64-v2", X86, Some("x86-64-v2")),
            ("x86_64-v3", X86, Some("x86-64-v3")),
            ("x86_64-v4", X86, Some("x86-64-v4")),
            ("aarch64", ARM, None),
        ],
    );
    t
}

/// A layout with only a baseline x86_64 probe: what runs does not depend on the CPU.
fn baseline_layout() -> TestLayout {
    let t = TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    t
}

/// The `level=` a probe built for x86-64 level `n` prints.
fn probe_level(n: u8) -> &'static str {
    match n {
        1 => "baseline",
        2 => "x86-64-v2",
        3 => "x86-64-v3",
        _ => "x86-64-v4",
    }
}

/// The host's x86-64 level as `fatbin host` reports it.
fn host_level(t: &TestLayout) -> u8 {
    let out = output(t.fatbin().arg("host"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let level = text
        .lines()
        .find_map(|l| l.strip_prefix("x86-64 level: x86-64-v"))
        .unwrap_or_else(|| panic!("no level in:\n{text}"));
    level.trim().parse().unwrap()
}

fn assert_ran(out: &std::process::Output, needle: &str) {
    assert!(
        out.status.success() && stdout(out).contains(needle),
        "expected `{needle}`; status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

fn assert_fails(out: &std::process::Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    for needle in needles {
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
    assert!(err.starts_with("fatbin: "), "{err}");
}

// ---------------------------------------------------------------------------------------
// Selection

#[test]
fn picks_the_level_each_emulated_cpu_model_offers() {
    let t = levels_layout();
    let qemu = require_qemu("x86_64");
    for (cpu, level, slot) in [
        ("qemu64", "baseline", "x86_64"),
        ("Nehalem", "x86-64-v2", "x86_64-v2"),
        ("Haswell", "x86-64-v3", "x86_64-v3"),
    ] {
        // The launcher itself runs under the emulated CPU and must see that CPU.
        let out = output(clean_env(
            Command::new(&qemu).args(["-cpu", cpu]).arg(t.shim("probe")),
        ));
        assert_ran(&out, &format!("level={level} "));
        // The slot's content file (`SLOT.<hex>`, see docs/layout.md).
        assert!(
            stdout(&out).contains(&format!("/bin/probe/{slot}.")),
            "{cpu}: {}",
            stdout(&out)
        );
        // The command line runs in the full launcher: started directly, since the fast one
        // would hand over with an `execve`, which leaves qemu-user (no binfmt_misc here).
        let host = output(clean_env(
            Command::new(&qemu)
                .args(["-cpu", cpu])
                .arg(t.full_launcher())
                .arg("host"),
        ));
        let n = match level {
            "baseline" => 1,
            "x86-64-v2" => 2,
            _ => 3,
        };
        assert_ran(&host, &format!("x86-64 level: x86-64-v{n}\n"));
    }
}

#[test]
fn picks_the_best_level_of_this_host() {
    let t = levels_layout();
    let level = host_level(&t);
    let out = output(&mut t.run("probe"));
    assert_ran(&out, &format!("level={} ", probe_level(level)));
    let which = output(t.fatbin().args(["which", "probe"]));
    let slot = if level == 1 {
        "x86_64".to_owned()
    } else {
        format!("x86_64-v{level}")
    };
    assert_eq!(
        Path::new(stdout(&which).trim()).canonicalize().unwrap(),
        t.slot_path("probe", &slot).canonicalize().unwrap()
    );
}

/// An aarch64 node runs its own aarch64 launcher, which reads AT_HWCAP (here emulated).
#[test]
fn an_aarch64_launcher_detects_its_host_and_picks_the_aarch64_slot() {
    let t = levels_layout();
    let qemu = require_qemu("aarch64");
    let node = t.dir.path().join("arm-node");
    std::fs::create_dir(&node).unwrap();
    // The full launcher, for its command line (see picks_the_level_each_emulated_cpu_model_offers).
    let launcher = fatbin_tests::install_launcher("aarch64-unknown-linux-musl", &node)
        .with_file_name("fatbin-full");
    let out = output(clean_env(
        Command::new(&qemu)
            .args(["-cpu", "cortex-a53"])
            .arg(&launcher)
            .arg("host"),
    ));
    assert_ran(&out, "arch: aarch64\n");
    assert!(
        stdout(&out).contains(" neon ") || stdout(&out).contains(": neon "),
        "{}",
        stdout(&out)
    );
    assert!(
        !stdout(&out).contains("sve"),
        "a Cortex-A53 has no SVE: {}",
        stdout(&out)
    );
    let out = output(clean_env(
        Command::new(&qemu)
            .arg(&launcher)
            .args(["which", "--root"])
            .arg(&t.root)
            .args(["probe", "--explain"]),
    ));
    assert_ran(&out, "aarch64    supported, chosen");
    assert!(
        stdout(&out).contains("x86_64 binaries do not run on aarch64"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn explain_lists_every_slot_with_its_verdict() {
    let t = levels_layout();
    let qemu = require_qemu("x86_64");
    let out = output(clean_env(
        Command::new(&qemu)
            .args(["-cpu", "Nehalem"])
            .arg(t.full_launcher())
            .args(["which", "--root"])
            .arg(&t.root)
            .args(["probe", "--explain"]),
    ));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let line = |slot: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{slot} ")))
            .unwrap_or_else(|| panic!("no line for {slot} in:\n{text}"))
            .to_owned()
    };
    assert!(
        line("x86_64-v4").contains("not supported: the CPU lacks"),
        "{text}"
    );
    assert!(line("x86_64-v3").contains("avx2"), "{text}");
    assert!(line("x86_64-v2").contains("supported, chosen"), "{text}");
    assert!(line("x86_64").ends_with("supported"), "{text}");
    assert!(
        line("aarch64").contains("aarch64 binaries do not run on x86_64"),
        "{text}"
    );
    assert!(text.contains("host:    x86_64 (x86-64-v2)"), "{text}");
}

/// The route `which PROG --explain` prints on its `runs:` line and what running PROG does,
/// for one set of environment variables; they must be the same decision.
fn assert_which_matches_run(t: &TestLayout, program: &str, env: &[(&str, &str)]) {
    let which = output(
        t.fatbin()
            .args(["which", program, "--explain"])
            .envs(env.iter().copied()),
    );
    let explained = stdout(&which);
    let runs = explained
        .split_once("\nruns: ")
        .unwrap_or_else(|| panic!("{env:?}: no `runs:` line in:\n{explained}"))
        .1;
    let run = output(t.run(program).envs(env.iter().copied()));
    let case = format!(
        "{program} {env:?}\nwhich --explain:\n{explained}\nrun: {:?}\n{}{}",
        run.status,
        stdout(&run),
        stderr(&run)
    );
    if let Some(error) = runs.strip_prefix("nothing\n") {
        assert_eq!(which.status.code(), run.status.code(), "{case}");
        assert_eq!(
            stderr(&run).strip_prefix("fatbin: "),
            Some(error),
            "the error `which` explains is not the one `run` fails with: {case}"
        );
        return;
    }
    assert!(which.status.success() && run.status.success(), "{case}");
    // The runs line ends with the slot's path; the probe reports the file it runs from.
    let runs = runs.trim_end();
    let slot = Path::new(runs.rsplit(' ').next().unwrap());
    let exe = stdout(&run)
        .trim_end()
        .rsplit_once(" exe=")
        .map(|(_, exe)| exe.to_owned())
        .unwrap_or_else(|| panic!("no exe= in the probe's output: {case}"));
    assert_eq!(
        slot.canonicalize().unwrap(),
        Path::new(&exe).canonicalize().unwrap(),
        "{case}"
    );
    // An emulated route names the emulator, and the slot really ran emulated.
    let arch = stdout(&run)
        .split(" arch=")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned();
    assert_eq!(runs.contains("qemu-"), arch != "x86_64", "{case}");
    // Without --explain, `which` prints the same route.
    let short = output(
        t.fatbin()
            .args(["which", program])
            .envs(env.iter().copied()),
    );
    assert_eq!(stdout(&short).trim_end(), runs, "{case}");
}

/// `which --explain` prints the decision `run` executes (issue 12): the same slot, the same
/// emulator, the same refusal, for layouts that take every route a single host can take.
/// Regression: a slot that the permission checks refuse was reported as `runs: PATH` while
/// running it failed with 126.
#[test]
fn which_explains_exactly_what_run_does() {
    let t = levels_layout();
    require_qemu("aarch64");
    t.install_probes("armonly", &[("aarch64", ARM, None)]);
    t.install_probes("base", &[("x86_64", X86, None), ("aarch64", ARM, None)]);
    for (program, env) in [
        ("probe", &[][..]),
        ("probe", &[("FATBIN_ARCH", "x86_64")][..]),
        ("probe", &[("FATBIN_ARCH", "aarch64")][..]),
        ("probe", &[("FATBIN_ARCH", "riscv64")][..]),
        ("armonly", &[][..]),
        ("armonly", &[("FATBIN_FALLBACK", "qemu")][..]),
        ("armonly", &[("FATBIN_FALLBACK", "none")][..]),
    ] {
        assert_which_matches_run(&t, program, env);
    }
    // Refused by the checks before exec: a group-writable slot, then a missing one.
    let slot = t.slot_path("base", "x86_64");
    chmod(&slot, 0o775);
    assert_which_matches_run(&t, "base", &[]);
    std::fs::remove_file(&slot).unwrap();
    assert_which_matches_run(&t, "base", &[]);
    // The emulated slot refused the same way.
    chmod(&t.slot_path("armonly", "aarch64"), 0o777);
    assert_which_matches_run(&t, "armonly", &[]);
}

#[test]
fn list_shows_programs_and_the_slot_this_host_runs() {
    let t = levels_layout();
    t.install_probes("other", &[("aarch64", ARM, None)]);
    let out = output(t.fatbin().args(["list"]));
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("probe ") && text.contains("* "), "{text}");
    assert!(text.contains("other  aarch64\n"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Overrides and fallbacks

#[test]
fn forced_aarch64_runs_under_qemu() {
    let t = levels_layout();
    require_qemu("aarch64");
    let out = output(t.run("probe").env("FATBIN_ARCH", "aarch64"));
    assert_ran(&out, "probe arch=aarch64 level=baseline");
    assert!(
        stdout(&out).contains(&format!("argv0={} ", t.shim("probe").display())),
        "{}",
        stdout(&out)
    );
    let out = output(
        t.fatbin()
            .args(["run", "--arch", "aarch64", "probe", "args", "a b", ""]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"a b\0\0");
}

#[test]
fn forced_absent_slot_is_not_found() {
    let t = levels_layout();
    let out = output(t.fatbin().args(["run", "--arch", "riscv64", "probe"]));
    assert_fails(
        &out,
        127,
        &["no slot `riscv64`", "--arch", "x86_64-v2", "aarch64"],
    );
    let out = output(t.run("probe").env("FATBIN_ARCH", "s390x"));
    assert_fails(&out, 127, &["no slot `s390x`", "FATBIN_ARCH"]);
    let out = output(t.fatbin().args(["which", "--arch", "riscv64", "probe"]));
    assert_fails(&out, 127, &["no slot `riscv64`"]);
    let out = output(
        t.fatbin()
            .args(["which", "--arch", "riscv64", "probe", "--explain"]),
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(stdout(&out).contains("runs: nothing"), "{}", stdout(&out));
    let out = output(t.run("probe").env("FATBIN_ARCH", "intel"));
    assert_fails(&out, 2, &["invalid slot name `intel`"]);
}

#[test]
fn no_runnable_slot_without_fallback_names_everything() {
    let t = TestLayout::new();
    t.install_probes("armonly", &[("aarch64", ARM, None)]);
    let out = output(t.run("armonly").env("FATBIN_FALLBACK", "none"));
    assert_fails(
        &out,
        126,
        &[
            "armonly",
            "slot aarch64",
            "x86_64",
            "fix:",
            "cargo fatbin install",
        ],
    );
    // With the default fallbacks and qemu installed, it runs emulated.
    require_qemu("aarch64");
    let out = output(&mut t.run("armonly"));
    assert_ran(&out, "probe arch=aarch64");
    let out = output(t.run("armonly").env("FATBIN_FALLBACK", "nodes,bogus"));
    assert_fails(&out, 2, &["FATBIN_FALLBACK", "bogus"]);
}

// ---------------------------------------------------------------------------------------
// Exec: argv, streams, status, identity

#[test]
fn argv_passes_through_unchanged() {
    let t = baseline_layout();
    let args: Vec<&OsStr> = [
        &b"a b"[..],
        b"",
        b"\xff\xfe not utf-8",
        b"--help",
        b"-",
        b"*",
        b"$(echo hi)",
        b"new\nline",
    ]
    .iter()
    .map(|a| OsStr::from_bytes(a))
    .collect();
    let mut expected = Vec::new();
    for a in &args {
        expected.extend_from_slice(a.as_bytes());
        expected.push(0);
    }
    let out = output(t.run("probe").arg("args").args(&args));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, expected);
    let out = output(t.fatbin().args(["run", "probe", "args"]).args(&args));
    assert_eq!(out.stdout, expected);
    // argv[0] is kept exactly, even when it is not the shim's name.
    let out = output(t.run("probe").arg0("any name at all").arg("argv0"));
    assert_eq!(stdout(&out), "any name at all");
    let out = output(t.fatbin().args(["run", "probe", "argv0"]));
    assert_eq!(stdout(&out), "probe");
}

#[test]
fn streams_pass_through_unchanged() {
    let t = baseline_layout();
    // A MiB of every byte value, more than any pipe buffer.
    let data: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = output_within(t.run("probe").arg("cat"), &data, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == data, "stdin -> stdout changed the bytes");
    let out = output(t.run("probe").args(["stderr", "to stderr \u{1}"]));
    assert_eq!(out.stderr, "to stderr \u{1}".as_bytes());
    assert!(out.stdout.is_empty());
}

#[test]
fn exit_statuses_pass_through() {
    let t = baseline_layout();
    for code in 0..=255 {
        let out = output(t.run("probe").args(["exit", &code.to_string()]));
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    }
    for sig in [libc::SIGHUP, libc::SIGKILL, libc::SIGPIPE, libc::SIGTERM] {
        let out = output(t.run("probe").args(["signal", &sig.to_string()]));
        assert_eq!(out.status.signal(), Some(sig), "{:?}", out.status);
    }
}

/// The program is the launcher's process (same pid), its /proc/self/exe is the slot file, and
/// it gets the signal dispositions and environment its caller set, plus FATBIN_DEPTH only.
/// The slot here is the system's `sleep` (C, glibc): a Rust probe would set SIGPIPE itself.
#[test]
fn the_program_replaces_the_launcher() {
    let t = TestLayout::new();
    let sleep = ["/usr/bin/sleep", "/bin/sleep"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("coreutils sleep");
    let slot: fatbin_layout::SlotName = "x86_64".parse().unwrap();
    fatbin_layout::install(
        &t.layout(),
        "sleep",
        &[fatbin_layout::NewSlot::from_file(slot, sleep)],
    )
    .unwrap();
    t.add_shim("sleep");
    let slot_path = t.slot_path("sleep", "x86_64").canonicalize().unwrap();
    let sig_bit = |sig: i32| 1u64 << (sig - 1);
    for (script, pipe_ignored) in [("", false), ("trap '' PIPE; ", true)] {
        // Long enough to be read on a loaded machine (it was 5 s): it is killed below.
        let script = format!("{script}exec {} 60", t.shim("sleep").display());
        let mut child = clean_env(Command::new("sh").args(["-c", &script]))
            .spawn()
            .unwrap();
        let proc_dir = format!("/proc/{}", child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match std::fs::read_link(format!("{proc_dir}/exe")) {
                Ok(exe) if exe == slot_path => break,
                _ if std::time::Instant::now() > deadline => {
                    panic!(
                        "{proc_dir}/exe never became the slot {}",
                        slot_path.display()
                    )
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(
            ignored & sig_bit(libc::SIGPIPE) != 0,
            pipe_ignored,
            "SIGPIPE must reach the program as the caller left it ({script}); SigIgn {ignored:x}"
        );
        let environ = std::fs::read(format!("{proc_dir}/environ")).unwrap();
        assert!(
            environ.split(|&b| b == 0).any(|v| v == b"FATBIN_DEPTH=1"),
            "the recursion guard is set"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // The rest of the environment is the caller's, byte for byte.
    let t = baseline_layout();
    let out = output(
        t.run("probe")
            .args(["env", "FOO", "EMPTY", "FATBIN_DEPTH"])
            .env("FOO", "bar baz")
            .env("EMPTY", ""),
    );
    assert_eq!(out.stdout, b"bar baz\0\x001\0", "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Every way of invoking a shim

fn path_with(dir: &Path) -> String {
    format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display())
}

#[test]
fn shims_work_from_every_kind_of_caller() {
    let t = baseline_layout();
    let shims = t.shims();
    let path = path_with(&shims);
    let sh = |shell: &str, script: &str| {
        output(clean_env(
            Command::new(shell)
                .args(["-c", script])
                .env("PATH", &path)
                .current_dir(t.dir.path()),
        ))
    };
    // By bare name through PATH, from bash and sh.
    for shell in ["bash", "sh"] {
        let out = sh(shell, "probe args 'x y'");
        assert_eq!(out.stdout, b"x y\0", "{shell}: {}", stderr(&out));
        let out = sh(shell, "probe argv0");
        assert_eq!(stdout(&out), "probe", "{shell}");
    }
    // bash's `exec -a` changes argv[0] but not the program.
    let out = sh("bash", "exec -a renamed probe argv0");
    assert_eq!(stdout(&out), "renamed", "{}", stderr(&out));
    // By absolute and by relative paths.
    let out = output(&mut t.run("probe"));
    assert_ran(&out, "level=baseline");
    for (cwd, rel) in [
        (t.root.clone(), "./shims/probe"),
        (t.root.clone(), "shims/probe"),
        (shims.clone(), "./probe"),
        (t.root.join("bin"), "../shims/probe"),
    ] {
        let out = output(clean_env(Command::new(rel).current_dir(&cwd).arg("argv0")));
        assert_eq!(
            stdout(&out),
            rel,
            "{rel} from {}: {}",
            cwd.display(),
            stderr(&out)
        );
    }
    // From execvp in other programs.
    let py = "import subprocess, sys; \
              r = subprocess.run(['probe', 'args', 'from python']); sys.exit(r.returncode)";
    let out = output(clean_env(
        Command::new("python3").args(["-c", py]).env("PATH", &path),
    ));
    assert_eq!(out.stdout, b"from python\0", "{}", stderr(&out));
    let py = "import os; os.execvp('probe', ['probe', 'args', 'execvp'])";
    let out = output(clean_env(
        Command::new("python3").args(["-c", py]).env("PATH", &path),
    ));
    assert_eq!(out.stdout, b"execvp\0", "{}", stderr(&out));
    let out = sh("sh", "printf 'one\\ntwo\\n' | xargs probe args");
    assert_eq!(out.stdout, b"one\0two\0", "{}", stderr(&out));
    let find = format!(
        "find {} -name fatbin.toml -exec probe args {{}} +",
        t.root.join("bin/probe").display()
    );
    let out = sh("sh", &find);
    let manifest = t.root.join("bin/probe/fatbin.toml");
    assert_eq!(
        out.stdout,
        [manifest.as_os_str().as_bytes(), b"\0"].concat(),
        "{}",
        stderr(&out)
    );
    // As the `#!` interpreter of a script (with the optional interpreter argument).
    let script = t.dir.path().join("script");
    std::fs::write(&script, format!("#!{} args\n", t.shim("probe").display())).unwrap();
    chmod(&script, 0o755);
    let out = output(clean_env(Command::new(&script).arg("after")));
    assert_eq!(
        out.stdout,
        [script.as_os_str().as_bytes(), b"\0after\0"].concat(),
        "{}",
        stderr(&out)
    );
    // Under `env -i` with nothing but an explicit PATH.
    let out = output(Command::new("env").args([
        "-i",
        &format!("PATH={}", shims.display()),
        "probe",
        "args",
        "bare",
    ]));
    assert_eq!(out.stdout, b"bare\0", "{}", stderr(&out));
}

#[test]
fn shims_follow_root_when_it_moves_or_is_reached_by_another_path() {
    let t = baseline_layout();
    // Renamed (another node mounting ROOT elsewhere looks the same).
    let moved = t.dir.path().join("mounted-elsewhere");
    std::fs::rename(&t.root, &moved).unwrap();
    let out = output(clean_env(&mut Command::new(moved.join("shims/probe"))));
    assert_ran(&out, "level=baseline");
    assert!(
        stdout(&out).contains(&format!(
            "exe={}.",
            moved.join("bin/probe/x86_64").display()
        )),
        "{}",
        stdout(&out)
    );
    let out = output(clean_env(
        Command::new("sh")
            .args(["-c", "probe args moved"])
            .env("PATH", path_with(&moved.join("shims"))),
    ));
    assert_eq!(out.stdout, b"moved\0", "{}", stderr(&out));
    // Reached through a symlinked ROOT, and through a PATH entry that is a symlink to shims.
    let link = t.dir.path().join("root-link");
    std::os::unix::fs::symlink(&moved, &link).unwrap();
    let out = output(clean_env(
        Command::new(link.join("shims/probe")).args(["args", "x"]),
    ));
    assert_eq!(out.stdout, b"x\0", "{}", stderr(&out));
    let path_link = t.dir.path().join("path-entry");
    std::os::unix::fs::symlink(moved.join("shims"), &path_link).unwrap();
    let out = output(clean_env(
        Command::new("sh")
            .args(["-c", "probe args via-link"])
            .env("PATH", path_with(&path_link)),
    ));
    assert_eq!(out.stdout, b"via-link\0", "{}", stderr(&out));
    // A user's own alias: a symlink with another name to a program's shim.
    let alias = t.dir.path().join("my-probe");
    std::os::unix::fs::symlink(moved.join("shims/probe"), &alias).unwrap();
    let out = output(clean_env(Command::new(&alias).arg("argv0")));
    assert_eq!(
        stdout(&out),
        alias.display().to_string(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn root_comes_from_flag_then_env_then_shim() {
    let t = baseline_layout();
    let other = TestLayout::new();
    other.install_probes("probe", &[("aarch64", ARM, None)]);
    // FATBIN_ROOT beats the shim's location.
    let out = output(
        t.run("probe")
            .env("FATBIN_ROOT", &other.root)
            .env("FATBIN_FALLBACK", "none"),
    );
    assert_fails(&out, 126, &["slot aarch64"]);
    // --root beats FATBIN_ROOT.
    let out = output(
        t.fatbin()
            .args(["run", "--root"])
            .arg(&t.root)
            .args(["probe", "args", "r"])
            .env("FATBIN_ROOT", &other.root),
    );
    assert_eq!(out.stdout, b"r\0", "{}", stderr(&out));
    let out = output(t.fatbin().args(["which", "probe", "--explain"]));
    assert!(
        stdout(&out).contains("from the shim's location"),
        "{}",
        stdout(&out)
    );
    // A launcher outside any ROOT/shims falls back to the per-user default root, the one
    // `cargo fatbin install` uses.
    let data = t.dir.path().join("xdg-data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::symlink(&t.root, data.join("fatbin")).unwrap();
    let out = output(
        clean_env(&mut Command::new(&t.launcher))
            .args(["which", "probe", "--explain"])
            .env("XDG_DATA_HOME", &data),
    );
    assert!(
        stdout(&out).contains("(the default"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let home = t.dir.path().join("home");
    std::fs::create_dir_all(home.join(".local/share")).unwrap();
    std::os::unix::fs::symlink(&t.root, home.join(".local/share/fatbin")).unwrap();
    let out = output(
        clean_env(&mut Command::new(&t.launcher))
            .args(["run", "probe", "args", "home"])
            .env_remove("XDG_DATA_HOME")
            .env("HOME", &home),
    );
    assert_eq!(out.stdout, b"home\0", "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// Hostile layouts: a clear error and a documented status, never a crash or a hang

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn missing_program_and_missing_pieces() {
    let t = baseline_layout();
    t.add_shim("nothere");
    let out = output(&mut t.run("nothere"));
    assert_fails(&out, 127, &["nothere", "not installed", "installed: probe"]);
    std::fs::create_dir(t.root.join("bin/empty")).unwrap();
    t.add_shim("empty");
    let out = output(&mut t.run("empty"));
    assert_fails(&out, 127, &["has no manifest"]);
    let out = output(
        t.run("probe")
            .env("FATBIN_ROOT", "/nonexistent/fatbin-root"),
    );
    assert_fails(&out, 127, &["/nonexistent/fatbin-root", "does not exist"]);
    std::fs::remove_file(t.slot_path("probe", "x86_64")).unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 127, &["slot `x86_64`", "missing", "reinstall"]);
}

#[test]
fn wrong_or_broken_slot_files() {
    let t = baseline_layout();
    let slot = t.slot_path("probe", "x86_64");
    std::fs::copy(probe_binary(ARM, None), &slot).unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["holds a binary for aarch64, not x86_64"]);
    std::fs::write(&slot, "#!/bin/sh\necho not a binary\n").unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["not an ELF binary"]);
    std::fs::remove_file(&slot).unwrap();
    std::fs::create_dir(&slot).unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["not a regular file"]);
    std::fs::remove_dir(&slot).unwrap();
    // A link to itself.
    std::os::unix::fs::symlink(slot.file_name().unwrap(), &slot).unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["symlink loop"]);
    std::fs::remove_file(&slot).unwrap();
    std::fs::copy(probe_binary(X86, None), &slot).unwrap();
    chmod(&slot, 0o644);
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["permission denied"]);
}

#[test]
fn writable_by_others_is_refused() {
    let t = baseline_layout();
    let slot = t.slot_path("probe", "x86_64");
    for (path, mode, who) in [
        (t.root.clone(), 0o777, "others"),
        (t.root.join("bin"), 0o757, "others"),
        (t.root.join("bin/probe"), 0o775, "its group"),
        (slot.clone(), 0o775, "its group"),
    ] {
        let old = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        chmod(&path, mode);
        let out = output(&mut t.run("probe"));
        assert_fails(&out, 126, &["refusing to run", who, "chmod go-w"]);
        chmod(&path, old);
    }
    assert_ran(&output(&mut t.run("probe")), "level=baseline");
    // Owned by someone who is neither root nor the user (only root can set that up).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&slot, Some(12345), None).unwrap();
        let out = output(&mut t.run("probe"));
        assert_fails(&out, 126, &["refusing to run", "owned by uid 12345"]);
        std::os::unix::fs::chown(&slot, Some(0), None).unwrap();
    }
}

/// A shared ROOT installed by an admin account (not root, not the user) must run for everyone:
/// the owner of ROOT is trusted for the paths below it, but a third account is not.
#[test]
fn a_root_owned_by_an_admin_account_is_trusted_but_not_a_third_account() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can give files to other accounts");
        return;
    }
    let t = baseline_layout();
    let slot = t.slot_path("probe", "x86_64");
    let admin = 4242;
    for path in [
        t.root.clone(),
        t.root.join("bin"),
        t.root.join("bin/probe"),
        slot.clone(),
    ] {
        std::os::unix::fs::chown(&path, Some(admin), None).unwrap();
    }
    assert_ran(&output(&mut t.run("probe")), "level=baseline");
    std::os::unix::fs::chown(&slot, Some(12345), None).unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["refusing to run", "owned by uid 12345"]);
}

#[test]
fn corrupt_manifests_are_named() {
    let t = baseline_layout();
    let manifest = t.root.join("bin/probe/fatbin.toml");
    std::fs::write(
        &manifest,
        "format = 1\nprogram = \"probe\"\n[slots.x86_64]\narch = 7\n",
    )
    .unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["corrupt manifest", "reinstall"]);
    std::fs::write(&manifest, b"\xff\xfe\x00garbage").unwrap();
    let out = output(&mut t.run("probe"));
    assert_fails(&out, 126, &["corrupt manifest", "not UTF-8"]);
    // A FIFO in its place must not block the launcher.
    std::fs::remove_file(&manifest).unwrap();
    let c = std::ffi::CString::new(manifest.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let out = output_within(&mut t.run("probe"), b"", Duration::from_secs(10));
    assert_fails(&out, 126, &["not a regular file"]);
    std::fs::remove_file(&manifest).unwrap();
    std::os::unix::fs::symlink("fatbin.toml", &manifest).unwrap();
    let out = output_within(&mut t.run("probe"), b"", Duration::from_secs(10));
    assert_fails(&out, 126, &["symlink loop"]);
}

#[test]
fn a_slot_that_leads_back_to_the_launcher_does_not_loop() {
    let t = baseline_layout();
    let slot = t.slot_path("probe", "x86_64");
    std::fs::remove_file(&slot).unwrap();
    std::os::unix::fs::symlink("../../shims/probe", &slot).unwrap();
    let out = output_within(&mut t.run("probe"), b"", Duration::from_secs(10));
    assert_fails(
        &out,
        126,
        &["is the fatbin launcher itself", "link to a shim"],
    );
    // A copy of the launcher: the second run sees it was started as a slot.
    std::fs::remove_file(&slot).unwrap();
    std::fs::copy(&t.launcher, &slot).unwrap();
    let out = output_within(&mut t.run("probe"), b"", Duration::from_secs(20));
    assert_fails(&out, 126, &["is the fatbin launcher itself", "copy"]);
    // Whatever else leads back to a shim, the depth guard ends the chain.
    let out = output_within(
        t.run("probe").env("FATBIN_DEPTH", "40"),
        b"",
        Duration::from_secs(20),
    );
    assert_fails(&out, 126, &["FATBIN_DEPTH", "leads back to a shim"]);
}

#[test]
fn usage_errors_exit_2() {
    let t = baseline_layout();
    for args in [
        &["frobnicate"][..],
        &["run"],
        &["run", "--bogus", "probe"],
        &["which"],
        &["run", "--arch"],
        &[],
    ] {
        let out = output(t.fatbin().args(args));
        assert_fails(&out, 2, &["fatbin --help"]);
    }
    let out = output(t.fatbin().arg("--help"));
    assert_ran(
        &out,
        "fatbin run [--arch SLOT] [--root ROOT] [--argv0 ARG0] PROG [ARGS...]",
    );
}

// ---------------------------------------------------------------------------------------
// The fast launcher `fatbin` and the hand-over to `fatbin-full`

/// Plain shim calls need nothing but the fast launcher; everything else is handed to the full
/// launcher, and without it the error says what to install.
#[test]
fn the_fast_launcher_runs_plain_calls_alone_and_hands_over_the_rest() {
    let t = levels_layout();
    let level = host_level(&t);
    t.install_probes("armonly", &[("aarch64", ARM, None)]);
    std::fs::remove_file(t.full_launcher()).unwrap();
    // The best level for this CPU, chosen by the fast launcher alone.
    let out = output(&mut t.run("probe"));
    assert_ran(&out, &format!("level={} ", probe_level(level)));
    let missing = ["cannot start the full launcher", "install `fatbin-full`"];
    assert_fails(&output(t.fatbin().arg("list")), 126, &missing);
    let forced = output(t.run("probe").env("FATBIN_ARCH", "x86_64"));
    assert_fails(&forced, 126, &missing);
    let foreign = output(t.run("armonly").env("FATBIN_FALLBACK", "none"));
    assert_fails(&foreign, 126, &missing);
    std::os::unix::fs::symlink("fatbin", t.shim("absent")).unwrap();
    assert_fails(&output(&mut t.run("absent")), 126, &missing);
}

/// What the program sees is the same whichever launcher ran it: argv[0], the recursion
/// guard, and no trace of the hand-over (`FATBIN_EXECFN`) in its environment, however large.
#[test]
fn handed_over_calls_look_the_same_to_the_program() {
    let t = baseline_layout();
    let env_of = |cmd: &mut Command| {
        let out = output(cmd.args(["env", "FATBIN_EXECFN", "FATBIN_DEPTH", "VAR_599"]));
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    // Fast path, then handed over (a forced slot), then handed over for its size: more
    // variables than the fast launcher rebuilds.
    assert_eq!(env_of(&mut t.run("probe")), b"\x001\x00\x00");
    assert_eq!(
        env_of(t.run("probe").env("FATBIN_ARCH", "x86_64")),
        b"\x001\x00\x00"
    );
    let mut big = t.run("probe");
    for i in 0..600 {
        big.env(format!("VAR_{i}"), i.to_string());
    }
    assert_eq!(env_of(&mut big), b"\x001\x00599\x00");
    for forced in ["", "x86_64"] {
        let mut cmd = t.run("probe");
        let out = output(
            cmd.env("FATBIN_ARCH", forced)
                .arg0("typed-name")
                .arg("argv0"),
        );
        assert_eq!(out.stdout, b"typed-name", "{}", stderr(&out));
    }
}

/// Without /proc (a chroot, an early boot script) the fast launcher still finds the full
/// one, by following the shim's symlinks.
#[test]
fn the_full_launcher_is_found_without_proc() {
    let t = baseline_layout();
    let script = r#"umount -l /proc && test ! -e /proc/self/exe && exec "$0" "$@""#;
    let out = output(clean_env(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script])
            .arg(t.shim("probe"))
            .arg("args")
            .arg("x")
            .env("FATBIN_ARCH", "x86_64"),
    ));
    assert_eq!(out.stdout, b"x\0", "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// The portable `#!/bin/sh` shim, for nodes without a node-local launcher

#[test]
fn the_portable_shim_runs_the_launcher_the_layout_carries() {
    let t = baseline_layout();
    // The launcher installed as fat programs (`cargo fatbin install -p fatbin` installs both
    // binaries), and ROOT/shims/fatbin replaced by the script.
    let slot: fatbin_layout::SlotName = "x86_64".parse().unwrap();
    let full = t.launcher.with_file_name("fatbin-full");
    for (program, file) in [("fatbin", &t.launcher), ("fatbin-full", &full)] {
        let new = [fatbin_layout::NewSlot::from_file(slot, file)];
        fatbin_layout::install(&t.layout(), program, &new).unwrap();
    }
    let script = fatbin_tests::workspace_root().join("launcher/shim/fatbin-portable.sh");
    let shim = t.shims().join("fatbin");
    std::fs::remove_file(&shim).unwrap();
    std::fs::copy(&script, &shim).unwrap();
    chmod(&shim, 0o755);
    // No node-local launcher any more.
    std::fs::remove_file(&t.launcher).unwrap();
    std::fs::remove_file(&full).unwrap();
    // The fast launcher carried as a fat program finds the full one's same slot.
    let carried = t.root.join("bin/fatbin/x86_64");
    let out = output(clean_env(
        Command::new(&carried)
            .arg("list")
            .arg("--root")
            .arg(&t.root),
    ));
    assert_ran(&out, "probe");

    let out = output(t.run("probe").args(["args", "a b", ""]));
    assert_eq!(out.stdout, b"a b\0\0", "{}", stderr(&out));
    let out = output(clean_env(
        Command::new("sh")
            .args(["-c", "probe argv0; echo; probe exit 7"])
            .env("PATH", path_with(&t.shims())),
    ));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{}\n", t.shim("probe").display()),
        "argv[0] is the shim's path"
    );
    let out = output(t.fatbin().arg("list"));
    assert_ran(&out, "probe");
    // ROOT moved: still found from the script's own path.
    let moved = t.dir.path().join("moved");
    std::fs::rename(&t.root, &moved).unwrap();
    let out = output(clean_env(
        Command::new(moved.join("shims/probe")).args(["args", "m"]),
    ));
    assert_eq!(out.stdout, b"m\0", "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------
// However it is installed

/// `cargo install --path launcher` with the host's default (gnu) target gives a static fast
/// launcher: no program interpreter, no shared libraries, so a shim call does not pay for
/// the dynamic loader. It runs a shim call natively and hands the rest to its `fatbin-full`.
#[test]
fn cargo_install_with_the_default_target_gives_a_static_fast_launcher() {
    let install_root = fatbin_tests::temp_dir();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["install", "--quiet", "--path"])
        .arg(fatbin_tests::workspace_root().join("launcher"))
        .arg("--root")
        .arg(install_root.path())
        // Its own target dir (cached between runs), so the workspace's is left alone.
        .arg("--target-dir")
        .arg(fatbin_tests::workspace_root().join("target/cargo-install"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    fatbin_tests::run_ok(&mut cmd, "cargo install --path launcher");
    let installed = install_root.path().join("bin/fatbin");
    let headers = output(Command::new("readelf").args(["-l", "-d"]).arg(&installed));
    assert!(headers.status.success(), "{}", stderr(&headers));
    let headers = stdout(&headers);
    assert!(
        !headers.contains("INTERP") && !headers.contains("NEEDED"),
        "the installed fast launcher is not static:\n{headers}"
    );

    // The installed pair as the node's launcher.
    let t = baseline_layout();
    for name in ["fatbin", "fatbin-full"] {
        std::fs::copy(
            install_root.path().join("bin").join(name),
            t.launcher.with_file_name(name),
        )
        .unwrap();
    }
    let out = output(&mut t.run("probe"));
    assert_ran(&out, "level=baseline ");
    let forced = output(t.run("probe").env("FATBIN_ARCH", "x86_64"));
    assert_ran(&forced, "level=baseline ");
}

/// The static musl fast launcher (x86_64 and aarch64) is position-dependent, in two segments,
/// and makes a plain shim call without starting the C library (`launcher/build.rs`,
/// `fatbin_start` in src/fast/os.rs): no self-relocation, no thread-pointer set-up, nothing but
/// its own checks before the slot's `execve`. A hand-over still starts the C library (its
/// `errno` texts name why the full launcher cannot start).
#[test]
fn the_musl_fast_launcher_starts_without_relocating_or_the_c_library() {
    for target in [X86, ARM] {
        let launcher = fatbin_tests::launcher_binary(target);
        let headers = output(
            Command::new("readelf")
                .args(["-h", "-l", "-W"])
                .arg(&launcher),
        );
        assert!(headers.status.success(), "{}", stderr(&headers));
        let headers = stdout(&headers);
        let loads = headers
            .lines()
            .filter(|l| l.trim_start().starts_with("LOAD"))
            .count();
        assert!(
            headers.contains("EXEC (Executable file)")
                && loads == 2
                && !headers.contains("DYNAMIC")
                && !headers.contains("INTERP"),
            "{target}: not a position-dependent static binary in two segments:\n{headers}"
        );
    }

    let t = baseline_layout();
    let trace = t.dir.path().join("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg(t.shim("probe"));
    clean_env(&mut cmd);
    let out = output(&mut cmd);
    assert_ran(&out, "level=baseline ");
    let trace = std::fs::read_to_string(&trace).unwrap();
    let launcher_calls: Vec<&str> = trace
        .lines()
        .skip(1) // the shim's own execve
        .take_while(|l| !l.contains("execve("))
        .collect();
    let start_up = [
        "arch_prctl",
        "set_tid_address",
        "set_thread_area",
        "brk",
        "mmap",
    ];
    assert!(
        !launcher_calls.is_empty()
            && launcher_calls
                .iter()
                .all(|l| !start_up.iter().any(|c| l.contains(&format!("{c}(")))),
        "the fast path started the C library or allocated:\n{trace}"
    );

    // A hand-over starts the C library first: its error text is the C library's.
    std::fs::remove_file(t.full_launcher()).unwrap();
    let out = output(t.run("probe").env("FATBIN_ARCH", "x86_64"));
    assert_fails(
        &out,
        126,
        &[
            "cannot start the full launcher",
            "No such file or directory",
        ],
    );
}

/// `cargo fatbin add` without `--launcher`, run from a checkout's target directory (a copy of
/// one: its `CACHEDIR.TAG` and the binaries), does not point the shims into it: the launcher
/// pair is copied to `$XDG_DATA_HOME/fatbin/launcher`, said so, and the shims still work
/// after the target directory is gone (`cargo clean`).
#[test]
fn shims_made_from_a_checkout_survive_cargo_clean() {
    let dir = fatbin_tests::temp_dir();
    let built = fatbin_tests::host_bin_dir();
    let target = dir.path().join("checkout/target");
    let bin = target.join("debug");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(
        fatbin_tests::workspace_root().join("target/CACHEDIR.TAG"),
        target.join("CACHEDIR.TAG"),
    )
    .unwrap();
    for name in ["cargo-fatbin", "fatbin", "fatbin-full"] {
        std::fs::copy(built.join(name), bin.join(name)).unwrap();
    }
    let data = dir.path().join("data");
    let root = dir.path().join("root");
    let mut add = Command::new(bin.join("cargo-fatbin"));
    clean_env(&mut add)
        .args(["fatbin", "add", "probe"])
        .arg(probe_binary(X86, None))
        .arg("--root")
        .arg(&root)
        .args(["--color", "never"])
        .env("XDG_DATA_HOME", &data)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("FATBIN_LAUNCHER");
    let out = output(&mut add);
    assert!(out.status.success(), "{}", stderr(&out));
    let stable = data.join("fatbin/launcher");
    assert!(
        stderr(&out).contains(&stable.display().to_string()),
        "where the launcher went is not said:\n{}",
        stderr(&out)
    );
    let linked = std::fs::read_link(root.join("shims/fatbin")).unwrap();
    assert_eq!(linked, stable.join("fatbin"));

    std::fs::remove_dir_all(&target).unwrap();
    let mut run = Command::new(root.join("shims/probe"));
    assert_ran(&output(clean_env(&mut run)), "level=baseline ");
    // Handed over to the copied full launcher too.
    let mut forced = Command::new(root.join("shims/probe"));
    let forced = output(clean_env(&mut forced).env("FATBIN_ARCH", "x86_64"));
    assert_ran(&forced, "level=baseline ");
}

// ---------------------------------------------------------------------------------------
// glibc slots: run only where the node's C library can run them

/// The probe built for a glibc target (linked with `linker`), in release mode.
fn glibc_probe(target: &str, linker: &str, cpu: Option<&str>) -> std::path::PathBuf {
    let target_dir = fatbin_tests::workspace_root()
        .join("target/fixtures")
        .join(cpu.unwrap_or("default"));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(fatbin_tests::probe_crate().join("Cargo.toml"))
        .args(["--target", target, "--target-dir"])
        .arg(&target_dir)
        .env(
            format!(
                "CARGO_TARGET_{}_LINKER",
                target.to_uppercase().replace('-', "_")
            ),
            linker,
        );
    match cpu {
        Some(cpu) => cmd.env("RUSTFLAGS", format!("-C target-cpu={cpu}")),
        None => cmd.env_remove("RUSTFLAGS"),
    };
    fatbin_tests::run_ok(&mut cmd, &format!("building the probe for {target}"));
    target_dir.join(target).join("release/probe")
}

/// This node's glibc version, as the launcher's `host` command reports it.
fn node_glibc(t: &TestLayout) -> String {
    let out = output(t.fatbin().arg("host"));
    let text = stdout(&out);
    text.lines()
        .find_map(|l| l.strip_prefix("C library: glibc "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no glibc version in `fatbin host`:\n{text}"))
        .to_owned()
}

/// A glibc slot that needs a newer glibc than this node's (a real glibc build whose highest
/// symbol version need is raised to GLIBC_2.99 in a copy, so the dynamic loader really
/// refuses it) is passed over for the static slot, by the fast launcher's hand-over and the
/// full launcher alike, and `which --explain` says why.
#[test]
fn a_glibc_slot_needing_a_newer_glibc_is_passed_over() {
    let t = baseline_layout();
    let have = node_glibc(&t);
    let built = glibc_probe("x86_64-unknown-linux-gnu", "cc", Some("x86-64-v2"));
    let fatbin_layout::Identity::Elf(elf) = fatbin_layout::identify_path(&built).unwrap() else {
        panic!("the gnu probe is not an ELF file");
    };
    let need = format!("GLIBC_{}", elf.glibc.expect("the gnu probe needs glibc"));

    // Unchanged, the glibc build runs here, so it is chosen over the static baseline.
    let mut honest = fatbin_layout::NewSlot::from_file("x86_64-v2".parse().unwrap(), &built);
    honest.target = "x86_64-unknown-linux-gnu".into();
    honest.cpu = Some("x86-64-v2".into());
    fatbin_layout::install(&t.layout(), "probe", &[honest]).unwrap();
    if host_level(&t) >= 2 {
        assert_ran(&output(&mut t.run("probe")), "level=x86-64-v2 ");
        let out = output(t.fatbin().args(["which", "--explain", "probe"]));
        assert!(
            stdout(&out).contains("x86_64-v2  supported, chosen"),
            "{}",
            stdout(&out)
        );
    }

    let raised = b"GLIBC_2.99";
    assert_eq!(need.len(), raised.len(), "cannot raise {need} in place");
    let mut bytes = std::fs::read(&built).unwrap();
    let mut replaced = 0;
    let mut i = 0;
    while let Some(at) = bytes[i..]
        .windows(need.len())
        .position(|w| w == need.as_bytes())
    {
        // Only whole names (GLIBC_2.3 is also the start of GLIBC_2.34).
        let end = i + at + need.len();
        if bytes[end] == 0 {
            bytes[i + at..end].copy_from_slice(raised);
            replaced += 1;
        }
        i = end;
    }
    assert!(replaced > 0);
    let copy = t.dir.path().join("probe-needs-2.99");
    std::fs::write(&copy, &bytes).unwrap();
    chmod(&copy, 0o755);
    let direct = output(&mut Command::new(&copy));
    assert!(!direct.status.success(), "the raised copy runs here");

    let mut new = fatbin_layout::NewSlot::from_file("x86_64-v2".parse().unwrap(), &copy);
    new.target = "x86_64-unknown-linux-gnu".into();
    new.cpu = Some("x86-64-v2".into());
    fatbin_layout::install(&t.layout(), "probe", &[new]).unwrap();
    let manifest = std::fs::read_to_string(t.root.join("bin/probe/fatbin.toml")).unwrap();
    assert!(manifest.contains("glibc = \"2.99\""), "{manifest}");

    if host_level(&t) >= 2 {
        // The fast launcher hands the glibc slot over; the full one runs the static slot.
        assert_ran(&output(&mut t.run("probe")), "level=baseline ");
        let out = output(t.fatbin().args(["which", "--explain", "probe"]));
        let text = stdout(&out);
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("x86_64-v2 "))
            .unwrap_or_else(|| panic!("no x86_64-v2 line in:\n{text}{}", stderr(&out)));
        assert!(
            line.contains(&format!(
                "not supported: needs glibc 2.99, this node has {have}"
            )),
            "{text}"
        );
    }
}

/// An i686 glibc slot on a node without the i686 C library (Debian's libc6-i386, which
/// provides /lib/ld-linux.so.2) is not run natively: `--explain` names the missing
/// interpreter, and with no fallback the error does too (not an exec failure).
#[test]
fn an_i686_glibc_slot_without_its_interpreter_is_passed_over() {
    if Path::new("/lib/ld-linux.so.2").exists() {
        eprintln!("skipped: this node has /lib/ld-linux.so.2 (libc6-i386)");
        return;
    }
    let t = TestLayout::new();
    let built = glibc_probe("i686-unknown-linux-gnu", "i686-linux-gnu-gcc", None);
    let mut new = fatbin_layout::NewSlot::from_file("i686".parse().unwrap(), &built);
    new.target = "i686-unknown-linux-gnu".into();
    fatbin_layout::install(&t.layout(), "probe", &[new]).unwrap();
    t.add_shim("probe");
    let out = output(t.fatbin().args(["which", "--explain", "probe"]));
    assert!(
        stdout(&out).contains("not supported: no /lib/ld-linux.so.2 on this node"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let run = output(t.run("probe").env("FATBIN_FALLBACK", "none"));
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains("slot i686: no /lib/ld-linux.so.2 on this node"),
        "{}",
        stderr(&run)
    );
}

/// A foreign glibc slot whose loader is neither on this host nor in a cross sysroot is not
/// handed to qemu, which would only print "Could not open '/lib/ld-linux-aarch64.so.1'": the
/// launcher says what is missing and how to get it (issue 11's poor errors). The sysroot is
/// hidden by a tmpfs in a private mount namespace; with it, the same slot runs under qemu.
#[test]
fn a_foreign_glibc_slot_without_its_loader_is_explained_not_handed_to_qemu() {
    let loader = "/lib/ld-linux-aarch64.so.1";
    let sysroot = "/usr/aarch64-linux-gnu";
    if Path::new(loader).exists() || !Path::new(sysroot).is_dir() {
        eprintln!("skipped: needs {sysroot} (gcc-aarch64-linux-gnu) and no {loader} on this host");
        return;
    }
    let t = TestLayout::new();
    let built = glibc_probe("aarch64-unknown-linux-gnu", "aarch64-linux-gnu-gcc", None);
    let mut new = fatbin_layout::NewSlot::from_file("aarch64".parse().unwrap(), &built);
    new.target = "aarch64-unknown-linux-gnu".into();
    fatbin_layout::install(&t.layout(), "probe", &[new]).unwrap();
    t.add_shim("probe");
    let in_sysroot = output(t.run("probe").env("FATBIN_FALLBACK", "qemu"));
    assert!(
        in_sysroot.status.success() && stdout(&in_sysroot).contains("arch=aarch64"),
        "{}",
        stderr(&in_sysroot)
    );
    let hidden = |extra: &[&str]| {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "-m",
            "sh",
            "-c",
            &format!("mount -t tmpfs none {sysroot} && exec \"$0\" \"$@\""),
        ])
        .arg(t.shim("probe"))
        .args(extra);
        clean_env(&mut cmd);
        output(cmd.env("FATBIN_FALLBACK", "qemu"))
    };
    let run = hidden(&[]);
    assert_eq!(run.status.code(), Some(126), "{}", stderr(&run));
    assert!(
        stderr(&run).contains(&format!("needs its loader {loader}"))
            && stderr(&run).contains("apt-get install gcc-aarch64-linux-gnu")
            && !stderr(&run).contains("Could not open"),
        "{}",
        stderr(&run)
    );
}

// ---------------------------------------------------------------------------------------
// Views (`fatbin view`): programs resolved for this node, one exec per call

/// `cargo fatbin ARGS` for a test layout's ROOT, with the node's own launcher and the
/// test's cache directory (where the launcher lists the views it made).
fn cargo_fatbin_in(t: &TestLayout, cache: &Path, args: &[&OsStr]) {
    let mut cmd = fatbin_tests::cargo_fatbin_support::cargo_fatbin_command(t.dir.path());
    cmd.args(args)
        .arg("--root")
        .arg(&t.root)
        .arg("--color=never")
        .env("XDG_CACHE_HOME", cache);
    let out = output(&mut cmd);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

/// A view sends static baseline slots straight to their slot and everything else through
/// the shim; runs through it keep argv[0], exit codes and stdin; an install or removal
/// re-syncs it (a better slot is used, no entry dangles); a changed fingerprint shows in
/// `view check`; and an entry that depends on the CPU never SIGILLs on another CPU
/// (qemu-user's qemu64 model), where the slot itself would.
#[test]
fn a_view_resolves_programs_for_this_node_and_stays_current() {
    let t = TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    t.install_probes(
        "levels",
        &[("x86_64", X86, None), ("x86_64-v3", X86, Some("x86-64-v3"))],
    );
    t.install_probes("arm", &[("aarch64", ARM, None)]);
    let cache = t.dir.path().join("cache");
    let view = t.dir.path().join("view");
    let fatbin = |args: &[&OsStr]| {
        let out = output(t.fatbin().env("XDG_CACHE_HOME", &cache).args(args));
        (out.status.code(), stdout(&out) + &stderr(&out))
    };
    let sync = || {
        fatbin(&[
            "view".as_ref(),
            "sync".as_ref(),
            "--root".as_ref(),
            t.root.as_os_str(),
            view.as_os_str(),
        ])
    };
    let check = || {
        fatbin(&[
            "view".as_ref(),
            "check".as_ref(),
            "--root".as_ref(),
            t.root.as_os_str(),
            view.as_os_str(),
        ])
    };
    let link = |p: &str| std::fs::read_link(view.join(p)).ok();
    let (code, text) = sync();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("3 program(s)") && text.contains("1 straight to their slot"),
        "{text}"
    );
    assert_eq!(link("probe"), Some(t.root.join("bin/probe/x86_64")));
    assert_eq!(link("levels"), Some(t.root.join("shims/levels")));
    assert_eq!(link("arm"), Some(t.root.join("shims/arm")));
    assert_eq!(
        check(),
        (
            Some(0),
            format!(
                "view {}: up to date with {}\n",
                view.display(),
                t.root.display()
            )
        )
    );

    // Through the view: argv[0] as executed, the exit code, stdin.
    let entry = view.join("probe");
    let out = output(Command::new(&entry).arg("argv0"));
    assert_eq!(out.stdout, entry.as_os_str().as_bytes());
    let out = output(Command::new(&entry).args(["exit", "7"]));
    assert_eq!(out.status.code(), Some(7));
    let out = output_within(
        Command::new(&entry).arg("cat"),
        b"through the view\n",
        Duration::from_secs(30),
    );
    assert_eq!(out.stdout, b"through the view\n");
    let level = host_level(&t);
    let levels = output(&mut Command::new(view.join("levels")));
    assert_ran(
        &levels,
        &format!("level={} ", probe_level(if level >= 3 { 3 } else { 1 })),
    );
    assert!(stdout(&levels).contains(&format!("argv0={} ", view.join("levels").display())));
    assert_ran(
        &output(&mut Command::new(view.join("arm"))),
        "probe arch=aarch64",
    );
    // The fast launcher follows a view's entry to the shim by itself: without fatbin-full
    // beside it, the entry still runs.
    let full = t.full_launcher();
    let aside = t.launcher.with_file_name("fatbin-full.aside");
    std::fs::rename(&full, &aside).unwrap();
    let alone = output(&mut Command::new(view.join("levels")));
    std::fs::rename(&aside, &full).unwrap();
    assert_ran(&alone, "probe arch=x86_64");

    // Another CPU (qemu64, x86-64-v1): the CPU-dependent entry goes through the launcher and
    // runs; the v3 slot itself would die of SIGILL there.
    if level >= 3 {
        let qemu = require_qemu("x86_64");
        let out = output(
            Command::new(&qemu)
                .args(["-cpu", "qemu64"])
                .arg(view.join("levels")),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let slot = t.root.join("bin/levels/x86_64-v3");
        let direct = output(Command::new(&qemu).args(["-cpu", "qemu64"]).arg(&slot));
        assert!(
            !direct.status.success(),
            "the v3 slot runs under qemu64: the check proves nothing"
        );
    }

    // An install re-syncs: a better slot (v2 needs CPU features) sends probe through the
    // launcher, which runs it; removing it sends probe straight to its slot again.
    let v2 = probe_binary(X86, Some("x86-64-v2"));
    let add: [&OsStr; 7] = [
        "add".as_ref(),
        "probe".as_ref(),
        v2.as_os_str(),
        "--slot".as_ref(),
        "x86_64-v2".as_ref(),
        "--launcher".as_ref(),
        t.launcher.as_os_str(),
    ];
    cargo_fatbin_in(&t, &cache, &add);
    assert_eq!(link("probe"), Some(t.root.join("shims/probe")));
    if level >= 2 {
        assert_ran(&output(&mut Command::new(&entry)), "level=x86-64-v2 ");
    }
    cargo_fatbin_in(
        &t,
        &cache,
        &[
            "remove".as_ref(),
            "probe".as_ref(),
            "--slot".as_ref(),
            "x86_64-v2".as_ref(),
        ],
    );
    assert_eq!(link("probe"), Some(t.root.join("bin/probe/x86_64")));
    // Removing a program leaves no entry behind.
    cargo_fatbin_in(&t, &cache, &["remove".as_ref(), "probe".as_ref()]);
    assert!(
        view.join("probe").symlink_metadata().is_err(),
        "a dangling entry is left"
    );
    assert_eq!(check().0, Some(0));

    // A changed fingerprint (as if the CPU had changed) is reported until the next sync.
    let state = view.join(".fatbin-view");
    let text = std::fs::read_to_string(&state).unwrap();
    let edited: String = text
        .lines()
        .map(|l| {
            if l.starts_with("cpu\t") {
                "cpu\tx86_64: sse3".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&state, edited + "\n").unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("the processor changed (was `x86_64: sse3`"),
        "{text}"
    );
    assert_eq!(sync().0, Some(0));
    assert_eq!(check().0, Some(0));
    // ROOT changed behind the view's back (no hook ran): stale, and the entry that leads
    // nowhere is named.
    std::fs::remove_dir_all(t.root.join("bin/arm")).unwrap();
    let (code, text) = check();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ROOT changed since the last sync"), "{text}");
}
