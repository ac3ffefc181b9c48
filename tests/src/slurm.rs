//! A real, heterogeneous Slurm cluster on this machine, for testing migration through the
//! site's scheduler: Debian 12's Slurm 22.05 and MUNGE, three `slurmd` with their own node
//! names, ports and Features, one of them able to run aarch64 binaries.
//!
//! # What runs
//!
//! [`SlurmCluster::start`] writes everything into a fresh temporary directory `DIR` (mode 0755,
//! so other users' jobs can reach the socket and the configuration) and starts one supervisor,
//! `unshare --pid --fork --kill-child --mount-proc -- /bin/sh DIR/cluster.sh`, which runs, as
//! PID 1 of its own PID namespace:
//!
//! - `munged` with its own key (`DIR/munge/key`, 1 KiB from /dev/urandom), socket
//!   (`DIR/run/munge.socket`), seed, pid and log files; Slurm finds the socket through
//!   `AuthInfo=socket=...` in the generated `slurm.conf`, so the machine's own
//!   `/run/munge` (and a site munged, if one runs) is never touched;
//! - `slurmctld -D -c` (no state from an earlier run) on its own loopback port (`SlurmctldPort`),
//!   state in `DIR/state`;
//! - three `slurmd -D -N NAME`, each on its own port (`NodeName=NAME NodeAddr=127.0.0.1
//!   Port=...`), spool `DIR/spool/NAME`, with the Features a fatbin site gives its nodes:
//!
//!   | node | Features | runs |
//!   |---|---|---|
//!   | [`V3`] | `x86_64,x86_64-v2,x86_64-v3` | this host's x86_64 binaries |
//!   | [`BASELINE`] | `x86_64` | the same (it is the same CPU; the features are what Slurm schedules on) |
//!   | [`ARM`] | `aarch64` | aarch64 binaries, through its own binfmt_misc + qemu-aarch64 |
//!
//! The ports are free when chosen but held by nothing until the daemons bind them; a daemon
//! that finds its port taken (by a test running in parallel) says "Address already in use" in
//! its log, and [`SlurmCluster::start`] starts the cluster again on new ports.
//!
//! Every node has `CPUs=8` (`SlurmdParameters=config_overrides`, more than this machine has,
//! so concurrent tests do not queue behind each other), and `SchedulerParameters=bf_interval=1`
//! (see "Slurm facts" below). All slurm.conf paths (`SLURM_CONF`, logs, pid files, spool, state)
//! are in `DIR`; nothing outside it is written.
//!
//! # The aarch64 node
//!
//! Its `slurmd` runs inside `unshare --user --mount` with its own binfmt_misc mount and a
//! `qemu-aarch64` entry registered as Debian's qemu-user-static does ([`crate::cluster`]'s
//! `BINFMT_AARCH64`: flag `F` opens the interpreter at registration, `P` keeps `argv[0]`).
//! Since Linux 6.7 binfmt_misc has one instance per user namespace: an exec looks its format up
//! in the nearest user namespace that mounted one, so this slurmd, its slurmstepd and the jobs
//! it starts run aarch64 binaries while every other process on the host (the other two nodes,
//! the tests, the host's own launcher deciding what it can run) still gets `Exec format error`.
//! It is still this x86_64 host's kernel: x86_64 binaries run there too, and `uname -m` (an
//! x86_64 binary) says `x86_64`. To make the node behave like an Arm machine, give it aarch64
//! builds: its mount namespace bind-mounts `DIR/bin-aarch64` over `DIR/bin`, so a program
//! installed under one name in both ([`SlurmCluster::node_bin`], [`SlurmCluster::aarch64_bin`])
//! and found through the jobs' PATH is the x86_64 build on the x86_64 nodes and the aarch64
//! build there (the launcher, for instance). A mount namespace alone would not do for
//! binfmt_misc: mounted in the initial user namespace, it is the host's one instance, and an
//! entry there would change the host for everybody.
//!
//! The user namespace maps every id to itself (`0 0 4294967295` in uid_map and gid_map, written
//! by the supervisor, which is real root: `unshare --map-users` would go through newuidmap,
//! which refuses ranges outside /etc/subuid). Unlike `--map-root-user`, which maps only root,
//! this lets slurmd (root in its namespace, with its full capabilities there) `setuid` to any
//! submitting user, and MUNGE's uids, file owners and `getpwuid` all agree with the host: a job
//! submitted by `nobody` runs as `nobody` on the aarch64 node, as on the others (a test proves
//! it). What the namespace cannot do is act on the host's own resources (raise a hard rlimit,
//! lower an OOM score); the steps these tests run need none of that, and this node's slurmd
//! logs no error the other two do not.
//!
//! # Lifetime
//!
//! Tests share one cluster, [`shared`] (it starts in about 1.3 s; a `slurmd`
//! reaches `idle` within a second of its start). Everything stops when the cluster is dropped,
//! when the test process exits (an `atexit` handler, since a `static` is never dropped) and when
//! it is killed: the supervisor gets `SIGKILL` through `PR_SET_PDEATHSIG` when its parent thread
//! dies (a dedicated thread that lives exactly as long as the cluster), `--kill-child` passes
//! that on to PID 1 of the namespace, and the kernel then kills every process of the namespace,
//! including the slurmstepd and job processes that slurmd has daemonised away from itself.
//!
//! # Using it
//!
//! A client needs only `SLURM_CONF` ([`SlurmCluster::env`] sets it and drops any `SLURM_*`
//! variable inherited from an outer allocation); MUNGE is reached through the socket named in
//! that file. [`SlurmCluster::srun`] is a ready `srun` command. Jobs see `SLURMD_NODENAME`, which
//! tells a test where a request ran; [`SlurmCluster::node_bin`] gives each node its own build of
//! a program under one path. [`SlurmCluster::occupy`] holds a node with an exclusive job
//! (to prove that a request goes elsewhere while it is busy); [`SlurmCluster::placement`] is the
//! shared side of that lock, for tests that assert where a request lands, and
//! [`SlurmCluster::load`] another exclusive side, for a test that fills nodes with jobs.
//! [`SlurmCluster::kill_controller`] stops slurmctld alone (the nodes and their steps go on).
//!
//! `ci/cluster/slurm.sh start DIR` builds the same cluster from a shell, for the demo and for
//! trying the route by hand (`stop DIR` ends it): it writes the same slurm.conf and supervisor,
//! so a change here belongs there too.
//!
//! # Debugging
//!
//! `DIR/log/` holds `munged.log`, `slurmctld.log` and `slurmd-NAME.log` (start-up panics quote
//! their tails). With `FATBIN_TEST_SLURM_KEEP=1` the directory is kept at the end and its path
//! printed; against a running cluster: `SLURM_CONF=DIR/slurm.conf sinfo -N -o '%N %T %f'`,
//! `squeue`, `scontrol show node NAME`, `scontrol setdebug debug3` (then read `slurmctld.log`),
//! `munge -S DIR/run/munge.socket -n | unmunge -S DIR/run/munge.socket`. To run the same cluster
//! by hand: `unshare --pid --fork --kill-child --mount-proc -- /bin/sh DIR/cluster.sh`.
//! Every slurmd logs that it cannot load the PMIx MPI plugins and hwloc's topology: harmless
//! (Debian's slurmd tries every MPI plugin; the cluster uses `MpiDefault=none`).
//!
//! # Slurm facts the tests rely on (22.05 as Debian 12 ships it)
//!
//! - `--prefer=F` is tried first, when the job is submitted and by the main scheduler; only the
//!   backfill scheduler falls back to `--constraint` when the preferred nodes are busy, so
//!   such a job waits up to `bf_interval` (30 s by default) or until a preferred node frees up.
//!   This cluster sets `bf_interval=1`.
//! - A job submitted while its only candidate node is still completing the previous job (a few
//!   milliseconds after it ended) is queued and starts on the scheduler pass that the node's
//!   epilog-complete message triggers; srun then prints "queued and waiting for resources"
//!   unless `--quiet`.
//! - srun forks a "shepherd" that outlives a killed srun, to cancel the job through the
//!   controller; it is the client's, not the cluster's, and ends on its own.
//! - slurmstepd looks a step's program up in the job's PATH (the submitter's, exported by
//!   default) and passes the path it found as `argv[0]`, not the word typed.
//! - A step whose program the node cannot execute ends with exit code 8 (`ENOEXEC` from
//!   slurmstepd's execve) and `slurmstepd: error: execve(): ...: Exec format error` on stderr.
//!
//! Needs root (slurmd switches to the submitting user), the Debian packages `slurmctld slurmd
//! slurm-client munge` (ci/setup.sh installs them without starting their services),
//! util-linux's `unshare`, qemu-user-static, and Linux 6.7 or later for the aarch64 node.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The x86_64 node with the x86-64-v3 level.
pub const V3: &str = "v3";
/// The x86_64 node with the baseline level only.
pub const BASELINE: &str = "baseline";
/// The aarch64 node (qemu-aarch64 through its own binfmt_misc).
pub const ARM: &str = "arm";

