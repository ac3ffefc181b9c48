//! Migration over OpenSSH against a real cluster on this machine (see `fatbin_tests::cluster`):
//! real sshd processes, an "aarch64" node that runs aarch64 binaries through its own
//! binfmt_misc registration, the real launcher (and the aarch64 launcher under qemu).
//!
//! Needs root, openssh-server/client, uidmap with `root:100000:65536` in /etc/subuid and
//! /etc/subgid, and qemu-user-static; the tests fail with that list when something is missing.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fatbin_layout::{install, Layout, NewSlot};
use fatbin_tests::cluster::{self, Cluster, Kind};
use fatbin_tests::{host_bin_dir, launcher_binary, probe_binary, temp_dir};

const X86: &str = "x86_64-unknown-linux-musl";
const ARM: &str = "aarch64-unknown-linux-musl";

/// A layout ROOT with the probe installed for the given (slot, target) pairs.
pub(crate) fn layout_with(slots: &[(&str, &str)]) -> tempfile::TempDir {
    let root = temp_dir();
    let new: Vec<NewSlot> = slots
        .iter()
        .map(|(slot, target)| NewSlot {
            slot: slot.parse().unwrap(),
            source: probe_binary(target, None),
            target: (*target).to_owned(),
            cpu: None,
            features: Vec::new(),
            krate: Some("probe".into()),
            version: None,
        })
        .collect();
    install(&Layout::new(root.path()), "probe", &new).expect("install the probe");
    root
}

/// `fatbin run --root ROOT probe ARGS` with the cluster's environment, stdin closed.
pub(crate) fn fatbin(cl: &Cluster, root: &Path, args: &[&[u8]]) -> Command {
    let mut cmd = Command::new(host_bin_dir().join("fatbin"));
    cl.env(&mut cmd);
    cmd.env("FATBIN_FALLBACK", "nodes")
        .env_remove("FATBIN_ROOT")
        .env_remove("FATBIN_ARCH")
        .arg("run")
        .arg("--root")
        .arg(root)
        .arg("probe")
        .args(args.iter().map(|a| OsString::from_vec(a.to_vec())))
        .stdin(Stdio::null());
    cmd
}

pub(crate) fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("run fatbin")
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// One x86_64 node "x86" with the layout shared at the same path.
fn x86_cluster(root: &Path) -> Cluster {
    cluster::require(false);
    let mut cl = Cluster::new();
    cl.add_node("x86", Kind::Native);
    cl.write_nodes(&format!(
        "[nodes.x86]\nssh = \"x86\"\nslots = [\"x86_64\"]\nroot = \"{}\"\n",
        root.display()
    ));
    cl
}

/// The layout holds only an aarch64 probe; the x86_64 host must run it elsewhere.
pub(crate) fn arm_only() -> tempfile::TempDir {
    layout_with(&[("aarch64", ARM)])
}

#[test]
fn x86_launcher_migrates_an_aarch64_only_program_to_the_aarch64_node() {
    cluster::require(true);
    let root = arm_only();
    // The host itself cannot run it: that is what makes this a migration.
    let direct =
        Command::new(Layout::new(root.path()).slot_path("probe", "aarch64".parse().unwrap()))
            .output();
    assert!(direct.is_err() || !direct.unwrap().status.success(), "the host runs aarch64 binaries itself: binfmt_misc is registered globally, the test proves nothing");
    let mut cl = Cluster::new();
    cl.add_node("arm", Kind::Aarch64);
    cl.write_nodes("[nodes.arm]\nssh = \"arm\"\nslots = [\"aarch64\"]\n");
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).starts_with("probe arch=aarch64 "),
        "{}",
        show(&out)
    );
}

/// An aarch64 node runs its own aarch64 launcher pair (here under qemu through the node's
/// binfmt_misc, as Debian registers it): the fast launcher picks the aarch64 slot by itself,
/// and its hand-over of the command line stays emulated.
#[test]
fn an_aarch64_nodes_own_fast_launcher_runs_the_aarch64_slot() {
    cluster::require(true);
    let root = layout_with(&[("x86_64", X86), ("aarch64", ARM)]);
    let node_bin = temp_dir();
    let launcher = fatbin_tests::install_launcher(ARM, node_bin.path());
    let shims = root.path().join("shims");
    std::fs::create_dir(&shims).unwrap();
    std::fs::set_permissions(&shims, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&launcher, shims.join("fatbin")).unwrap();
    std::os::unix::fs::symlink("fatbin", shims.join("probe")).unwrap();
    let mut cl = Cluster::new();
    cl.add_node("arm", Kind::Aarch64);
    // Plain calls need no full launcher: take it away while they run.
    let full = launcher.with_file_name("fatbin-full");
    let away = launcher.with_file_name("away");
    std::fs::rename(&full, &away).unwrap();
    let out = cl.ssh("arm", &format!("{}/probe args a", shims.display()));
    assert_eq!(out.stdout, b"a\0", "{}", show(&out));
    let out = cl.ssh("arm", &format!("{}/probe", shims.display()));
    assert!(
        text(&out.stdout).starts_with("probe arch=aarch64 "),
        "{}",
        show(&out)
    );
    std::fs::rename(&away, &full).unwrap();
    let out = cl.ssh("arm", &format!("{}/fatbin host", shims.display()));
    assert!(
        text(&out.stdout).starts_with("arch: aarch64\n"),
        "{}",
        show(&out)
    );
}

