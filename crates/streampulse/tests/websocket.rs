//! WebSocket `/ws` with a real client against the running binary: subscriptions by URL and by
//! message, pushes within milliseconds of storage, and a slow client that is told it lagged while
//! a fast one misses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, ws_next as next, ws_open, Platform, WsClient as Client};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

const CONFIG: &str = r#"
log:
  partitions: 2
job:
  max_out_of_orderness: 0s
  idle_timeout: 1h
  windows:
    - { name: tumble_1s, type: tumbling, size: 1s }
    - { name: tumble_2s, type: tumbling, size: 2s }
  detectors: []
"#;

fn connect(p: &Platform, query: &str) -> Client {
    let mut ws = ws_open(p, query).expect("websocket connect");
    let first = next(&mut ws);
    assert_eq!(first["type"], "subscribed", "{first}");
    ws
}

/// Reads until `n` messages of `kind` arrived (skipping heartbeats), returning them.
fn collect(ws: &mut Client, kind: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let m = next(ws);
        if m["type"] == kind {
            got.push(m);
        } else {
            assert_eq!(m["type"], "heartbeat", "unexpected message {m}");
        }
    }
    got
}

fn events(metric: &str, from_s: i64, to_s: i64) -> String {
    (from_s..to_s)
        .map(|s| {
            json!({"metric_id": metric, "ts": 1_700_000_000_000i64 + s * 1000 + 500, "value": s})
                .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn subscriptions_filter_and_can_change() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let mut cpu = connect(&p, "?metrics=cpu.*&windows=tumble_1s");

    let sent = Instant::now();
    let body = events("cpu.a", 0, 4) + &events("mem.a", 0, 4);
    assert_eq!(p.post(&body, "application/x-ndjson", None).unwrap().0, 200);
    // Each 1 s window of cpu.a fires when the next event arrives: 3 results for cpu.a, tumble_1s.
    let results = collect(&mut cpu, "result", 3);
    let elapsed = sent.elapsed();
    for r in &results {
        assert_eq!(
            (r["metric_id"].as_str(), r["window"].as_str()),
            (Some("cpu.a"), Some("tumble_1s")),
            "{r}"
        );
    }
    let starts: Vec<i64> = results
        .iter()
        .map(|r| r["window_start"].as_i64().unwrap())
        .collect();
    assert_eq!(
        starts,
        vec![1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000]
    );
    eprintln!("three pushes within {elapsed:?} of the ingest request");

    // Change the subscription by message: now mem.* on every window.
    cpu.send(Message::Text(
        json!({"type": "subscribe", "metrics": ["mem.*"]})
            .to_string()
            .into(),
    ))
    .unwrap();
    let ack = next(&mut cpu);
    assert_eq!(ack["type"], "subscribed", "{ack}");
    assert_eq!(ack["subscription"]["metrics"], json!(["mem.*"]));
    assert_eq!(
        p.post(
            &(events("cpu.a", 4, 6) + &events("mem.a", 4, 6)),
            "application/x-ndjson",
            None
        )
        .unwrap()
        .0,
        200
    );
    // Whatever fires now for mem.a is pushed; nothing for cpu.a. A bad message then gets an error
    // reply (after the results already queued), and the connection stays usable.
    let first = collect(&mut cpu, "result", 1);
    cpu.send(Message::Text("{\"type\": \"unsubscribe\"}".into()))
        .unwrap();
    let mut results = first;
    loop {
        let m = next(&mut cpu);
        match m["type"].as_str() {
            Some("result") => results.push(m),
            Some("error") => break,
            _ => assert_eq!(m["type"], "heartbeat", "{m}"),
        }
    }
    assert!(
        results.iter().all(|r| r["metric_id"] == "mem.a"),
        "{results:?}"
    );

    // Bad URL parameters are a 400 before any upgrade.
    let (status, problem) = p.get("/ws?metric=cpu");
    assert_eq!(status, 400, "{problem}");
}

#[test]
fn a_slow_client_is_told_it_lagged_while_a_fast_one_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let mut fast = connect(&p, "?windows=tumble_1s");
    let mut slow = connect(&p, "");
    if let MaybeTlsStream::Plain(s) = slow.get_mut() {
        // A tiny receive buffer so that the server's writes to this client block early.
        let _ = s.set_nodelay(true);
    }

    // 1,500 metrics × 80 one-second windows: 120,000 tumble_1s results and 60,000 tumble_2s
    // ones, more than the feed's ring (1,024 chunks of at most 64 messages) and what the slow
    // client's socket buffers together.
    let metrics = 1500;
    let seconds = 81;
    let fast_reader = std::thread::spawn(move || {
        let got = collect(&mut fast, "result", metrics * (seconds as usize - 1));
        got.len()
    });
    for s in 0..seconds {
        let body: String = (0..metrics)
            .map(|m| json!({"metric_id": format!("m{m}"), "ts": 1_700_000_000_000i64 + s * 1000 + 500, "value": 1}).to_string() + "\n")
            .collect();
        assert_eq!(p.post(&body, "application/x-ndjson", None).unwrap().0, 200);
        // A pause lets the fast client keep within the ring on a loaded machine, while the slow
        // one (which reads nothing) still falls behind.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        fast_reader.join().unwrap(),
        metrics * (seconds as usize - 1),
        "the fast client got every result"
    );

    // The slow client starts reading only now: it must be told what it missed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut skipped = 0;
    while Instant::now() < deadline {
        let m = next(&mut slow);
        if m["type"] == "lagged" {
            skipped = m["skipped"].as_u64().unwrap();
            assert!(m["detail"].as_str().unwrap().contains("messages skipped"));
            break;
        }
    }
    assert!(skipped > 0, "the slow client never got a lag notice");
    let (status, _) = p.get("/healthz");
    assert_eq!(status, 200);
}
