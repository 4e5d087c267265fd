//! OpenTelemetry traces in a real Jaeger (v2 all-in-one, started by `deploy/local/services.sh
//! start jaeger`; `services.sh jaeger-endpoints` prints what `STREAMPULSE_TEST_JAEGER` holds),
//! read back from Jaeger's query API:
//! - a request carrying a W3C `traceparent` is exported under the caller's trace id, as a child
//!   of the caller's span, with the `ingest` span its child; checkpoints and the restore have
//!   spans of their own, and the spans still buffered at shutdown are flushed;
//! - through Kafka (with `STREAMPULSE_TEST_KAFKA_BROKERS` too): a record whose headers carry a
//!   `traceparent` is processed in a span of the producer's trace, and the window result its
//!   event went into is a span under that one, when the window closes.
//!
//! Without the variables the tests print "skipped" and pass, unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod jaeger_support;
mod kafka_support;
mod support;

use std::time::{Duration, Instant};

use jaeger_support::{dump, fresh_ids, jaeger, traced_worker, tracing_yaml, Span};
use kafka_support::brokers;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde_json::Value;
use support::{agent, free_port, Platform};

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
fn a_request_its_ingest_checkpoints_and_restore_reach_jaeger_in_the_callers_trace() {
    let Some(jaeger) = jaeger() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (trace_id, caller_span) = fresh_ids();
    let service = format!("streampulse-test-{}", &trace_id[..12]);
    let config = format!(
        "log:\n  partitions: 2\n  fsync: never\ncheckpoint:\n  interval: 300ms\n{}",
        tracing_yaml(&jaeger, &service)
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
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
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

    let spans = jaeger.wait(
        "the request's trace",
        || {
            let spans = jaeger.trace(&trace_id);
            (spans.iter().any(|s| s.name == "POST /events")
                && spans.iter().any(|s| s.name == "ingest"))
            .then_some(spans)
        },
        || dump(&jaeger.trace(&trace_id)),
    );
    let all = dump(&spans);
    let request = spans.iter().find(|s| s.name == "POST /events").unwrap();
    assert_eq!(request.trace_id, trace_id, "{all}");
    assert_eq!(
        request.parent.as_deref(),
        Some(caller_span.as_str()),
        "{all}"
    );
    assert_eq!(request.service, service, "{all}");
    assert_eq!(request.tags["http.route"], "/events", "{all}");
    assert_eq!(request.tags["http.request.method"], "POST", "{all}");
    assert_eq!(request.tags["http.response.status_code"], 400, "{all}");
    assert_eq!(request.tags["span.kind"], "server", "{all}");

    let ingest = spans.iter().find(|s| s.name == "ingest").unwrap();
    assert_eq!(
        ingest.parent.as_deref(),
        Some(request.span_id.as_str()),
        "{all}"
    );
    assert_eq!(ingest.tags["events.accepted"], 10, "{all}");
    assert_eq!(ingest.tags["events.rejected"], 1, "{all}");

    let checkpoints = jaeger.wait(
        "a checkpoint span",
        || Some(jaeger.operation(&service, "checkpoint")).filter(|c| !c.is_empty()),
        String::new,
    );
    assert!(
        checkpoints
            .iter()
            .all(|c| c.tags["checkpoint.id"].is_i64() && c.tags["checkpoint.bytes"].is_i64()),
        "{}",
        dump(&checkpoints)
    );
    jaeger.wait(
        "the restore span",
        || Some(jaeger.operation(&service, "restore")).filter(|r| !r.is_empty()),
        String::new,
    );
}

#[test]
fn a_traced_kafka_record_is_processed_and_its_window_result_emitted_in_the_producers_trace() {
    let Some(jaeger) = jaeger() else { return };
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (trace_id, producer_span) = fresh_ids();
    let (topic, service, p) = traced_worker(&jaeger, &brokers, dir.path(), "traced");

    // The traced event opens window [0 s, 10 s) of metric "cpu"; an untraced one 20 s later
    // moves the watermark (out-of-orderness 2 s) past its end.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let base = 1_700_000_000_000_i64;
    let traceparent = format!("00-{trace_id}-{producer_span}-01");
    let traced = format!(r#"{{"metric_id":"cpu","ts":{},"value":1.5}}"#, base + 3_000);
    let later = format!(
        r#"{{"metric_id":"cpu","ts":{},"value":2.5}}"#,
        base + 20_000
    );
    let headers = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(traceparent.as_bytes()),
    });
    producer
        .send(
            BaseRecord::to(&topic)
                .key("cpu")
                .payload(&traced)
                .headers(headers),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer
        .send(BaseRecord::to(&topic).key("cpu").payload(&later))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    let spans = jaeger.wait(
        "the record's processing and its window result",
        || {
            let spans = jaeger.trace(&trace_id);
            let done = spans.iter().any(|s| s.name.starts_with("process "))
                && spans.iter().any(|s| s.name.starts_with("window_result"));
            done.then_some(spans)
        },
        || {
            format!(
                "{}\nworker log:\n{}",
                dump(&jaeger.trace(&trace_id)),
                p.log()
            )
        },
    );
    let all = dump(&spans);
    let process: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name.starts_with("process "))
        .collect();
    assert_eq!(process.len(), 1, "only the traced record: {all}");
    let process = process[0];
    assert_eq!(process.name, format!("process {topic}"), "{all}");
    assert_eq!(
        process.parent.as_deref(),
        Some(producer_span.as_str()),
        "{all}"
    );
    assert_eq!(process.service, service, "{all}");
    assert_eq!(process.tags["span.kind"], "consumer", "{all}");
    assert_eq!(process.tags["messaging.system"], "kafka", "{all}");
    assert_eq!(
        process.tags["messaging.destination.name"],
        topic.as_str(),
        "{all}"
    );
    assert_eq!(process.tags["messaging.kafka.offset"], 0, "{all}");
    assert_eq!(process.tags["metric_id"], "cpu", "{all}");
    assert_eq!(process.tags["event.ts"], base + 3_000, "{all}");
    assert_eq!(process.tags["outcome"], "accepted", "{all}");

    let result = spans
        .iter()
        .find(|s| s.name.starts_with("window_result"))
        .unwrap();
    assert_eq!(result.name, "window_result tumble_10s", "{all}");
    assert_eq!(
        result.parent.as_deref(),
        Some(process.span_id.as_str()),
        "{all}"
    );
    assert_eq!(result.tags["metric_id"], "cpu", "{all}");
    assert_eq!(result.tags["window.start"], base, "{all}");
    assert_eq!(result.tags["window.end"], base + 10_000, "{all}");
    assert_eq!(result.tags["count"], 1, "{all}");
    assert_eq!(result.tags["mean"], 1.5, "{all}");
    assert_eq!(result.tags["revision"], 0, "{all}");
    // The window of the untraced event has no span: it is not in the trace.
    assert_eq!(
        spans
            .iter()
            .filter(|s| s.name.starts_with("window_result"))
            .count(),
        1,
        "{all}"
    );
    p.interrupt();
}
