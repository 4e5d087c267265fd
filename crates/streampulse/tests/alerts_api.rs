//! Alerts end to end: a job with a z-score detector on raw values, a steady series then spikes;
//! `GET /alerts` and `GET /alerts/{id}` return the latest transition of each alert, filter by
//! metric, state, severity and time overlap, survive a restart without duplicates, and reject bad
//! parameters with problem documents.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, Platform};

const T0: i64 = 1_700_000_000_000;

const CONFIG: &str = "\
log:
  partitions: 2
job:
  windows:
    - {name: tumble_10s, type: tumbling, size: 10s}
  detectors:
    - {name: z, type: zscore, series: raw, n: 20, min_points: 10, warning: 4, critical: 8, resolve_after: 3}
";

/// Alternating 10 and 11 (mean 10.5, σ 0.5 over an even history), one event per second from T0.
fn steady(metric: &str, from: i64, to: i64) -> Vec<Value> {
    (from..to)
        .map(|i| json!({"metric_id": metric, "ts": T0 + i * 1000, "value": 10 + i % 2}))
        .collect()
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| e.to_string() + "\n").collect()
}

/// Polls `/alerts` over everything until it holds `n` alerts (apply runs after the log read).
fn wait_alerts(p: &Platform, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = p.get(&format!("/alerts?start={T0}&end={}", T0 + 1_000_000));
        assert_eq!(status, 200, "{body}");
        let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
        if alerts.len() >= n {
            return alerts;
        }
        assert!(
            Instant::now() < deadline,
            "{n} alerts expected: {body}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alert_ids(p: &Platform, query: &str) -> (Vec<String>, Value) {
    let (status, body) = p.get(&format!("/alerts?{query}"));
    assert_eq!(status, 200, "{query}: {body}");
    let ids = body["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    (ids, body)
}

#[test]
fn alerts_are_listed_filtered_and_fetched_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());

    // cpu: steady, a critical spike at 30 s, then normal points that resolve it.
    let mut events = steady("cpu", 0, 30);
    events.push(json!({"metric_id": "cpu", "ts": T0 + 30_000, "value": 100}));
    events.extend(steady("cpu", 31, 40));
    // mem: steady, a warning-level spike at 35 s (z = 5), nothing after: still firing.
    events.extend(steady("mem", 0, 35));
    events.push(json!({"metric_id": "mem", "ts": T0 + 35_000, "value": 13}));
    // disk: steady only, never alerts.
    events.extend(steady("disk", 0, 40));
    let (status, body) = p
        .post(&ndjson(&events), "application/x-ndjson", None)
        .unwrap();
    assert_eq!(status, 200, "{body}");
    p.wait_drained_to_log(Duration::from_secs(20));

    let alerts = wait_alerts(&p, 2);
    let (ids, body) = alert_ids(&p, &format!("start={T0}&end={}", T0 + 1_000_000));
    assert_eq!(body["job"], "default");
    assert_eq!(body["time_unit"], "ms");
    assert_eq!(body["count"], 2);
    assert_eq!(body["truncated"], false);
    // Newest first_ts first.
    let (mem, cpu) = (&alerts[0], &alerts[1]);
    assert_eq!(
        ids,
        vec![mem["id"].as_str().unwrap(), cpu["id"].as_str().unwrap()]
    );

    assert_eq!(cpu["metric_id"], "cpu");
    assert_eq!(cpu["detector"], "z");
    assert_eq!(cpu["series"], "raw");
    assert_eq!(cpu["state"], "resolved");
    assert_eq!(cpu["severity"], "critical");
    assert_eq!(cpu["first_ts"], T0 + 30_000);
    assert_eq!(cpu["last_ts"], T0 + 30_000);
    assert_eq!(
        cpu["resolved_ts"],
        T0 + 33_000,
        "resolve_after: 3 normal points"
    );
    assert_eq!(cpu["sequence"], 1, "opened, then resolved");
    assert_eq!(cpu["observed"], 100.0);
    assert_eq!(cpu["expected"], 10.5);
    assert_eq!(cpu["threshold"], 8.0);
    assert!(cpu["peak_score"].as_f64().unwrap() > 8.0, "{cpu}");
    assert_eq!(cpu["id"].as_str().unwrap().len(), 16);

    assert_eq!(mem["metric_id"], "mem");
    assert_eq!(mem["state"], "firing");
    assert_eq!(mem["severity"], "warning");
    assert_eq!(mem["first_ts"], T0 + 35_000);
    assert_eq!(mem["resolved_ts"], Value::Null);
    assert_eq!(mem["sequence"], 0);
    assert_eq!(mem["score"], 5.0);
    assert_eq!(mem["threshold"], 4.0);

    let (cpu_id, mem_id) = (cpu["id"].as_str().unwrap(), mem["id"].as_str().unwrap());
    let all = format!("start={T0}&end={}", T0 + 1_000_000);
    // Filters.
    assert_eq!(
        alert_ids(&p, &format!("{all}&metric_id=cpu")).0,
        vec![cpu_id]
    );
    assert_eq!(
        alert_ids(&p, &format!("{all}&metric_id=disk")).0,
        Vec::<String>::new()
    );
    assert_eq!(
        alert_ids(&p, &format!("{all}&state=firing")).0,
        vec![mem_id]
    );
    assert_eq!(
        alert_ids(&p, &format!("{all}&state=resolved")).0,
        vec![cpu_id]
    );
    assert_eq!(
        alert_ids(&p, &format!("{all}&severity=critical")).0,
        vec![cpu_id]
    );
    assert_eq!(
        alert_ids(
            &p,
            &format!("{all}&severity=warning&state=firing&metric_id=mem")
        )
        .0,
        vec![mem_id]
    );
    assert_eq!(
        alert_ids(&p, &format!("{all}&severity=warning&metric_id=cpu")).0,
        Vec::<String>::new()
    );
    // Limit: the newest one, and the answer says it was cut.
    let (ids, body) = alert_ids(&p, &format!("{all}&limit=1"));
    assert_eq!(
        (ids, &body["truncated"], &body["count"]),
        (vec![mem_id.to_string()], &json!(true), &json!(1))
    );
    assert_eq!(
        alert_ids(&p, &format!("{all}&limit=2")).1["truncated"],
        false
    );
    // Overlap of [first_ts, last_ts] with [start, end): cpu's episode is the single point 30 s.
    let range = |s: i64, e: i64| alert_ids(&p, &format!("start={}&end={}", T0 + s, T0 + e)).0;
    assert_eq!(range(0, 30_000), Vec::<String>::new());
    assert_eq!(range(0, 30_001), vec![cpu_id]);
    assert_eq!(range(30_000, 30_001), vec![cpu_id]);
    assert_eq!(range(30_001, 35_000), Vec::<String>::new());
    assert_eq!(range(30_001, 35_001), vec![mem_id]);
    assert_eq!(
        range(35_000, 35_000),
        Vec::<String>::new(),
        "an empty range"
    );
    // RFC 3339 works like everywhere else.
    let (ids, _) = alert_ids(&p, "start=2023-11-14T22:13:50Z&end=2023-11-14T22:13:51Z");
    assert_eq!(ids, vec![cpu_id], "T0 + 30 s = 2023-11-14T22:13:50Z");

    // One alert by id: the same document as in the list.
    let (status, one) = p.get(&format!("/alerts/{cpu_id}"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(&one, cpu);
    let (status, one) = p.get(&format!("/alerts/{mem_id}"));
    assert_eq!((status, &one), (200, mem));

    // SIGKILL, most likely before any checkpoint: the replay of the log rewrites the same alerts
    // (deterministic ids, latest transition kept), without duplicates.
    p.kill();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    p.wait_drained_to_log(Duration::from_secs(20));
    let alerts = wait_alerts(&p, 2);
    assert_eq!(alerts, vec![mem.clone(), cpu.clone()]);
    // A clean stop and start keeps them too.
    assert!(p.interrupt().success());
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let (ids, body) = alert_ids(&p, &all);
    assert_eq!(ids, vec![mem_id, cpu_id]);
    assert_eq!(body["alerts"], json!([mem, cpu]));
}

#[test]
fn bad_alert_requests_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let range = format!("start={T0}&end={}", T0 + 1000);
    for (query, expect) in [
        (
            format!("{range}&state=open"),
            "parameter 'state' must be one of: firing, resolved",
        ),
        (
            format!("{range}&state=Firing"),
            "must be one of: firing, resolved",
        ),
        (
            format!("{range}&severity=high"),
            "parameter 'severity' must be one of: warning, critical",
        ),
        (
            format!("{range}&window=tumble_10s"),
            "unknown query parameter 'window'",
        ),
        (format!("{range}&limit=0"), "parameter 'limit'"),
        (format!("end={T0}"), "parameter 'start' is required"),
        (format!("start={}&end={T0}", T0 + 1), "is before 'start'"),
        ("start=yesterday&end=1".to_string(), "parameter 'start'"),
    ] {
        let (status, body) = p.get(&format!("/alerts?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["status"], 400, "{query}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(expect), "{query}: {detail}");
    }
    // An empty store answers an empty list, and an unknown id is a 404 problem.
    let (status, body) = p.get(&format!("/alerts?{range}"));
    assert_eq!(
        (status, &body["count"], &body["alerts"]),
        (200, &json!(0), &json!([]))
    );
    let mut resp = support::agent()
        .get(&format!("{}/alerts/0123456789abcdef", p.base))
        .call()
        .expect("GET");
    assert_eq!(resp.status(), 404);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["status"], 404);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no alert '0123456789abcdef'"),
        "{body}"
    );
}
