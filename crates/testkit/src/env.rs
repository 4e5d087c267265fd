//! The one gate for tests that need something from outside the build: a server (Kafka,
//! Cassandra, Prometheus), a tool (a Python with a package, schemathesis) or a privilege (root
//! for a tmpfs).
//!
//! Locally such a test skips, saying what to set to run it; under `CI` (set by CI systems and by
//! `.ci/run`) the same absence is a failure, so a service that did not start can never pass as a
//! skipped test.

use std::fmt::Display;
use std::path::PathBuf;

/// True under CI, where every gated test must run.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Gives up on a test for `reason`: returns `None` after printing `skipped: {reason}`, or panics
/// under `CI`.
pub fn skip<T>(reason: impl Display) -> Option<T> {
    if in_ci() {
        panic!("CI must run this test, but {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}

/// The value of `var`, or a skip saying to set it to `what` (e.g. "a Cassandra node (host:port;
/// deploy/local/services.sh start cassandra prints one)").
pub fn required(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => skip(format!(
            "{var} is not set; set it to {what} to run this test"
        )),
    }
}

/// [`required`] for a variable naming an executable or a file: one that does not exist is a
/// mistake, and fails the test wherever it runs.
pub fn required_file(var: &str, what: &str) -> Option<PathBuf> {
    let path = PathBuf::from(required(var, what)?);
    assert!(path.is_file(), "{var}={} is not a file", path.display());
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_variable_is_returned_as_is() {
        // PATH is set in every environment the tests run in.
        assert_eq!(
            required("PATH", "a search path"),
            std::env::var("PATH").ok()
        );
    }

    #[test]
    fn an_unset_variable_skips_locally_and_fails_under_ci() {
        let unset = "STREAMPULSE_TESTKIT_SURELY_UNSET";
        let outcome = std::panic::catch_unwind(|| required(unset, "anything"));
        match outcome {
            Ok(value) => {
                assert!(!in_ci());
                assert_eq!(value, None);
            }
            Err(panic) => {
                assert!(in_ci());
                let message = panic.downcast_ref::<String>().unwrap();
                assert!(message.contains(unset), "{message}");
            }
        }
    }
}