/// One node of the cluster: its name and the Features slurm.conf gives it.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpec {
    pub name: &'static str,
    pub features: &'static str,
    /// Whether its slurmd runs aarch64 binaries (in its own user + mount namespace).
    pub aarch64: bool,
}

/// The three nodes, in slurm.conf order.
pub const NODES: [NodeSpec; 3] = [
    NodeSpec {
        name: V3,
        features: "x86_64,x86_64-v2,x86_64-v3",
        aarch64: false,
    },
    NodeSpec {
        name: BASELINE,
        features: "x86_64",
        aarch64: false,
    },
    NodeSpec {
        name: ARM,
        features: "aarch64",
        aarch64: true,
    },
];

/// How long the whole cluster may take to come up before the start is declared failed:
/// generous, since a loaded 2-core machine starts five daemons slowly, and a start that fails
/// outright ends sooner (the supervisor exits).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running cluster. Stops (everything, including jobs) when dropped.
#[derive(Debug)]
pub struct SlurmCluster {
    dir: PathBuf,
    ctld_port: u16,
    node_ports: Vec<(&'static str, u16)>,
    /// The `unshare` supervisor; `None` once stopped.
    supervisor: Mutex<Option<Child>>,
    /// Dropping it ends the thread that spawned the supervisor (the parent its death signal
    /// is tied to); kept until the supervisor is dead.
    keeper: Mutex<Option<mpsc::Sender<()>>>,
    /// Shared by tests that assert where a request lands, exclusive while a node is occupied.
    placement: RwLock<()>,
}

/// Panics with what to install or configure when this machine cannot run the cluster.
pub fn require() {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing
            .push("run the tests as root (slurmd starts jobs as the submitting user)".to_owned());
    }
    for (path, package) in [
        ("/usr/sbin/munged", "munge"),
        ("/usr/bin/munge", "munge"),
        ("/usr/sbin/slurmctld", "slurmctld"),
        ("/usr/sbin/slurmd", "slurmd"),
        ("/usr/bin/srun", "slurm-client"),
        ("/usr/bin/sinfo", "slurm-client"),
        ("/usr/bin/unshare", "util-linux"),
        (
            "/usr/libexec/qemu-binfmt/aarch64-binfmt-P",
            "qemu-user-static",
        ),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path}: apt-get install {package}"));
        }
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < (6, 7) {
        missing.push(format!(
            "Linux {}.{} cannot mount binfmt_misc inside a user namespace: the aarch64 node needs 6.7 or later",
            version.0, version.1
        ));
    }
    assert!(
        missing.is_empty(),
        "the Slurm tests need a real Slurm cluster on this machine; fix:\n  {}",
        missing.join("\n  ")
    );
}

