//! Crash tests of the store: a test runs itself again as a child process that writes and then
//! aborts without closing the database, and checks what a fresh open finds. Test-only.

use std::path::Path;

/// Runs test `test` (its full path, e.g. `embedded::tests::flushed_data_survives_a_crash`) in a
/// child process with `env` set to `dir`; the child must crash (the test checks for `env` first
/// and, when set, does its writes and aborts). Panics if the child exited cleanly.
pub fn crash_in_child(test: &str, env: &str, dir: &Path) {
    let exe = std::env::current_exe().expect("test binary");
    let status = std::process::Command::new(exe)
        .args(["--exact", test, "--test-threads=1"])
        .env(env, dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(
        !status.success(),
        "the child must have crashed, not exited cleanly"
    );
}
