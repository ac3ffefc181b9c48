//! Migration state against the real test cluster (see `fatbin_tests::cluster`): which failures
//! mark a node down and for how long, what happens when every node is marked down, balance
//! ties, per-connection state (a node moved to another host, two layouts naming the same node),
//! `fatbin nodes disconnect`, and signals that arrive before the program started.
//!
//! A node "blips" here by SIGSTOPping its sshd: connections are accepted by the kernel and
//! never answered (ssh's banner exchange times out), and SIGCONT brings it back.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use fatbin_tests::cluster::{self, Cluster, Kind};
use fatbin_tests::{host_bin_dir, temp_dir};

use super::migration::{arm_only, fatbin, master_socket, node_that_ran, output, show, text};

/// The pid of node `name`'s listening sshd.
fn sshd_pid(cl: &Cluster, name: &str) -> libc::pid_t {
    let config = cl.dir().join(format!("sshd-{name}.conf"));
    let config = config.to_str().unwrap();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        // sshd may rewrite its title ("sshd: /usr/sbin/sshd -D ... [listener] ..."): match the
        // text, whether the words are NUL- or space-separated.
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let listener = cmdline.starts_with("/usr/sbin/sshd ") || cmdline.starts_with("sshd: ");
        if listener && cmdline.contains(" -D ") && cmdline.contains(config) {
            return pid;
        }
    }
    panic!("no sshd for node {name}");
}

/// Freezes (`true`) or thaws node `name`: frozen, it accepts connections and never answers.
fn freeze(cl: &Cluster, name: &str, frozen: bool) {
    let sig = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
    // SAFETY: kill has no memory effects.
    assert_eq!(unsafe { libc::kill(sshd_pid(cl, name), sig) }, 0);
}

/// Aarch64 nodes (each with its own binfmt_misc), all running the layout's aarch64 slot.
fn arm_cluster(names: &[&str]) -> Cluster {
    cluster::require(true);
    let mut cl = Cluster::new();
    for name in names {
        cl.add_node(name, Kind::Aarch64);
    }
    cl
}

/// `[nodes.NAME]` entries, each reaching `ssh` and running aarch64; `extra` is appended to each.
fn nodes_toml(settings: &str, nodes: &[(&str, &str)], extra: &str) -> String {
    let mut t = format!("[settings]\n{settings}\n");
    for (name, ssh) in nodes {
        t.push_str(&format!(
            "[nodes.{name}]\nssh = \"{ssh}\"\nslots = [\"aarch64\"]\n{extra}\n"
        ));
    }
    t
}

/// The down file's lines as (name, failures in a row).
fn marks(cl: &Cluster) -> Vec<(String, u32)> {
    std::fs::read_to_string(cl.down_file())
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), f[3].parse().unwrap())
        })
        .collect()
}

/// `fatbin nodes ARGS` with the cluster's environment.
fn nodes_cmd(cl: &Cluster, args: &[&str]) -> Output {
    let mut cmd = Command::new(host_bin_dir().join("fatbin"));
    cl.env(&mut cmd).arg("nodes").args(args);
    output(&mut cmd)
}

