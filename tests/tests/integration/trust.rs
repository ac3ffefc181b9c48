//! The trust model and runs that go wrong (docs/security.md): what a fresh install looks like
//! under a permissive umask, closed standard descriptors, odd characters in the directories
//! migration keeps its sockets in. Real binaries, real files, a real sshd cluster
//! (`fatbin_tests::cluster`) for the migration cases.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use fatbin_layout::{install, Layout, NewSlot};
use fatbin_tests::cargo_fatbin_support::{cargo_fatbin_command, run};
use fatbin_tests::cluster::{self, Cluster, Kind};
use fatbin_tests::{host_bin_dir, probe_binary, temp_dir};

use crate::migration::{arm_only, show, text};

const X86: &str = "x86_64-unknown-linux-musl";
const ARM: &str = "aarch64-unknown-linux-musl";

/// An aarch64 node `n1` that shares the layout at the same path.
fn arm_cluster(root: &Path) -> Cluster {
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("n1", Kind::Aarch64);
    cl.write_nodes(&format!(
        "[nodes.n1]\nssh = \"n1\"\nslots = [\"aarch64\"]\nroot = \"{}\"\n",
        root.display()
    ));
    cl
}

/// `fatbin run --root ROOT probe ARGS` with the cluster's environment, stdin closed.
fn fatbin(cl: &Cluster, root: &Path, args: &[&[u8]]) -> Command {
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

/// Every regular file under `dir` whose contents include `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

/// Issue 11, item 9: `cargo fatbin add` under umask 002 (Ubuntu's default) and 000 creates
/// ROOT and its missing parents 0755, so the launcher's permission checks accept the layout.
#[test]
fn installs_under_a_permissive_umask_create_0755_directories_that_run() {
    for mask in [0o002, 0o000] {
        let base = temp_dir();
        let root = base.path().join("share/fatbin");
        let mut cmd = cargo_fatbin_command(Path::new("."));
        cmd.arg("add")
            .arg("tool")
            .arg(probe_binary(X86, None))
            .arg("--root")
            .arg(&root)
            .arg("--launcher")
            .arg(host_bin_dir().join("fatbin"))
            .arg("--color=never");
        // SAFETY: umask is async-signal-safe and touches only the child.
        unsafe {
            cmd.pre_exec(move || {
                libc::umask(mask);
                Ok(())
            });
        }
        run(cmd).success();
        for dir in [
            base.path().join("share"),
            root.clone(),
            root.join("bin"),
            root.join("bin/tool"),
            root.join("shims"),
        ] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
            assert_eq!(
                mode,
                0o755,
                "umask {mask:03o}: {} is {mode:o}",
                dir.display()
            );
        }
        let out = Command::new(root.join("shims/tool"))
            .env_remove("FATBIN_ROOT")
            .env_remove("FATBIN_ARCH")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "umask {mask:03o}: {}",
            show(&out)
        );
        assert!(
            text(&out.stdout).starts_with("probe arch=x86_64 "),
            "{}",
            show(&out)
        );
    }
}

/// Issue 11, item 10: started with stderr closed (`2>&-`), a migrated run must not write the
/// remote stderr into a file the launcher opened (the seat lock took fd 2).
#[test]
fn a_closed_stderr_never_lands_in_the_launchers_files() {
    let root = arm_only();
    let cl = arm_cluster(root.path());
    let needle = b"remote-stderr-canary-4f1c";
    let mut cmd = fatbin(&cl, root.path(), &[b"stderr", needle]);
    cmd.stdout(Stdio::piped());
    // SAFETY: close is async-signal-safe; the child closes its own fd 2 before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(2);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let leaked = files_containing(cl.dir(), needle);
    assert!(leaked.is_empty(), "remote stderr written into {leaked:?}");
    let leaked = files_containing(root.path(), needle);
    assert!(leaked.is_empty(), "remote stderr written into {leaked:?}");
}