#[test]
fn aarch64_launcher_under_qemu_migrates_an_x86_only_program_to_the_x86_node() {
    let root = layout_with(&[("x86_64", X86)]);
    let cl = x86_cluster(root.path());
    // The full launcher: the fast one would hand `run` over with an `execve`, which leaves
    // qemu-user (no binfmt_misc outside the test node's namespace).
    let launcher = launcher_binary(ARM).with_file_name("fatbin-full");
    let mut cmd = Command::new("qemu-aarch64-static");
    cl.env(&mut cmd);
    cmd.env("FATBIN_FALLBACK", "nodes")
        .arg(&launcher)
        .args(["run", "--root"])
        .arg(root.path())
        .arg("probe")
        .stdin(Stdio::null());
    let out = output(&mut cmd);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).starts_with("probe arch=x86_64 "),
        "{}",
        show(&out)
    );
}

#[test]
fn nasty_arguments_arrive_byte_exact() {
    let root = layout_with(&[("aarch64", ARM)]);
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    let big = vec![b'x'; 100 * 1024];
    let corpus: Vec<&[u8]> = vec![
        b"plain",
        b"two words",
        b"  leading and trailing  ",
        b"'single'",
        b"\"double\"",
        b"it's",
        b"'\\''",
        b"$(touch /tmp/fatbin-pwned)",
        b"`touch /tmp/fatbin-pwned`",
        b"$HOME ${PATH}",
        b"*",
        b"/*",
        b"?[a-z]",
        b"a;b",
        b"a && b || c",
        b"a | b > c < d",
        b"line1\nline2\n",
        b"\n",
        b"\t",
        b"",
        b"-",
        b"--",
        b"-n",
        b"--help",
        b"\\",
        b"#not a comment",
        b"!",
        b"~",
        b"\xff\xfe\x80 not utf-8",
        b"\x1efatbin:exit:0\n",
        &big,
    ];
    let mut args: Vec<&[u8]> = vec![b"args"];
    args.extend(&corpus);
    let out = output(&mut fatbin(&cl, root.path(), &args));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut expected = Vec::new();
    for a in &corpus {
        expected.extend_from_slice(a);
        expected.push(0);
    }
    assert!(
        out.stdout == expected,
        "arguments changed on the way: got {} bytes, want {}",
        out.stdout.len(),
        expected.len()
    );
    assert!(
        !Path::new("/tmp/fatbin-pwned").exists(),
        "an argument ran as code"
    );
}

/// A cluster with one node of `kind` that runs `slot`.
fn x86_cluster_for_slot(root: &Path, slot: &str, kind: Kind) -> Cluster {
    one_node_cluster(root, slot, kind, "")
}

/// A cluster with one node `n1` of `kind` that runs `slot`, its inventory entry ending in
/// `more` (further `key = value` lines).
fn one_node_cluster(root: &Path, slot: &str, kind: Kind, more: &str) -> Cluster {
    cluster::require(kind == Kind::Aarch64);
    let mut cl = Cluster::new();
    cl.add_node("n1", kind);
    cl.write_nodes(&format!(
        "[nodes.n1]\nssh = \"n1\"\nslots = [\"{slot}\"]\nroot = \"{}\"\n{more}",
        root.display()
    ));
    cl
}

#[test]
fn a_hundred_megabytes_through_stdin_and_stdout() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    const SIZE: usize = 100 << 20;
    let mut child = fatbin(&cl, root.path(), &[b"cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let mut rng = Xorshift(0x1234_5678_9abc_def1);
        let mut buf = vec![0u8; 1 << 16];
        let mut sum = Fnv::default();
        let mut left = SIZE;
        while left > 0 {
            let n = left.min(buf.len());
            rng.fill(&mut buf[..n]);
            sum.update(&buf[..n]);
            stdin.write_all(&buf[..n]).unwrap();
            left -= n;
        }
        sum.0
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut sum = Fnv::default();
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        total += n;
    }
    let sent = writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(total, SIZE);
    assert_eq!(sum.0, sent, "the bytes differ");
}

