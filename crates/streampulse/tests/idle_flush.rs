//! A stream that stops still gets its last windows: within `idle_timeout` plus a second of the
//! last acknowledged event, the windows holding data are emitted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{free_port, Platform};

const CONFIG: &str = r#"
log:
  partitions: 2
job:
  idle_timeout: 2s
  windows:
    - { name: tumble_1m, type: tumbling, size: 1m }
    - { name: session_30s, type: session, gap: 30s }
"#;

#[test]
fn last_windows_are_emitted_within_idle_timeout_plus_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let events: String = (0..50)
        .map(|i| json!({"metric_id": format!("m{}", i % 5), "ts": 1_700_000_000_000i64 + i * 100, "value": i}).to_string() + "\n")
        .collect();
    let (status, _) = p.post(&events, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 200);
    let acked = Instant::now();

    // Nothing can fire on event time alone: the watermark is far behind every window's end.
    let early = p.results(1_699_999_000_000, 1_700_001_000_000, None);
    assert!(early.is_empty(), "{early:?}");

    let deadline = Duration::from_secs(3);
    loop {
        let rows = p.results(1_699_999_000_000, 1_700_001_000_000, None);
        if rows.len() == 10 {
            let elapsed = acked.elapsed();
            assert!(elapsed <= deadline, "took {elapsed:?}");
            let total: u64 = rows
                .iter()
                .filter(|r| r["window"] == "tumble_1m")
                .map(|r| r["count"].as_u64().unwrap())
                .sum();
            assert_eq!(total, 50);
            break;
        }
        assert!(
            acked.elapsed() <= deadline,
            "only {} of 10 windows after {:?}",
            rows.len(),
            acked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = p.status();
    let flushes: u64 = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["idle_flushes"].as_u64().unwrap())
        .sum();
    assert!(flushes >= 1, "{status}");
}
