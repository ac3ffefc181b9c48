//! Helpers for the launcher tests: a temporary layout with real probe builds installed in it,
//! the static launcher as a node-local binary with the shims pointing at it, and running
//! commands with a deadline so a hanging launcher fails the test instead of the CI job.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fatbin_layout::{install, Layout, NewSlot, SlotName};

use crate::{install_launcher, probe_binary, temp_dir};

/// The launcher target the tests run: static, like the shipped launcher.
pub const LAUNCHER_TARGET: &str = "x86_64-unknown-linux-musl";

/// A layout in a temporary directory: `dir/root` is ROOT, `dir/node/fatbin` the node-local
/// launcher, `ROOT/shims/fatbin -> dir/node/fatbin`, `ROOT/shims/PROG -> fatbin`.
#[derive(Debug)]
pub struct TestLayout {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub launcher: PathBuf,
}

impl TestLayout {
    pub fn new() -> TestLayout {
        let dir = temp_dir();
        let root = dir.path().join("root");
        let node = dir.path().join("node");
        for d in [&root, &node] {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let launcher = install_launcher(LAUNCHER_TARGET, &node);
        let layout = TestLayout {
            dir,
            root,
            launcher,
        };
        let shims = layout.root.join("shims");
        std::fs::create_dir(&shims).unwrap();
        std::fs::set_permissions(&shims, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(&layout.launcher, shims.join("fatbin")).unwrap();
        layout
    }

    /// The full launcher, `fatbin-full` next to the node's `fatbin`.
    pub fn full_launcher(&self) -> PathBuf {
        self.launcher.with_file_name("fatbin-full")
    }

    pub fn layout(&self) -> Layout {
        Layout::new(&self.root)
    }

    /// Installs real probe builds as `program`'s slots: (slot, target, target-cpu).
    pub fn install_probes(&self, program: &str, slots: &[(&str, &str, Option<&str>)]) {
        let new: Vec<NewSlot> = slots
            .iter()
            .map(|(slot, target, cpu)| {
                let slot: SlotName = slot.parse().unwrap();
                let mut new = NewSlot::from_file(slot, probe_binary(target, *cpu));
                new.target = target.to_string();
                new.cpu = cpu.map(str::to_owned);
                new
            })
            .collect();
        install(&self.layout(), program, &new).unwrap();
        self.add_shim(program);
    }

    /// `ROOT/shims/PROG -> fatbin`, as an install writes it.
    pub fn add_shim(&self, program: &str) {
        let shim = self.shim(program);
        if shim.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("fatbin", shim).unwrap();
        }
    }

    pub fn shims(&self) -> PathBuf {
        self.root.join("shims")
    }

    pub fn shim(&self, program: &str) -> PathBuf {
        self.shims().join(program)
    }

    /// `ROOT/shims/fatbin`, the launcher's command line as installed.
    pub fn fatbin(&self) -> Command {
        let mut cmd = Command::new(self.shims().join("fatbin"));
        clean_env(&mut cmd);
        cmd
    }

    /// A command running `program` through its shim by absolute path.
    pub fn run(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.shim(program));
        clean_env(&mut cmd);
        cmd
    }

    /// The file the launcher runs for `program`'s `slot`: its content file as the manifest
    /// names it (`ROOT/bin/PROG/SLOT.<hex>`), or `ROOT/bin/PROG/SLOT` when it names none.
    pub fn slot_path(&self, program: &str, slot: &str) -> PathBuf {
        let layout = self.layout();
        match layout.read_manifest(program) {
            Ok(manifest) => layout.file_of(&manifest, program, slot.parse().unwrap()),
            Err(_) => layout.slot_path(program, slot.parse().unwrap()),
        }
    }
}

impl Default for TestLayout {
    fn default() -> Self {
        TestLayout::new()
    }
}

/// Removes the launcher's variables inherited from the test's environment, so a developer's
/// own FATBIN_ROOT or FATBIN_ARCH cannot change what a test sees.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    for var in [
        "FATBIN_ROOT",
        "FATBIN_ARCH",
        "FATBIN_FALLBACK",
        "FATBIN_DEPTH",
        "FATBIN_EXECFN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `cmd` to completion with `stdin` as its input, failing the test if it takes longer
/// than `limit` (it is killed first): a hang is a bug, never a slow test.
pub fn output_within(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let pid = child.id();
    let deadline = Instant::now() + limit;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            while Instant::now() < deadline {
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            true
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let killed = watchdog.join().unwrap();
    let _ = writer.join();
    assert!(
        !killed,
        "{cmd:?} hung for more than {limit:?} and was killed"
    );
    out
}

/// [`output_within`] with no input and a 60 s limit (qemu runs are slow, hangs are not).
pub fn output(cmd: &mut Command) -> Output {
    output_within(cmd, b"", Duration::from_secs(60))
}

/// Whether Debian's qemu-user-static emulator for `arch` is installed; the tests that need
/// it fail with the install command when it is not (CI installs it).
pub fn require_qemu(arch: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(format!("qemu-{arch}-static"));
    assert!(
        path.exists(),
        "{} is missing: apt-get install qemu-user-static",
        path.display()
    );
    path
}

/// stdout as text, lossily, for messages and `contains` checks.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
