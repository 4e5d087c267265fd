//! Store retention over real HTTP: events from three hours ago and from the last half hour, with
//! raw events kept, late events and alerts. Stored without TTLs, every row is there; after a
//! restart with 1h TTLs on every table and a 200ms check interval, exactly the rows whose event
//! time is more than an hour old disappear from `GET /metrics`, `/events`, `/events/late` and
//! `/alerts` (but a still-firing alert stays), the recent ones stay unchanged, and old events
//! ingested while retention runs are gone too while recent ones are served.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, Platform};

const HOUR: i64 = 3_600_000;

fn config(retention: &str) -> String {
    format!(
        r#"
log:
  partitions: 2
checkpoint:
  interval: 200ms
store:
  retention:
{retention}
job:
  max_out_of_orderness: 2s
  idle_timeout: 500ms
  keep_raw_events: true
  windows:
    - {{ name: tumble_10s, type: tumbling, size: 10s }}
  detectors:
    - {{name: z, type: zscore, series: raw, n: 20, min_points: 10, warning: 4, critical: 8, resolve_after: 3}}
"#
    )
}

/// Nothing expires (raw events are kept for 7 days by default: null keeps them forever).
const KEEP: &str = "    raw_events: null";

const EXPIRE: &str = "    results: 1h
    late_events: 1h
    alerts: 1h
    raw_events: 1h
    check_interval: 200ms";

use streampulse_core::clock::now_ms;

/// `t` rounded down to a 10 s window boundary.
fn aligned(t: i64) -> i64 {
    t - t.rem_euclid(10_000)
}

/// One event per second from `base + from` s to `base + to` s (exclusive), alternating 10 and 11.
fn steady(metric: &str, base: i64, from: i64, to: i64) -> Vec<Value> {
    (from..to)
        .map(|i| json!({"metric_id": metric, "ts": base + i * 1000, "value": 10 + i % 2}))
        .collect()
}

fn post(p: &Platform, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
}

/// Every stored row, as the API serves it, over `[start, end)`.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    /// By (metric, window, window_start).
    results: BTreeMap<(String, String, i64), Value>,
    /// By metric, in the API's order.
    raw: BTreeMap<String, Vec<Value>>,
    late: Vec<Value>,
    /// By id.
    alerts: BTreeMap<String, Value>,
}

const METRICS: [&str; 5] = ["old.cpu", "old.mem", "new.cpu", "old2.disk", "new2.disk"];

