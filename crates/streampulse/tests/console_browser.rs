//! The web console against the real binary: its pages and headers over HTTP, and every page in a
//! real headless Chromium (`console/tests/e2e.mjs`, playwright-core driving the browser of
//! `STREAMPULSE_TEST_CHROMIUM`, `.ci/run` sets it to Debian's `/usr/bin/chromium`): a chart shows
//! a metric's windows and a new one over the WebSocket, a spike posted to the API is in the
//! alerts table within a second, a job's watermark advances, an invalid job's error is marked at
//! its key, the query's CSV equals the API's answer, and with auth on the page asks for a token.
//! Screenshots of each page go to `target/tmp/console-screenshots/`.
//!
//! Without the variable (or without `npm ci` run in `console/`) the browser tests print
//! "skipped" and pass, unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod console_support;
mod support;

use std::sync::Mutex;

use console_support::{browser, run_e2e};
use support::{agent, free_port, Platform};

/// One browser at a time: the alerts step times a second, which two Chromiums on two cores
/// could blur.
static BROWSER: Mutex<()> = Mutex::new(());

const METRICS: usize = 60;

/// The default job's windows and detectors, plus a one-second window for the updates-every-second
/// check.
const FULL_CONFIG: &str = "
log:
  partitions: 2
job:
  keep_raw_events: true
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s, aggregates: [stddev, p99] }
    - { name: tumble_1m, type: tumbling, size: 1m, aggregates: [stddev, p99] }
    - { name: tumble_1s, type: tumbling, size: 1s }
";
const TOKEN: &str = "console-admin-token";

/// Three minutes of events, every 2 s, for `console.m00`..`console.m59` and `console.spike`
/// (steady values: the detectors warm up on them), ending two minutes ago. Returns the time after
/// the last event.
fn feed(platform: &Platform, token: Option<&str>) -> i64 {
    let start = (streampulse_core::clock::now_ms() - 5 * 60_000) / 10_000 * 10_000;
    let mut lines = String::new();
    let mut ts = start;
    while ts < start + 180_000 {
        for m in 0..=METRICS {
            let id = if m == METRICS {
                "console.spike".to_string()
            } else {
                format!("console.m{m:02}")
            };
            let wobble = ((ts / 2000 + m as i64) % 5) as f64 * 0.5;
            lines.push_str(&format!(
                "{{\"metric_id\":\"{id}\",\"ts\":{ts},\"value\":{},\"tags\":{{\"host\":\"h{}\"}}}}\n",
                100.0 + m as f64 + wobble,
                m % 3
            ));
        }
        ts += 2000;
    }
    let mut req = agent()
        .post(&format!("{}/events", platform.base))
        .header("content-type", "application/x-ndjson");
    if let Some(token) = token {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    let mut resp = req.send(&lines).expect("POST /events");
    assert_eq!(
        resp.status(),
        200,
        "{}",
        resp.body_mut().read_to_string().unwrap()
    );
    ts
}

#[test]
fn every_page_works_in_a_browser() {
    let Some(chromium) = browser() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::start(dir.path(), FULL_CONFIG, free_port());
    let next = feed(&platform, None);
    run_e2e(
        &chromium,
        &platform,
        "full",
        &[
            ("METRIC", "console.m00".into()),
            ("PREFIX", "console.m*".into()),
            ("SPIKE_METRIC", "console.spike".into()),
            ("NEXT_TS", next.to_string()),
            ("FAST_WINDOW", "tumble_1s".into()),
        ],
    );
}

#[test]
fn with_auth_on_the_page_asks_for_a_token() {
    let Some(chromium) = browser() else { return };
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let config = format!("server:\n  auth:\n    admin_tokens: [{TOKEN}]\nlog:\n  partitions: 1\n");
    let platform = Platform::start(dir.path(), &config, free_port());
    feed(&platform, Some(TOKEN));
    run_e2e(
        &chromium,
        &platform,
        "auth",
        &[("METRIC", "console.m00".into()), ("TOKEN", TOKEN.into())],
    );
}

/// The page and its files come with a policy that keeps the console to its own origin, need no
/// token, and stay away when `server.console` is off.
#[test]
fn the_console_is_served_with_its_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("server:\n  auth:\n    read_tokens: [{TOKEN}]\n");
    let platform = Platform::start(&dir.path().join("on"), &config, free_port());
    let get = |path: &str| {
        let resp = agent()
            .get(&format!("{}{path}", platform.base))
            .call()
            .unwrap();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        (
            resp.status().as_u16(),
            header("content-type"),
            header("content-security-policy"),
            header("x-content-type-options"),
        )
    };
    let (status, media, csp, nosniff) = get("/");
    assert_eq!(status, 200);
    assert_eq!(media, "text/html; charset=utf-8");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(nosniff, "nosniff");
    let (status, media, _, _) = get("/console/app.js");
    assert_eq!(
        (status, media.as_str()),
        (200, "text/javascript; charset=utf-8")
    );
    let (status, media, _, _) = get("/console/app.css");
    assert_eq!((status, media.as_str()), (200, "text/css; charset=utf-8"));
    let (status, media, _, _) = get("/console/../config.yaml");
    assert_eq!(status, 404, "{media}");
    let (status, media, _, _) = get("/console/nothing.js");
    assert_eq!((status, media.as_str()), (404, "application/problem+json"));
    // The data stays behind the token.
    assert_eq!(get("/jobs").0, 401);
    drop(platform);

    let off = Platform::start(
        &dir.path().join("off"),
        "server:\n  console: false\n",
        free_port(),
    );
    let resp = agent().get(&format!("{}/", off.base)).call().unwrap();
    assert_eq!(resp.status(), 404);
}