/// Issue 14, item 8: a local failure (the ssh client cannot run, a broken local ssh config, a
/// command line too long for this machine) marks no node down; the next good run goes through.
#[test]
fn a_local_failure_marks_no_node_down() {
    let root = arm_only();
    let cl = arm_cluster(&["n1"]);
    let cache = temp_dir();
    // Not shared: the binary is shipped, so the master is opened explicitly first.
    cl.write_nodes(&nodes_toml(
        "",
        &[("n1", "n1")],
        &format!("shared = false\ncache = \"{}\"", cache.path().display()),
    ));
    let out = output(fatbin(&cl, root.path(), &[]).env("FATBIN_SSH", "/nonexistent/ssh"));
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("/nonexistent/ssh"),
        "{}",
        show(&out)
    );
    assert_eq!(marks(&cl), [], "a missing ssh client marked a node down");

    // A broken config file: ssh refuses it before connecting anywhere.
    let config = cl.dir().join("ssh_config_copy");
    let good = std::fs::read_to_string(cl.ssh_config()).unwrap();
    std::fs::write(&config, format!("BogusOption yes\n{good}")).unwrap();
    let out = output(fatbin(&cl, root.path(), &[]).env("FATBIN_SSH_CONFIG", &config));
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("bad configuration"),
        "{}",
        show(&out)
    );
    assert_eq!(marks(&cl), [], "a bad local config marked a node down");
    std::fs::write(&config, &good).unwrap();
    let out = output(fatbin(&cl, root.path(), &[b"args", b"ok"]).env("FATBIN_SSH_CONFIG", &config));
    assert_eq!(out.stdout, b"ok\0", "{}", show(&out));

    // A command line longer than exec allows here (E2BIG): local, and said to be.
    let big = [b'x'; 200];
    let args: Vec<&[u8]> = std::iter::repeat_n(&big[..], 1000).collect();
    let out = output(&mut fatbin(&cl, root.path(), &args));
    // Said as what it is (issue 11's poor errors), with a local refusal's status.
    assert_eq!(out.status.code(), Some(126), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("too long to send") && text(&out.stderr).contains("E2BIG"),
        "{}",
        show(&out)
    );
    assert_eq!(marks(&cl), [], "E2BIG marked a node down");
    let out = output(&mut fatbin(&cl, root.path(), &[b"args", b"ok"]));
    assert_eq!(out.stdout, b"ok\0", "{}", show(&out));
}

/// Issue 14, item 2: a blip marks a node down briefly, with a period that grows while it keeps
/// failing and resets on success; when every candidate is marked down they are tried anyway,
/// oldest mark first, before giving up.
#[test]
fn when_every_node_is_marked_down_they_are_tried_anyway_oldest_first() {
    let root = arm_only();
    let cl = arm_cluster(&["a", "b"]);
    let settings = "connect_timeout = 1";

    // b blips first, then a: b holds the older mark. Each fails twice (the second time
    // tried anyway, as the only candidate), so the marks last 10 s: time enough for the test.
    let fails = |node: &str| {
        freeze(&cl, node, true);
        cl.write_nodes(&nodes_toml(settings, &[(node, node)], ""));
        for _ in 0..2 {
            let out = output(&mut fatbin(&cl, root.path(), &[]));
            assert_eq!(out.status.code(), Some(255), "{}", show(&out));
        }
    };
    fails("b");
    std::thread::sleep(Duration::from_millis(1100));
    fails("a");
    assert_eq!(marks(&cl), [("b".into(), 2), ("a".into(), 2)]);

    // Both back, both still marked: the run goes to the node down longest (b), not the first
    // of the inventory, and its success clears its mark. The nodes answer now, within a
    // timeout a loaded machine can meet (1 s is short for an ssh handshake there, and a
    // healthy node timing out would fail the run over to the other one).
    freeze(&cl, "a", false);
    freeze(&cl, "b", false);
    cl.write_nodes(&nodes_toml(
        "connect_timeout = 10",
        &[("a", "a"), ("b", "b")],
        "",
    ));
    assert_eq!(node_that_ran(&cl, root.path(), "round-robin"), "b");
    assert_eq!(marks(&cl), [("a".into(), 2)]);

    // a keeps failing: each failure in a row doubles its period; a success resets it.
    cl.write_nodes(&nodes_toml(settings, &[("a", "a")], ""));
    freeze(&cl, "a", true);
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(text(&out.stderr).contains("tried anyway"), "{}", show(&out));
    assert_eq!(marks(&cl), [("a".into(), 3)]);
    let mut cmd = Command::new(host_bin_dir().join("fatbin"));
    cl.env(&mut cmd)
        .args(["which", "--root"])
        .arg(root.path())
        .args(["probe", "--explain"]);
    let said = text(&output(&mut cmd).stdout);
    assert!(
        said.contains("3 failures in a row") && said.contains("tried anyway"),
        "{said}"
    );
    freeze(&cl, "a", false);
    assert_eq!(node_that_ran(&cl, root.path(), "round-robin"), "a");
    assert_eq!(marks(&cl), []);
}

