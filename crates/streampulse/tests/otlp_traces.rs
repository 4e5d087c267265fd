//! OpenTelemetry traces received by a real OTLP/HTTP receiver: `tests/otlp_receiver.py`, built on
//! the official protobuf definitions (`opentelemetry-proto` from PyPI), run by the Python of
//! `STREAMPULSE_TEST_OTLP_PYTHON` (`.ci/run` installs the package into its virtualenv). A request
//! carrying a W3C `traceparent` must be exported under the caller's trace id, as a child of the
//! caller's span, with the `ingest` span its child; checkpoints have spans of their own, and the
//! spans still buffered at shutdown are flushed.
//!
//! Without the variable the test prints "skipped" and passes, unless `CI` is set: then it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{agent, free_port, Platform};

const ENV: &str = "STREAMPULSE_TEST_OTLP_PYTHON";

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn python() -> Option<PathBuf> {
    streampulse_testkit::env::required(
        ENV,
        "a python with opentelemetry-proto installed (pip install opentelemetry-proto)",
    )
    .map(PathBuf::from)
}

struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(python: &Path, out: PathBuf) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("0")
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("receiver port");
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the receiver did not start (printed {line:?})"));
        Receiver { child, port, out }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_u64(v: &Value, key: &str) -> Option<u64> {
    match v {
        Value::Object(map) => map
            .get(key)
            .and_then(Value::as_u64)
            .or_else(|| map.values().find_map(|v| find_u64(v, key))),
        Value::Array(items) => items.iter().find_map(|v| find_u64(v, key)),
        _ => None,
    }
}

#[test]
fn otlp_receiver_gets_request_ingest_and_checkpoint_spans_with_the_propagated_trace() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&python, dir.path().join("spans.jsonl"));
    let config = format!(
        "log:\n  partitions: 2\n  fsync: never\ncheckpoint:\n  interval: 300ms\n\
         tracing:\n  otlp_endpoint: http://127.0.0.1:{}\n  service_name: streampulse-test\n  \
         export_interval: 100ms\n",
        receiver.port
    );
    let p = Platform::start(&dir.path().join("platform"), &config, free_port());

    let body = (0..10)
        .map(|i| format!(r#"{{"metric_id": "m{i}", "ts": 1700000000000, "value": {i}}}"#))
        .chain(["{not json".to_string()])
        .collect::<Vec<_>>()
        .join("\n");
    let resp = agent()
        .post(&format!("{}/events", p.base))
        .header("content-type", "application/x-ndjson")
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .send(&body)
        .expect("POST /events");
    // 400: one line was rejected (the other ten are stored).
    assert_eq!(resp.status().as_u16(), 400);

    // A checkpoint after the request, then a clean stop (the final checkpoint, and a flush).
    let before = find_u64(&p.status(), "checkpoints_completed").unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while find_u64(&p.status(), "checkpoints_completed").unwrap_or(0) < before + 1 {
        assert!(
            Instant::now() < deadline,
            "no checkpoint; log:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = p.log();
    assert!(p.interrupt().success(), "unclean stop; log:\n{log}");

    let spans = receiver.spans();
    let dump = spans
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let request = spans
        .iter()
        .find(|s| s["attributes"]["http.route"] == "/events")
        .unwrap_or_else(|| panic!("no span for POST /events; received:\n{dump}"));
    assert_eq!(request["name"], "POST /events", "{request}");
    assert_eq!(request["trace_id"], TRACE_ID, "{request}");
    assert_eq!(request["parent_span_id"], CALLER_SPAN, "{request}");
    assert_eq!(request["attributes"]["http.request.method"], "POST");
    assert_eq!(request["attributes"]["http.response.status_code"], 400);
    assert_eq!(request["service"], "streampulse-test");

    let ingest = spans
        .iter()
        .find(|s| s["name"] == "ingest")
        .unwrap_or_else(|| panic!("no ingest span; received:\n{dump}"));
    assert_eq!(ingest["trace_id"], TRACE_ID, "{ingest}");
    assert_eq!(ingest["parent_span_id"], request["span_id"], "{ingest}");
    assert_eq!(ingest["attributes"]["events.accepted"], 10, "{ingest}");
    assert_eq!(ingest["attributes"]["events.rejected"], 1, "{ingest}");

    let checkpoints: Vec<&Value> = spans.iter().filter(|s| s["name"] == "checkpoint").collect();
    assert!(
        !checkpoints.is_empty(),
        "no checkpoint span; received:\n{dump}"
    );
    assert!(
        checkpoints
            .iter()
            .all(|c| c["attributes"]["checkpoint.id"].as_i64().is_some()
                && c["attributes"]["checkpoint.bytes"].as_i64().is_some()),
        "{checkpoints:?}"
    );
    assert!(
        spans.iter().any(|s| s["name"] == "restore"),
        "no restore span; received:\n{dump}"
    );
}