struct Xorshift(u64);
impl Xorshift {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// FNV-1a over 64 bits: a checksum of the stream, order-sensitive.
struct Fnv(u64);
impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}
impl Fnv {
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

#[test]
fn migrated_exit_statuses_signals_and_transport_255_are_told_apart() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    let mut codes: Vec<i32> = vec![0, 1, 2, 126, 127, 128, 254, 255];
    codes.extend((3..255).step_by(37));
    for code in codes {
        let out = output(&mut fatbin(
            &cl,
            root.path(),
            &[b"exit", code.to_string().as_bytes()],
        ));
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert!(
            !text(&out.stderr).contains("fatbin:"),
            "a program's own status is not a transport failure: {}",
            show(&out)
        );
    }
    // Death by signal: 128+N, as a shell reports it.
    let out = output(&mut fatbin(&cl, root.path(), &[b"signal", b"9"]));
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    // ... without the remote shell's "Killed" notice, which a local run does not print.
    assert!(out.stderr.is_empty(), "{}", show(&out));
    // stderr is relayed, markers removed.
    let out = output(&mut fatbin(&cl, root.path(), &[b"stderr", b"to stderr"]));
    assert_eq!(out.stderr, b"to stderr", "{}", show(&out));
}

/// Starts `probe wait-signal FILE` migrated, waits for "ready", sends `signal` to the launcher.
fn signal_run(cl: &Cluster, root: &Path, signal: libc::c_int) -> (Output, String) {
    let dir = temp_dir();
    let file = dir.path().join("signal");
    let child = fatbin(cl, root, &[b"wait-signal", file.as_os_str().as_bytes()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&file, "ready");
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let out = child.wait_with_output().unwrap();
    let got = std::fs::read_to_string(&file).unwrap_or_default();
    (out, got)
}

fn wait_for(file: &Path, content: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(file)
        .map(|t| !t.contains(content))
        .unwrap_or(true)
    {
        assert!(
            Instant::now() < deadline,
            "{} never said {content}",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigint_and_sigterm_reach_the_remote_program_without_a_tty() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    let (out, got) = signal_run(&cl, root.path(), libc::SIGINT);
    assert_eq!(got.trim(), "got SIGINT", "{}", show(&out));
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGINT),
        "{}",
        show(&out)
    );
    let (out, got) = signal_run(&cl, root.path(), libc::SIGTERM);
    assert_eq!(got.trim(), "got SIGTERM", "{}", show(&out));
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        show(&out)
    );
}

#[test]
fn a_dead_connection_ends_the_remote_program() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    let dir = temp_dir();
    let file = dir.path().join("conn");
    let child = fatbin(
        &cl,
        root.path(),
        &[b"wait-signal", file.as_os_str().as_bytes()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for(&file, "ready");
    let needle = file.to_str().unwrap();
    assert!(cluster::process_running(needle));
    // Kill the local master: the connection goes, sshd ends the session's connection process.
    kill_master(&cl, "n1");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("fatbin: the connection to node `n1` ended"),
        "{}",
        show(&out)
    );
    // Generous for a loaded machine; the defect, a program left running, outlives any bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster::process_running(needle) {
        assert!(
            Instant::now() < deadline,
            "the remote program still runs after its connection died"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_dead_node_fails_over_and_is_skipped_next_time() {
    let root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("a-dead", Kind::Native);
    cl.kill_node("a-dead");
    cl.add_blackhole("b-hung");
    cl.add_node("c-arm", Kind::Aarch64);
    // The healthy node must answer within the connect timeout, which a loaded machine can
    // take seconds to do; the hung node costs that timeout once.
    cl.write_nodes(
        "[settings]\nconnect_timeout = 10\n\
         [nodes.a-dead]\nssh = \"a-dead\"\nslots = [\"aarch64\"]\n\
         [nodes.b-hung]\nssh = \"b-hung\"\nslots = [\"aarch64\"]\n\
         [nodes.c-arm]\nssh = \"c-arm\"\nslots = [\"aarch64\"]\n",
    );
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).starts_with("probe arch=aarch64"),
        "{}",
        show(&out)
    );
    assert_eq!(
        cl.blackhole("b-hung")
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    let down = std::fs::read_to_string(cl.down_file()).unwrap();
    assert!(
        down.contains("a-dead\t") && down.contains("b-hung\t"),
        "{down}"
    );

    // The next run does not try them again: the hung node sees no second connection.
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        cl.blackhole("b-hung")
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the down node was tried again"
    );

    // --explain shows the route and why nodes are skipped.
    let mut cmd = Command::new(host_bin_dir().join("fatbin"));
    cl.env(&mut cmd)
        .args(["which", "--root"])
        .arg(root.path())
        .args(["probe", "--explain"]);
    let out = output(&mut cmd);
    let said = text(&out.stdout);
    assert!(
        said.contains("node c-arm") && said.contains("skipped, marked down"),
        "{}",
        show(&out)
    );
}

