//! What the tests against a real Jaeger share (`jaeger_traces.rs`, `go_producer.rs`): its
//! endpoints (`STREAMPULSE_TEST_JAEGER`, as `deploy/local/services.sh jaeger-endpoints` prints
//! them; skip without it, fail without it under CI), spans read back from its query API, and ids
//! and service names no earlier run used.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::kafka_support::{create_topics, fresh, group_config};
use crate::support::{agent, free_port, Platform};

/// Jaeger's endpoints, as `services.sh jaeger-endpoints` prints them.
pub struct Jaeger {
    pub otlp_http: String,
    pub query: String,
}

pub fn jaeger() -> Option<Jaeger> {
    let line = streampulse_testkit::env::required(
        "STREAMPULSE_TEST_JAEGER",
        "the endpoints of a Jaeger, as `deploy/local/services.sh jaeger-endpoints` prints them",
    )?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("STREAMPULSE_TEST_JAEGER has no {key}=: {line}"))
            .to_string()
    };
    Some(Jaeger {
        otlp_http: field("otlp_http"),
        query: field("query"),
    })
}

/// One span as Jaeger's query API (`/api/traces`) returns it, flattened.
#[derive(Debug)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// The span its `CHILD_OF` reference names.
    pub parent: Option<String>,
    pub name: String,
    pub service: String,
    pub tags: BTreeMap<String, Value>,
}

fn spans_of(trace: &Value) -> Vec<Span> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Span {
            trace_id: s["traceID"].as_str().unwrap().to_string(),
            span_id: s["spanID"].as_str().unwrap().to_string(),
            parent: s["references"].as_array().and_then(|refs| {
                refs.iter()
                    .find(|r| r["refType"] == "CHILD_OF")
                    .map(|r| r["spanID"].as_str().unwrap().to_string())
            }),
            name: s["operationName"].as_str().unwrap().to_string(),
            service: processes[s["processID"].as_str().unwrap()]["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            tags: s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["key"].as_str().unwrap().to_string(), t["value"].clone()))
                .collect(),
        })
        .collect()
}

impl Jaeger {
    fn get(&self, path_and_query: &str) -> Option<Value> {
        let mut resp = agent()
            .get(&format!("http://{}{path_and_query}", self.query))
            .call()
            .expect("Jaeger's query API answers");
        let text = resp.body_mut().read_to_string().unwrap();
        match resp.status().as_u16() {
            200 => Some(serde_json::from_str(&text).expect("Jaeger answers JSON")),
            404 => None,
            other => panic!("Jaeger's query API: {other} {text}"),
        }
    }