/// The cluster the tests share, started by the first caller; a start failure is reported to
/// every caller.
pub fn shared() -> &'static SlurmCluster {
    match SHARED.get_or_init(|| {
        require();
        let started = std::panic::catch_unwind(SlurmCluster::start).map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "the Slurm cluster did not start".to_owned())
        });
        if started.is_ok() {
            // SAFETY: registering a plain function; it runs at exit, after the tests.
            unsafe { libc::atexit(stop_shared) };
        }
        started
    }) {
        Ok(cluster) => cluster,
        Err(message) => panic!("{message}"),
    }
}

static SHARED: OnceLock<Result<SlurmCluster, String>> = OnceLock::new();

/// Stops the shared cluster when the test process exits (a `static` is never dropped).
extern "C" fn stop_shared() {
    if let Some(Ok(cluster)) = SHARED.get() {
        // Nothing may unwind out of an atexit handler.
        let _ = std::panic::catch_unwind(|| cluster.stop());
    }
}

/// `n` distinct loopback ports that were free a moment ago (all held open until all are
/// chosen, so the kernel cannot hand out one twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// This host's short name: slurmctld refuses to run unless `SlurmctldHost` names it, and
/// every slurmd of the cluster runs here, so it is each node's `NodeHostname` too.
fn short_hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    name.trim().split('.').next().unwrap().to_owned()
}

