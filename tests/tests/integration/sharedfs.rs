//! A shared ROOT on a real network filesystem: a test cluster node's sshd exports a directory
//! (the file server), sshfs mounts it on this machine (the client), and programs installed on
//! the server run on the client through the mount. Needs root, OpenSSH, sshfs and /dev/fuse
//! (see `fatbin_tests::sshfs`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fatbin_tests::cargo_fatbin_support::cargo_fatbin;
use fatbin_tests::cluster::{Cluster, Kind};
use fatbin_tests::launcher_support::{clean_env, output_within, stderr, stdout, LAUNCHER_TARGET};
use fatbin_tests::sshfs::{self, Caching, Mount};
use fatbin_tests::{install_launcher, probe_binary, temp_dir};

const X86_64_MUSL: &str = "x86_64-unknown-linux-musl";

/// A cluster with one native node, `server`, whose sshd exports directories.
fn server() -> Cluster {
    sshfs::require();
    let mut cluster = Cluster::new();
    cluster.add_node("server", Kind::Native);
    cluster
}

#[test]
fn sshfs_mount_shows_the_servers_files_and_is_gone_after_drop() {
    let cluster = server();
    let export = fatbin_tests::temp_dir();
    std::fs::write(export.path().join("hello"), "from the server\n").unwrap();
    for caching in [Caching::Default, Caching::Off] {
        let mount = Mount::new(&cluster, "server", export.path(), caching);
        let mnt = mount.path.clone();
        assert_eq!(
            std::fs::read_to_string(mnt.join("hello")).unwrap(),
            "from the server\n",
            "{caching:?}"
        );
        // Written through the mount, seen on the server.
        std::fs::write(mnt.join("back"), "from the client\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(export.path().join("back")).unwrap(),
            "from the client\n"
        );
        std::fs::remove_file(export.path().join("back")).unwrap();
        // A regular executable file runs through the mount.
        std::fs::copy("/bin/true", export.path().join("true")).unwrap();
        let status = Command::new(mnt.join("true")).status().unwrap();
        assert!(status.success(), "{caching:?}: exec through the mount");
        std::fs::remove_file(export.path().join("true")).unwrap();
        drop(mount);
        assert!(!sshfs::is_mount_point(&mnt), "{caching:?}: still mounted");
        assert!(!Path::new(&mnt).exists() || !mnt.join("hello").exists());
    }
}

/// A shared ROOT on the "server": `export/root`, with the node-local launcher in `node/`
/// (the client is this machine, so the same absolute path names its launcher too).
struct Shared {
    export: tempfile::TempDir,
    _node: tempfile::TempDir,
    launcher: PathBuf,
}

impl Shared {
    fn new() -> Shared {
        let node = temp_dir();
        let launcher = install_launcher(LAUNCHER_TARGET, node.path());
        let export = temp_dir();
        std::fs::create_dir(export.path().join("root")).unwrap();
        Shared {
            export,
            _node: node,
            launcher,
        }
    }

    fn root(&self) -> PathBuf {
        self.export.path().join("root")
    }

