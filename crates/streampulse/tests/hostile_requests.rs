//! Hostile requests against the real binary, sent as a user with curl or a raw socket would: each
//! probe is one finding of the hardening review (an event from year 9999, a cross-origin
//! `text/plain` job, a job that would overflow a clock or allocate without bound, a body of
//! millions of elements, slow clients, oversized ids and tags, WebSocket floods, credentials in
//! webhook URLs). After all of them the server is healthy and a normal stream still gives exact
//! windows.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use streampulse_core::clock::now_ms;

use serde_json::{json, Value};
use support::{agent, free_port, ws_open, Platform};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const CONFIG: &str = r#"
server:
  max_body_bytes: 16777216
  max_events_per_request: 1000
  max_inflight_bytes: 33554432
  body_read_timeout: 700ms
  header_read_timeout: 700ms
  max_ws_clients: 3
log:
  partitions: 1
alerts:
  webhooks:
    - url: "http://bob:s3cret@127.0.0.1:9/hook?token=s3cret"
job:
  max_out_of_orderness: 0s
  idle_timeout: 1h
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s }
  detectors: []
"#;

fn post_raw(p: &Platform, path: &str, content_type: Option<&str>, body: &str) -> (u16, Value) {
    let mut req = agent().post(&format!("{}{path}", p.base));
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let mut resp = req.send(body).expect("response");
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn watermark(p: &Platform) -> i64 {
    p.status()["partitions"][0]["watermark"]
        .as_i64()
        .unwrap_or(i64::MIN)
}

#[test]
fn hostile_requests_get_clear_errors_and_the_server_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let base_ts = 1_700_000_000_000i64;

    // An event from year 9999 (a broken producer clock) is refused by line, and moves nothing.
    let body = format!(
        "{}\n{}",
        json!({"metric_id": "cpu.a", "ts": 253_402_300_799_999i64, "value": 1}),
        json!({"metric_id": "cpu.a", "ts": base_ts, "value": 1})
    );
    let (status, report) = p.post(&body, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 400, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let reason = report["rejected"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("job.max_future"), "{reason}");
    p.wait_drained_to_log(Duration::from_secs(10));
    assert!(
        watermark(&p) < now_ms(),
        "the watermark moved: {}",
        p.status()
    );
    let exposition = p.scrape();
    assert!(
        exposition.contains(r#"streampulse_events_rejected_total{reason="future"} 1"#),
        "{}",
        exposition
            .lines()
            .filter(|l| l.contains("rejected"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Just inside the guard is fine.
    let soon = json!({"metric_id": "cpu.soon", "ts": now_ms() + 50 * 60_000, "value": 1});
    assert_eq!(
        p.post(&soon.to_string(), "application/json", None)
            .unwrap()
            .0,
        200
    );

    // Bodies a browser can send across origins without a preflight are refused: 415.
    let job = json!({"job": {"name": "evil", "windows": [{"name": "w", "type": "tumbling", "size": "1s"}]}});
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let (status, body) = post_raw(&p, "/jobs", ct, &job.to_string());
        assert_eq!(status, 415, "{ct:?}: {body}");
        assert!(body["detail"]
            .as_str()
            .unwrap()
            .contains("application/json"));
        let (status, _) = post_raw(&p, "/events", ct, &soon.to_string());
        assert_eq!(status, 415, "{ct:?}");
        let (status, _) = post_raw(&p, "/jobs/default/savepoints", ct, "");
        assert_eq!(status, 415, "{ct:?}");
    }
    assert_eq!(p.get("/jobs/evil").0, 404);

    // Jobs that would overflow a clock or allocate without bound are refused, naming the key.
    for (spec, key) in [
        (
            json!({"name": "j1", "early_firing": "300000000000y",
                "windows": [{"name": "w", "type": "tumbling", "size": "1s"}]}),
            "job.early_firing",
        ),
        (
            json!({"name": "j2", "windows": [{"name": "w", "type": "sliding", "size": "366d", "slide": "1ms"}]}),
            "job.windows[0].slide",
        ),
        (
            json!({"name": "j3", "idle_timeout": "100y",
                "windows": [{"name": "w", "type": "tumbling", "size": "1s"}]}),
            "job.idle_timeout",
        ),
        (
            json!({"name": "x".repeat(65), "windows": [{"name": "w", "type": "tumbling", "size": "1s"}]}),
            "job.name",
        ),
    ] {
        let (status, body) = p.send("POST", "/jobs", &json!({"job": spec}));
        assert_eq!(status, 400, "{spec}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with(key), "{key}: {detail}");
    }

    // Seven million zeros (14 MB) cost a bounded amount of memory and a clear 413.
    let before = vm_hwm_kib(p.child.id());
    let zeros = format!("[{}0]", "0,".repeat(7_000_000));
    let started = Instant::now();
    let (status, body) = post_raw(&p, "/events", Some("application/json"), &zeros);
    assert_eq!(status, 413, "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("max_events_per_request"));
    let grown_mib = (vm_hwm_kib(p.child.id()) - before) / 1024;
    assert!(
        grown_mib < 200,
        "peak RSS grew by {grown_mib} MiB for a 14 MB body"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Oversized ids and tags: a reason per line, the good line kept.
    let lines = [
        json!({"metric_id": "m".repeat(300), "ts": base_ts, "value": 1}),
        json!({"metric_id": "tags", "ts": base_ts, "value": 1,
               "tags": (0..40).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        json!({"metric_id": "tagv", "ts": base_ts, "value": 1, "tags": {"k": "v".repeat(300)}}),
        json!({"metric_id": "cpu.a", "ts": base_ts + 1, "value": 2}),
    ]
    .map(|v| v.to_string())
    .join("\n");
    let (status, report) = p.post(&lines, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 400, "{report}");
    assert_eq!(report["accepted"], 1, "{report}");
    let reasons: Vec<&str> = report["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    for (reason, key) in
        reasons
            .iter()
            .zip(["max_metric_id_bytes", "max_tags", "max_tag_value_bytes"])
    {
        assert!(reason.contains(key), "{reason}");
    }

    // Garbage of every kind: a 4xx each, never a 5xx or a dead server.
    for (body, ct) in [
        ("{\"metric_id\":\"a\",\"ts\":1,\"value\":NaN}", "application/json"),
        ("{\"metric_id\":\"a\",\"ts\":1,\"value\":Infinity}", "application/json"),
        ("{\"metric_id\":\"a\",\"ts\":1,\"value\":-Infinity}", "application/json"),
        ("{\"metric_id\":\"a\",\"ts\":1,\"value\":\"NaN\"}", "application/json"),
        ("{\"metric_id\":\"a\",\"ts\":1,\"value\":1e400}", "application/json"),
        ("{\"metric_id\":\"a\",\"ts\":1e400,\"value\":1}", "application/json"),
        ("{\"metric_id\":\"a\",\"metric_id\":\"b\",\"ts\":1,\"value\":1}", "application/json"),
        ("", "application/json"),
        ("[]", "application/json"),
        ("\n\n", "application/x-ndjson"),
        ("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "application/json"),
    ] {
        let (status, answer) = post_raw(&p, "/events", Some(ct), body);
        assert!((400..500).contains(&status), "{body:?}: {status} {answer}");
    }
    let deep = "[".repeat(200_000);
    let (status, _) = post_raw(&p, "/events", Some("application/json"), &deep);
    assert_eq!(status, 400);
    let mut invalid_utf8 = TcpStream::connect(p.base.trim_start_matches("http://")).unwrap();
    let bytes = b"\xff\xfe{\"metric_id\":\"a\"}\n";
    write!(
        invalid_utf8,
        "POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    )
    .unwrap();
    invalid_utf8.write_all(bytes).unwrap();
    let mut answer = String::new();
    invalid_utf8.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name as Host. On
    // loopback the server answers only for loopback names.
    for (host, status) in [
        ("evil.example", "403"),
        ("evil.example:80", "403"),
        ("localhost.evil.example", "403"),
        ("localhost:1", "200"),
        ("127.0.0.1", "200"),
        ("[::1]:8080", "200"),
    ] {
        let mut raw = TcpStream::connect(p.base.trim_start_matches("http://")).unwrap();
        write!(
            raw,
            "GET /jobs HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        raw.read_to_string(&mut answer).unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{host}: {answer}"
        );
        if status == "403" {
            assert!(answer.contains("server.allowed_hosts"), "{answer}");
        }
    }
    for q in [
        "/metrics?start=0&end=1&cursor=AAAA",
        "/metrics?start=0&end=1&cursor=%FF%FF",
        "/alerts?start=0&end=1&cursor=eyJ4IjoxfQ",
        "/metrics?start=-99999999999999999999&end=1",
        "/metrics?start=0&end=1&metric_id=****************************************a",
    ] {
        let (status, body) = p.get(q);
        assert!(
            (400..500).contains(&status) || status == 200,
            "{q}: {status} {body}"
        );
    }

    // Slow clients: headers or a body that never finish are cut off, and block nobody meanwhile.
    let addr = p.base.trim_start_matches("http://").to_string();
    let mut slow_headers = TcpStream::connect(&addr).unwrap();
    slow_headers
        .write_all(b"POST /events HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(b"POST /events HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"metric_id\"")
        .unwrap();
    assert_eq!(
        p.post(&soon.to_string(), "application/json", None)
            .unwrap()
            .0,
        200
    );
    for s in [&slow_headers, &slow_body] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let mut answer = String::new();
    let _ = slow_headers.read_to_string(&mut answer);
    assert!(
        !answer.starts_with("HTTP/1.1 2"),
        "slow headers were served: {answer}"
    );
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // WebSocket: clients past the limit, oversized messages and subscriptions are closed with
    // a reason.
    let mut seated: Vec<_> = (0..3).map(|_| ws_open(&p, "").expect("seat")).collect();
    let mut extra = ws_open(&p, "").expect("upgrade");
    let closed = read_close(&mut extra);
    assert_eq!(closed.0, CloseCode::Again, "{closed:?}");
    assert!(closed.1.contains("max_ws_clients"), "{closed:?}");
    let many: Vec<String> = (0..65).map(|i| format!("m{i}.*")).collect();
    seated[0]
        .send(Message::text(
            json!({"type": "subscribe", "metrics": many}).to_string(),
        ))
        .unwrap();
    let closed = read_close(&mut seated[0]);
    assert_eq!(closed.0, CloseCode::Policy, "{closed:?}");
    seated[1]
        .send(Message::text("x".repeat(100 * 1024)))
        .unwrap();
    let closed = read_close(&mut seated[1]);
    assert_eq!(closed.0, CloseCode::Size, "{closed:?}");
    drop(seated);

    // Credentials in webhook URLs never reach GET /jobs.
    let (_, jobs) = p.get("/jobs/default");
    let shown = jobs.to_string();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("http://***@127.0.0.1:9/hook?token=***"),
        "{shown}"
    );
    assert!(
        !p.log().contains("s3cret"),
        "the log shows a webhook credential"
    );

    // After all that, a normal stream still gives exact windows (ahead of the +50 min event,
    // which moved the watermark, and within the guard).
    let (status, _) = p.get("/readyz");
    assert_eq!(status, 200);
    let base_ts = (now_ms() + 52 * 60_000) / 10_000 * 10_000 - 20_000;
    let normal: String = (0..20)
        .map(|i| {
            json!({"metric_id": "exact", "ts": base_ts + 20_000 + i * 1000, "value": i}).to_string()
                + "\n"
        })
        .collect();
    assert_eq!(
        p.post(&normal, "application/x-ndjson", None).unwrap().0,
        200
    );
    let closer = json!({"metric_id": "exact", "ts": base_ts + 60_000, "value": 0});
    assert_eq!(
        p.post(&closer.to_string(), "application/json", None)
            .unwrap()
            .0,
        200
    );
    p.wait_drained_to_log(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = p.results(base_ts, base_ts + 60_000, Some("exact"));
        if rows.len() == 2 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let sums: Vec<(i64, f64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["window_start"].as_i64().unwrap(),
                r["sum"].as_f64().unwrap(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    // Events 0..9 land in [base+20s, base+30s), 10..19 in [base+30s, base+40s); the closer at
    // base+60s fires both.
    assert_eq!(
        sums,
        vec![(base_ts + 20_000, 45.0, 10), (base_ts + 30_000, 145.0, 10)],
        "{rows:?}"
    );
}

/// Reads until the server's close frame: its code and reason.
fn read_close(ws: &mut support::WsClient) -> (CloseCode, String) {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => return (frame.code, frame.reason.to_string()),
            Ok(Message::Close(None)) => return (CloseCode::Status, String::new()),
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    }
}

#[test]
fn the_api_and_metrics_ports_listen_on_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("empty.yaml");
    std::fs::write(&config, "{}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("127.0.0.1:8080"), "{text}");
    assert!(text.contains("127.0.0.1:9249"), "{text}");
    assert!(!text.contains("0.0.0.0"), "{text}");
}

#[test]
fn a_non_loopback_address_without_tokens_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "job:\n  windows:\n    - { name: w, type: tumbling, size: 1s }\n",
    )
    .unwrap();
    let log = dir.path().join("platform.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("streampulse is running") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("non-loopback address with no tokens"),
        "{text}"
    );
}