/// Issue 11, item 11: ssh expands `%` in a ControlPath (`-S` too); a `%` in XDG_RUNTIME_DIR
/// must not break migration.
#[test]
fn a_percent_sign_in_the_runtime_dir_still_migrates() {
    let root = arm_only();
    let cl = arm_cluster(root.path());
    // `%d` would be ssh's home directory token, `%%` its escaped percent sign.
    let run_dir = cl.dir().join("run%d%%x");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = fatbin(&cl, root.path(), &[b"args", b"a"])
        .env("XDG_RUNTIME_DIR", &run_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(out.stdout, b"a\0", "{}", show(&out));
    // The master's socket is where the launcher looks for it, under the literal name.
    let sockets: Vec<_> = std::fs::read_dir(run_dir.join("fatbin/ssh"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    // NAME-KEY.INDEX: KEY names the connection (docs/migration.md).
    assert!(
        sockets.iter().any(|n| n
            .to_str()
            .is_some_and(|n| n.starts_with("n1-") && n.ends_with(".0"))),
        "no socket n1-KEY.0 in {sockets:?}"
    );
}

/// `fatbin ARGS` with a private config directory, no system inventory.
fn fatbin_with_config(config: &Path) -> Command {
    let mut cmd = Command::new(host_bin_dir().join("fatbin"));
    cmd.env("XDG_CONFIG_HOME", config)
        .env("XDG_CACHE_HOME", config.join("cache"))
        .env("XDG_RUNTIME_DIR", config.join("run"))
        .env("FATBIN_SYSTEM_NODES", config.join("no-system-nodes.toml"))
        .env("FATBIN_FALLBACK", "nodes")
        .env_remove("FATBIN_ROOT")
        .env_remove("FATBIN_ARCH")
        .stdin(Stdio::null());
    cmd
}

/// Issue 11, item 5: a relative `root` or `cache` would be resolved against whatever
/// directory the caller or the remote shell is in: refused on every read (exit 2, naming the
/// file, node and key), and `fatbin nodes add` refuses to write one.
#[test]
fn relative_node_paths_are_refused_on_read_and_by_nodes_add() {
    let root = arm_only();
    let config = temp_dir();
    let nodes = config.path().join("fatbin/nodes.toml");
    for (key, line) in [
        ("root", "root = \"relative/root\""),
        ("cache", "shared = false\ncache = \"relcache\""),
    ] {
        std::fs::create_dir_all(nodes.parent().unwrap()).unwrap();
        std::fs::write(
            &nodes,
            format!("[nodes.n1]\nssh = \"n1\"\nslots = [\"aarch64\"]\n{line}\n"),
        )
        .unwrap();
        let out = fatbin_with_config(config.path())
            .args(["run", "--root"])
            .arg(root.path())
            .arg("probe")
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {}", show(&out));
        assert!(
            err.contains("node `n1`")
                && err.contains(&format!("{key} = "))
                && err.contains("relative"),
            "{key}: {err}"
        );
    }
    std::fs::remove_file(&nodes).unwrap();
    let out = fatbin_with_config(config.path())
        .args(["nodes", "add", "n1", "--ssh", "n1", "--slot", "aarch64"])
        .args(["--no-shared", "--cache", "relcache"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("cache = \"relcache\""),
        "{}",
        show(&out)
    );
    assert!(!nodes.exists(), "nodes add wrote a relative cache");
}

/// A real unprivileged account other than the caller (created once, `useradd`): the
/// "attacker" of the trust tests. Returns its uid.
///
/// Created once per test process: tests running in parallel raced to create it, and the
/// loser's `useradd` failed on the passwd lock the winner held, so its `id` could run before
/// the winner had written the account. A `useradd` that meets another process's lock is
/// retried.
fn other_user() -> u32 {
    const NAME: &str = "fatbin-mallory";
    static UID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UID.get_or_init(|| {
        let id = || Command::new("id").args(["-u", NAME]).output().unwrap();
        let mut out = id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !out.status.success() && std::time::Instant::now() < deadline {
            let _ = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    NAME,
                ])
                .status();
            out = id();
            if !out.status.success() {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        assert!(
            out.status.success(),
            "cannot create the test user {NAME} (useradd, needs root)"
        );
        text(&out.stdout).trim().parse().unwrap()
    })
}

/// Issue 11, item 1: a nodes.toml others can write, or owned by another account, is refused
/// (exit 126, naming the file and the fix), as a slot would be; the layout's own nodes.toml
/// may belong to ROOT's owner.
#[test]
fn an_inventory_others_could_write_is_refused() {
    let root = arm_only();
    let config = temp_dir();
    let dir = config.path().join("fatbin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let nodes = dir.join("nodes.toml");
    std::fs::write(&nodes, "[nodes.n1]\nssh = \"n1\"\nslots = [\"aarch64\"]\n").unwrap();
    let run = || {
        fatbin_with_config(config.path())
            .args(["run", "--root"])
            .arg(root.path())
            .arg("probe")
            .output()
            .unwrap()
    };
    let refused = |out: &Output, what: &str| {
        assert_eq!(out.status.code(), Some(126), "{what}: {}", show(out));
        assert!(
            text(&out.stderr).contains("refusing the node inventory"),
            "{what}: {}",
            show(out)
        );
    };
    std::fs::set_permissions(&nodes, std::fs::Permissions::from_mode(0o666)).unwrap();
    refused(&run(), "world-writable file");
    std::fs::set_permissions(&nodes, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused(&run(), "world-writable directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let mallory = other_user();
    std::os::unix::fs::chown(&nodes, Some(mallory), None).unwrap();
    refused(&run(), "another account's file");
    // The same file in a layout ROOT owned by that account is the layout owner's to write.
    std::fs::remove_file(&nodes).unwrap();
    let layout_nodes = Layout::new(root.path()).nodes_file();
    std::fs::write(&layout_nodes, "[settings]\nconnect_timeout = 1\n").unwrap();
    std::os::unix::fs::chown(&layout_nodes, Some(mallory), None).unwrap();
    std::os::unix::fs::chown(root.path(), Some(mallory), None).unwrap();
    let out = run();
    assert!(
        !text(&out.stderr).contains("refusing the node inventory"),
        "ROOT's owner's file refused: {}",
        show(&out)
    );
    // ... but not once ROOT belongs to someone else.
    std::os::unix::fs::chown(root.path(), Some(0), None).unwrap();
    refused(
        &run(),
        "layout file owned by neither root, you, nor ROOT's owner",
    );
}

/// Issue 11, item 1: `fatbin nodes add` writes the per-user file 0600 in a 0700 directory
/// and a layout's 0644, whatever the umask.
#[test]
fn nodes_add_writes_fixed_modes_under_any_umask() {
    for mask in [0o000, 0o077] {
        let root = temp_dir();
        let config = temp_dir();
        for to in [None, Some("layout")] {
            let mut cmd = fatbin_with_config(config.path());
            cmd.args(["nodes", "add", "n1", "--ssh", "n1", "--slot", "aarch64"]);
            if let Some(to) = to {
                cmd.args(["--to", to]).arg("--layout").arg(root.path());
            }
            // SAFETY: umask is async-signal-safe and touches only the child.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask);
                    Ok(())
                });
            }
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let user_dir = config.path().join("fatbin");
        assert_eq!(mode(&user_dir), 0o700, "umask {mask:03o}");
        assert_eq!(
            mode(&user_dir.join("nodes.toml")),
            0o600,
            "umask {mask:03o}"
        );
        assert_eq!(
            mode(&Layout::new(root.path()).nodes_file()),
            0o644,
            "umask {mask:03o}"
        );
    }
}

/// Issue 11, item 13: the staged copy an install killed mid-way left behind (named for its
/// dead process) makes `verify` name the fix, and the next install, holding the lock, removes
/// it; a temporary file of a live process is kept.
#[test]
fn temp_files_of_dead_installs_are_named_by_verify_and_removed_by_the_next_install() {
    let root = arm_only();
    let layout = Layout::new(root.path());
    let dir = layout.program_dir("probe");
    // A pid above the kernel's pid_max: that process is certainly gone.
    let dead = dir.join(".aarch64.tmp-4999999-0");
    std::fs::write(&dead, vec![0u8; 1 << 20]).unwrap();
    let live = dir.join(format!(".aarch64.tmp-{}-7", std::process::id()));
    std::fs::write(&live, b"being written").unwrap();
    let problems = fatbin_layout::verify::verify(&layout, None).unwrap();
    let about_dead: Vec<String> = problems
        .iter()
        .filter(|p| p.path == dead)
        .map(|p| p.to_string())
        .collect();
    assert!(
        about_dead.len() == 1
            && about_dead[0].contains("interrupted install (fix: install `probe` again"),
        "{problems:?}"
    );
    let slot = NewSlot {
        slot: "aarch64".parse().unwrap(),
        source: probe_binary(ARM, None),
        target: ARM.to_owned(),
        cpu: None,
        features: Vec::new(),
        krate: Some("probe".into()),
        version: None,
    };
    install(&layout, "probe", &[slot]).unwrap();
    assert!(
        !dead.exists(),
        "the dead install's temporary file is still there"
    );
    assert!(live.exists(), "a live process's temporary file was removed");
    std::fs::remove_file(&live).unwrap();
    let problems = fatbin_layout::verify::verify(&layout, None).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

/// Issue 11, item 2 (the local half): a layout the local checks refuse (a world-writable ROOT,
/// program directory or slot) is refused with 126 before migrating too, not run on a node.
#[test]
fn a_layout_refused_locally_is_not_migrated_either() {
    let root = arm_only();
    let cl = arm_cluster(root.path());
    let layout = Layout::new(root.path());
    let slot = layout.slot_path("probe", "aarch64".parse().unwrap());
    for (path, mode, restore) in [
        (root.path().to_owned(), 0o777, 0o755),
        (layout.program_dir("probe"), 0o777, 0o755),
        (slot.clone(), 0o757, 0o755),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = fatbin(&cl, root.path(), &[]).output().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(restore)).unwrap();
        assert_eq!(
            out.status.code(),
            Some(126),
            "{}: {}",
            path.display(),
            show(&out)
        );
        assert!(
            text(&out.stderr).contains("refusing to run") && out.stdout.is_empty(),
            "{}: {}",
            path.display(),
            show(&out)
        );
    }
    // Put right, it migrates.
    let out = fatbin(&cl, root.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

/// A TCP port on loopback that nothing listens on: a node there refuses every connection. A
/// socket bound to it and never listening holds it for as long as the returned descriptor
/// lives: a port merely free a moment ago could be taken by another test's sshd meanwhile,
/// and that one would answer.
fn closed_port() -> (std::os::fd::OwnedFd, u16) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket calls on a descriptor this function owns, with buffers of the sizes given.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let socket = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let raw = &mut addr as *mut libc::sockaddr_in as *mut libc::sockaddr;
        assert_eq!(libc::bind(socket.as_raw_fd(), raw, len), 0, "bind");
        assert_eq!(libc::getsockname(socket.as_raw_fd(), raw, &mut len), 0);
        (socket, u16::from_be(addr.sin_port))
    }
}

/// Issue 11, item 7: fallbacks go in order, each skipped when it cannot serve. An inventory
/// that is empty, holds only settings, the `[nodes]` left after removing the last node, or
/// nodes only for other slots does not turn off qemu; a node that refuses the connection
/// (nothing ran there) hands the request on to qemu. `which --explain` agrees with `run`.
#[test]
fn fallbacks_skip_inventories_that_cannot_serve_and_hand_on_to_qemu() {
    fatbin_tests::launcher_support::require_qemu("aarch64");
    let root = arm_only();
    let config = temp_dir();
    let dir = config.path().join("fatbin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let nodes = dir.join("nodes.toml");
    let (_held, port) = closed_port();
    let refusing = format!(
        "[nodes.gone]\nssh = \"127.0.0.1\"\nport = {port}\nslots = [\"aarch64\"]\n\
         [settings]\nconnect_timeout = 2\n"
    );
    for (what, inventory) in [
        ("an empty file", String::new()),
        (
            "settings only",
            "[settings]\nconnect_timeout = 1\n".to_owned(),
        ),
        ("an empty [nodes]", "[nodes]\n".to_owned()),
        (
            "nodes for other slots only",
            "[nodes.rv]\nssh = \"rv\"\nslots = [\"riscv64\"]\n".to_owned(),
        ),
        ("every node refusing connections", refusing),
    ] {
        std::fs::write(&nodes, &inventory).unwrap();
        std::fs::set_permissions(&nodes, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = fatbin_with_config(config.path())
            .env("FATBIN_FALLBACK", "nodes,qemu")
            .args(["run", "--root"])
            .arg(root.path())
            .arg("probe")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{what}: {}", show(&out));
        assert!(
            text(&out.stdout).starts_with("probe arch=aarch64 "),
            "{what}: {}",
            show(&out)
        );
        let explained = fatbin_with_config(config.path())
            .env("FATBIN_FALLBACK", "nodes,qemu")
            .args(["which", "--explain", "--root"])
            .arg(root.path())
            .arg("probe")
            .output()
            .unwrap();
        let runs = text(&explained.stdout)
            .lines()
            .find(|l| l.starts_with("runs: "))
            .map(str::to_owned)
            .unwrap_or_default();
        if what.starts_with("every node") {
            // Whether a node answers is known only by trying: the plan is migration, and
            // `run` above showed it handing on.
            assert!(
                runs.contains("another node"),
                "{what}: {}",
                show(&explained)
            );
        } else {
            assert!(
                runs.contains("qemu-aarch64"),
                "{what}: {}",
                show(&explained)
            );
        }
    }
}

/// Issue 14, item 9: `which --explain` shows only the fallbacks `FATBIN_FALLBACK` allows: no
/// emulator under `nodes`, no migration under `qemu`.
#[test]
fn which_explain_lists_only_the_allowed_fallbacks() {
    fatbin_tests::launcher_support::require_qemu("aarch64");
    let root = arm_only();
    let config = temp_dir();
    let explain = |order: &str| {
        let out = fatbin_with_config(config.path())
            .env("FATBIN_FALLBACK", order)
            .args(["which", "--explain", "--root"])
            .arg(root.path())
            .arg("probe")
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let nodes_only = explain("nodes");
    assert!(!nodes_only.contains("qemu for"), "{nodes_only}");
    assert!(nodes_only.contains("migration:"), "{nodes_only}");
    let qemu_only = explain("qemu");
    assert!(qemu_only.contains("qemu for aarch64"), "{qemu_only}");
    assert!(!qemu_only.contains("migration:"), "{qemu_only}");
}

/// Issue 11, item 2 (the node's half): the node checks owner and modes of the slot it runs
/// and of its directories, with the same words as a local refusal, and runs nothing. Here
/// the node's ROOT (`root` in nodes.toml) is another copy of the layout, which this host's
/// checks never see.
#[test]
fn the_node_refuses_a_slot_others_could_write_there() {
    let root = arm_only();
    let node_root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("n1", Kind::Aarch64);
    cl.write_nodes(&format!(
        "[nodes.n1]\nssh = \"n1\"\nslots = [\"aarch64\"]\nroot = \"{}\"\n",
        node_root.path().display()
    ));
    let layout = Layout::new(node_root.path());
    // The file the node runs: the slot's content file, as the manifest names it.
    let manifest = layout.read_manifest("probe").unwrap();
    let slot = layout.file_of(&manifest, "probe", "aarch64".parse().unwrap());
    let mallory = other_user();
    type Spoil = Box<dyn Fn(bool)>;
    let cases: Vec<(std::path::PathBuf, &str, Spoil)> = vec![
        (slot.clone(), "is writable by others", {
            let p = slot.clone();
            Box::new(move |bad| {
                let mode = if bad { 0o757 } else { 0o755 };
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            })
        }),
        (layout.bin_dir(), "is writable by its group", {
            let p = layout.bin_dir();
            Box::new(move |bad| {
                let mode = if bad { 0o775 } else { 0o755 };
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            })
        }),
        (layout.program_dir("probe"), "is owned by uid", {
            let p = layout.program_dir("probe");
            Box::new(move |bad| {
                let owner = if bad { mallory } else { 0 };
                std::os::unix::fs::chown(&p, Some(owner), None).unwrap();
            })
        }),
    ];
    for (path, words, spoil) in &cases {
        spoil(true);
        let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
        spoil(false);
        let err = text(&out.stderr);
        // The status of a local refusal (126), not of a transport failure.
        assert_eq!(
            out.status.code(),
            Some(126),
            "{}: {}",
            path.display(),
            show(&out)
        );
        assert!(
            out.stdout.is_empty()
                && err.contains("node `n1`")
                && err.contains(&format!("refusing to run: {} {words}", path.display())),
            "{}: {}",
            path.display(),
            show(&out)
        );
    }
    // Put right, it runs there.
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(out.stdout, b"x\0", "{}", show(&out));
}

/// The program through its shim (the fast launcher, handing over when in doubt) and through
/// `fatbin run --root ROOT` (the full launcher): both must decide alike.
fn both_launchers(t: &fatbin_tests::launcher_support::TestLayout) -> [Output; 2] {
    let shim = t.run("probe").stdin(Stdio::null()).output().unwrap();
    let full = t
        .fatbin()
        .args(["run", "--root"])
        .arg(&t.root)
        .arg("probe")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    [shim, full]
}

fn assert_refused(outs: &[Output; 2], words: &[&str], what: &str) {
    for (out, how) in outs.iter().zip(["shim", "fatbin run"]) {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{what}, {how}: {}", show(out));
        assert!(
            out.stdout.is_empty()
                && err.contains("refusing to run")
                && words.iter().all(|w| err.contains(w)),
            "{what}, {how}: {}",
            show(out)
        );
    }
}

fn assert_runs(outs: &[Output; 2], what: &str) {
    for (out, how) in outs.iter().zip(["shim", "fatbin run"]) {
        assert_eq!(out.status.code(), Some(0), "{what}, {how}: {}", show(out));
        assert!(
            text(&out.stdout).starts_with("probe arch=x86_64"),
            "{what}, {how}: {}",
            show(out)
        );
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Issue 11, item 6: under a parent others can write (without the sticky bit), another user
/// could rename ROOT away and put their own in its place: ROOT's ancestors are checked like
/// OpenSSH's StrictModes (no group/world-writable component unless sticky, owned by root,
/// the user or ROOT's owner), by the fast launcher and the full one alike.
#[test]
fn roots_ancestors_are_checked_like_strict_modes() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let parent = t.dir.path().to_owned();
    let shown = parent.display().to_string();
    assert_runs(&both_launchers(&t), "all 0755");
    chmod(&parent, 0o777);
    assert_refused(
        &both_launchers(&t),
        &[&shown, "not sticky", "chmod go-w"],
        "world-writable parent",
    );
    chmod(&parent, 0o775);
    assert_refused(
        &both_launchers(&t),
        &[&shown, "its group"],
        "group-writable parent",
    );
    // A sticky directory, like /tmp, is fine.
    chmod(&parent, 0o1777);
    assert_runs(&both_launchers(&t), "sticky parent");
    chmod(&parent, 0o755);
    let mallory = other_user();
    std::os::unix::fs::chown(&parent, Some(mallory), None).unwrap();
    let refused = both_launchers(&t);
    std::os::unix::fs::chown(&parent, Some(0), None).unwrap();
    assert_refused(
        &refused,
        &[&shown, &format!("owned by uid {mallory}")],
        "parent owned by another account",
    );
    assert_runs(&both_launchers(&t), "put right");
}

/// Issue 11, item 6: a slot, or a ROOT, reached through a symlink is checked on its real
/// path's directories too: the link's own directory being safe says nothing of where it
/// leads.
#[test]
fn a_slot_or_root_reached_through_a_symlink_is_checked_on_its_real_path() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let slot = t.slot_path("probe", "x86_64");
    let elsewhere = t.dir.path().join("elsewhere");
    let real_dir = elsewhere.join("real");
    std::fs::create_dir_all(&real_dir).unwrap();
    chmod(&elsewhere, 0o755);
    chmod(&real_dir, 0o755);
    let real = real_dir.join("x86_64");
    std::fs::rename(&slot, &real).unwrap();
    std::os::unix::fs::symlink(&real, &slot).unwrap();
    assert_runs(&both_launchers(&t), "symlinked slot, safe real path");
    chmod(&elsewhere, 0o777);
    assert_refused(
        &both_launchers(&t),
        &[&elsewhere.display().to_string(), "not sticky"],
        "symlinked slot under a world-writable directory",
    );
    chmod(&elsewhere, 0o755);
    std::fs::remove_file(&slot).unwrap();
    std::fs::rename(&real, &slot).unwrap();

    // ROOT itself a symlink into a directory others can write.
    let public = t.dir.path().join("public");
    std::fs::create_dir(&public).unwrap();
    chmod(&public, 0o777);
    std::fs::rename(&t.root, public.join("root")).unwrap();
    std::os::unix::fs::symlink(public.join("root"), &t.root).unwrap();
    assert_refused(
        &both_launchers(&t),
        &[&public.display().to_string(), "not sticky"],
        "symlinked ROOT whose real parent is world-writable",
    );
    chmod(&public, 0o755);
    assert_runs(&both_launchers(&t), "symlinked ROOT, safe real path");
}

/// Issue 11, item 4: the portable `#!/bin/sh` shim checks the launcher it execs
/// (`ROOT/bin/fatbin-full/SLOT`) as the launcher checks a slot: owner and modes of the file,
/// its directories up to ROOT, and ROOT's ancestors; a refusal runs nothing.
#[test]
fn the_portable_shim_checks_the_launcher_it_execs() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let slot: fatbin_layout::SlotName = "x86_64".parse().unwrap();
    let full = t.full_launcher();
    for (program, file) in [("fatbin", &t.launcher), ("fatbin-full", &full)] {
        let new = [NewSlot::from_file(slot, file)];
        install(&t.layout(), program, &new).unwrap();
    }
    let shim = t.shims().join("fatbin");
    std::fs::remove_file(&shim).unwrap();
    std::fs::copy(
        fatbin_tests::workspace_root().join("launcher/shim/fatbin-portable.sh"),
        &shim,
    )
    .unwrap();
    chmod(&shim, 0o755);
    // No node-local launcher: only the one the layout carries can run.
    std::fs::remove_file(&t.launcher).unwrap();
    std::fs::remove_file(&full).unwrap();
    let run = || t.run("probe").stdin(Stdio::null()).output().unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // The whole check is one `ls`: no `id` (every owner here is root or ROOT's owner), and no
    // `uname` where the kernel names the processor in a file. It was an `ls` per directory,
    // an `id` and a `uname` (51x a direct exec instead of 7x).
    let tools = t.dir.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    let log = t.dir.path().join("tools.log");
    for tool in ["ls", "id", "uname"] {
        let stand_in = tools.join(tool);
        std::fs::write(
            &stand_in,
            format!(
                "#!/bin/sh\necho {tool} >>'{}'\nexec /usr/bin/{tool} \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        chmod(&stand_in, 0o755);
    }
    let out = t
        .run("probe")
        .args(["args", "a b"])
        .env("PATH", format!("{}:/usr/bin:/bin", tools.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"a b\0", "{}", show(&out));
    let expected = if Path::new("/proc/sys/kernel/arch").exists() {
        "ls\n"
    } else {
        "uname\nls\n"
    };
    assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);

    let carried = t.root.join("bin/fatbin-full/x86_64");
    let carried_dir = t.root.join("bin/fatbin-full");
    let parent = t.dir.path().to_owned();
    let mallory = other_user();
    for (path, mode, owner, words) in [
        (
            &carried,
            0o757,
            None,
            "is writable by others, who could replace what runs",
        ),
        (&carried_dir, 0o775, None, "is writable by its group"),
        (&parent, 0o777, None, "is writable by others and not sticky"),
        (&carried, 0o755, Some(mallory), "is owned by uid"),
    ] {
        chmod(path, mode);
        if let Some(owner) = owner {
            std::os::unix::fs::chown(path, Some(owner), None).unwrap();
        }
        let out = run();
        chmod(path, 0o755);
        std::os::unix::fs::chown(path, Some(0), None).unwrap();
        let err = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(126),
            "{}: {}",
            path.display(),
            show(&out)
        );
        assert!(
            out.stdout.is_empty()
                && err.contains(&format!("refusing to run: {} {words}", path.display())),
            "{}: {}",
            path.display(),
            show(&out)
        );
    }
    // A sticky parent, like /tmp, is fine.
    chmod(&parent, 0o1777);
    let out = run();
    chmod(&parent, 0o755);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
}

// ---------------------------------------------------------------------------------------
// Poor errors (issue 11)

/// Paths in messages are normalised: started through `ROOT/shims/PROG`, a refusal names
/// `ROOT/bin/...` and its fix `chmod go-w ROOT/bin`, never `ROOT/shims/../bin`.
#[test]
fn messages_name_root_without_shims_dot_dot() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let bin = t.root.join("bin");
    chmod(&bin, 0o777);
    let out = t.run("probe").output().unwrap();
    chmod(&bin, 0o755);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    assert!(
        !err.contains("/..") && err.contains(&format!("chmod go-w {}`", bin.display())),
        "{}",
        show(&out)
    );
}

/// The docs allow 8 hops of a user's own aliases (`~/bin/a -> ~/bin/b -> ... -> ROOT/shims/PROG`):
/// 8 are followed, a ninth is refused with the limit named.
#[test]
fn an_alias_chain_of_eight_hops_runs_and_nine_are_refused() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let aliases = temp_dir();
    let bin = aliases.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    chmod(&bin, 0o755);
    // alias9 -> alias8 -> ... -> alias1 -> ROOT/shims/probe
    std::os::unix::fs::symlink(t.shim("probe"), bin.join("alias1")).unwrap();
    for i in 2..=9 {
        std::os::unix::fs::symlink(format!("alias{}", i - 1), bin.join(format!("alias{i}")))
            .unwrap();
    }
    let run = |name: &str| {
        let mut cmd = Command::new(bin.join(name));
        fatbin_tests::launcher_support::clean_env(&mut cmd);
        cmd.arg("args").arg("x").output().unwrap()
    };
    let out = run("alias8");
    assert_eq!(out.status.code(), Some(0), "8 hops: {}", show(&out));
    assert_eq!(out.stdout, b"x\0", "8 hops: {}", show(&out));
    let out = run("alias9");
    assert_eq!(out.status.code(), Some(126), "9 hops: {}", show(&out));
    assert!(
        text(&out.stderr).contains("more than 8 symlinks"),
        "{}",
        show(&out)
    );
}

/// qemu-user cannot emulate AVX-512: a forced `x86_64-v4` slot on a CPU without it is refused
/// up front with that reason (not run under qemu, to die with SIGILL and no message), and the
/// qemu fallback never picks such a slot.
#[test]
fn an_avx512_slot_is_never_handed_to_qemu() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpuinfo.contains("avx512f") {
        eprintln!("skipped: this CPU has AVX-512, so x86_64-v4 runs natively");
        return;
    }
    fatbin_tests::launcher_support::require_qemu("x86_64");
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64-v4", X86, Some("x86-64-v4"))]);
    let out = t
        .run("probe")
        .env("FATBIN_ARCH", "x86_64-v4")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    assert!(
        err.contains("avx512") && err.contains("qemu-user cannot emulate"),
        "{}",
        show(&out)
    );
    // Unforced, with only that slot: nothing runs, and the error says why.
    let out = t
        .run("probe")
        .env("FATBIN_FALLBACK", "qemu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    assert!(out.stdout.is_empty(), "{}", show(&out));
}

/// A broken inventory says where: the line and key of a TOML error (not a bare `duplicate
/// key`), and `port = 0` is a configuration error (exit 2), not a node to mark down.
#[test]
fn inventory_errors_name_the_line_the_key_and_a_zero_port() {
    let root = arm_only();
    let config = temp_dir();
    let dir = config.path().join("fatbin");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o700);
    let nodes = dir.join("nodes.toml");
    std::fs::write(&nodes, "[nodes.a]\nssh = \"h\"\nssh = \"g\"\n").unwrap();
    let out = fatbin_with_config(config.path())
        .args(["nodes", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("line 3: duplicate key (`ssh`)"),
        "{}",
        show(&out)
    );
    std::fs::write(
        &nodes,
        "[nodes.a]\nssh = \"127.0.0.1\"\nport = 0\nslots = [\"aarch64\"]\n",
    )
    .unwrap();
    let out = fatbin_with_config(config.path())
        .args(["run", "--root"])
        .arg(root.path())
        .arg("probe")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("port = 0 is not a port"),
        "{}",
        show(&out)
    );
}

// ---------------------------------------------------------------------------------------
// Keep the proof (issue 11): what the review found holding, as tests

/// Every exit status 0-255 of a migrated program is the launcher's, and none is mistaken for
/// a transport failure (ssh's own 255).
#[test]
fn every_exit_status_0_to_255_survives_migration() {
    let root = arm_only();
    let cl = arm_cluster(root.path());
    for code in 0..=255 {
        let out = fatbin(&cl, root.path(), &[b"exit", code.to_string().as_bytes()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert!(out.stderr.is_empty(), "exit {code}: {}", show(&out));
    }
}

/// Hostile working directories and forwarded variable values arrive byte-exact and never run
/// as code on the node.
#[test]
fn hostile_working_directories_and_variables_arrive_byte_exact() {
    let root = arm_only();
    let cl = arm_cluster(root.path());
    let base = temp_dir();
    // Code in a word would create `pwned` in the directory it runs in (the node runs in the
    // caller's): the words hold no `/`, as directory names cannot.
    let corpus: Vec<Vec<u8>> = vec![
        b"two words".to_vec(),
        b"it's".to_vec(),
        b"'\\''".to_vec(),
        b"$(touch pwned)".to_vec(),
        b"`touch pwned`".to_vec(),
        b"$HOME ${PATH}".to_vec(),
        b"*".to_vec(),
        b"a;b && c | d > e".to_vec(),
        b"line1\nline2".to_vec(),
        b"\t-n --help".to_vec(),
        b"\\ # ! ~".to_vec(),
        b"\xff\xfe\x80 not utf-8".to_vec(),
        b"\x1efatbin:exit:0".to_vec(),
        b"%d %%".to_vec(),
    ];
    for (i, word) in corpus.iter().enumerate() {
        // As a directory name (no `/`, no NUL: anything else a file name may hold).
        let cwd = base.path().join(OsString::from_vec(word.clone()));
        std::fs::create_dir(&cwd).unwrap();
        let out = fatbin(&cl, root.path(), &[b"pwd"])
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert_eq!(
            out.stdout,
            cwd.as_os_str().as_bytes(),
            "cwd {i}: {}",
            show(&out)
        );
        assert!(!cwd.join("pwned").exists(), "cwd {i} ran as code");
        // As a forwarded variable's value.
        let out = fatbin(&cl, root.path(), &[b"env", b"HOSTILE"])
            .current_dir(base.path())
            .env("FATBIN_ENV", "HOSTILE")
            .env("HOSTILE", OsString::from_vec(word.clone()))
            .output()
            .unwrap();
        let mut expected = word.clone();
        expected.push(0);
        assert_eq!(out.stdout, expected, "variable {i}: {}", show(&out));
    }
    assert!(
        !base.path().join("pwned").exists(),
        "a variable's value ran as code"
    );
}

/// `kill -9` at any moment of a reinstall (spread over its whole length, so every step is
/// hit) leaves a layout that runs the old or the new program; the next install then leaves
/// `verify` with nothing to report. Until then `verify` may find a temporary file, or `SLOT`
/// still the previous build (killed between the manifest and renaming the names), never a
/// file that disagrees with the manifest (docs/layout.md, Atomicity).
#[test]
fn kill_9_at_any_step_of_a_reinstall_leaves_old_or_new() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    let old = probe_binary(X86, None);
    let new = probe_binary(X86, Some("x86-64-v2"));
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let add = |binary: &Path| {
        let mut cmd = cargo_fatbin_command(Path::new("."));
        cmd.arg("add")
            .arg("probe")
            .arg(binary)
            .arg("--slot")
            .arg("x86_64")
            .arg("--root")
            .arg(&t.root)
            .arg("--color=never")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    // How long a whole install takes here, to spread the kills over it.
    let start = std::time::Instant::now();
    let status = add(&old).status().unwrap();
    assert!(status.success());
    let whole = start.elapsed().as_micros() as u64;
    let steps = 40;
    let mut outcomes = std::collections::BTreeMap::new();
    for i in 0..steps {
        let binary = if i % 2 == 0 { &new } else { &old };
        let mut child = add(binary).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_micros(whole * i / steps));
        // SAFETY: kill only signals the child we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        let out = t.run("probe").arg("args").arg("ok").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "kill {i}: {}", show(&out));
        assert_eq!(out.stdout, b"ok\0", "kill {i}: {}", show(&out));
        let problems = fatbin_layout::verify::verify(&t.layout(), None).unwrap();
        let mut kinds = Vec::new();
        for p in &problems {
            let p = p.to_string();
            let kind = if p.contains("interrupted install") {
                "temporary file"
            } else if p.contains("interrupted before it renamed this name") {
                "SLOT lags the manifest"
            } else {
                panic!("kill {i}: a torn layout: {problems:?}")
            };
            kinds.push(kind);
        }
        kinds.sort_unstable();
        kinds.dedup();
        *outcomes.entry(kinds.join(" + ")).or_insert(0) += 1;
    }
    // Installed once more, nothing is left over.
    assert!(add(&new).status().unwrap().success());
    let problems = fatbin_layout::verify::verify(&t.layout(), None).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    eprintln!("what {steps} kills left (empty: a clean layout): {outcomes:?}");
}

/// `cargo fatbin verify` names a path once per problem (it said `PATH: PATH is writable ...`).
#[test]
fn verify_names_each_path_once() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let dir = t.layout().program_dir("probe");
    chmod(&dir, 0o777);
    let problems = fatbin_layout::verify::verify(&t.layout(), None).unwrap();
    chmod(&dir, 0o755);
    let shown = dir.display().to_string();
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with(&format!("{shown} is writable by others")),
        "{lines:?}"
    );
}

/// `cargo fatbin remove` removes what `list` shows. A program directory that is a symlink to
/// another program's (an alias, `bin/tool -> tool-real`) is listed by both `list`s, and
/// `remove` said "not installed": it now removes the alias (the link and its shim) and leaves
/// the program it links to whole; removing a slot through the alias is refused, naming the
/// program to remove it from.
#[test]
fn remove_removes_an_alias_that_list_shows() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("probe", &[("x86_64", X86, None)]);
    let bin = t.root.join("bin");
    std::os::unix::fs::symlink("probe", bin.join("alias")).unwrap();
    std::os::unix::fs::symlink("fatbin", t.shims().join("alias")).unwrap();
    let cargo_fatbin = |args: &[&str]| {
        let mut cmd = cargo_fatbin_command(Path::new("."));
        cmd.args(args)
            .arg("--root")
            .arg(&t.root)
            .arg("--color=never");
        run(cmd)
    };
    let listed = cargo_fatbin(&["list"]);
    assert!(listed.stdout.contains("alias"), "{}", listed.stdout);
    let out = output_of(t.run("alias").args(["args", "x"]));
    assert_eq!(out.stdout, b"x\0", "{}", show(&out));

    let slot = cargo_fatbin(&["remove", "alias", "--slot", "x86_64"]);
    assert_ne!(slot.code, Some(0), "{}", slot.stderr);
    assert!(
        slot.stderr
            .contains("program `alias` is a link to probe: remove the slot from the program there"),
        "{}",
        slot.stderr
    );
    let removed = cargo_fatbin(&["remove", "alias"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    assert!(
        !removed.stderr.contains("not installed"),
        "{}",
        removed.stderr
    );
    assert!(bin.join("alias").symlink_metadata().is_err());
    assert!(t.shims().join("alias").symlink_metadata().is_err());
    // The program it linked to is untouched and runs.
    let out = output_of(t.run("probe").args(["args", "y"]));
    assert_eq!(out.stdout, b"y\0", "{}", show(&out));
    let listed = cargo_fatbin(&["list"]);
    assert!(
        listed.stdout.contains("probe") && !listed.stdout.contains("alias"),
        "{}",
        listed.stdout
    );
}

fn output_of(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// `cargo fatbin list` shows a program whose manifest the caller cannot read (another
/// account's 0600 file) as broken, like `fatbin list`, and still lists the others: it
/// stopped at the first such manifest, so one program hid all of them.
#[test]
fn list_shows_an_unreadable_manifest_as_broken_and_the_others_too() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("aaa", &[("x86_64", X86, None)]);
    t.install_probes("zzz", &[("x86_64", X86, None)]);
    let manifest = t.layout().manifest_path("aaa");
    chmod(&manifest, 0o600);
    let nobody = 65534;
    let list = |json: bool| {
        let mut cmd = cargo_fatbin_command(Path::new("/"));
        cmd.arg("list")
            .arg("--root")
            .arg(&t.root)
            .arg("--color=never")
            .uid(nobody);
        if json {
            cmd.arg("--json");
        }
        run(cmd)
    };
    let out = list(false);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains("aaa (broken: ")
            && out.stdout.contains("Permission denied")
            && out.stdout.contains("zzz "),
        "{}",
        out.stdout
    );
    let out = list(true);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        out.stdout.contains(r#""broken":""#) && out.stdout.contains(r#""program":"zzz""#),
        "{}",
        out.stdout
    );
}

/// `cargo fatbin ARGS --root ROOT` (`verify ARGS ROOT`) without colours.
fn cargo_fatbin_in(root: &Path, args: &[&str]) -> fatbin_tests::cargo_fatbin_support::Outcome {
    let mut cmd = cargo_fatbin_command(Path::new("/"));
    cmd.args(args);
    if args.first() != Some(&"verify") {
        cmd.arg("--root");
    }
    cmd.arg(root).arg("--color=never");
    run(cmd)
}

/// A shim whose program is gone (`ROOT/bin/PROG` deleted by hand, by a crash, by another
/// tool) is on PATH and fails with "not installed", yet `list` did not show it, `verify`
/// passed and `remove` said "not installed", so nothing could take it away. Now `list` marks
/// it, `verify` names it with the fix, and `remove` removes it, saying what it removed. Every
/// shim form an install writes is recognised: the symlink (`PROG -> fatbin`), the `#!` shim of
/// `--script-shims`, and the symlink of a ROOT whose `shims/fatbin` is the portable `#!/bin/sh`
/// shim (the launcher's own entry, never a shim without a program itself).
#[test]
fn a_shim_whose_program_is_gone_is_listed_verified_and_removed() {
    let probe = probe_binary(X86, None);
    for form in ["link", "script", "portable"] {
        let t = fatbin_tests::launcher_support::TestLayout::new();
        let launcher = t.launcher.to_str().unwrap();
        for program in ["keep", "tool"] {
            let mut args = vec![
                "add",
                program,
                probe.to_str().unwrap(),
                "--launcher",
                launcher,
            ];
            if form == "script" {
                args.push("--script-shims");
            }
            cargo_fatbin_in(&t.root, &args).success();
        }
        let shim = t.shim("tool");
        let is_link = shim.symlink_metadata().unwrap().file_type().is_symlink();
        assert_eq!(
            is_link,
            form != "script",
            "{form}: the shim {}",
            shim.display()
        );
        if form == "portable" {
            let portable = fatbin_tests::workspace_root().join("launcher/shim/fatbin-portable.sh");
            std::fs::remove_file(t.shim("fatbin")).unwrap();
            std::fs::copy(&portable, t.shim("fatbin")).unwrap();
        }
        std::fs::remove_dir_all(t.layout().program_dir("tool")).unwrap();
        let out = output_of(&mut t.run("tool"));
        assert_ne!(out.status.code(), Some(0), "{form}: {}", show(&out));

        let listed = cargo_fatbin_in(&t.root, &["list"]).success();
        let marked = format!(
            "tool (shim without a program: {}; `cargo fatbin remove tool` removes it)",
            shim.display()
        );
        assert!(
            listed.stdout.contains(&marked)
                && listed.stdout.contains("keep ")
                && !listed.stdout.lines().any(|l| l.starts_with("fatbin")),
            "{form}: {}",
            listed.stdout
        );
        // The launcher's own list shows it the same way, beside the other program.
        let fatbin_list = || {
            let mut cmd = Command::new(&t.launcher);
            fatbin_tests::launcher_support::clean_env(&mut cmd);
            output_of(cmd.arg("list").arg("--root").arg(&t.root))
        };
        let out = fatbin_list();
        let listed = text(&out.stdout);
        assert!(
            out.status.success()
                && listed
                    .lines()
                    .any(|l| l == marked.replacen("tool ", "tool  ", 1))
                && listed.lines().any(|l| l == "keep  x86_64*"),
            "{form}: {}",
            show(&out)
        );
        let json = cargo_fatbin_in(&t.root, &["list", "--json"]).success();
        assert!(
            json.stdout.contains(&format!(
                r#"{{"program":"tool","shim_without_program":"{}"}}"#,
                shim.display()
            )),
            "{form}: {}",
            json.stdout
        );
        for args in [&["verify"][..], &["verify", "--program", "tool"]] {
            let verify = cargo_fatbin_in(&t.root, args);
            assert_eq!(verify.code, Some(5), "{form} {args:?}: {}", verify.stderr);
            assert!(
                verify
                    .stderr
                    .contains(&format!("{}: a shim without a program", shim.display()))
                    && verify.stderr.contains("fix: `cargo fatbin remove tool`"),
                "{form} {args:?}: {}",
                verify.stderr
            );
        }
        let slot = cargo_fatbin_in(&t.root, &["remove", "tool", "--slot", "x86_64"]);
        assert_ne!(slot.code, Some(0), "{form}: {}", slot.stderr);
        assert!(
            slot.stderr
                .contains("`cargo fatbin remove tool` removes it"),
            "{form}: {}",
            slot.stderr
        );
        assert!(
            shim.symlink_metadata().is_ok(),
            "{form}: --slot removed the shim"
        );

        let removed = cargo_fatbin_in(&t.root, &["remove", "tool"]);
        assert_eq!(removed.code, Some(0), "{form}: {}", removed.stderr);
        assert!(
            removed.stderr.contains(&format!(
                "Removed {}, a shim whose program was already gone",
                shim.display()
            )),
            "{form}: {}",
            removed.stderr
        );
        assert!(
            shim.symlink_metadata().is_err(),
            "{form}: the shim is still there"
        );
        // The launcher's entry and the other program are untouched.
        assert!(t.shim("fatbin").symlink_metadata().is_ok(), "{form}");
        cargo_fatbin_in(&t.root, &["verify"]).success();
        let listed = cargo_fatbin_in(&t.root, &["list"]).success();
        assert!(
            listed.stdout.contains("keep ") && !listed.stdout.contains("tool"),
            "{form}: {}",
            listed.stdout
        );
        let out = fatbin_list();
        assert!(
            out.status.success() && !text(&out.stdout).contains("tool"),
            "{form}: {}",
            show(&out)
        );
        let again = cargo_fatbin_in(&t.root, &["remove", "tool"]);
        assert!(
            again.code != Some(0) && again.stderr.contains("`tool` is not installed"),
            "{form}: {}",
            again.stderr
        );
        if form != "portable" {
            let out = output_of(t.run("keep").args(["args", "k"]));
            assert_eq!(out.stdout, b"k\0", "{form}: {}", show(&out));
        }
    }
}

/// What fatbin did not write in `ROOT/shims` is never removed, nor reported as a shim without
/// a program: a user's own script (even a one-line `#!/bin/sh`, the portable shim's
/// interpreter), a `#!` line naming another interpreter, a link to another program or to
/// another shim (a user's alias), a directory. `remove` says what it is and leaves it.
#[test]
fn remove_leaves_what_fatbin_did_not_write_in_shims() {
    let t = fatbin_tests::launcher_support::TestLayout::new();
    t.install_probes("keep", &[("x86_64", X86, None)]);
    let shims = t.shims();
    let files: [(&str, &[u8]); 3] = [
        ("script", b"#!/bin/sh\necho mine\n"),
        ("oneline", b"#!/bin/sh\n"),
        ("python", b"#!/usr/bin/python3\n"),
    ];
    for (name, text) in files {
        std::fs::write(shims.join(name), text).unwrap();
        chmod(&shims.join(name), 0o755);
    }
    std::os::unix::fs::symlink("/usr/bin/env", shims.join("env")).unwrap();
    std::os::unix::fs::symlink("keep", shims.join("mykeep")).unwrap();
    std::fs::create_dir(shims.join("dir")).unwrap();
    let before = fatbin_tests::cargo_fatbin_support::stamps(&shims);

    let listed = cargo_fatbin_in(&t.root, &["list"]).success();
    assert_eq!(listed.stdout.lines().count(), 1, "{}", listed.stdout);
    cargo_fatbin_in(&t.root, &["verify"]).success();
    for (name, what) in [
        (
            "script",
            "a file, not one `#!` line naming the launcher `fatbin`",
        ),
        (
            "oneline",
            "a file, not one `#!` line naming the launcher `fatbin`",
        ),
        (
            "python",
            "a file, not one `#!` line naming the launcher `fatbin`",
        ),
        (
            "env",
            "a symlink to /usr/bin/env, not to the launcher `fatbin`",
        ),
        ("mykeep", "a symlink to keep, not to the launcher `fatbin`"),
        ("dir", "a directory"),
    ] {
        let out = cargo_fatbin_in(&t.root, &["remove", name]);
        assert_eq!(out.code, Some(1), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!(
                "program `{name}` is not installed in {}, and {} is {what}: not a shim fatbin \
                 wrote, so it was left as it is",
                t.root.display(),
                shims.join(name).display()
            )),
            "{name}: {}",
            out.stderr
        );
    }
    // The launcher's own entry is not a program's shim.
    let out = cargo_fatbin_in(&t.root, &["remove", "fatbin"]);
    assert!(
        out.code == Some(1) && out.stderr.contains("`fatbin` is not installed"),
        "{}",
        out.stderr
    );
    assert_eq!(fatbin_tests::cargo_fatbin_support::stamps(&shims), before);
}

/// The node's check through a node launcher (`launcher` in nodes.toml, `fatbin node-exec`):
/// the same refusals in the same words as the wrapper's own check, with nothing started; and
/// a launcher that others could replace vouches for nothing.
#[test]
fn a_node_launcher_refuses_what_the_wrapper_refuses_and_a_launcher_others_could_write() {
    let root = arm_only();
    let node_root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_node("n1", Kind::Aarch64);
    let nodes = |launcher: &Path| {
        format!(
            "[nodes.n1]\nssh = \"n1\"\nslots = [\"aarch64\"]\nroot = \"{}\"\nlauncher = \"{}\"\n",
            node_root.path().display(),
            launcher.display()
        )
    };
    cl.write_nodes(&nodes(&host_bin_dir().join("fatbin")));
    let layout = Layout::new(node_root.path());
    let manifest = layout.read_manifest("probe").unwrap();
    let slot = layout.file_of(&manifest, "probe", "aarch64".parse().unwrap());
    let mallory = other_user();
    let set_mode = |p: &Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let refused = |out: &Output, words: &str| {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{words}: {}", show(out));
        assert!(
            out.stdout.is_empty() && err.contains("node `n1`") && err.contains(words),
            "{words}: {}",
            show(out)
        );
    };
    set_mode(&slot, 0o757);
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    set_mode(&slot, 0o755);
    refused(
        &out,
        &format!(
            "refusing to run: {} is writable by others, who could replace what runs; fix it \
             with `chmod go-w {}`",
            slot.display(),
            slot.display()
        ),
    );
    set_mode(&layout.bin_dir(), 0o775);
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    set_mode(&layout.bin_dir(), 0o755);
    refused(
        &out,
        &format!(
            "refusing to run: {} is writable by its group",
            layout.bin_dir().display()
        ),
    );
    let program_dir = layout.program_dir("probe");
    std::os::unix::fs::chown(&program_dir, Some(mallory), None).unwrap();
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    std::os::unix::fs::chown(&program_dir, Some(0), None).unwrap();
    // The node shows the uid as its user namespace maps it (unmapped ones as the overflow uid).
    refused(
        &out,
        &format!(
            "refusing to run: {} is owned by uid ",
            program_dir.display()
        ),
    );
    refused(
        &out,
        "which is neither root, you, nor the owner of the layout root",
    );
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    assert_eq!(out.stdout, b"x\0", "{}", show(&out));

    // A copy of the launcher in a directory others can write: refused, naming it.
    let open = temp_dir();
    for name in ["fatbin", "fatbin-full"] {
        std::fs::copy(host_bin_dir().join(name), open.path().join(name)).unwrap();
    }
    set_mode(open.path(), 0o777);
    cl.write_nodes(&nodes(&open.path().join("fatbin")));
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    refused(
        &out,
        &format!(
            "refusing to run: the node's launcher {}: {} is writable by others, who could \
             replace the launcher that checks what runs",
            open.path().join("fatbin-full").display(),
            open.path().display()
        ),
    );
    // Put right, it serves.
    set_mode(open.path(), 0o755);
    let out = fatbin(&cl, root.path(), &[b"args", b"x"]).output().unwrap();
    assert_eq!(out.stdout, b"x\0", "{}", show(&out));
}
