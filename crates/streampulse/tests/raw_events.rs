//! Raw events over real HTTP: with `job.keep_raw_events`, `GET /events?metric_id&start&end` returns
//! exactly the events ingested for the metric (values, per-event tags, order by (ts, partition,
//! offset)), pages through them without skipping or repeating, and a SIGKILL and restart on the
//! same directory leaves each event stored once. Without the option the endpoint is a 409.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{free_port, Platform};

const T0: i64 = 1_700_000_000_000;
const METRICS: [&str; 2] = ["cpu.a", "mem.b"];

fn config(keep: bool) -> String {
    format!(
        r#"
log:
  partitions: 2
checkpoint:
  interval: 200ms
# The events are from 2023: beyond the default 7d retention of raw events.
store:
  retention:
    raw_events: null
job:
  max_out_of_orderness: 2s
  idle_timeout: 500ms
  keep_raw_events: {keep}
  windows:
    - {{ name: tumble_10s, type: tumbling, size: 10s }}
  detectors: []
"#
    )
}

/// The `i`th event of `metric`: times jump back and forth (some are late, some share a time),
/// and every event has tags of its own.
fn event(metric: &str, i: i64) -> Value {
    json!({
        "metric_id": metric,
        "ts": T0 + ((i * 7) % 20) * 1_000,
        "value": i as f64 + 0.25,
        "tags": {"host": format!("h{}", i % 3), "seq": i.to_string()},
    })
}

fn post(p: &Platform, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
}

/// (ts, value, tags) of each event of `metric` among `sent`, in the order the API must return
/// them: by time, and in ingest order (= offset order in the metric's one partition) for equal
/// times.
fn expected(sent: &[Value], metric: &str) -> Vec<(i64, f64, Value)> {
    let mut rows: Vec<(i64, f64, Value)> = sent
        .iter()
        .filter(|e| e["metric_id"] == metric)
        .map(|e| {
            (
                e["ts"].as_i64().unwrap_or_default(),
                e["value"].as_f64().unwrap_or_default(),
                e["tags"].clone(),
            )
        })
        .collect();
    // Stable: equal times keep the ingest order.
    rows.sort_by_key(|r| r.0);
    rows
}

fn range() -> String {
    format!("start={T0}&end={}", T0 + 60_000)
}

/// Every raw event of `metric`, walking pages of `limit`; also returns the number of pages.
fn walk(p: &Platform, metric: &str, limit: usize) -> (Vec<Value>, usize) {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for pages in 1..1_000 {
        let mut path = format!("/events?metric_id={metric}&{}&limit={limit}", range());
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = p.get(&path);
        assert_eq!(status, 200, "{path}: {body}");
        let page = body["events"].as_array().cloned().unwrap_or_default();
        assert_eq!(body["count"], page.len(), "{body}");
        assert_eq!(body["job"], "default", "{body}");
        assert_eq!(body["time_unit"], "ms", "{body}");
        rows.extend(page);
        match body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(body["truncated"], true, "{body}");
                cursor = Some(c.to_string());
            }
            None => {
                assert_eq!(body["truncated"], false, "{body}");
                return (rows, pages);
            }
        }
    }
    panic!("more than 1000 pages");
}