#[test]
fn all_nodes_down_is_a_documented_error() {
    let root = arm_only();
    cluster::require(false);
    let mut cl = Cluster::new();
    cl.add_node("gone", Kind::Native);
    cl.kill_node("gone");
    cl.write_nodes("[nodes.gone]\nssh = \"gone\"\nslots = [\"aarch64\"]\n");
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot migrate `probe`")
            && err.contains("node `gone`")
            && err.contains("refused"),
        "{err}"
    );
    // Remembered, but with every candidate down the next run tries it anyway (it may be back)
    // and says so.
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("tried anyway") && text(&out.stderr).contains("refused"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_node_without_the_shared_root_gets_the_binary_once() {
    let root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("lone", Kind::Aarch64);
    let cache = cl.dir().join("node-cache");
    cl.write_nodes(&format!(
        "[nodes.lone]\nssh = \"lone\"\nslots = [\"aarch64\"]\nroot = \"/nonexistent/fatbin\"\nshared = false\ncache = \"{}\"\n",
        cache.display()
    ));
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let manifest = Layout::new(root.path()).read_manifest("probe").unwrap();
    let sha = &manifest.slots[&"aarch64".parse().unwrap()].sha256;
    let cached = cache.join(sha);
    assert!(
        text(&out.stdout).contains(&format!("exe={}", cached.display())),
        "{}",
        show(&out)
    );
    let first = std::fs::metadata(&cached).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"again"]));
    assert_eq!(out.stdout, b"again\0", "{}", show(&out));
    let second = std::fs::metadata(&cached).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (first.ino(), first.mtime_nsec()),
        (second.ino(), second.mtime_nsec()),
        "shipped twice"
    );

    // The node's cache was wiped: the wrapper says so, the binary goes again, the run works.
    std::fs::remove_file(&cached).unwrap();
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"third"]));
    assert_eq!(out.stdout, b"third\0", "{}", show(&out));
    assert!(cached.exists(), "not shipped again");
}

#[test]
fn the_working_directory_and_chosen_variables_are_the_callers() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    let dir = temp_dir();
    let cwd = dir.path().join("a dir with 'quotes' and $x");
    std::fs::create_dir(&cwd).unwrap();
    let out = output(fatbin(&cl, root.path(), &[b"pwd"]).current_dir(&cwd));
    assert_eq!(out.stdout, cwd.as_os_str().as_bytes(), "{}", show(&out));

    let out = output(
        fatbin(
            &cl,
            root.path(),
            &[
                b"env",
                b"MY_VAR",
                b"LANG",
                b"NOT_FORWARDED",
                b"FATBIN_ARGV0",
            ],
        )
        .env("FATBIN_ENV", "MY_VAR")
        .env("MY_VAR", "it's $(x)\nline")
        .env("LANG", "C.UTF-8")
        .env("NOT_FORWARDED", "secret"),
    );
    assert_eq!(
        out.stdout,
        b"it's $(x)\nline\0C.UTF-8\0\0probe\0",
        "{}",
        show(&out)
    );

    // argv[0] is what was typed, as in a local run, when the node's login shell can set it
    // (bash, zsh); the nodes here log in as this user, so their shell is this user's.
    let out = output(&mut fatbin(&cl, root.path(), &[b"argv0"]));
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let uid = unsafe { libc::geteuid() }.to_string();
    let shell = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() == 7 && f[2] == uid)
        .map(|f| f[6].to_owned())
        .unwrap_or_default();
    if shell.ends_with("bash") || shell.ends_with("zsh") {
        assert_eq!(out.stdout, b"probe", "{}", show(&out));
    } else {
        assert!(out.stdout.ends_with(b"/aarch64"), "{}", show(&out));
    }
}

/// `fatbin nodes ARGS` against `cl`'s inventory, with ROOT `root`.
fn fatbin_nodes(cl: &Cluster, root: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(host_bin_dir().join("fatbin"));
    cl.env(&mut cmd)
        .env("FATBIN_ROOT", root)
        .arg("nodes")
        .args(args);
    output(&mut cmd)
}

