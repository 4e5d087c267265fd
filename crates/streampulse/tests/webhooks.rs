//! Alert webhooks end to end, against real HTTP receivers run by the test:
//!
//! - a flaky receiver (500 for the first two attempts of each delivery, then 200) gets every
//!   transition of every alert, in sequence order per alert, exactly once after dedupe by
//!   (id, sequence);
//! - a receiver that accepts connections and never answers does not slow ingest or processing
//!   down: the webhook's counters show failing attempts and a full queue, the process stays
//!   healthy and stops promptly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, Platform};

const T0: i64 = 1_700_000_000_000;

/// One request as the receiver saw it, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    idempotency_key: String,
    content_type: String,
    body: Value,
    status: u16,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A tiny HTTP/1.1 receiver on 127.0.0.1: answers 500 to the first `failures` attempts of each
/// Idempotency-Key, then 200. Keeps connections alive. Returns its URL and what it received.
fn flaky_receiver(failures: usize) -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/alerts", listener.local_addr().unwrap());
    let log: Log = Arc::default();
    let shared = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = shared.clone();
            std::thread::spawn(move || serve_connection(stream, &log, failures));
        }
    });
    (url, log)
}

fn serve_connection(stream: TcpStream, log: &Log, failures: usize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers: HashMap<String, String> = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let key = headers.get("idempotency-key").cloned().unwrap_or_default();
        let status = {
            let mut log = log.lock().unwrap();
            let earlier = log.iter().filter(|r| r.idempotency_key == key).count();
            let status = if earlier < failures { 500 } else { 200 };
            log.push(Received {
                idempotency_key: key,
                content_type: headers.get("content-type").cloned().unwrap_or_default(),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                status,
            });
            status
        };
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let response = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n");
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A receiver that accepts every connection and never answers (nor closes).
fn silent_receiver() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => return,
            }
        }
    });
    url
}

fn config(webhook: &str, webhook_queue: usize) -> String {
    format!(
        "\
log:
  partitions: 2
alerts:
  webhook_queue: {webhook_queue}
  webhooks:
    - {webhook}
job:
  windows:
    - {{name: tumble_10s, type: tumbling, size: 10s}}
  detectors:
    - {{name: z, type: zscore, series: raw, n: 20, min_points: 10, warning: 4, critical: 8, resolve_after: 3, cooldown: 1s}}
"
    )
}

/// One event per second from `T0`: alternating 10 and 11, and 100 at each second in `spikes`.
fn series(metric: &str, seconds: i64, spikes: impl Fn(i64) -> bool) -> Vec<String> {
    (0..seconds)
        .map(|i| {
            let value = if spikes(i) { 100 } else { 10 + i % 2 };
            json!({"metric_id": metric, "ts": T0 + i * 1000, "value": value}).to_string()
        })
        .collect()
}

fn post_all(p: &Platform, lines: &[String]) {
    for chunk in lines.chunks(2000) {
        let body = chunk.join("\n") + "\n";
        let (status, answer) = p.post(&body, "application/x-ndjson", None).unwrap();
        assert_eq!(status, 200, "{answer}");
    }
}

fn webhook_status(p: &Platform) -> Value {
    let status = p.status();
    let webhooks = status["webhooks"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        webhooks.len(),
        1,
        "GET /jobs/default shows the webhook: {status}"
    );
    webhooks[0].clone()
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {v}"))
}