    /// Every span of the traces an `/api/traces` answer holds (not found: none).
    fn spans(&self, path_and_query: &str) -> Vec<Span> {
        self.get(path_and_query)
            .map(|v| {
                v["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(spans_of)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The spans of trace `id` (none yet: empty).
    pub fn trace(&self, id: &str) -> Vec<Span> {
        self.spans(&format!("/api/traces/{id}"))
    }

    /// The spans named `operation` of `service` in the last hour.
    pub fn operation(&self, service: &str, operation: &str) -> Vec<Span> {
        let end = streampulse_core::clock::since_epoch().as_micros();
        let start = end - 3_600_000_000;
        self.spans(&format!(
            "/api/traces?service={service}&operation={operation}&start={start}&end={end}&limit=50"
        ))
        .into_iter()
        .filter(|s| s.name == operation)
        .collect()
    }

    /// Polls `look` until it finds what it wants (Jaeger stores spans shortly after receiving
    /// them, in batches).
    pub fn wait<T>(
        &self,
        what: &str,
        mut look: impl FnMut() -> Option<T>,
        dump: impl Fn() -> String,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = look() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never reached Jaeger; it has:\n{}",
                dump()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A trace id and a span id no earlier run used (Jaeger may outlive test runs), the trace id with
/// a non-zero first digit (Jaeger's API prints ids without leading zeros).
pub fn fresh_ids() -> (String, String) {
    let nanos = streampulse_core::clock::since_epoch().as_nanos() as u64;
    let pid = u64::from(std::process::id());
    (
        format!("{:016x}{:016x}", nanos | 1 << 60, pid << 32 | 0xfeed),
        format!("{:016x}", (nanos ^ pid) | 1 << 60),
    )
}

pub fn tracing_yaml(jaeger: &Jaeger, service: &str) -> String {
    format!(
        "tracing:\n  otlp_endpoint: http://{}\n  service_name: {service}\n  export_interval: 100ms\n",
        jaeger.otlp_http
    )
}

pub fn dump(spans: &[Span]) -> String {
    spans
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The trace id the producers' summary names (`traced N events; the first in trace ID`).
pub fn first_trace(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .find_map(|l| l.split("; the first in trace ").nth(1))
        .unwrap_or_else(|| panic!("no trace id in the summary\n{stderr}"))
        .trim()
        .to_string()
}

/// Waits until trace `trace_id` holds a producer's `send <topic>` span (the root), the
/// `process <topic>` span of the worker (`service`) under it, and a `window_result` span under
/// that one, for a window that holds the event's time.
pub fn assert_send_processing_and_result(
    jaeger: &Jaeger,
    trace_id: &str,
    topic: &str,
    service: &str,
    worker_log: impl Fn() -> String,
) {
    let spans = jaeger.wait(
        "the send, its processing and its window result",
        || {
            let spans = jaeger.trace(trace_id);
            let has = |prefix: &str| spans.iter().any(|s| s.name.starts_with(prefix));
            (has("send ") && has("process ") && has("window_result")).then_some(spans)
        },
        || {
            format!(
                "{}\nworker log:\n{}",
                dump(&jaeger.trace(trace_id)),
                worker_log()
            )
        },
    );
    let all = dump(&spans);
    let find = |prefix: &str| spans.iter().find(|s| s.name.starts_with(prefix)).unwrap();
    let send = find("send ");
    assert_eq!(send.name, format!("send {topic}"), "{all}");
    assert_eq!(send.service, "streampulse-producer", "{all}");
    assert_eq!(send.tags["span.kind"], "producer", "{all}");
    assert_eq!(send.parent, None, "the send starts the trace: {all}");
    let process = find("process ");
    assert_eq!(process.service, service, "{all}");
    assert_eq!(
        process.parent.as_deref(),
        Some(send.span_id.as_str()),
        "{all}"
    );
    assert_eq!(
        process.tags["messaging.kafka.offset"], send.tags["messaging.kafka.offset"],
        "{all}"
    );
    assert_eq!(process.tags["event.ts"], send.tags["event.ts"], "{all}");
    let result = find("window_result");
    assert_eq!(
        result.parent.as_deref(),
        Some(process.span_id.as_str()),
        "{all}"
    );
    assert_eq!(result.tags["metric_id"], process.tags["metric_id"], "{all}");
    let ts = process.tags["event.ts"].as_i64().unwrap();
    let (start, end) = (
        result.tags["window.start"].as_i64().unwrap(),
        result.tags["window.end"].as_i64().unwrap(),
    );
    assert!(start <= ts && ts < end, "{all}");
}

/// A Kafka worker exporting its traces to `jaeger`, on a fresh one-partition topic named after
/// `name`, with the group tests' job (10 s tumbling windows, closed 3 s after the partition falls
/// silent): its topic, its service name in Jaeger, the worker.
pub fn traced_worker(
    jaeger: &Jaeger,
    brokers: &str,
    dir: &std::path::Path,
    name: &str,
) -> (String, String, Platform) {
    let topic = fresh(name);
    let service = format!("streampulse-{topic}");
    let config = format!(
        "{}{}",
        group_config(brokers, &topic, &[], "traced", &dir.join("checkpoints")),
        tracing_yaml(jaeger, &service)
    );
    create_topics(&config, &dir.join("topics"), 1);
    let p = Platform::start(&dir.join("worker"), &config, free_port());
    (topic, service, p)
}
