//! Early firing over a real WebSocket client: with `job.early_firing`, subscribers get
//! `"partial": true` results of windows that have not fired, which are never stored, and then the
//! final result. Its own test binary: sharing one with the lag test (`websocket.rs`) would load
//! the 2 cores while that test times a fast client against a bounded ring.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{free_port, ws_next as next, ws_open, Platform};

const CONFIG: &str = r#"
log:
  partitions: 2
job:
  max_out_of_orderness: 0s
  idle_timeout: 1h
  early_firing: 100ms
  windows:
    - { name: tumble_1s, type: tumbling, size: 1s }
    - { name: tumble_2s, type: tumbling, size: 2s }
  detectors: []
"#;

#[test]
fn early_firing_pushes_partial_results_that_are_never_stored() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let mut ws = ws_open(&p, "?metrics=partial.m&windows=tumble_2s").expect("connect");
    assert_eq!(next(&mut ws)["type"], "subscribed");
    // Four events in tumble_2s's window [0 s, 2 s): it stays open (tumble_1s's first fires).
    let body: String = [100, 600, 1_100, 1_500]
        .iter()
        .map(|ms| {
            json!({"metric_id": "partial.m", "ts": 1_700_000_000_000i64 + ms, "value": 2.0})
                .to_string()
                + "\n"
        })
        .collect();
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
    // Partials keep coming while the window is open; the latest shows all four events.
    let deadline = Instant::now() + Duration::from_secs(20);
    let partial = loop {
        let m = next(&mut ws);
        if m["type"] == "result" {
            assert_eq!(
                m["partial"], true,
                "only partials before the window fires: {m}"
            );
            assert_eq!(m["window"], "tumble_2s");
            if m["count"] == 4 {
                break m;
            }
        }
        assert!(Instant::now() < deadline, "no partial with all 4 events");
    };
    assert_eq!(partial["sum"], 8.0);
    assert_eq!(partial["window_start"], 1_700_000_000_000i64);
    // A view, not a record: the store has no row for the open window (tumble_1s has fired).
    let (status, stored) = p
        .get("/metrics?start=1700000000000&end=1700000010000&metric_id=partial.m&window=tumble_2s");
    assert_eq!(status, 200);
    assert_eq!(stored["results"], json!([]), "{stored}");
    // An event past the window's end fires it: the final result follows, without the flag.
    let late = json!({"metric_id": "partial.m", "ts": 1_700_000_002_500i64, "value": 1.0});
    let (status, _) = p
        .post(&late.to_string(), "application/json", None)
        .expect("post");
    assert_eq!(status, 200);
    let fin = loop {
        let m = next(&mut ws);
        if m["type"] == "result"
            && m["partial"].is_null()
            && m["window_start"] == 1_700_000_000_000i64
        {
            break m;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "no final result"
        );
    };
    assert_eq!(
        (fin["count"].clone(), fin["revision"].clone()),
        (json!(4), json!(0))
    );
    let scrape = p.scrape();
    let partials = scrape
        .lines()
        .find(|l| {
            l.starts_with("streampulse_window_results_total")
                && l.contains(r#"window="tumble_2s""#)
                && l.contains(r#"kind="partial""#)
        })
        .unwrap_or_else(|| panic!("no partial counter in\n{scrape}"));
    let n: f64 = partials.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{partials}");
}
