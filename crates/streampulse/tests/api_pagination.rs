//! Pagination over real HTTP: walking `/metrics` with `limit` and `cursor` over more rows than a
//! page returns exactly the unpaged answer, in order, with no row skipped or repeated, on both
//! access paths (all metrics by time; one metric by window); a bad cursor is a 400.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{free_port, Platform};

const T0: i64 = 1_700_000_000_000;

const CONFIG: &str = r#"
log:
  partitions: 2
job:
  idle_timeout: 500ms
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s }
    - { name: tumble_20s, type: tumbling, size: 20s }
"#;

/// 10 metrics × 10 windows of 10 s (and 5 of 20 s): 150 result rows.
fn load(p: &Platform) {
    let mut body = String::new();
    // In time order, so none is late.
    for w in 0..10 {
        for m in 0..10 {
            let e = json!({"metric_id": format!("m{m}"), "ts": T0 + w * 10_000 + 5_000, "value": m * 100 + w});
            body.push_str(&format!("{e}\n"));
        }
    }
    let (status, reply) = p
        .post(&body, "application/x-ndjson", None)
        .expect("post events");
    assert_eq!(status, 200, "{reply}");
    p.wait_drained(Duration::from_secs(30));
}

fn row_key(r: &Value) -> (String, String, i64) {
    (
        r["metric_id"].as_str().unwrap_or_default().to_string(),
        r["window"].as_str().unwrap_or_default().to_string(),
        r["window_start"].as_i64().unwrap_or_default(),
    )
}

/// Every page of `query` at `limit` rows, following `next_cursor` until it is null.
fn walk(p: &Platform, query: &str, limit: usize) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let c = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (status, body) = p.get(&format!("/metrics?{query}&limit={limit}{c}"));
        assert_eq!(status, 200, "{body}");
        let rows = body["results"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= limit, "{body}");
        out.extend(rows.iter().map(row_key));
        match &body["next_cursor"] {
            Value::Null => {
                assert_eq!(body["truncated"], false);
                return out;
            }
            Value::String(c) => {
                assert_eq!(rows.len(), limit, "a cut page is full");
                cursor = Some(c.clone());
            }
            other => panic!("next_cursor must be a string or null: {other}"),
        }
    }
    panic!("the walk did not end");
}

#[test]
fn walking_pages_returns_every_row_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    load(&p);
    let range = format!("start={T0}&end={}", T0 + 200_000);

    // All metrics: ordered by (window_start, metric_id, window).
    let all = p.results(T0, T0 + 200_000, None);
    assert_eq!(all.len(), 150);
    let want: Vec<_> = all.iter().map(row_key).collect();
    for limit in [1, 7, 50, 149, 150, 151] {
        let got = walk(&p, &range, limit);
        assert_eq!(got, want, "limit={limit}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), 150);
    }

    // One metric: ordered by (window, window_start).
    let one = p.results(T0, T0 + 200_000, Some("m3"));
    assert_eq!(one.len(), 15);
    let want: Vec<_> = one.iter().map(row_key).collect();
    assert_eq!(walk(&p, &format!("{range}&metric_id=m3"), 4), want);
    assert_eq!(
        walk(&p, &format!("{range}&metric_id=m3&window=tumble_10s"), 3),
        want[..10].to_vec()
    );

    // Cursors that are not this endpoint's are 400 problem documents.
    for bad in ["zz", "abc", "00", "5b2261", "%5B%5D"] {
        let (status, body) = p.get(&format!("/metrics?{range}&cursor={bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("cursor"),
            "{body}"
        );
    }
    let (_, page) = p.get(&format!("/metrics?{range}&limit=2"));
    let cursor = page["next_cursor"].as_str().expect("a cursor").to_string();
    let (status, body) = p.get(&format!("/alerts?{range}&cursor={cursor}"));
    assert_eq!(status, 400, "a results cursor on /alerts: {body}");
}

const ALERT_CONFIG: &str = r#"
log:
  partitions: 2
job:
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s }
  detectors:
    - { name: z, type: zscore, series: raw, n: 20, min_points: 10, warning: 4, critical: 8, resolve_after: 3 }
"#;

#[test]
fn walking_alert_pages_returns_every_alert_once_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), ALERT_CONFIG, free_port());
    // 12 metrics, steady then one spike each; spikes share first_ts in fours (ties go by id).
    let mut events: Vec<Value> = Vec::new();
    for m in 0..12 {
        for i in 0..30 {
            events.push(
                json!({"metric_id": format!("m{m}"), "ts": T0 + i * 1000, "value": 10 + i % 2}),
            );
        }
        events.push(
            json!({"metric_id": format!("m{m}"), "ts": T0 + (30 + m % 3) * 1000, "value": 100}),
        );
    }
    events.sort_by_key(|e| e["ts"].as_i64());
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
    let range = format!("start={T0}&end={}", T0 + 1_000_000);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let all: Vec<Value> = loop {
        let (status, body) = p.get(&format!("/alerts?{range}"));
        assert_eq!(status, 200, "{body}");
        let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
        if alerts.len() >= 12 {
            break alerts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "12 alerts expected: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(all.len(), 12);
    let key = |a: &Value| {
        (
            a["first_ts"].as_i64().unwrap_or_default(),
            a["id"].as_str().unwrap_or_default().to_string(),
        )
    };
    let want: Vec<_> = all.iter().map(key).collect();
    assert!(
        want.windows(2).all(|w| w[0] > w[1]),
        "newest first: {want:?}"
    );

    for limit in [1, 5, 11, 12] {
        let mut got = Vec::new();
        let mut cursor = String::new();
        loop {
            let (status, body) = p.get(&format!("/alerts?{range}&limit={limit}{cursor}"));
            assert_eq!(status, 200, "{body}");
            got.extend(
                body["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(key),
            );
            match body["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(got, want, "limit={limit}");
    }
}
