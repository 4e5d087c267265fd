//! Cassandra stopped for 20 s while events keep coming, then started again: ingest goes on (the
//! embedded log takes the events), `/readyz` answers 503 naming the store while writes fail, the
//! worker retries, and once the node is back every window equals a brute-force computation:
//! nothing lost, nothing doubled. A `serve` process over the same keyspace follows the outage
//! too: unready while the node is away, ready again after, and its answers are the worker's.
//!
//! This stops and starts the node of `deploy/local/services.sh` (the one CI runs), so it lives in
//! a test binary of its own: no other test uses the node meanwhile. Skipped (a failure under
//! `CI`) without a node, or when `STREAMPULSE_TEST_CASSANDRA` is not that script's node.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{cassandra_node, cassandra_store_yaml, free_port, Platform};

fn services() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/services.sh")
}

fn service(verb: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg(services())
        .args([verb, "cassandra"])
        .output()
        .expect("run services.sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

/// Starts the node again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = service("start");
    }
}

const BASE: i64 = 1_700_000_000_000;

fn batch(from: i64, to: i64) -> String {
    (from..to)
        .map(|j| {
            json!({"metric_id": format!("m{}", j % 5), "ts": BASE + j * 100, "value": j})
                .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn a_cassandra_outage_loses_nothing_and_readiness_follows_it() {
    let Some(node) = cassandra_node() else { return };
    let (running, addr) = service("start");
    if !running || addr != node {
        let _: Option<()> = streampulse_testkit::env::skip(format!(
            "{node} is not the node of deploy/local/services.sh ({addr})"
        ));
        return;
    }
    let _restart = Restart;
    let store = cassandra_store_yaml(&node, "outage");
    let config = format!(
        "log:\n  partitions: 1\ncheckpoint:\n  interval: 1s\n{store}job:\n  \
         max_out_of_orderness: 0s\n  idle_timeout: 1h\n  windows:\n    \
         - {{name: tumble_1s, type: tumbling, size: 1s}}\n  detectors: []\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), &config, free_port());
    let api = Platform::serve(&dir.path().join("serve"), &config, free_port());
    assert_eq!(api.get("/readyz").0, 200);
    let post = |body: &str| {
        let (status, answer) = p.post(body, "application/x-ndjson", None).unwrap();
        assert_eq!(status, 200, "{answer}");
    };
    post(&batch(0, 2_000));
    p.wait_drained_to_log(Duration::from_secs(60));

    let (stopped, _) = service("stop");
    assert!(stopped, "services.sh stop cassandra failed");
    let outage = Instant::now();
    // Events keep coming while the store is away: the log takes them.
    for k in 0..4 {
        post(&batch(2_000 + k * 500, 2_500 + k * 500));
        std::thread::sleep(Duration::from_millis(500));
    }
    for platform in [&p, &api] {
        let deadline = Instant::now() + Duration::from_secs(60);
        let unready = loop {
            let (status, body) = platform.get("/readyz");
            if status == 503 {
                break body;
            }
            assert!(Instant::now() < deadline, "/readyz never went 503: {body}");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(unready["status"], "store_unavailable", "{unready}");
        assert_eq!(unready["failing"][0]["component"], "store", "{unready}");
    }
    assert!(p.status()["store_errors"].as_u64().unwrap() > 0);
    if let Some(left) = Duration::from_secs(20).checked_sub(outage.elapsed()) {
        std::thread::sleep(left);
    }
    let (started, _) = service("start");
    assert!(started, "services.sh start cassandra failed");
    for platform in [&p, &api] {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = platform.get("/readyz");
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "/readyz never came back: {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // A last event closes every window before it.
    post(&batch(100_000, 100_001));
    p.wait_drained_to_log(Duration::from_secs(60));
    assert!(p.status()["store_error"].is_null(), "{}", p.status());

    // Brute force over what was sent (0..4000; the closer at j = 100000 opens a window that
    // stays open).
    let sent: Vec<(String, i64, f64)> = (0..4_000i64)
        .map(|j| (format!("m{}", j % 5), BASE + j * 100, j as f64))
        .collect();
    let want: BTreeMap<(String, i64), (u64, f64)> = support::oracle_rows(&config, &sent)
        .into_iter()
        .map(|((m, _, start), (_, count, sum, _, _))| ((m, start), (count, sum)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = p.walk_results(&format!("start={BASE}&end={}", BASE + 400_000));
        let got: BTreeMap<(String, i64), (u64, f64)> = rows
            .iter()
            .map(|((m, _, s), r)| {
                (
                    (m.clone(), *s),
                    (r["count"].as_u64().unwrap(), r["sum"].as_f64().unwrap()),
                )
            })
            .collect();
        if got == want {
            let served = api.walk_results(&format!("start={BASE}&end={}", BASE + 400_000));
            assert_eq!(served, rows, "serve answers what the worker does");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows differ from the brute force: {} rows, {} wanted",
            got.len(),
            want.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
