//! The web console's browser runs, shared by the tests that open it: the gate (Chromium from
//! `STREAMPULSE_TEST_CHROMIUM` and the console's packages from `npm ci`) and one run of
//! `console/tests/e2e.mjs` against a platform.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{describe, Platform};

pub fn console_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../console")
}

/// The browser, and the console's packages (`npm ci` in `console/`), or a skip.
pub fn browser() -> Option<PathBuf> {
    let chromium = streampulse_testkit::env::required_file(
        "STREAMPULSE_TEST_CHROMIUM",
        "a Chromium executable (Debian's chromium package: /usr/bin/chromium)",
    )?;
    if !console_dir().join("node_modules/playwright-core").is_dir() {
        return streampulse_testkit::env::skip(
            "console/node_modules has no playwright-core; run `npm ci` in console/",
        );
    }
    Some(chromium)
}

pub fn run_e2e(chromium: &Path, platform: &Platform, mode: &str, extra: &[(&str, String)]) {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("console-screenshots")
        .join(mode);
    let out = Command::new("node")
        .arg("tests/e2e.mjs")
        .current_dir(console_dir())
        .env("CONSOLE_URL", &platform.base)
        .env("CHROMIUM", chromium)
        .env("MODE", mode)
        .env("SCREENSHOTS", &shots)
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run node (Node.js must be on PATH)");
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "console e2e ({mode}) failed\n{}\nplatform log:\n{}",
        describe(&out),
        platform.log()
    );
    eprintln!("screenshots in {}", shots.display());
}