/// Issue 14, item 7: with equal load (none, between sequential runs), least-loaded spreads
/// the runs instead of sending every one to the first node of the inventory.
#[test]
fn least_loaded_ties_rotate() {
    let root = arm_only();
    let cl = arm_cluster(&["n1", "n2"]);
    cl.write_nodes(&nodes_toml("", &[("n1", "n1"), ("n2", "n2")], ""));
    let ran: Vec<String> = (0..4)
        .map(|_| node_that_ran(&cl, root.path(), "least-loaded"))
        .collect();
    assert!(
        ran.contains(&"n1".to_owned()) && ran.contains(&"n2".to_owned()),
        "least-loaded always chose one node: {ran:?}"
    );
}

/// Issue 11, item 3: state is kept per connection, not per node name. Moving node `a` to
/// another host takes effect at once (not through the old host's master, not blocked by the
/// old host's down mark), `nodes check` checks the new host, and two layouts that both name a
/// node `a` never reach each other's host.
#[test]
fn state_follows_the_connection_not_the_name() {
    let root = arm_only();
    let mut cl = arm_cluster(&["h1", "h2"]);
    cl.write_nodes(&nodes_toml("", &[("a", "h1")], ""));
    assert_eq!(node_that_ran(&cl, root.path(), "round-robin"), "h1");
    // h1's master stays up (ControlPersist); `a` now means h2.
    assert!(master_socket(&cl, "a", 0).is_some());
    cl.write_nodes(&nodes_toml("", &[("a", "h2")], ""));
    assert_eq!(node_that_ran(&cl, root.path(), "round-robin"), "h2");

    // Two layouts (no user file) that both name a node `a`, reaching different hosts.
    std::fs::remove_file(cl.dir().join("config/fatbin/nodes.toml")).unwrap();
    let other = arm_only();
    std::fs::write(
        root.path().join("nodes.toml"),
        nodes_toml("", &[("a", "h1")], ""),
    )
    .unwrap();
    std::fs::write(
        other.path().join("nodes.toml"),
        nodes_toml("", &[("a", "h2")], ""),
    )
    .unwrap();
    for _ in 0..2 {
        assert_eq!(node_that_ran(&cl, root.path(), "round-robin"), "h1");
        assert_eq!(node_that_ran(&cl, other.path(), "round-robin"), "h2");
    }

    // `a` pointed at a dead host and was marked down; moved to a live one, it runs at once.
    cl.add_node("dead", Kind::Native);
    cl.kill_node("dead");
    std::fs::remove_file(other.path().join("nodes.toml")).unwrap();
    std::fs::write(
        root.path().join("nodes.toml"),
        nodes_toml("", &[("a", "dead")], ""),
    )
    .unwrap();
    let out = output(&mut fatbin(&cl, root.path(), &[]));
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert_eq!(marks(&cl), [("a".into(), 1)]);
    std::fs::write(
        root.path().join("nodes.toml"),
        nodes_toml("", &[("a", "h2")], ""),
    )
    .unwrap();
    let mut cmd = fatbin(&cl, root.path(), &[b"env", b"FATBIN_TEST_NODE"]);
    let out = output(&mut cmd);
    assert_eq!(out.stdout, b"h2\0", "{}", show(&out));

    // `nodes check` after a move checks the new host, not the old host's open master.
    std::fs::write(
        root.path().join("nodes.toml"),
        nodes_toml("", &[("a", "dead")], ""),
    )
    .unwrap();
    let out = nodes_cmd(
        &cl,
        &["--layout", root.path().to_str().unwrap(), "check", "a"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("a: unreachable"),
        "{}",
        show(&out)
    );
}

/// Issue 14, item 9: `fatbin nodes disconnect [NAME]` closes the masters (of one node, then of
/// all) and removes the lock files and old round-robin counters nothing needs any more.
#[test]
fn nodes_disconnect_closes_masters_and_cleans_up() {
    let root = arm_only();
    let cl = arm_cluster(&["n1", "n2"]);
    cl.write_nodes(&nodes_toml("", &[("n1", "n1"), ("n2", "n2")], ""));
    for _ in 0..2 {
        node_that_ran(&cl, root.path(), "round-robin");
    }
    let (s1, s2) = (
        master_socket(&cl, "n1", 0).expect("n1's master"),
        master_socket(&cl, "n2", 0).expect("n2's master"),
    );
    let alive = |socket: &Path| {
        Command::new("ssh")
            .arg("-F")
            .arg(cl.ssh_config())
            .arg("-S")
            .arg(socket)
            .args(["-O", "check", "x"])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(alive(&s1) && alive(&s2));
    // An old counter (a group of nodes that no longer exists).
    let cache = cl.dir().join("cache/fatbin");
    let old = cache.join("rr-00000000000000ab");
    std::fs::write(&old, "3").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();

    let out = nodes_cmd(&cl, &["disconnect", "n1"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("1 connection closed"),
        "{}",
        show(&out)
    );
    assert!(!alive(&s1) && !s1.exists(), "n1's master is still there");
    assert!(alive(&s2), "disconnect n1 closed n2's master");

    let out = nodes_cmd(&cl, &["disconnect"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(!alive(&s2) && !s2.exists(), "n2's master is still there");
    let left: Vec<String> = std::fs::read_dir(cl.dir().join("run/fatbin/ssh"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, Vec::<String>::new(), "left behind");
    assert!(!old.exists(), "an old round-robin counter was kept");
    let counters = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rr-"))
        .count();
    assert_eq!(counters, 1, "the live counter must stay");

    // Nothing to close is fine; an unknown node is an error.
    let out = nodes_cmd(&cl, &["disconnect"]);
    assert!(
        text(&out.stdout).contains("0 connections closed"),
        "{}",
        show(&out)
    );
    let out = nodes_cmd(&cl, &["disconnect", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    // And the next run just opens a new master.
    assert_eq!(node_that_ran(&cl, root.path(), "round-robin").len(), 2);
}

/// Sends `signal` to a run while it connects to a hung first node, with a healthy second node
/// and qemu as the next fallback; returns the run's output and how long it took after the signal.
fn interrupted_run(signal: libc::c_int) -> (Output, Duration, PathBuf, tempfile::TempDir) {
    let root = arm_only();
    cluster::require(true);
    let mut cl = Cluster::new();
    cl.add_blackhole("a-hung");
    cl.add_node("b", Kind::Aarch64);
    // Round-robin's first run starts at the first node: the hung one.
    cl.write_nodes(&nodes_toml(
        "connect_timeout = 3",
        &[("a-hung", "a-hung"), ("b", "b")],
        "",
    ));
    let dir = temp_dir();
    let ran = dir.path().join("ran");
    let start = Instant::now();
    let mut child = fatbin(
        &cl,
        root.path(),
        &[b"wait-signal", ran.as_os_str().as_bytes()],
    )
    .env("FATBIN_FALLBACK", "nodes,qemu")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let accepted = &cl.blackhole("a-hung").accepted;
    while accepted.load(Ordering::SeqCst) == 0 {
        if child.try_wait().unwrap().is_some() || start.elapsed() > Duration::from_secs(30) {
            cluster::kill_tree(child.id());
            let out = child.wait_with_output().unwrap();
            panic!("the run never connected to the hung node: {}", show(&out));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    let signalled = Instant::now();
    // Bounded: on the old code the program runs elsewhere and waits for a signal forever.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(Duration::from_secs(20)).is_err() {
            cluster::kill_tree(pid);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done.send(());
    watchdog.join().unwrap();
    let took = signalled.elapsed();
    drop(cl);
    (out, took, ran, dir)
}

/// Issue 11, item 8: Ctrl-C or SIGTERM while the launcher connects (or would fail over) ends it
/// with 130 or 143, and the program starts nowhere: not on the next node, not under qemu.
#[test]
fn a_signal_before_the_program_started_ends_the_run_and_starts_nothing() {
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let (out, took, ran, _dir) = interrupted_run(signal);
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert!(!ran.exists(), "the program started after the signal");
        assert!(
            text(&out.stderr).contains("interrupted by")
                && text(&out.stderr).contains("not run anywhere"),
            "{}",
            show(&out)
        );
        // No later than the connect timeout (3 s) of the attempt under way, with slack for a
        // loaded machine; the defect waited for the watchdog (20 s).
        assert!(took < Duration::from_secs(15), "took {took:?}");
    }
}