/// What PID 1 of the cluster's PID namespace runs. `$D` is the cluster's directory; the
/// header written before this sets it.
const SUPERVISOR: &str = r#"
set -eu
export SLURM_CONF="$D/slurm.conf"
log="$D/log"

munged --foreground --socket="$D/run/munge.socket" --key-file="$D/munge/key" \
  --pid-file="$D/munge/munged.pid" --seed-file="$D/munge/seed" --log-file="$log/munged.log" \
  >>"$log/munged.log" 2>&1 &
munged=$!
until [ -S "$D/run/munge.socket" ]; do
  kill -0 "$munged" 2>/dev/null || { echo "munged exited" >&2; exit 1; }
  sleep 0.01
done

slurmctld -D -c >>"$log/slurmctld.out" 2>&1 &
for node in $NATIVE_NODES; do
  slurmd -D -N "$node" >>"$log/slurmd-$node.out" 2>&1 &
done

# The aarch64 node: a user + mount namespace of its own, whose binfmt_misc instance knows
# qemu-aarch64. It waits on a FIFO until its id maps are written, then mounts, registers and
# becomes slurmd.
rm -f "$D/run/arm.go"
mkfifo "$D/run/arm.go"
unshare --user --mount -- /bin/sh -c '
  read -r _ <"$1/run/arm.go" &&
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc &&
  mount --bind "$1/bin-aarch64" "$1/bin" &&
  cat "$1/binfmt-aarch64" >/proc/sys/fs/binfmt_misc/register &&
  exec slurmd -D -N "$2"' sh "$D" "$ARM_NODE" >>"$log/slurmd-$ARM_NODE.out" 2>&1 &
arm=$!
until [ "$(readlink /proc/$arm/ns/user)" != "$(readlink /proc/$$/ns/user)" ]; do sleep 0.01; done
# Every id maps to itself, so jobs run as their real submitting user (see tests/src/slurm.rs).
echo '0 0 4294967295' >/proc/$arm/uid_map
echo '0 0 4294967295' >/proc/$arm/gid_map
echo go >"$D/run/arm.go"

wait
"#;

impl SlurmCluster {
    /// Starts munged, slurmctld and the three slurmd of [`NODES`], and waits until every node
    /// is idle. Panics with the daemons' logs when they do not come up. The ports were free
    /// when chosen, but nothing holds them until the daemons bind them, and tests run in
    /// parallel: when another test's listener took one meanwhile, the cluster is started
    /// again on new ports.
    pub fn start() -> SlurmCluster {
        let mut attempt = 1;
        loop {
            match SlurmCluster::start_on(free_ports(NODES.len() + 1)) {
                Ok(cluster) => return cluster,
                Err(taken) if attempt < 5 => {
                    eprintln!("the Slurm test cluster: {taken}; starting it on other ports");
                    attempt += 1;
                }
                Err(taken) => panic!("the Slurm test cluster: {taken}, {attempt} times"),
            }
        }
    }

