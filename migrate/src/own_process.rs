//! Test support: running one unit test in a child process of its own, for tests that change
//! what belongs to the whole process (environment variables, signal dispositions).

/// The variable that tells the child it is the one to run the test's body.
const CHILD: &str = "FATBIN_MIGRATE_TEST_CHILD";

/// Whether the caller is the child that runs the test `name` (its full path, e.g.
/// `signals::tests::NAME`). In the parent, runs this test binary again with only that test,
/// asserts that it passed, and returns false: the parent's part is then done.
pub(crate) fn in_own_process(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // "1 passed": a renamed test would match nothing and pass vacuously.
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