#[test]
fn nodes_commands_manage_and_probe_the_inventory() {
    let root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("arm", Kind::Aarch64);
    let nodes = |args: &[&str]| fatbin_nodes(&cl, root.path(), args);
    let out = nodes(&["add", "arm", "--ssh", "arm", "--slot", "aarch64"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = nodes(&["list"]);
    assert!(
        text(&out.stdout).contains("SHARED\tLAUNCHER\tFROM\n")
            && text(&out.stdout).contains("arm\tarm\taarch64\t(same as here)\tyes\t-\tuser\n"),
        "{}",
        show(&out)
    );
    // A node with its own launcher shows it: that is what starts runs there.
    let out = nodes(&[
        "add",
        "arm2",
        "--ssh",
        "arm",
        "--slot",
        "aarch64",
        "--launcher",
        "/usr/local/bin/fatbin",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = nodes(&["list"]);
    assert!(
        text(&out.stdout)
            .contains("arm2\tarm\taarch64\t(same as here)\tyes\t/usr/local/bin/fatbin\tuser\n"),
        "{}",
        show(&out)
    );
    let out = nodes(&["remove", "arm2"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = nodes(&["probe", "arm"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("aarch64 through qemu"),
        "{}",
        show(&out)
    );
    let out = nodes(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("arm: reachable, ROOT visible"),
        "{}",
        show(&out)
    );
    let out = nodes(&["add", "bad", "--ssh", "-oProxyCommand=x"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stderr).contains("option"), "{}", show(&out));
    let out = nodes(&["remove", "arm"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let out = nodes(&["list"]);
    assert!(text(&out.stdout).contains("no nodes"), "{}", show(&out));
}

/// `nodes probe --save` records a node's own launcher, found on the PATH of its ssh sessions,
/// so migrated runs there are checked and started by `fatbin node-exec` without anyone
/// writing `launcher` by hand. A node with no `fatbin`, or with one whose `fatbin-full` does
/// not know `node-exec` (an older install), gets none; a launcher the entry names is kept.
#[test]
fn probe_save_records_a_nodes_own_launcher() {
    let root = arm_only();
    cluster::require(true);
    let older = temp_dir();
    std::os::unix::fs::symlink("/bin/true", older.path().join("fatbin")).unwrap();
    let full = older.path().join("fatbin-full");
    std::fs::write(
        &full,
        "#!/bin/sh\necho \"fatbin: unknown command \\`$1\\`\" >&2\nexit 2\n",
    )
    .unwrap();
    std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cl = Cluster::new();
    for (node, path) in [
        ("has", host_bin_dir()),
        ("older", older.path().to_owned()),
        ("none", "/nonexistent".into()),
    ] {
        let path = format!("SetEnv SHLVL=3 PATH={}:/usr/bin:/bin", path.display());
        cl.add_node_with(node, Kind::Native, &path);
    }
    let nodes = |args: &[&str]| fatbin_nodes(&cl, root.path(), args);
    for node in ["has", "older", "none"] {
        let out = nodes(&["add", node, "--ssh", node, "--slot", "aarch64"]);
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    let out = nodes(&[
        "add",
        "kept",
        "--ssh",
        "has",
        "--slot",
        "aarch64",
        "--launcher",
        "/opt/fat/fatbin",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let ours = host_bin_dir().join("fatbin");
    let ours = ours.to_str().unwrap();

    let out = nodes(&["probe"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!(
            "  launcher {ours}: it can check and start runs there"
        )) && said.contains("--save records it")
            && said.contains(&format!(
                "  launcher {ours} on its PATH; the inventory names /opt/fat/fatbin, kept"
            ))
            && said.matches("  launcher ").count() == 2,
        "{}",
        show(&out)
    );
    let launchers = || -> Vec<(String, String)> {
        text(&nodes(&["list"]).stdout)
            .lines()
            .skip(1)
            .map(|l| {
                let fields: Vec<&str> = l.split('\t').collect();
                (fields[0].to_owned(), fields[5].to_owned())
            })
            .collect()
    };
    let before = launchers();
    assert!(
        before.len() == 4
            && before
                .iter()
                .all(|(n, l)| l == if n == "kept" { "/opt/fat/fatbin" } else { "-" }),
        "{before:?}"
    );

    let out = nodes(&["probe", "--save"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let mut after = launchers();
    after.sort();
    let expected: Vec<(String, String)> = [
        ("has", ours),
        ("kept", "/opt/fat/fatbin"),
        ("none", "-"),
        ("older", "-"),
    ]
    .iter()
    .map(|(n, l)| (n.to_string(), l.to_string()))
    .collect();
    assert_eq!(after, expected, "{}", show(&out));
    // Probed again: the launcher now named is the one found, so only `kept` has news.
    let out = nodes(&["probe"]);
    let said = text(&out.stdout);
    assert!(
        said.matches("  launcher ").count() == 1 && said.contains("names /opt/fat/fatbin, kept"),
        "{}",
        show(&out)
    );
}

/// The control socket of master `index` of `node`, if there is one: `NAME-KEY.INDEX`, where
/// KEY names the connection (docs/migration.md).
pub(crate) fn master_socket(cl: &Cluster, node: &str, index: usize) -> Option<std::path::PathBuf> {
    let dir = cl.dir().join("run/fatbin/ssh");
    std::fs::read_dir(&dir).ok()?.flatten().find_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let key = name.strip_prefix(node)?.strip_prefix('-')?;
        (key.len() == 12 + 1 + index.to_string().len() && key.ends_with(&format!(".{index}")))
            .then(|| e.path())
    })
}

#[test]
fn a_stale_or_wedged_control_socket_does_not_hang_the_run() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    let sockets = cl.dir().join("run/fatbin/ssh");
    std::fs::create_dir_all(&sockets).unwrap();
    std::fs::set_permissions(
        cl.dir().join("run/fatbin"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    // Learn the socket's name (NAME-KEY.0) from a first run, then close that master.
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"ok"]));
    assert_eq!(out.stdout, b"ok\0", "{}", show(&out));
    let socket = master_socket(&cl, "n1", 0).expect("a master for n1");
    Command::new("ssh")
        .arg("-F")
        .arg(cl.ssh_config())
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "n1"])
        .output()
        .unwrap();
    std::fs::remove_file(&socket).ok();
    // A socket nobody listens on (a crashed master) ...
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"ok"]));
    assert_eq!(out.stdout, b"ok\0", "{}", show(&out));
    // ... and one that accepts but never answers (a wedged master).
    std::fs::remove_file(&socket).ok();
    Command::new("ssh")
        .arg("-F")
        .arg(cl.ssh_config())
        .arg("-S")
        .arg(&socket)
        .args(["-O", "exit", "n1"])
        .output()
        .unwrap();
    std::fs::remove_file(&socket).ok();
    let _wedged = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"ok"]));
    assert_eq!(out.stdout, b"ok\0", "{}", show(&out));
}

#[test]
fn concurrent_runs_never_exceed_max_sessions_on_one_master() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    // Open the first master, then start more runs at once than one connection allows.
    assert_eq!(
        output(&mut fatbin(&cl, root.path(), &[])).status.code(),
        Some(0)
    );
    let children: Vec<_> = (0..12)
        .map(|_| {
            fatbin(&cl, root.path(), &[b"sleep", b"2"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    }
    assert!(
        master_socket(&cl, "n1", 1).is_some(),
        "the runs beyond one master's seats did not open a second master"
    );
}

#[test]
fn nothing_of_a_finished_run_stays_on_the_node() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    // Runs in a directory of their own: whatever they leave running still has it as its cwd.
    let dir = temp_dir();
    for _ in 0..3 {
        let out = output(fatbin(&cl, root.path(), &[b"args", b"x"]).current_dir(dir.path()));
        assert_eq!(out.stdout, b"x\0", "{}", show(&out));
    }
    // A watchdog ends within its `sleep 1` of the run's end, which on a loaded machine can be
    // more than a second: wait for that, generously. What this test catches, a process left
    // running for good, is still there at the deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = cluster::processes_in(dir.path());
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left running on the node: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_tty_only_when_the_user_has_one() {
    let root = arm_only();
    let cl = x86_cluster_for_slot(root.path(), "aarch64", Kind::Aarch64);
    // sshd sets SSH_TTY only in sessions with a pty.
    let out = output(&mut fatbin(&cl, root.path(), &[b"env", b"SSH_TTY"]));
    assert_eq!(out.stdout, b"\0", "no tty here, none there: {}", show(&out));

    // Under script(1) the launcher's stdin and stdout are a terminal: the program gets one.
    let cmd = fatbin(&cl, root.path(), &[b"env", b"SSH_TTY"]);
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_str().unwrap().to_owned())
        .collect();
    let mut script = Command::new("script");
    cl.env(&mut script);
    script
        .env("FATBIN_FALLBACK", "nodes")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null());
    let out = output(&mut script);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(text(&out.stdout).contains("/dev/pts/"), "{}", show(&out));
    assert!(
        !text(&out.stdout).contains("Shared connection"),
        "{}",
        show(&out)
    );
}

/// The name of the node that ran a migrated `probe env FATBIN_TEST_NODE` (see cluster.rs).
pub(crate) fn node_that_ran(cl: &Cluster, root: &Path, balance: &str) -> String {
    let out =
        output(fatbin(cl, root, &[b"env", b"FATBIN_TEST_NODE"]).env("FATBIN_BALANCE", balance));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    text(out.stdout.strip_suffix(b"\0").unwrap_or(&out.stdout))
}

#[test]
fn load_is_balanced_round_robin_or_to_the_least_loaded_node() {
    let root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("n1", Kind::Aarch64);
    cl.add_node("n2", Kind::Aarch64);
    cl.write_nodes(&format!(
        "[nodes.n1]\nssh = \"n1\"\nslots = [\"aarch64\"]\nroot = \"{0}\"\n\
         [nodes.n2]\nssh = \"n2\"\nslots = [\"aarch64\"]\nroot = \"{0}\"\n",
        root.path().display()
    ));

    // Round-robin: consecutive runs start at consecutive nodes.
    let ran: Vec<String> = (0..4)
        .map(|_| node_that_ran(&cl, root.path(), "round-robin"))
        .collect();
    for pair in ran.windows(2) {
        assert_ne!(pair[0], pair[1], "round-robin repeated a node: {ran:?}");
    }
    assert!(ran.iter().all(|n| n == "n1" || n == "n2"), "{ran:?}");

    // Least-loaded: while a long run holds one node, the next run goes to the other.
    let mut long = fatbin(&cl, root.path(), &[b"announce", b"FATBIN_TEST_NODE", b"5"]);
    let mut long = long
        .env("FATBIN_BALANCE", "least-loaded")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut long_node = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(long.stdout.take().unwrap()),
        &mut long_node,
    )
    .unwrap();
    let long_node = long_node.trim().to_owned();
    let both = ["n1", "n2"];
    assert!(both.contains(&long_node.as_str()), "{long_node:?}");
    // Twice: a rotating policy would land on the busy node one of the two times.
    for _ in 0..2 {
        let during = node_that_ran(&cl, root.path(), "least-loaded");
        assert_ne!(during, long_node, "least-loaded chose the busy node");
    }
    let status = long.wait().unwrap();
    assert!(status.success(), "the long run failed: {status}");
    // With the long run over, both nodes are idle again; a run still goes through.
    let after = node_that_ran(&cl, root.path(), "least-loaded");
    assert!(both.contains(&after.as_str()), "{after}");
}

/// The test cluster itself: a node's port is free when the cluster picks it, but nothing holds
/// it until sshd binds it, so another test's listener can take it meanwhile. Then sshd exits
/// ("Address already in use"), and the banner of whatever holds the port passed for the
/// node's: the node was "up" and every ssh to it failed. It now waits for its own sshd's
/// listening socket, and moves the node to another port when its own was taken.
#[test]
fn a_node_whose_port_was_taken_moves_to_another() {
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("n1", Kind::Native);
    let port = cl.port("n1");
    cl.kill_node("n1");
    // An impostor on the node's port: it accepts and says what an sshd says first.
    let impostor = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in impostor.incoming().flatten() {
            let _ = stream.write_all(b"SSH-2.0-impostor\r\n");
            held.push(stream);
        }
    });
    cl.restart_node("n1");
    assert_ne!(cl.port("n1"), port);
    let out = cl.ssh("n1", "echo ok");
    assert_eq!(text(&out.stdout), "ok\n", "{}", show(&out));
}