/// Checks that the stored raw events of every metric are exactly `sent`'s, each once.
fn check(p: &Platform, sent: &[Value]) {
    for metric in METRICS {
        let (rows, _) = walk(p, metric, 10_000);
        let got: Vec<(i64, f64, Value)> = rows
            .iter()
            .map(|r| {
                assert_eq!(r["metric_id"], metric, "{r}");
                (
                    r["ts"].as_i64().unwrap_or_default(),
                    r["value"].as_f64().unwrap_or_default(),
                    r["tags"].clone(),
                )
            })
            .collect();
        assert_eq!(got, expected(sent, metric), "{metric}");
        // One metric lives in one partition, where offsets are unique and follow ingest order
        // (the `seq` tag): equal times come by offset.
        let partitions: Vec<&Value> = rows.iter().map(|r| &r["partition"]).collect();
        assert!(partitions.windows(2).all(|w| w[0] == w[1]), "{rows:?}");
        let mut by_seq: Vec<(i64, u64)> = rows
            .iter()
            .map(|r| {
                let seq = r["tags"]["seq"].as_str().unwrap_or_default();
                (
                    seq.parse().unwrap_or_default(),
                    r["offset"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        by_seq.sort();
        assert!(
            by_seq.windows(2).all(|w| w[0].1 < w[1].1),
            "offsets must be unique and in ingest order: {by_seq:?}"
        );
    }
}

#[test]
fn raw_events_are_served_exactly_paged_and_once_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = Platform::start(dir.path(), &config(true), port);
    let all: Vec<Value> = (0..25).flat_map(|i| METRICS.map(|m| event(m, i))).collect();
    let (first, second) = all.split_at(30);
    post(&p, first);
    p.wait_drained_to_log(Duration::from_secs(30));
    check(&p, first);

    // Pages of 4 hold what one page holds, in the same order.
    let (one, pages) = walk(&p, "cpu.a", 10_000);
    assert_eq!(pages, 1);
    let (paged, pages) = walk(&p, "cpu.a", 4);
    assert_eq!(paged, one);
    assert_eq!(pages, one.len().div_ceil(4), "{} rows", one.len());
    assert!(pages > 1);

    // A time range keeps the events whose ts is in [start, end); RFC 3339 works as for /metrics.
    let (status, body) = p.get(&format!(
        "/events?metric_id=cpu.a&start=2023-11-14T22:13:23Z&end={}",
        T0 + 5_000
    ));
    assert_eq!(status, 200, "{body}");
    let times: Vec<i64> = body["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| r["ts"].as_i64().unwrap_or_default())
        .collect();
    let want: Vec<i64> = expected(first, "cpu.a")
        .into_iter()
        .map(|r| r.0)
        .filter(|ts| (T0 + 3_000..T0 + 5_000).contains(ts))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(times, want);

    // Raw data is per metric: no metric_id is a 400, as is an over-long range.
    let (status, kind, body) = p.get_typed(&format!("/events?{}", range()));
    assert_eq!(status, 400, "{body}");
    assert_eq!(kind, "application/problem+json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("metric_id"),
        "{body}"
    );
    let (status, body) = p.get(&format!(
        "/events?metric_id=cpu.a&start={T0}&end={}",
        T0 + 40 * 86_400_000
    ));
    assert_eq!(status, 400, "{body}");
    let (status, body) = p.get(&format!("/events?metric_id=cpu.a&{}&cursor=zz", range()));
    assert_eq!(status, 400, "{body}");

    // Crash right after the second batch is processed: some of its raw rows may be applied but
    // not checkpointed, so the restart replays them over rows that are already there.
    post(&p, second);
    p.wait_drained_to_log(Duration::from_secs(30));
    p.kill();
    let p = Platform::start(dir.path(), &config(true), port);
    p.wait_drained_to_log(Duration::from_secs(30));
    check(&p, &all);
    // And once more after a clean stop and start.
    let status = p.interrupt();
    assert!(status.success(), "{status}");
    let p = Platform::start(dir.path(), &config(true), port);
    p.wait_drained_to_log(Duration::from_secs(30));
    check(&p, &all);
    p.kill();
}

#[test]
fn without_keep_raw_events_get_events_is_a_409() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), &config(false), free_port());
    // POST on the same path still ingests.
    post(&p, &[event("cpu.a", 0), event("cpu.a", 1)]);
    p.wait_drained_to_log(Duration::from_secs(30));
    let (status, kind, body) = p.get_typed(&format!("/events?metric_id=cpu.a&{}", range()));
    assert_eq!(status, 409, "{body}");
    assert_eq!(kind, "application/problem+json");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("keep_raw_events"),
        "{body}"
    );
    p.kill();
}
