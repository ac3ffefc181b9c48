//! The real Slurm cluster the Slurm route is tested against (see `fatbin_tests::slurm`): these
//! tests prove the cluster itself, with plain `srun`, so a failure of the route's tests is the
//! route's. Placement by Features (and `--prefer`), the aarch64 node running aarch64 binaries
//! while the host and the other nodes cannot, jobs run as the submitting user, stdin, and exit
//! statuses.
//!
//! Needs root, the Debian packages slurmctld, slurmd, slurm-client and munge, qemu-user-static
//! and Linux 6.7 or later; the tests fail with that list when something is missing.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fatbin_tests::slurm::{self, SlurmCluster, ARM, BASELINE, NODES, V3};
use fatbin_tests::{probe_binary, temp_dir};

/// The user `nobody` of Debian's base-passwd.
const NOBODY: u32 = 65534;

/// Processes whose environment names `conf` as SLURM_CONF: a cluster's daemons, its
/// slurmstepd and the jobs they started (srun passes the submitter's environment on).
fn processes_of(conf: &Path) -> Vec<u32> {
    let mut wanted = b"SLURM_CONF=".to_vec();
    wanted.extend_from_slice(conf.as_os_str().as_bytes());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted))
        })
        .collect()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `srun --quiet ARGS` on the shared cluster, stdin closed, in a directory every user can read.
fn srun(cl: &SlurmCluster, args: &[&str]) -> Output {
    cl.srun()
        .arg("--quiet")
        .args(args)
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .output()
        .expect("run srun")
}

/// The node a step ran on, as the step itself sees it.
fn node_of(cl: &SlurmCluster, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["printenv", "SLURMD_NODENAME"]);
    let out = srun(cl, &all);
    assert!(out.status.success(), "{}", show(&out));
    text(&out.stdout).trim().to_owned()
}

/// The static aarch64 probe, copied where any user's job can read it.
fn aarch64_probe() -> (tempfile::TempDir, PathBuf) {
    let dir = temp_dir();
    let path = dir.path().join("probe");
    std::fs::copy(probe_binary("aarch64-unknown-linux-musl", None), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, path)
}

#[test]
fn slurm_cluster_has_three_idle_nodes_with_their_features() {
    let cl = slurm::shared();
    let out = cl
        .command("sinfo")
        .args(["--noheader", "--Node", "--format=%N %T %f"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let mut got: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    got.sort();
    let mut want: Vec<String> = NODES
        .iter()
        .map(|n| format!("{} idle {}", n.name, n.features))
        .collect();
    want.sort();
    // Another test may hold a node at this moment: compare names and features only.
    let strip = |l: &String| {
        let w: Vec<&str> = l.split_whitespace().collect();
        format!("{} {}", w[0], w[2])
    };
    assert_eq!(
        got.iter().map(strip).collect::<Vec<_>>(),
        want.iter().map(strip).collect::<Vec<_>>()
    );
    // munged answers on the cluster's own socket.
    let cred = Command::new("munge")
        .arg("-S")
        .arg(cl.munge_socket())
        .arg("-n")
        .output()
        .unwrap();
    assert!(cred.status.success(), "{}", show(&cred));
    let mut unmunge = Command::new("unmunge")
        .arg("-S")
        .arg(cl.munge_socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    unmunge
        .stdin
        .take()
        .unwrap()
        .write_all(&cred.stdout)
        .unwrap();
    let decoded = unmunge.wait_with_output().unwrap();
    assert!(
        text(&decoded.stdout).contains("Success"),
        "{}",
        show(&decoded)
    );
}

#[test]
fn slurm_cluster_stops_everything_when_dropped_even_after_a_panic() {
    slurm::require();
    let cluster = SlurmCluster::start();
    let conf = cluster.conf();
    let dir = cluster.dir().to_owned();
    // A job that would run for ten minutes, on the namespaced node.
    let mut job = cluster
        .srun()
        .args([
            "--quiet",
            "--constraint=aarch64",
            "--job-name=fatbin-drop",
            "sleep",
            "600",
        ])
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !processes_of(&conf)
        .iter()
        .any(|pid| std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c == b"sleep\n"))
    {
        assert!(Instant::now() < deadline, "the job did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let running: Vec<u32> = processes_of(&conf)
        .into_iter()
        .filter(|&pid| pid != job.id())
        .collect();
    // munged, slurmctld, 3 slurmd (one under sh's exec), slurmstepd, sleep, and PID 1.
    assert!(running.len() >= 7, "{running:?}");

    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _cluster = cluster;
        panic!("a test failing while it holds the cluster (expected in this test)");
    }));
    assert!(failed.is_err());
    let _ = job.kill();
    let _ = job.wait();
    // Not the client's own leftovers: srun forks a "shepherd" that outlives a killed srun to
    // cancel its job, retrying the (now stopped) controller for a while.
    let left: Vec<u32> = processes_of(&conf)
        .into_iter()
        .filter(|pid| std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c != b"srun\n"))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!dir.exists(), "{} was not removed", dir.display());
}