/// `x86_cluster_for_slot`'s cluster, its node naming this build's launcher as the node's own
/// (`launcher`): the node then checks and starts each binary with `fatbin node-exec`.
pub(crate) fn cluster_with_node_launcher(root: &Path, slot: &str, kind: Kind) -> Cluster {
    let launcher = host_bin_dir().join("fatbin");
    one_node_cluster(
        root,
        slot,
        kind,
        &format!("launcher = \"{}\"\n", launcher.display()),
    )
}

/// With a node launcher the wrapper's shell becomes the launcher (`fatbin node-exec`), which
/// starts one process, the program, and is itself the watchdog: no `ls`, no shell copy
/// running `sleep`. It survives the forwarded SIGINT (the program gets it) and reports the
/// program's status, nothing of the run stays on the node, and it still ends the program when
/// the connection dies.
#[test]
fn a_node_launcher_starts_only_the_program_and_its_watchdog_follows_the_connection() {
    let root = arm_only();
    let cl = cluster_with_node_launcher(root.path(), "aarch64", Kind::Aarch64);
    let dir = temp_dir();
    // A signal, forwarded: the program's status, and nothing of the run stays on the node.
    let file = dir.path().join("int");
    let needle = file.to_str().unwrap().to_owned();
    let child = fatbin(&cl, root.path(), &[b"wait-signal", needle.as_bytes()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&file, "ready");
    // The node's processes: not the launcher here, whose command line has the needle too.
    let local = child.id();
    let procs: Vec<_> = cluster::processes_with(&needle)
        .into_iter()
        .filter(|p| p.0 != local)
        .collect();
    let is_launcher = |c: &[u8]| c.split(|&b| b == 0).any(|w| w == b"node-exec");
    let launchers: Vec<_> = procs.iter().filter(|p| is_launcher(&p.2)).collect();
    let programs: Vec<_> = procs.iter().filter(|p| !is_launcher(&p.2)).collect();
    assert_eq!((launchers.len(), programs.len()), (1, 1), "{procs:?}");
    let wrapper = launchers[0].0;
    assert_eq!(
        programs[0].1, wrapper,
        "the program is not node-exec's child: {procs:?}"
    );
    assert_eq!(
        cluster::children_of(wrapper).len(),
        1,
        "the wrapper started more than the program (a watchdog, `sleep`, `ls`?)"
    );
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let got = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(got.trim(), "got SIGINT", "{}", show(&out));
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGINT),
        "{}",
        show(&out)
    );
    // The local launcher has exited: whatever is left with the needle is on the node.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cluster::processes_with(&needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            cluster::processes_with(&needle)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The connection dies: the watchdog ends the program.
    let file = dir.path().join("conn");
    let needle = file.to_str().unwrap().to_owned();
    let child = fatbin(&cl, root.path(), &[b"wait-signal", needle.as_bytes()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&file, "ready");
    assert_eq!(
        cluster::processes_with(&needle).len(),
        3,
        "{:?}",
        cluster::processes_with(&needle)
    );
    kill_master(&cl, "n1");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster::processes_with(&needle).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the remote program or node-exec still runs after the connection died: {:?}",
            cluster::processes_with(&needle)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Through a node launcher: exit statuses and death by signal as a local run reports them,
/// arguments byte-exact, stdin and stderr streamed, the working directory the caller's.
#[test]
fn a_node_launcher_keeps_statuses_arguments_and_streams() {
    let root = arm_only();
    let cl = cluster_with_node_launcher(root.path(), "aarch64", Kind::Aarch64);
    for code in [0, 3, 126, 127, 255] {
        let out = output(&mut fatbin(
            &cl,
            root.path(),
            &[b"exit", code.to_string().as_bytes()],
        ));
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert!(out.stderr.is_empty(), "{}", show(&out));
    }
    let out = output(&mut fatbin(&cl, root.path(), &[b"signal", b"15"]));
    assert_eq!(out.status.code(), Some(128 + 15), "{}", show(&out));
    let corpus: [&[u8]; 7] = [
        b"two words",
        b"it's",
        b"$(touch /tmp/fatbin-pwned)",
        b"",
        b"--help",
        b"\xff not utf-8",
        b"\x1efatbin:start:1\n",
    ];
    let mut args: Vec<&[u8]> = vec![b"args"];
    args.extend(&corpus);
    let out = output(&mut fatbin(&cl, root.path(), &args));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        out.stdout,
        corpus
            .iter()
            .flat_map(|a| [*a, b"\0"])
            .flatten()
            .copied()
            .collect::<Vec<u8>>()
    );
    let mut cat = fatbin(&cl, root.path(), &[b"cat"]);
    let mut child = cat
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.stdout, b"through stdin\n", "{}", show(&out));
    let out = output(&mut fatbin(&cl, root.path(), &[b"stderr", b"to stderr"]));
    assert_eq!(out.stderr, b"to stderr", "{}", show(&out));
    let here = temp_dir();
    let out = output(fatbin(&cl, root.path(), &[b"pwd"]).current_dir(here.path()));
    assert_eq!(
        out.stdout,
        here.path().as_os_str().as_bytes(),
        "{}",
        show(&out)
    );
}