#[test]
fn every_transition_arrives_in_order_per_alert_exactly_once_after_dedupe() {
    let (url, received) = flaky_receiver(2);
    let webhook = format!(
        "{{url: '{url}', timeout: 2s, max_attempts: 5, initial_backoff: 20ms, max_backoff: 200ms}}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), &config(&webhook, 100), free_port());

    // Two metrics (likely on different partitions), each with two spikes 30 s apart (beyond the
    // 1 s cooldown): two alerts each, every one firing then resolved 3 normal points later.
    let mut lines = series("cpu", 90, |i| i == 30 || i == 60);
    lines.extend(series("mem", 90, |i| i == 40 || i == 70));
    post_all(&p, &lines);
    p.wait_drained_to_log(Duration::from_secs(20));

    let expected_transitions = 8;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let delivered: BTreeSet<String> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.idempotency_key.clone())
            .collect();
        if delivered.len() >= expected_transitions {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {expected_transitions} transitions delivered: {delivered:?}\nstatus: {}\n{}",
            delivered.len(),
            p.status(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything sent twice would arrive now.
    std::thread::sleep(Duration::from_millis(500));
    let received = received.lock().unwrap().clone();

    // Every request: JSON, the job's name, an Idempotency-Key that is <id>-<sequence>.
    for r in &received {
        assert_eq!(r.content_type, "application/json", "{r:?}");
        assert_eq!(r.body["job"], "default", "{r:?}");
        let key = format!(
            "{}-{}",
            r.body["id"].as_str().unwrap(),
            r.body["sequence"].as_u64().unwrap()
        );
        assert_eq!(r.idempotency_key, key, "{r:?}");
    }

    // Dedupe by (id, sequence): each alert has exactly its two transitions, firing then resolved.
    let mut alerts: BTreeMap<String, BTreeMap<u64, Value>> = BTreeMap::new();
    for r in received.iter().filter(|r| r.status == 200) {
        let id = r.body["id"].as_str().unwrap().to_string();
        let seq = r.body["sequence"].as_u64().unwrap();
        let previous = alerts.entry(id).or_default().insert(seq, r.body.clone());
        assert!(previous.is_none(), "delivered twice: {}", r.idempotency_key);
    }
    assert_eq!(alerts.len(), 4, "two alerts per metric: {alerts:#?}");
    let mut per_metric: BTreeMap<String, usize> = BTreeMap::new();
    for (id, transitions) in &alerts {
        let seqs: Vec<u64> = transitions.keys().copied().collect();
        assert_eq!(seqs, [0, 1], "alert {id}: {transitions:#?}");
        let (firing, resolved) = (&transitions[&0], &transitions[&1]);
        assert_eq!(
            (firing["state"].as_str(), resolved["state"].as_str()),
            (Some("firing"), Some("resolved")),
            "alert {id}"
        );
        assert_eq!(firing["severity"], "critical");
        assert_eq!(firing["detector"], "z");
        assert_eq!(firing["first_ts"], resolved["first_ts"]);
        assert!(resolved["resolved_ts"].as_i64().unwrap() > firing["first_ts"].as_i64().unwrap());
        *per_metric
            .entry(firing["metric_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        per_metric,
        BTreeMap::from([("cpu".into(), 2), ("mem".into(), 2)])
    );

    // Order per alert: every attempt at sequence 1 comes after sequence 0 was delivered; and each
    // transition was attempted exactly three times (two 500s, then 200): retried, never repeated.
    for id in alerts.keys() {
        let attempts: Vec<(u64, u16)> = received
            .iter()
            .filter(|r| r.body["id"] == id.as_str())
            .map(|r| (r.body["sequence"].as_u64().unwrap(), r.status))
            .collect();
        assert_eq!(
            attempts,
            [(0, 500), (0, 500), (0, 200), (1, 500), (1, 500), (1, 200)],
            "alert {id}"
        );
    }

    // The counters agree, and the store has the same alerts.
    let w = webhook_status(&p);
    assert_eq!(w["url"], url.as_str());
    assert_eq!(count(&w, "delivered"), 8, "{w}");
    assert_eq!(count(&w, "failed_attempts"), 16, "{w}");
    for key in [
        "given_up",
        "dropped_queue_full",
        "dropped_at_shutdown",
        "queued",
    ] {
        assert_eq!(count(&w, key), 0, "{key}: {w}");
    }
    let (status, body) = p.get(&format!("/alerts?start={T0}&end={}", T0 + 1_000_000));
    assert_eq!(status, 200, "{body}");
    let stored: BTreeSet<String> = body["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(stored, alerts.keys().cloned().collect(), "{body}");

    assert!(p.interrupt().success());
}

#[test]
fn a_receiver_that_never_answers_does_not_hold_ingest_back() {
    let url = silent_receiver();
    let webhook = format!(
        "{{url: '{url}', timeout: 300ms, max_attempts: 3, initial_backoff: 10ms, max_backoff: 50ms}}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), &config(&webhook, 5), free_port());

    // 20 metrics × 1000 s = 20,000 events; a spike every 100 s of each metric: 200 alerts, 400
    // transitions, far more than the webhook (never answering) can take.
    let mut lines: Vec<String> = (0..20)
        .flat_map(|m| series(&format!("m{m}"), 1000, |i| i % 100 == 50))
        .collect();
    assert_eq!(lines.len(), 20_000);
    // In event-time order, as a live producer sends them (late events are not scored).
    let ts = |l: &String| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"]
            .as_i64()
            .unwrap()
    };
    lines.sort_by_key(ts);
    let started = Instant::now();
    post_all(&p, &lines);
    p.wait_drained_to_log(Duration::from_secs(60));
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "ingest and processing took {took:?}"
    );

    // The first attempt times out after 300 ms: wait for it to be counted.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut w = webhook_status(&p);
    while count(&w, "failed_attempts") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        w = webhook_status(&p);
    }
    assert_eq!(count(&w, "delivered"), 0, "{w}");
    assert!(count(&w, "dropped_queue_full") > 300, "{w}");
    assert!(count(&w, "queued") <= 5, "{w}");
    assert!(count(&w, "failed_attempts") >= 1, "{w}");
    let accounted = ["delivered", "given_up", "dropped_queue_full", "queued"]
        .iter()
        .map(|k| count(&w, k))
        .sum::<u64>();
    // Every transition is accounted for, but the one being attempted right now.
    assert!((399..=400).contains(&accounted), "{w}");
    let error = w["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        error.contains("timeout") || error.contains("timed out"),
        "{w}"
    );

    // The lane keeps trying (and failing) while the process stays healthy and keeps processing.
    std::thread::sleep(Duration::from_millis(1500));
    let later = webhook_status(&p);
    assert!(
        count(&later, "failed_attempts") > count(&w, "failed_attempts"),
        "{w} then {later}"
    );
    assert!(count(&later, "given_up") >= 1, "{later}");
    assert_eq!(p.get("/healthz").0, 200);
    assert_eq!(p.status()["state"], "running");
    post_all(&p, &series("late_comer", 10, |_| false));
    p.wait_drained_to_log(Duration::from_secs(10));

    // Stopping gives the queued deliveries at most 2 s, then exits cleanly.
    let stopping = Instant::now();
    assert!(p.interrupt().success());
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
}