    /// [`SlurmCluster::start`] on these ports (slurmctld's, then one per node of [`NODES`]):
    /// `Err` when a daemon could not bind its port, which another process holds; any other
    /// failure panics with the logs.
    pub fn start_on(ports: Vec<u16>) -> Result<SlurmCluster, String> {
        assert_eq!(ports.len(), NODES.len() + 1);
        let dir = tempfile::Builder::new()
            .prefix("fatbin-slurm-")
            .tempdir()
            .unwrap()
            .keep();
        let ctld_port = ports[0];
        let node_ports: Vec<(&'static str, u16)> = NODES
            .iter()
            .map(|n| n.name)
            .zip(ports[1..].iter().copied())
            .collect();
        let cluster = SlurmCluster {
            dir,
            ctld_port,
            node_ports,
            supervisor: Mutex::new(None),
            keeper: Mutex::new(None),
            placement: RwLock::new(()),
        };
        // From here on, a panic or an `Err` drops `cluster`, which stops whatever started.
        cluster.write_files();
        cluster.spawn_supervisor();
        cluster.wait_idle()?;
        Ok(cluster)
    }

    /// The log line of a daemon that could not bind its port, if one says so.
    fn port_taken(&self) -> Option<String> {
        let logs = std::fs::read_dir(self.dir.join("log")).ok()?;
        logs.flatten().find_map(|log| {
            let text = std::fs::read_to_string(log.path()).ok()?;
            let line = text
                .lines()
                .find(|line| line.contains("Address already in use"))?;
            Some(format!("{}: {line}", log.file_name().to_string_lossy()))
        })
    }

    fn write_files(&self) {
        let d = &self.dir;
        let mode = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        // Jobs of other users need to reach the configuration and munged's socket: munged
        // checks that every directory above its socket is searchable by all.
        mode(d, 0o755);
        for (sub, m) in [
            ("munge", 0o700),
            ("run", 0o755),
            ("log", 0o755),
            ("state", 0o700),
            ("spool", 0o755),
            ("bin", 0o755),
            ("bin-aarch64", 0o755),
        ] {
            std::fs::create_dir(d.join(sub)).unwrap();
            mode(&d.join(sub), m);
        }
        for node in NODES {
            std::fs::create_dir(d.join("spool").join(node.name)).unwrap();
        }
        let mut key = vec![0u8; 1024];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut key)
            .unwrap();
        std::fs::write(d.join("munge/key"), key).unwrap();
        mode(&d.join("munge/key"), 0o400);
        std::fs::write(d.join("binfmt-aarch64"), crate::cluster::BINFMT_AARCH64).unwrap();
        std::fs::write(self.conf(), self.slurm_conf()).unwrap();

        let native: Vec<&str> = NODES
            .iter()
            .filter(|n| !n.aarch64)
            .map(|n| n.name)
            .collect();
        std::fs::write(
            d.join("cluster.sh"),
            format!(
                "#!/bin/sh\n# The fatbin test Slurm cluster (tests/src/slurm.rs); run as PID 1 of a PID namespace:\n\
                 #   unshare --pid --fork --kill-child --mount-proc -- /bin/sh {dir}/cluster.sh\n\
                 D='{dir}'\nNATIVE_NODES='{native}'\nARM_NODE='{ARM}'\n{SUPERVISOR}",
                dir = d.display(),
                native = native.join(" "),
            ),
        )
        .unwrap();
    }

    /// The generated slurm.conf: a minimal cluster without cgroups or accounting.
    fn slurm_conf(&self) -> String {
        let d = self.dir.display();
        let host = short_hostname();
        let mut conf = format!(
            "# The fatbin test cluster (tests/src/slurm.rs).\n\
             ClusterName=fatbintest\n\
             SlurmctldHost={host}(127.0.0.1)\n\
             SlurmctldPort={port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={d}/run/munge.socket\n\
             CredType=cred/munge\n\
             StateSaveLocation={d}/state\n\
             SlurmdSpoolDir={d}/spool/%n\n\
             SlurmctldPidFile={d}/run/slurmctld.pid\n\
             SlurmdPidFile={d}/run/slurmd-%n.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\n\
             SlurmdLogFile={d}/log/slurmd-%n.log\n\
             SlurmctldDebug=info\n\
             SlurmdDebug=info\n\
             # No cgroups: processes are tracked through /proc, tasks are not bound.\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             JobCompType=jobcomp/none\n\
             MpiDefault=none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             SchedulerType=sched/backfill\n\
             # The backfill pass is what lets a --prefer job fall back to --constraint.\n\
             SchedulerParameters=bf_interval=1\n\
             ReturnToService=2\n\
             # Nodes claim the CPUs configured here, not the ones this machine has.\n\
             SlurmdParameters=config_overrides\n",
            port = self.ctld_port,
        );
        for node in NODES {
            conf.push_str(&format!(
                "NodeName={name} NodeHostname={host} NodeAddr=127.0.0.1 Port={port} CPUs=8 \
                 Features={features}\n",
                name = node.name,
                port = self.port(node.name),
                features = node.features,
            ));
        }
        conf.push_str("PartitionName=all Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n");
        conf
    }