fn stored(p: &Platform, start: i64, end: i64) -> Stored {
    let range = format!("start={start}&end={end}");
    let results = p.walk_results(&range);
    let mut raw = BTreeMap::new();
    for metric in METRICS {
        let (status, body) = p.get(&format!("/events?metric_id={metric}&{range}&limit=10000"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["truncated"], false, "{body}");
        let rows = body["events"].as_array().cloned().unwrap_or_default();
        if !rows.is_empty() {
            raw.insert(metric.to_string(), rows);
        }
    }
    let (status, body) = p.get(&format!("/events/late?{range}&limit=10000"));
    assert_eq!(status, 200, "{body}");
    let late = body["late_events"].as_array().cloned().unwrap_or_default();
    let (status, body) = p.get(&format!("/alerts?{range}&limit=10000"));
    assert_eq!(status, 200, "{body}");
    let alerts = body["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a["id"].as_str().unwrap_or_default().to_string(), a))
        .collect();
    Stored {
        results,
        raw,
        late,
        alerts,
    }
}

/// The rows of `all` whose event time is at or after `cutoff`, and the alerts still firing: what
/// retention must keep.
fn recent(all: &Stored, cutoff: i64) -> Stored {
    let ts = |v: &Value, field: &str| v[field].as_i64().unwrap_or_default();
    Stored {
        results: all
            .results
            .iter()
            .filter(|(_, r)| ts(r, "window_end") >= cutoff)
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect(),
        raw: all
            .raw
            .iter()
            .map(|(m, rows)| {
                let kept: Vec<Value> = rows
                    .iter()
                    .filter(|r| ts(r, "ts") >= cutoff)
                    .cloned()
                    .collect();
                (m.clone(), kept)
            })
            .filter(|(_, rows)| !rows.is_empty())
            .collect(),
        late: all
            .late
            .iter()
            .filter(|e| ts(e, "ts") >= cutoff)
            .cloned()
            .collect(),
        alerts: all
            .alerts
            .iter()
            .filter(|(_, a)| a["state"] == "firing" || ts(a, "resolved_ts") >= cutoff)
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect(),
    }
}

/// Polls until `done` holds of what is stored, and returns it.
fn wait_for(p: &Platform, start: i64, end: i64, done: impl Fn(&Stored) -> bool) -> Stored {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stored(p, start, end);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "retention did not get there in 30 s: {s:?}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rows_older_than_their_ttl_disappear_and_recent_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let now = now_ms();
    let old = aligned(now - 3 * HOUR);
    let new = aligned(now - 10 * 60_000);
    let (start, end) = (old - HOUR, now + HOUR);

    // Without TTLs.
    let p = Platform::start(dir.path(), &config(KEEP), port);
    // old.cpu: a critical spike at 30 s, resolved by the normal points after it.
    let mut events = steady("old.cpu", old, 0, 30);
    events.push(json!({"metric_id": "old.cpu", "ts": old + 30_000, "value": 100}));
    events.extend(steady("old.cpu", old, 31, 40));
    // old.mem: a spike at 35 s and nothing after: firing for ever.
    events.extend(steady("old.mem", old, 0, 35));
    events.push(json!({"metric_id": "old.mem", "ts": old + 35_000, "value": 13}));
    post(&p, &events);
    p.wait_drained(Duration::from_secs(30));
    // new.cpu, ten minutes ago: resolved too.
    let mut events = steady("new.cpu", new, 0, 30);
    events.push(json!({"metric_id": "new.cpu", "ts": new + 30_000, "value": 100}));
    events.extend(steady("new.cpu", new, 31, 40));
    post(&p, &events);
    p.wait_drained(Duration::from_secs(30));
    // Two late events of new.cpu: one from three hours ago, one from half an hour ago.
    let late_old = old + 5_500;
    let late_new = now - 30 * 60_000;
    post(
        &p,
        &[
            json!({"metric_id": "new.cpu", "ts": late_old, "value": 1}),
            json!({"metric_id": "new.cpu", "ts": late_new, "value": 2}),
        ],
    );
    p.wait_drained(Duration::from_secs(30));

    let all = wait_for(&p, start, end, |s| s.alerts.len() == 3 && s.late.len() == 2);
    // 4 windows of 10 s per metric; every event raw (late ones too); 2 late; 3 alerts.
    assert_eq!(all.results.len(), 12, "{:?}", all.results.keys());
    let raw_counts: BTreeMap<&str, usize> =
        all.raw.iter().map(|(m, r)| (m.as_str(), r.len())).collect();
    assert_eq!(
        raw_counts,
        BTreeMap::from([("new.cpu", 42), ("old.cpu", 40), ("old.mem", 36)])
    );
    let late_ts: Vec<&Value> = all.late.iter().map(|e| &e["ts"]).collect();
    assert_eq!(late_ts, [&json!(late_old), &json!(late_new)]);
    let states: BTreeMap<&str, &Value> = all
        .alerts
        .values()
        .map(|a| (a["metric_id"].as_str().unwrap_or_default(), &a["state"]))
        .collect();
    assert_eq!(
        states,
        BTreeMap::from([
            ("new.cpu", &json!("resolved")),
            ("old.cpu", &json!("resolved")),
            ("old.mem", &json!("firing")),
        ])
    );
    let status = p.interrupt();
    assert!(status.success(), "{status}");

    // With 1h TTLs: the old rows go, except the firing alert; the recent ones stay as they were.
    let p = Platform::start(dir.path(), &config(EXPIRE), port);
    let want = recent(&all, now - HOUR);
    assert_eq!(want.results.len(), 4);
    assert_eq!(want.raw["new.cpu"].len(), 41);
    assert_eq!(want.raw.len(), 1);
    assert_eq!(want.late.len(), 1);
    assert_eq!(want.alerts.len(), 2);
    let got = wait_for(&p, start, end, |s| s.results.len() == want.results.len());
    assert_eq!(got, want);
    let old_cpu_alert = all
        .alerts
        .values()
        .find(|a| a["metric_id"] == "old.cpu")
        .and_then(|a| a["id"].as_str())
        .unwrap_or_default()
        .to_string();
    let (status, body) = p.get(&format!("/alerts/{old_cpu_alert}"));
    assert_eq!(status, 404, "{body}");
    // Many more sweeps delete nothing more.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored(&p, start, end), want);
    assert!(
        p.log()
            .contains("store retention: deleted rows past their TTL"),
        "{}",
        p.log()
    );
    // The exposition counts exactly what went, per table.
    let exposition = p.scrape();
    let sample = |series: &str| -> u64 {
        exposition
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{exposition}"))
    };
    let rows = |s: &Stored| s.raw.values().map(Vec::len).sum::<usize>() as u64;
    assert_eq!(
        [
            sample("streampulse_store_rows_expired_total{table=\"results\"}"),
            sample("streampulse_store_rows_expired_total{table=\"late_events\"}"),
            sample("streampulse_store_rows_expired_total{table=\"alerts\"}"),
            sample("streampulse_store_rows_expired_total{table=\"raw_events\"}"),
        ],
        [
            (all.results.len() - want.results.len()) as u64,
            (all.late.len() - want.late.len()) as u64,
            (all.alerts.len() - want.alerts.len()) as u64,
            rows(&all) - rows(&want),
        ]
    );
    assert_eq!(
        sample("streampulse_store_retention_sweeps_total{outcome=\"failed\"}"),
        0
    );
    assert!(sample("streampulse_store_retention_sweeps_total{outcome=\"ok\"}") >= 2);

    // Ingested while retention runs: two hours old (on time or late, depending on the
    // partition's watermark) goes; five minutes old stays.
    let old2 = aligned(now - 2 * HOUR);
    let new2 = aligned(now - 5 * 60_000);
    let mut events = steady("old2.disk", old2, 0, 20);
    events.extend(steady("new2.disk", new2, 0, 20));
    post(&p, &events);
    p.wait_drained(Duration::from_secs(30));
    let got = wait_for(&p, start, end, |s| {
        s.results.len() == 6 && !s.raw.contains_key("old2.disk")
    });
    assert_eq!(got.raw["new2.disk"].len(), 20);
    assert!(
        got.results
            .keys()
            .all(|k| k.0 == "new.cpu" || k.0 == "new2.disk"),
        "{:?}",
        got.results.keys()
    );
    let before = Stored {
        results: got
            .results
            .iter()
            .filter(|(k, _)| k.0 != "new2.disk")
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect(),
        raw: got
            .raw
            .iter()
            .filter(|(m, _)| *m != "new2.disk")
            .map(|(m, r)| (m.clone(), r.clone()))
            .collect(),
        ..got.clone()
    };
    assert_eq!(before, want, "the rows kept before are still there");
    p.kill();
}