    /// `cargo fatbin add PROG FILE --root ROOT` on the server, with `extra` flags.
    fn add(&self, program: &str, file: &Path, extra: &[&str]) {
        let root = self.root();
        let mut args = vec![
            "add",
            program,
            file.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
            "--launcher",
            self.launcher.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        cargo_fatbin(Path::new("."), &args).success();
    }
}

/// The file the launcher runs for `program`'s `slot` under `root`: its content file.
fn content_file(root: &Path, program: &str, slot: &str) -> PathBuf {
    let layout = fatbin_layout::Layout::new(root);
    let manifest = layout.read_manifest(program).unwrap();
    layout.file_of(&manifest, program, slot.parse().unwrap())
}

/// `dir/shims/PROG ARGS` with a clean environment, run to completion within a minute.
fn run_shim(root: &Path, program: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut cmd = Command::new(root.join("shims").join(program));
    clean_env(&mut cmd).args(args);
    output_within(&mut cmd, stdin, Duration::from_secs(60))
}

#[test]
fn script_shims_run_through_a_default_sshfs_mount_with_args_exit_code_and_stdin() {
    let cluster = server();
    let shared = Shared::new();
    shared.add(
        "probe",
        &probe_binary(X86_64_MUSL, None),
        &["--script-shims"],
    );
    // Symlinks do not pass through sshfs: every shim is a regular `#!` file.
    for shim in ["probe", "fatbin"] {
        let path = shared.root().join("shims").join(shim);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.is_file(), "{shim} is not a regular file");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("#!{}\n", shared.launcher.display())
        );
    }
    // The ROOT keeps its form: a later install without the flag writes `#!` shims too.
    shared.add("again", &probe_binary(X86_64_MUSL, None), &[]);
    assert!(std::fs::symlink_metadata(shared.root().join("shims/again"))
        .unwrap()
        .is_file());
    for caching in [Caching::Default, Caching::Off] {
        let mount = Mount::new(&cluster, "server", shared.export.path(), caching);
        // The server's own path and the client's mount run alike.
        for root in [shared.root(), mount.path.join("root")] {
            let shim = root.join("shims/probe");
            let out = run_shim(&root, "probe", &["whoami"], b"");
            assert!(out.status.success(), "{caching:?} {}", stderr(&out));
            // The caller's argv[0] is lost on a `#!` line: the shim's path stands in for it.
            assert_eq!(
                stdout(&out),
                format!(
                    "probe arch=x86_64 level=baseline argv0={} exe={}\n",
                    shim.display(),
                    // The slot's content file, as the manifest names it.
                    std::fs::canonicalize(content_file(&root, "probe", "x86_64"))
                        .unwrap()
                        .display()
                ),
                "{caching:?}"
            );
            let out = run_shim(&root, "probe", &["args", "a b", "", "--root"], b"");
            assert_eq!(out.stdout, b"a b\0\0--root\0", "{caching:?}");
            let out = run_shim(&root, "probe", &["exit", "7"], b"");
            assert_eq!(out.status.code(), Some(7), "{caching:?}");
            let out = run_shim(&root, "probe", &["cat"], b"through the mount\n");
            assert_eq!(out.stdout, b"through the mount\n", "{caching:?}");
            // The launcher's own command line through its `#!` shim finds ROOT from it.
            let out = run_shim(&root, "fatbin", &["which", "probe"], b"");
            assert!(out.status.success(), "{caching:?} {}", stderr(&out));
            assert!(stdout(&out).contains("x86_64"), "{}", stdout(&out));
            // --explain says where ROOT is: the mount is sshfs, the server's path is local.
            let out = run_shim(&root, "fatbin", &["which", "probe", "--explain"], b"");
            let text = stdout(&out);
            let line = text
                .lines()
                .find(|l| l.starts_with("filesystem: "))
                .unwrap();
            if root.starts_with(&mount.path) {
                assert!(
                    line.starts_with("filesystem: network: fuse.sshfs (statfs type 0x65735546)"),
                    "{text}"
                );
            } else {
                assert!(line.starts_with("filesystem: local"), "{text}");
            }
        }
    }
}

#[test]
fn two_clients_installing_different_slots_at_once_through_the_mount_lose_nothing() {
    let cluster = server();
    let shared = Shared::new();
    // Two clients: two mounts of one export. `flock` on sshfs stays in each client's kernel
    // (two mounts are two inodes), so only the lock's owner file, created O_EXCL on the
    // server, keeps the installs apart.
    let clients = [
        Mount::new(&cluster, "server", shared.export.path(), Caching::Default),
        Mount::new(&cluster, "server", shared.export.path(), Caching::Default),
    ];
    let slots = [
        ("x86_64", probe_binary(X86_64_MUSL, None)),
        ("x86_64-v2", probe_binary(X86_64_MUSL, Some("x86-64-v2"))),
    ];
    for round in 0..20 {
        let program = format!("tool{round}");
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for (client, (slot, file)) in clients.iter().zip(&slots) {
                let (program, start) = (&program, &start);
                scope.spawn(move || {
                    let layout = fatbin_layout::Layout::new(client.path.join("root"));
                    let mut new = fatbin_layout::NewSlot::from_file(slot.parse().unwrap(), file);
                    new.target = X86_64_MUSL.into();
                    start.wait();
                    fatbin_layout::install(&layout, program, &[new]).unwrap();
                });
            }
        });
        let manifest = fatbin_layout::Layout::new(shared.root())
            .read_manifest(&program)
            .unwrap();
        assert_eq!(
            manifest.slot_list(),
            "x86_64, x86_64-v2",
            "round {round}: an install was lost"
        );
        assert!(!shared.root().join("bin/.lock.owner").exists());
    }
}