    /// Spawns the supervisor from a thread that lives as long as the cluster: the supervisor's
    /// death signal fires when the thread that spawned it ends, and a test's own thread may end
    /// long before the cluster it started (a shared one).
    fn spawn_supervisor(&self) {
        let script = self.dir.join("cluster.sh");
        let log = std::fs::File::create(self.dir.join("log/cluster.out")).unwrap();
        let (child_tx, child_rx) = mpsc::channel();
        let (keep_tx, keep_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("slurm-cluster".into())
            .spawn(move || {
                let mut cmd = Command::new("unshare");
                cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc", "--"])
                    .arg("/bin/sh")
                    .arg(&script)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log);
                // SAFETY: prctl is async-signal-safe and touches no memory of ours.
                unsafe {
                    cmd.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let _ = child_tx.send(cmd.spawn());
                // Returns when the cluster drops the sender, after killing the supervisor.
                let _ = keep_rx.recv();
            })
            .unwrap();
        let child = child_rx
            .recv()
            .unwrap()
            .expect("start the Slurm cluster's supervisor (unshare)");
        *self.supervisor.lock().unwrap() = Some(child);
        *self.keeper.lock().unwrap() = Some(keep_tx);
    }

    fn wait_idle(&self) -> Result<(), String> {
        let started = Instant::now();
        let want: Vec<String> = {
            let mut names: Vec<String> = NODES.iter().map(|n| format!("{} idle", n.name)).collect();
            names.sort();
            names
        };
        loop {
            if let Some(status) = self
                .supervisor
                .lock()
                .unwrap()
                .as_mut()
                .unwrap()
                .try_wait()
                .unwrap()
            {
                panic!(
                    "the Slurm cluster's supervisor exited ({status}) while starting\n{}",
                    self.logs()
                );
            }
            let out = self
                .command("sinfo")
                .args(["--noheader", "--Node", "--format=%N %T"])
                .output()
                .unwrap();
            let last = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            let mut states: Vec<String> = last.lines().map(|l| l.trim().to_owned()).collect();
            states.sort();
            if out.status.success() && states == want {
                return Ok(());
            }
            if let Some(line) = self.port_taken() {
                return Err(line);
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the Slurm cluster was not idle after {START_TIMEOUT:?}; sinfo says:\n{last}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cluster's directory (configuration, keys, logs, state).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generated slurm.conf (`SLURM_CONF` for clients).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("slurm.conf")
    }

    /// The nodes' own program directory, `DIR/bin`: what a test puts here, the x86_64 nodes
    /// see there; the aarch64 node sees [`SlurmCluster::aarch64_bin`] at the same path instead
    /// (a bind mount in its mount namespace). Put it on the jobs' PATH to give every node its
    /// own build of a program under one name, as on a real cluster (e.g. the launcher).
    pub fn node_bin(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// What the aarch64 node sees at [`SlurmCluster::node_bin`]'s path.
    pub fn aarch64_bin(&self) -> PathBuf {
        self.dir.join("bin-aarch64")
    }

    /// munged's socket (`munge -S`, `unmunge -S`); Slurm finds it through slurm.conf.
    pub fn munge_socket(&self) -> PathBuf {
        self.dir.join("run/munge.socket")
    }

    /// slurmctld's port.
    pub fn controller_port(&self) -> u16 {
        self.ctld_port
    }

    /// The port of node `name`'s slurmd.
    pub fn port(&self, name: &str) -> u16 {
        self.node_ports
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no Slurm node {name}"))
            .1
    }

    /// Sets what a Slurm client needs to talk to this cluster: `SLURM_CONF`; and removes every
    /// other `SLURM_*` variable, so a test run inside an outer allocation does not ask this
    /// cluster about that allocation's job.
    pub fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SLURM_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("SLURM_CONF", self.conf())
    }

    /// A Slurm client command (`sinfo`, `squeue`, `scancel`, ...) for this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        self.env(&mut cmd);
        cmd
    }

    /// `srun` for this cluster; add the options and the program.
    pub fn srun(&self) -> Command {
        self.command("srun")
    }

    /// Node `name`'s state as `sinfo` prints it in long form (`idle`, `allocated`, `mixed`,
    /// `completing`, ...).
    pub fn state(&self, name: &str) -> String {
        let out = self
            .command("sinfo")
            .args(["--noheader", "--Node", "--format=%T", "--nodes", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The tails of the daemons' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("logs in {}/log:\n", self.dir.display());
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("log"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!(
                "== {}\n{}\n",
                file.file_name().unwrap().to_string_lossy(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Taken (shared) by a test that asserts which node a request lands on, so that no
    /// [`SlurmCluster::occupy`] of another test makes a node busy meanwhile.
    pub fn placement(&self) -> RwLockReadGuard<'_, ()> {
        self.placement.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Taken (exclusive) by a test that keeps nodes busy with many jobs at once: a node whose
    /// CPUs are all taken makes `--prefer` fall back, so no placement assertion may run meanwhile.
    pub fn load(&self) -> RwLockWriteGuard<'_, ()> {
        self.placement.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds node `name` with an exclusive job until the returned guard is dropped (which
    /// cancels the job). Waits for other tests' placement assertions to finish first.
    pub fn occupy(&self, name: &str) -> Occupied<'_> {
        let lock = self.placement.write().unwrap_or_else(|e| e.into_inner());
        let job_name = format!("fatbin-occupy-{name}-{}", std::process::id());
        let srun = self
            .srun()
            .args(["--quiet", "--exclusive", "--nodelist", name, "--job-name"])
            .arg(&job_name)
            .args(["sleep", "3600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("srun (occupy)");
        // Generous for a loaded controller: a job that never starts still fails here.
        let deadline = Instant::now() + Duration::from_secs(60);
        let job = loop {
            let out = self
                .command("squeue")
                .args(["--noheader", "--states=RUNNING", "--format=%i", "--name"])
                .arg(&job_name)
                .output()
                .unwrap();
            let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !id.is_empty() {
                break id;
            }
            assert!(
                Instant::now() < deadline,
                "the job occupying {name} did not start\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Occupied {
            cluster: self,
            node: name.to_owned(),
            job,
            srun,
            _lock: lock,
        }
    }

    /// Kills this cluster's slurmctld (and only it): clients then get "Unable to contact slurm
    /// controller" while the nodes and their running steps go on.
    pub fn kill_controller(&self) {
        let mut wanted = b"SLURM_CONF=".to_vec();
        wanted.extend_from_slice(self.conf().as_os_str().as_encoded_bytes());
        let pids: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c == b"slurmctld\n")
                    && std::fs::read(format!("/proc/{pid}/environ"))
                        .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == wanted))
            })
            .collect();
        assert_eq!(pids.len(), 1, "this cluster's slurmctld: {pids:?}");
        // SAFETY: signalling a process of this cluster.
        unsafe { libc::kill(pids[0], libc::SIGKILL) };
        while !exited(pids[0] as u32) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops every process of the cluster (daemons, job steps, jobs) and, unless
    /// `FATBIN_TEST_SLURM_KEEP` is set, removes its directory. Idempotent.
    pub fn stop(&self) {
        let child = self
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = child {
            // PID 1 of the namespace: unshare's only child.
            let init = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id()))
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok());
            // SIGKILL to unshare: --kill-child passes it to PID 1 of the namespace, and the
            // kernel then kills every process in it.
            let _ = child.kill();
            let _ = child.wait();
            // PID 1 finishes exiting only once every other process of its namespace is gone:
            // wait for that, so that nothing of the cluster outlives this call.
            let deadline = Instant::now() + Duration::from_secs(10);
            while init.is_some_and(|pid| !exited(pid)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        drop(self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take());
        if !self.dir.exists() {
            return;
        }
        if std::env::var_os("FATBIN_TEST_SLURM_KEEP").is_some() {
            eprintln!("Slurm test cluster kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Whether process `pid` has finished exiting (gone, or a zombie waiting to be reaped).
fn exited(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The state follows the command name, which may contain spaces and parentheses.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X") | None)
}

impl Drop for SlurmCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node held busy by [`SlurmCluster::occupy`].
#[derive(Debug)]
pub struct Occupied<'c> {
    cluster: &'c SlurmCluster,
    node: String,
    /// The job's id.
    pub job: String,
    srun: Child,
    _lock: RwLockWriteGuard<'c, ()>,
}

impl Drop for Occupied<'_> {
    fn drop(&mut self) {
        let _ = self.cluster.command("scancel").arg(&self.job).status();
        let _ = self.srun.kill();
        let _ = self.srun.wait();
        // Release the placement lock only once the node takes jobs again: a job submitted
        // while it is still completing would be queued, and could be placed elsewhere. (On a
        // loaded machine completing can take seconds; giving up early makes the next
        // placement test flaky, not faster.)
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && self.cluster.state(&self.node) != "idle" {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