/// A node whose inventory names a launcher that is not there says so and runs nothing there
/// (126, as a binary that cannot run), and the request goes to another node that can serve it.
#[test]
fn a_missing_node_launcher_is_named() {
    let root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("n1", Kind::Aarch64);
    cl.add_node("n2", Kind::Aarch64);
    let lacking = |nodes: &str| {
        let mut inventory = String::new();
        for node in nodes.split_whitespace() {
            inventory.push_str(&format!(
                "[nodes.{node}]\nssh = \"{node}\"\nslots = [\"aarch64\"]\nroot = \"{}\"\n",
                root.path().display()
            ));
            if node == "n1" {
                inventory.push_str("launcher = \"/nonexistent/fatbin\"\n");
            }
        }
        inventory
    };
    cl.write_nodes(&lacking("n1"));
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    assert!(
        out.stdout.is_empty()
            && text(&out.stderr).contains(
                "node `n1` did not start `probe` (slot aarch64): the node has no launcher at \
                 /nonexistent/fatbin-full"
            )
            && text(&out.stderr).contains("remove `launcher` from the node's nodes.toml entry"),
        "{}",
        show(&out)
    );
    // The node answered: it is not marked down; with no stdin forwarded, another node that
    // can serve the request does, whichever of the two round-robin tries first.
    assert!(std::fs::read_to_string(cl.down_file())
        .unwrap_or_default()
        .is_empty());
    cl.write_nodes(&lacking("n1 n2"));
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"x"]));
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(out.stdout, b"x\0", "{}", show(&out));
}

/// SIGKILLs the local master connection to `node` (its pid as `ssh -O check` reports it): the
/// connection goes, and sshd ends the session's processes on the node.
fn kill_master(cl: &Cluster, node: &str) {
    let socket = master_socket(cl, node, 0).unwrap_or_else(|| panic!("a master for {node}"));
    let check = Command::new("ssh")
        .arg("-F")
        .arg(cl.ssh_config())
        .arg("-S")
        .arg(&socket)
        .args(["-O", "check", node])
        .output()
        .unwrap();
    let said = text(&check.stderr);
    let pid: i32 = said
        .split("pid=")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no master pid in {said:?}"));
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}