/// Trust through the mount (docs/security.md, "A shared ROOT"): sshfs with its default
/// `idmap=none` shows the server's owners and modes, and the launcher on the client applies
/// the rule to what it sees. A ROOT owned by root on the server runs for any user of the
/// client; a slot the server has writable by others, or owned by a third account, is refused
/// there as it would be locally.
#[test]
fn a_root_owned_shared_root_runs_for_another_user_and_an_open_slot_is_refused() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let cluster = server();
    let shared = Shared::new();
    shared.add(
        "probe",
        &probe_binary(X86_64_MUSL, None),
        &["--script-shims"],
    );
    // No sshfs attribute cache: the client sees changes on the server within a second.
    let mount = Mount::new(&cluster, "server", shared.export.path(), Caching::Off);
    let root = mount.path.join("root");
    assert_eq!(
        std::fs::metadata(&root).unwrap().uid(),
        0,
        "the server's owner"
    );
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new(root.join("shims/probe"));
        clean_env(&mut cmd).args(args).uid(65534).gid(65534);
        output_within(&mut cmd, b"", Duration::from_secs(60))
    };
    let out = as_nobody(&["exit", "7"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));

    // Changes on the server, each waited for until the client sees it (the kernel still
    // caches attributes for a second, `attr_timeout`).
    let slot = shared.root().join("bin/probe/x86_64");
    let seen = mount.path.join("root/bin/probe/x86_64");
    let set = |mode: u32, uid: u32| {
        std::os::unix::fs::chown(&slot, Some(uid), None).unwrap();
        std::fs::set_permissions(&slot, std::fs::Permissions::from_mode(mode)).unwrap();
        // Generous for a loaded machine; a client that never sees it still fails here.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let meta = std::fs::metadata(&seen).unwrap();
            if (meta.mode() & 0o7777, meta.uid()) == (mode, uid) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the client never saw it"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for (what, mode, uid, why) in [
        ("writable by others", 0o757, 0, "is writable by others"),
        (
            "owned by a third account",
            0o755,
            1234,
            "is owned by uid 1234",
        ),
    ] {
        set(mode, uid);
        let out = as_nobody(&["whoami"]);
        set(0o755, 0);
        assert_eq!(out.status.code(), Some(126), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("refusing to run")
                && stderr(&out).contains(why)
                && out.stdout.is_empty(),
            "{what}: {}",
            stderr(&out)
        );
    }
    let out = as_nobody(&["exit", "0"]);
    assert_eq!(out.status.code(), Some(0), "put right: {}", stderr(&out));
}

/// Reinstalls `probe`'s x86_64 slot on the server `reinstalls` times, alternating two builds
/// (baseline and x86-64-v2: each says which it is), while `clients` threads exec it through
/// `mount` until `execs` runs are done. Returns the failures (empty when all ran whole).
fn reinstall_while_running(
    shared: &Shared,
    mount: &Mount,
    execs: usize,
    reinstalls: usize,
) -> Vec<String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let builds = [
        (probe_binary(X86_64_MUSL, None), "baseline"),
        (probe_binary(X86_64_MUSL, Some("x86-64-v2")), "x86-64-v2"),
    ];
    let layout = fatbin_layout::Layout::new(shared.root());
    let started = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let shim = mount.path.join("root/shims/probe");
    let clients = 2;
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| loop {
                let n = started.fetch_add(1, Ordering::SeqCst);
                if n >= execs {
                    break;
                }
                let mut cmd = Command::new(&shim);
                clean_env(&mut cmd).arg("whoami");
                let out = output_within(&mut cmd, b"", Duration::from_secs(60));
                let text = stdout(&out);
                let whole = out.status.success()
                    && builds.iter().any(|(_, level)| {
                        text.starts_with(&format!("probe arch=x86_64 level={level} argv0="))
                    });
                if !whole {
                    failures.lock().unwrap().push(format!(
                        "run {n}: {:?}: {text:?} {:?}",
                        out.status,
                        stderr(&out)
                    ));
                }
            });
        }
        // Reinstalls spread over the runs: the i-th once i/reinstalls of them have started.
        for i in 0..reinstalls {
            while started.load(Ordering::SeqCst) < i * execs / reinstalls {
                std::thread::sleep(Duration::from_millis(5));
            }
            let (file, _) = &builds[i % 2];
            let mut new = fatbin_layout::NewSlot::from_file("x86_64".parse().unwrap(), file);
            new.target = X86_64_MUSL.into();
            fatbin_layout::install(&layout, "probe", &[new]).unwrap();
        }
    });
    failures.into_inner().unwrap()
}

/// 2,000 execs through the mount during 50 reinstalls on the server, with each of the three
/// cachings: zero failures, every run's output from one whole build. Before content files an
/// install renamed the new binary over `bin/PROG/SLOT`, and sshfs, which keys its files by
/// path, gave torn runs (13, 17 and 18 of 2,000 with the three cachings; 9 with default
/// caching when measured again): programs that started and then crashed or printed a mix of
/// both builds. Now the launcher runs the content file the manifest names, a name that never
/// changes content (docs/layout.md, Atomicity). About 4 minutes for all three here.
#[test]
fn execs_through_the_mount_during_reinstalls_on_the_server_never_fail() {
    let cluster = server();
    let shared = Shared::new();
    shared.add(
        "probe",
        &probe_binary(X86_64_MUSL, None),
        &["--script-shims"],
    );
    for caching in [Caching::Default, Caching::Off, Caching::DirectIo] {
        let mount = Mount::new(&cluster, "server", shared.export.path(), caching);
        let failures = reinstall_while_running(&shared, &mount, 2000, 50);
        assert!(
            failures.is_empty(),
            "{caching:?}: {} of 2000 runs failed during 50 reinstalls:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