/// The test cluster itself: its ports are free when chosen, but nothing holds them until the
/// daemons bind them, so another test's listener can take one meanwhile. A daemon that cannot
/// bind its port is now said at once (and [`SlurmCluster::start`] starts the cluster again on
/// other ports); before, the start waited out its whole timeout and failed.
#[test]
fn slurm_cluster_on_a_taken_port_says_so_at_once() {
    slurm::require();
    let ports = slurm::free_ports(NODES.len() + 1);
    for taken in [ports[0], ports[1]] {
        let holder = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
        let started = Instant::now();
        match SlurmCluster::start_on(ports.clone()) {
            Ok(_) => panic!("the cluster started although port {taken} was taken"),
            Err(why) => assert!(why.contains("Address already in use"), "{why}"),
        }
        assert!(
            started.elapsed() < slurm::START_TIMEOUT,
            "took {:?}",
            started.elapsed()
        );
        drop(holder);
    }
}

#[test]
fn slurm_cluster_dies_with_a_killed_test_process() {
    slurm::require();
    let dir = temp_dir();
    let conf_file = dir.path().join("conf");
    // This test binary, running only the holder below, as a test run that is killed.
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "slurm::child_holds_a_cluster",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("FATBIN_CHILD_CONF_FILE", &conf_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Longer than the holder's own start may take (it fails by itself after START_TIMEOUT,
    // and then exits, which ends this wait sooner), plus its process start on a loaded machine.
    let deadline = Instant::now() + slurm::START_TIMEOUT + Duration::from_secs(60);
    let conf = loop {
        if let Ok(conf) = std::fs::read_to_string(&conf_file) {
            if conf.ends_with('\n') {
                break PathBuf::from(conf.trim_end());
            }
        }
        if let Some(status) = holder.try_wait().unwrap() {
            panic!("the holder exited ({status}) before its cluster was up");
        }
        assert!(
            Instant::now() < deadline,
            "the holder's cluster did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(processes_of(&conf).len() >= 6, "{:?}", processes_of(&conf));

    holder.kill().unwrap();
    holder.wait().unwrap();
    // The kernel kills the cluster's namespace with its PID 1; generous for a loaded machine,
    // and a process that survives (the defect) is still there at the deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !processes_of(&conf).is_empty() {
        assert!(
            Instant::now() < deadline,
            "left running after the test process was killed: {:?}",
            processes_of(&conf)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing ran the cluster's clean-up: its directory is left to remove here.
    std::fs::remove_dir_all(conf.parent().unwrap()).unwrap();
}

#[test]
#[ignore = "child process of slurm_cluster_dies_with_a_killed_test_process"]
fn child_holds_a_cluster() {
    let file = std::env::var_os("FATBIN_CHILD_CONF_FILE")
        .expect("run by slurm_cluster_dies_with_a_killed_test_process");
    // Started from this test's thread, which outlives nothing here: what ends the cluster is
    // the death of the process, not of a thread.
    let cluster = SlurmCluster::start();
    std::fs::write(file, format!("{}\n", cluster.conf().display())).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn slurm_aarch64_constraint_lands_on_the_aarch64_node_and_runs_aarch64_binaries() {
    let cl = slurm::shared();
    let (_dir, probe) = aarch64_probe();
    let probe = probe.to_str().unwrap();

    assert_eq!(node_of(cl, &["--constraint=aarch64"]), ARM);
    let out = srun(
        cl,
        &[
            "--constraint=aarch64",
            "sh",
            "-c",
            "echo $SLURMD_NODENAME; exec \"$0\" whoami",
            probe,
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{ARM}\nprobe arch=aarch64 ")),
        "{}",
        show(&out)
    );
    // qemu ran it with argv[0] kept (binfmt flag P), as on a real aarch64 node.
    assert!(
        stdout.contains(&format!("argv0={probe} ")),
        "{}",
        show(&out)
    );
}

#[test]
fn slurm_aarch64_registration_stays_inside_the_aarch64_node() {
    let cl = slurm::shared();
    let (_dir, probe) = aarch64_probe();
    // This test process (the host) cannot execute it...
    let err = Command::new(&probe).output().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOEXEC), "{err}");
    // ...and neither can the x86_64 nodes: slurmstepd's execve fails with ENOEXEC (8).
    for node in [V3, BASELINE] {
        let out = srun(cl, &["--nodelist", node, probe.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(8), "{node}: {}", show(&out));
        assert!(
            text(&out.stderr).contains("Exec format error"),
            "{node}: {}",
            show(&out)
        );
    }
}

#[test]
fn slurm_each_node_sees_its_own_build_under_one_name() {
    let cl = slurm::shared();
    let name = format!("probe-{}", std::process::id());
    for (dir, target) in [
        (cl.node_bin(), "x86_64-unknown-linux-musl"),
        (cl.aarch64_bin(), "aarch64-unknown-linux-musl"),
    ] {
        std::fs::copy(probe_binary(target, None), dir.join(&name)).unwrap();
    }
    let path = format!("{}:/usr/bin:/bin", cl.node_bin().display());
    for (constraint, arch) in [
        ("x86_64-v3", "x86_64"),
        ("aarch64", "aarch64"),
        ("x86_64", "x86_64"),
    ] {
        let out = cl
            .srun()
            .args(["--quiet", "--constraint", constraint, &name])
            .env("PATH", &path)
            .current_dir("/tmp")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stdout = text(&out.stdout);
        assert!(
            stdout.starts_with(&format!("probe arch={arch} ")),
            "{constraint}: {}",
            show(&out)
        );
        // slurmstepd looks the program up in the job's PATH and passes the path it found as
        // argv[0].
        let found = cl.node_bin().join(&name);
        assert!(
            stdout.contains(&format!(" argv0={} ", found.display())),
            "{constraint}: {}",
            show(&out)
        );
    }
    for dir in [cl.node_bin(), cl.aarch64_bin()] {
        std::fs::remove_file(dir.join(&name)).unwrap();
    }
}

#[test]
fn slurm_steps_run_as_the_submitting_user_on_every_node() {
    let cl = slurm::shared();
    let (_dir, probe) = aarch64_probe();
    for node in NODES {
        let out = cl
            .srun()
            .args(["--quiet", "--nodelist", node.name, "id", "-u"])
            .current_dir("/tmp")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}: {}", node.name, show(&out));
        assert_eq!(
            text(&out.stdout).trim(),
            NOBODY.to_string(),
            "{}",
            node.name
        );
    }
    // An aarch64 binary, as that user, on the aarch64 node.
    let out = cl
        .srun()
        .args(["--quiet", "--constraint=aarch64"])
        .arg(&probe)
        .current_dir("/tmp")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).starts_with("probe arch=aarch64 "),
        "{}",
        show(&out)
    );
}

#[test]
fn slurm_v3_constraint_lands_on_the_v3_node() {
    let cl = slurm::shared();
    for _ in 0..3 {
        assert_eq!(node_of(cl, &["--constraint=x86_64-v3"]), V3);
    }
    assert_eq!(
        node_of(cl, &["--constraint=x86_64", "--nodelist", BASELINE]),
        BASELINE
    );
}

#[test]
fn slurm_prefer_puts_an_or_constraint_on_the_v3_node() {
    let cl = slurm::shared();
    let _placement = cl.placement();
    for _ in 0..5 {
        assert_eq!(
            node_of(cl, &["--constraint=x86_64-v3|x86_64", "--prefer=x86_64-v3"]),
            V3
        );
    }
}

#[test]
fn slurm_prefer_falls_back_to_the_baseline_node_while_v3_is_busy() {
    let cl = slurm::shared();
    let busy = cl.occupy(V3);
    let started = Instant::now();
    assert_eq!(
        node_of(cl, &["--constraint=x86_64-v3|x86_64", "--prefer=x86_64-v3"]),
        BASELINE
    );
    // The backfill pass (bf_interval=1) makes the fallback; without it the job would wait
    // for the v3 node, held for an hour. Generous: a loaded machine slows the controller.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    // Only the v3 node has the feature: that request waits, and runs once the node is free.
    drop(busy);
    assert_eq!(node_of(cl, &["--constraint=x86_64-v3"]), V3);
}

#[test]
fn slurm_stdin_passes_through_binary_safe() {
    let cl = slurm::shared();
    // 10 MB of every byte value, through the step's stdin and back out of its stdout.
    let data: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for constraint in ["x86_64-v3", "aarch64"] {
        let mut child = cl
            .srun()
            .args(["--quiet", "--constraint", constraint, "cat"])
            .current_dir("/tmp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = data.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "{constraint}: {}", text(&out.stderr));
        assert!(
            out.stdout == data,
            "{constraint}: {} bytes back",
            out.stdout.len()
        );
    }
}

#[test]
fn slurm_exit_status_passes_through() {
    let cl = slurm::shared();
    for code in [0, 1, 2, 42, 126, 127, 128, 254, 255] {
        let out = srun(
            cl,
            &["--constraint=aarch64", "sh", "-c", &format!("exit {code}")],
        );
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
    }
    // A program killed by a signal: srun exits normally, with 128+N (as a shell reports it).
    let out = srun(cl, &["--constraint=x86_64", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(
        (out.status.code(), out.status.signal()),
        (Some(137), None),
        "{}",
        show(&out)
    );
}

// The Slurm route of the launcher, against the same cluster.

const X86_TARGET: &str = "x86_64-unknown-linux-musl";
const ARM_TARGET: &str = "aarch64-unknown-linux-musl";

/// The launcher pair on every node, under one path (`DIR/bin/fatbin`: the x86_64 build on the
/// x86_64 nodes, the aarch64 build on `arm`), installed once per test process.
fn node_launcher(cl: &SlurmCluster) -> PathBuf {
    static INSTALLED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            fatbin_tests::install_launcher(ARM_TARGET, &cl.aarch64_bin());
            fatbin_tests::install_launcher(X86_TARGET, &cl.node_bin())
        })
        .clone()
}

/// A layout ROOT with the probe as `probe` for (slot, target, cpu), whose `nodes.toml` names
/// one Slurm route, `site`, written by `fatbin nodes add`; and a private XDG directory.
struct Site {
    root: tempfile::TempDir,
    xdg: tempfile::TempDir,
    launcher: PathBuf,
}

impl Site {
    fn new(cl: &SlurmCluster, slots: &[(&str, &str, Option<&str>)], route: &[&str]) -> Site {
        let root = temp_dir();
        let new: Vec<fatbin_layout::NewSlot> = slots
            .iter()
            .map(|(slot, target, cpu)| {
                let mut new = fatbin_layout::NewSlot::from_file(
                    slot.parse().unwrap(),
                    probe_binary(target, *cpu),
                );
                new.target = (*target).to_owned();
                new.cpu = cpu.map(str::to_owned);
                new
            })
            .collect();
        fatbin_layout::install(&fatbin_layout::Layout::new(root.path()), "probe", &new).unwrap();
        let site = Site {
            root,
            xdg: temp_dir(),
            launcher: node_launcher(cl),
        };
        let mut add = site.nodes(cl);
        add.args(["add", "site", "--slurm", "--to", "layout", "--launcher"])
            .arg(&site.launcher)
            .args(route);
        let out = add.output().unwrap();
        assert!(out.status.success(), "{}", show(&out));
        site
    }

    /// Environment of a user of the cluster, with this site's files only.
    fn env<'c>(&self, cl: &SlurmCluster, cmd: &'c mut Command) -> &'c mut Command {
        cl.env(cmd)
            .env("XDG_CONFIG_HOME", self.xdg.path().join("config"))
            .env("XDG_CACHE_HOME", self.xdg.path().join("cache"))
            .env("XDG_STATE_HOME", self.xdg.path().join("state"))
            .env("FATBIN_SYSTEM_NODES", self.xdg.path().join("none.toml"))
            .env_remove("FATBIN_ROOT")
            .env_remove("FATBIN_ARCH")
            .env_remove("FATBIN_ENV")
            .env("FATBIN_FALLBACK", "slurm")
            .current_dir("/tmp")
            .stdin(Stdio::null())
    }

    /// `fatbin nodes --layout ROOT ...` on this host.
    fn nodes(&self, cl: &SlurmCluster) -> Command {
        let mut cmd = Command::new(self.launcher.with_file_name("fatbin-full"));
        self.env(cl, &mut cmd)
            .arg("nodes")
            .arg("--layout")
            .arg(self.root.path());
        cmd
    }

    /// `fatbin run --root ROOT probe ARGS` by this x86_64 host's launcher.
    fn run(&self, cl: &SlurmCluster, args: &[&[u8]]) -> Command {
        let mut cmd = Command::new(self.launcher.with_file_name("fatbin-full"));
        self.env(cl, &mut cmd);
        self.run_args(&mut cmd, args);
        cmd
    }

    /// The same by the aarch64 launcher under qemu-aarch64 (a host where no x86_64 slot runs).
    fn run_from_arm(&self, cl: &SlurmCluster, args: &[&[u8]]) -> Command {
        let mut cmd = Command::new("qemu-aarch64-static");
        self.env(cl, &mut cmd)
            .arg(cl.aarch64_bin().join("fatbin-full"));
        self.run_args(&mut cmd, args);
        cmd
    }

    fn run_args(&self, cmd: &mut Command, args: &[&[u8]]) {
        cmd.args(["run", "--root"])
            .arg(self.root.path())
            .arg("probe")
            .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)));
    }
}

fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    out
}

#[test]
fn slurm_route_nodes_add_list_probe_check_remove() {
    let cl = slurm::shared();
    let site = Site::new(
        cl,
        &[("aarch64", ARM_TARGET, None)],
        &["--srun-arg=--time=5"],
    );
    let list = text(&ok(site.nodes(cl).arg("list")).stdout);
    assert!(
        list.contains("site\t(default)\t(node features)\t(same as here)\t--time=5\tlayout"),
        "{list}"
    );
    let probed = text(&ok(site.nodes(cl).args(["probe", "site", "--save"])).stdout);
    for slot in ["x86_64", "x86_64-v2", "x86_64-v3", "aarch64"] {
        assert!(probed.contains(slot), "{probed}");
    }
    let list = text(&ok(site.nodes(cl).arg("list")).stdout);
    assert!(list.contains("aarch64"), "{list}");
    let checked = text(&ok(site.nodes(cl).args(["check", "site"])).stdout);
    assert!(checked.contains("controller answers"), "{checked}");
    assert_eq!(checked.matches("ROOT visible").count(), 4, "{checked}");
    // A partition that does not exist: the check fails, and says so.
    let out = site
        .nodes(cl)
        .args([
            "add",
            "site",
            "--slurm",
            "--to",
            "layout",
            "--partition",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let out = site.nodes(cl).args(["check", "site"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // Flags of the other kind of entry are refused.
    let out = site
        .nodes(cl)
        .args(["add", "x", "--slurm", "--ssh", "h"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    ok(site.nodes(cl).args(["remove", "site"]));
    let list = text(&ok(site.nodes(cl).arg("list")).stdout);
    assert!(!list.contains("site"), "{list}");
}

#[test]
fn slurm_route_runs_an_aarch64_only_program_on_the_aarch64_node() {
    let cl = slurm::shared();
    let site = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &[]);
    let out = ok(&mut site.run(cl, &[]));
    assert!(
        text(&out.stdout).starts_with("probe arch=aarch64 "),
        "{}",
        show(&out)
    );
    let out = ok(&mut site.run(cl, &[b"env", b"SLURMD_NODENAME"]));
    assert_eq!(text(&out.stdout), format!("{ARM}\0"));
    // which --explain shows the route and what srun is asked.
    let mut which = Command::new(site.launcher.with_file_name("fatbin-full"));
    site.env(cl, &mut which)
        .args(["which", "probe", "--explain", "--root"])
        .arg(site.root.path());
    let explained = text(&ok(&mut which).stdout);
    for needle in [
        "slurm: route site (layout), slots aarch64",
        "--constraint=aarch64 --prefer=aarch64",
        "runs: on another node (migration: slurm)",
    ] {
        assert!(explained.contains(needle), "{needle}: {explained}");
    }
}

#[test]
fn slurm_route_places_x86_slots_by_level() {
    let cl = slurm::shared();
    let v3_only = Site::new(cl, &[("x86_64-v3", X86_TARGET, Some("x86-64-v3"))], &[]);
    let both = Site::new(
        cl,
        &[
            ("x86_64-v3", X86_TARGET, Some("x86-64-v3")),
            ("x86_64", X86_TARGET, None),
        ],
        &[],
    );
    let node = |site: &Site| {
        let out = ok(&mut site.run_from_arm(cl, &[b"env", b"SLURMD_NODENAME"]));
        text(&out.stdout).trim_end_matches('\0').to_owned()
    };
    {
        let _placement = cl.placement();
        for _ in 0..3 {
            assert_eq!(node(&v3_only), V3);
            assert_eq!(node(&both), V3);
        }
        let out = ok(&mut both.run_from_arm(cl, &[]));
        assert!(
            text(&out.stdout).contains(" level=x86-64-v3 "),
            "{}",
            show(&out)
        );
    }
    // The v3 node busy: the request goes to the baseline node. (Its launcher picks the best
    // slot of its own CPU, which on this one-machine cluster is the same v3 CPU: the level it
    // runs proves nothing here, the node does.)
    let _busy = cl.occupy(V3);
    assert_eq!(node(&both), BASELINE);
}

#[test]
fn slurm_route_keeps_argv_cwd_env_streams_and_statuses() {
    let cl = slurm::shared();
    let site = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &[]);
    // Arguments byte-exact: quotes, globs, spaces, newlines, empty, non-UTF-8, option-like.
    let corpus: Vec<&[u8]> = vec![
        b"",
        b" ",
        b"a b",
        b"it's",
        b"\"q\"",
        b"$HOME",
        b"`id`",
        b"*",
        b"--help",
        b"-n",
        b"line\nbreak",
        b"tab\there",
        b"\xff\xfe",
        b"\\",
        b";|&<>",
        b"--",
    ];
    let mut args: Vec<&[u8]> = vec![b"args"];
    args.extend(corpus.iter().copied());
    let out = ok(&mut site.run(cl, &args));
    let mut want = Vec::new();
    for a in &corpus {
        want.extend_from_slice(a);
        want.push(0);
    }
    assert_eq!(out.stdout, want, "{}", show(&out));
    // argv[0] as typed (not the path slurmstepd found), the caller's directory.
    let out = ok(&mut site.run(cl, &[b"argv0"]));
    assert_eq!(text(&out.stdout), "probe");
    let dir = temp_dir();
    let out = ok(site.run(cl, &[b"pwd"]).current_dir(dir.path()));
    assert_eq!(text(&out.stdout), dir.path().to_str().unwrap());
    // The allowlist and FATBIN_ENV pass; anything else does not.
    let out = ok(site
        .run(
            cl,
            &[b"env", b"LANG", b"MY_VAR", b"SECRET", b"FATBIN_FALLBACK"],
        )
        .env("LANG", "C.UTF-8")
        .env("MY_VAR", "a,b c")
        .env("SECRET", "s")
        .env("FATBIN_ENV", "MY_VAR"));
    assert_eq!(text(&out.stdout), "C.UTF-8\0a,b c\0\0none\0");
    // Exit statuses, 137 after SIGKILL, stderr.
    for code in [0, 1, 2, 8, 42, 126, 127, 128, 254, 255] {
        let c = code.to_string();
        let out = site.run(cl, &[b"exit", c.as_bytes()]).output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", show(&out));
        assert!(out.stderr.is_empty(), "{}", show(&out));
    }
    let out = site.run(cl, &[b"signal", b"9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    let out = ok(&mut site.run(cl, &[b"stderr", b"to stderr"]));
    assert_eq!(text(&out.stderr), "to stderr");
    // 10 MB through stdin, back through stdout.
    let data: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut child = site
        .run(cl, &[b"cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout == data, "{} bytes back", out.stdout.len());
}

#[test]
fn slurm_route_signals_reach_the_program() {
    let cl = slurm::shared();
    let site = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &[]);
    let dir = temp_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for (sig, name) in [(libc::SIGINT, "INT"), (libc::SIGTERM, "TERM")] {
        let file = dir.path().join(name);
        let child = site
            .run(cl, &[b"wait-signal", file.as_os_str().as_bytes()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&file).unwrap_or_default() != "ready\n" {
            assert!(
                Instant::now() < deadline,
                "{name}: the program did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let started = Instant::now();
        let out = child.wait_with_output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "{name}");
        let got = std::fs::read_to_string(&file).unwrap();
        // The program caught the signal itself (srun alone would kill the step on SIGTERM), and
        // neither srun nor slurmstepd said a word about it, as in a local run.
        assert!(got.contains(name), "{name}: {got}: {}", show(&out));
        assert_eq!(out.status.code(), Some(128 + sig), "{name}: {}", show(&out));
        assert!(out.stderr.is_empty(), "{name}: {}", show(&out));
    }
    // SIGINT to the whole process group, as `kill -INT -PGID` or a supervisor sends it: srun
    // gets it directly and the launcher passes it on; srun would take a second SIGINT from
    // itself within a second as "abort" and kill the step. The program gets it and exits 130.
    let file = dir.path().join("group");
    let child = site
        .run(cl, &[b"wait-signal", file.as_os_str().as_bytes()])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&file).unwrap_or_default() != "ready\n" {
        assert!(Instant::now() < deadline, "the program did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling the process group of our own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let got = std::fs::read_to_string(&file).unwrap();
    assert!(got.contains("INT"), "{got}: {}", show(&out));
    assert_eq!(out.status.code(), Some(130), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
    // A program killed by SIGKILL: 137, as a shell reports it, and no word from srun.
    let out = site.run(cl, &[b"signal", b"9"]).output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
}

#[test]
fn slurm_route_hands_on_when_the_controller_is_down_and_runs_once() {
    let shared = slurm::shared();
    node_launcher(shared);
    slurm::require();
    let cl = SlurmCluster::start();
    let saved = Site::new(
        &cl,
        &[("aarch64", ARM_TARGET, None)],
        &["--slot", "aarch64"],
    );
    let asks_sinfo = Site::new(&cl, &[("aarch64", ARM_TARGET, None)], &[]);
    cl.kill_controller();
    // srun cannot reach the controller: a clear message, 255, and no job.
    let started = Instant::now();
    let out = saved.run(&cl, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        text(&out.stderr).contains(
            "Slurm route `site`: no job started for `probe` (constraint aarch64): \
             the Slurm controller does not answer"
        ),
        "{}",
        show(&out)
    );
    assert!(out.stdout.is_empty(), "{}", show(&out));
    eprintln!(
        "controller down: srun gave up after {:?}",
        started.elapsed()
    );
    // Without saved slots the route asks sinfo first: the same code, the same words.
    let out = asks_sinfo.run(&cl, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("the Slurm controller does not answer (sinfo: "),
        "{}",
        show(&out)
    );
    // With qemu next, qemu runs it, once.
    let out = ok(saved.run(&cl, &[]).env("FATBIN_FALLBACK", "slurm,qemu"));
    assert_eq!(text(&out.stdout).lines().count(), 1, "{}", show(&out));
    assert!(text(&out.stdout).starts_with("probe arch=aarch64 "));
    assert!(
        text(&out.stderr).contains("trying the next fallback"),
        "{}",
        show(&out)
    );
}

#[test]
fn slurm_route_never_takes_the_programs_stderr_for_a_refusal() {
    let cl = slurm::shared();
    let site = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &["--slot", "aarch64"]);
    // A program that runs srun itself may print srun's refusal: it ran, so the request must not
    // go to the next fallback (which would run it a second time).
    let line = b"srun: error: Unable to allocate resources: Requested node configuration is not available\n";
    let out = site
        .run(cl, &[b"stderr", line])
        .env("FATBIN_FALLBACK", "slurm,qemu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(out.stderr, line, "{}", show(&out));
}

/// `salloc --no-shell` on `node`: the allocation's job id (cancelled by the caller). Found by
/// a job name of its own: the newest job on the node could be another test's, submitted
/// meanwhile (the cluster is shared by tests running in parallel).
fn allocate(cl: &SlurmCluster, node: &str) -> String {
    static ALLOCATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("fatbin-allocate-{node}-{}-{n}", std::process::id());
    let out = cl
        .command("salloc")
        .args([
            "--no-shell",
            "--quiet",
            "--nodes=1",
            "--ntasks=1",
            "--nodelist",
            node,
            "--job-name",
            &name,
        ])
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let out = cl
        .command("squeue")
        .args(["--me", "--noheader", "--format=%i", "--name", &name])
        .output()
        .unwrap();
    let listed = text(&out.stdout);
    let ids: Vec<&str> = listed.lines().map(str::trim).collect();
    match ids.as_slice() {
        [id] => id.to_string(),
        _ => panic!("not one allocation named {name} on {node}: {}", show(&out)),
    }
}

#[test]
fn slurm_route_inside_an_allocation_is_a_step_only_where_a_node_has_the_feature() {
    let cl = slurm::shared();
    let site = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &["--slot", "aarch64"]);
    let ask = |job: &str, node: &str| {
        let out = ok(site
            .run(
                cl,
                &[
                    b"env",
                    b"SLURM_JOB_ID",
                    b"SLURM_STEP_ID",
                    b"SLURMD_NODENAME",
                ],
            )
            .env("SLURM_JOB_ID", job)
            .env("SLURM_JOB_NODELIST", node));
        let fields: Vec<String> = text(&out.stdout).split('\0').map(str::to_owned).collect();
        (fields[0].clone(), fields[1].clone(), fields[2].clone())
    };
    // An allocation on the aarch64 node: the request is a step of it, there.
    let arm_job = allocate(cl, ARM);
    let (job, step, node) = ask(&arm_job, ARM);
    // An allocation on the baseline node only, which cannot run it: a job of its own.
    let baseline_job = allocate(cl, BASELINE);
    let (other_job, _, other_node) = ask(&baseline_job, BASELINE);
    let _ = cl
        .command("scancel")
        .args([&arm_job, &baseline_job])
        .status();
    assert_eq!((job.as_str(), node.as_str()), (arm_job.as_str(), ARM));
    assert!(step.parse::<u32>().is_ok(), "step {step:?}");
    assert_eq!(other_node, ARM);
    assert!(
        other_job != baseline_job && other_job != arm_job,
        "{other_job}"
    );
    // which --explain says which.
    let mut which = Command::new(site.launcher.with_file_name("fatbin-full"));
    site.env(cl, &mut which)
        .args(["which", "probe", "--explain", "--root"])
        .arg(site.root.path())
        .env("SLURM_JOB_ID", "77")
        .env("SLURM_JOB_NODELIST", ARM);
    let explained = text(&ok(&mut which).stdout);
    assert!(
        explained.contains("inside allocation 77: a step of it on arm"),
        "{explained}"
    );
}

#[test]
fn slurm_route_that_starts_nothing_hands_on_to_the_next_fallback() {
    let cl = slurm::shared();
    // The route may use only the baseline node: no node it may use has the aarch64 Feature.
    let site = Site::new(
        cl,
        &[("aarch64", ARM_TARGET, None)],
        &["--slot", "aarch64", "--srun-arg=--nodelist=baseline"],
    );
    let out = site.run(cl, &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("Slurm route `site`: no job started for `probe`"),
        "{}",
        show(&out)
    );
    // With qemu next, qemu runs it (once: one line of output).
    let out = ok(site.run(cl, &[]).env("FATBIN_FALLBACK", "slurm,qemu"));
    assert_eq!(text(&out.stdout).lines().count(), 1, "{}", show(&out));
    assert!(text(&out.stdout).starts_with("probe arch=aarch64 "));
    assert!(
        text(&out.stderr).contains("trying the next fallback"),
        "{}",
        show(&out)
    );
    // A program that ran and failed is never run again.
    let ran = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &[]);
    let out = ran
        .run(cl, &[b"exit", b"3"])
        .env("FATBIN_FALLBACK", "slurm,qemu")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(out.stderr.is_empty(), "{}", show(&out));
}

#[test]
fn slurm_route_serves_200_requests_16_at_a_time() {
    let cl = slurm::shared();
    let site = std::sync::Arc::new(Site::new(
        cl,
        &[
            ("x86_64-v3", X86_TARGET, Some("x86-64-v3")),
            ("x86_64", X86_TARGET, None),
        ],
        &[
            "--slot",
            "x86_64",
            "--slot",
            "x86_64-v3",
            "--slot",
            "aarch64",
        ],
    ));
    // Sixteen jobs at once fill the v3 node's 8 CPUs: no other test's placement meanwhile.
    let _load = cl.load();
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let site = site.clone();
            std::thread::spawn(move || {
                let cl = slurm::shared();
                (0..200)
                    .filter(|i| i % 16 == w)
                    .map(|_| {
                        let out = site
                            .run_from_arm(cl, &[b"env", b"SLURMD_NODENAME"])
                            .output()
                            .unwrap();
                        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
                        text(&out.stdout).trim_end_matches('\0').to_owned()
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let nodes: Vec<String> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(nodes.len(), 200);
    let on = |n: &str| nodes.iter().filter(|x| *x == n).count();
    assert_eq!(on(V3) + on(BASELINE), 200, "{nodes:?}");
    assert!(on(V3) > 0, "{nodes:?}");
    eprintln!(
        "200 requests: {} on {V3}, {} on {BASELINE}",
        on(V3),
        on(BASELINE)
    );
}

/// `ci/bench-slurm.sh`: a request migrated through the route against the same binary run by
/// `srun -C FEATURE ROOT/bin/PROG/SLOT` typed by hand, in one hyperfine run; and, to show where
/// the difference goes, the node's side alone (`srun -C FEATURE fatbin-full run ...`, no
/// decision on the caller), on the aarch64 node (under qemu, as the test cluster runs it) and
/// on a native x86_64 node.
#[test]
#[ignore = "a benchmark: run by ci/bench-slurm.sh"]
fn slurm_route_benchmark() {
    let cl = slurm::shared();
    let site = Site::new(cl, &[("aarch64", ARM_TARGET, None)], &["--slot", "aarch64"]);
    let native = Site::new(cl, &[("x86_64", X86_TARGET, None)], &["--slot", "x86_64"]);
    let runs = std::env::var("RUNS").unwrap_or_else(|_| "50".into());
    let slot = site.root.path().join("bin/probe/aarch64");
    let node_launcher = site.launcher.with_file_name("fatbin-full");
    let mut cmd = Command::new("hyperfine");
    site.env(cl, &mut cmd)
        .args(["-N", "--style", "basic", "--warmup", "3", "--runs", &runs])
        .args(
            std::env::var("EXPORT_JSON")
                .map(|j| vec!["--export-json".to_owned(), j])
                .unwrap_or_default(),
        )
        .arg(format!(
            "{} run --root {} probe",
            site.launcher.display(),
            site.root.path().display()
        ))
        .arg(format!("srun --quiet -C aarch64 {}", slot.display()))
        .arg(format!(
            "srun --quiet -C aarch64 {} run --root {} probe",
            node_launcher.display(),
            site.root.path().display()
        ))
        .arg(format!(
            "srun --quiet -C x86_64 {} run --root {} probe",
            node_launcher.display(),
            native.root.path().display()
        ))
        .arg(format!(
            "srun --quiet -C x86_64 {}",
            native.root.path().join("bin/probe/x86_64").display()
        ))
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    assert!(cmd.status().unwrap().success());
}
