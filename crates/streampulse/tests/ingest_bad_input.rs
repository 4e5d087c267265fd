//! Bad input gets a clear 4xx with a reason per rejected line; the good lines of the same body are
//! stored; the process is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::time::Duration;

use support::{free_port, Platform};

const CONFIG: &str = r#"
server:
  max_body_bytes: 4096
log:
  partitions: 2
job:
  idle_timeout: 500ms
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s }
"#;

#[test]
fn bad_lines_are_rejected_with_reasons_and_good_lines_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());

    let body = [
        r#"{"metric_id":"good","ts":1700000001000,"value":1.5}"#,
        r#"{"metric_id":"good","ts":1700000002000"#,
        r#"{"metric_id":"good","ts":1700000003000}"#,
        r#"{"metric_id":7,"ts":1700000003000,"value":1}"#,
        r#"{"metric_id":"good","ts":1700000003000,"value":"12"}"#,
        r#"{"metric_id":"good","ts":1700000003000,"value":NaN}"#,
        r#"{"metric_id":"good","ts":1700000003000,"value":1e999}"#,
        r#"{"metric_id":"good","ts":99999999999999999,"value":1}"#,
        r#"{"metric_id":"good","ts":-5,"value":1}"#,
        r#"{"metric_id":"good","ts":"tomorrow","value":1}"#,
        r#"["not","an","object"]"#,
        r#"{"metric_id":"good","ts":"2023-11-14T22:13:24Z","value":2.5}"#,
    ]
    .join("\n");
    let (status, report) = p.post(&body, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 400, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    let lines: Vec<u64> = rejected
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, (2..=11).collect::<Vec<u64>>(), "{report}");
    let reason = |line: u64| {
        rejected.iter().find(|r| r["line"] == line).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason(2).contains("invalid JSON"), "{}", reason(2));
    assert!(reason(3).contains("missing field 'value'"), "{}", reason(3));
    assert!(
        reason(4).contains("'metric_id' must be a string"),
        "{}",
        reason(4)
    );
    assert!(
        reason(5).contains("'value' must be a number"),
        "{}",
        reason(5)
    );
    assert!(
        reason(8).contains("outside the accepted range"),
        "{}",
        reason(8)
    );
    assert!(reason(10).contains("RFC 3339"), "{}", reason(10));
    assert!(
        reason(11).contains("expected a JSON object"),
        "{}",
        reason(11)
    );

    // A JSON array: positions are element indexes.
    let (status, report) = p
        .post(
            r#"[{"metric_id":"good","ts":1700000005000,"value":3}, {"metric_id":"good"}]"#,
            "application/json",
            None,
        )
        .unwrap();
    assert_eq!(
        (
            status,
            report["accepted"].as_u64(),
            report["rejected"][0]["line"].as_u64()
        ),
        (400, Some(1), Some(2))
    );

    // Whole-request errors: wrong content type, oversized body, empty body, not UTF-8.
    let (status, problem) = p
        .post("metric_id,ts,value\nx,1,2\n", "text/csv", None)
        .unwrap();
    assert_eq!(status, 415, "{problem}");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("application/x-ndjson"));
    let big = format!(
        r#"{{"metric_id":"good","ts":1700000001000,"value":1,"pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let (status, problem) = p.post(&big, "application/json", None).unwrap();
    assert_eq!(status, 413);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("server.max_body_bytes"),
        "{problem}"
    );
    let (status, problem) = p.post("  \n", "application/x-ndjson", None).unwrap();
    assert_eq!(status, 400, "{problem}");

    // The process is unaffected and the good events count: 1.5 + 2.5 + 3 in [..00000, ..10000).
    let (status, _) = p.get("/healthz");
    assert_eq!(status, 200);
    let status = p.status();
    assert_eq!(status["ingest_accepted"], 3, "{status}");
    assert_eq!(status["ingest_rejected"], 11, "{status}");
    p.wait_drained(Duration::from_secs(30));
    let rows = p.results(1_700_000_000_000, 1_700_000_010_000, Some("good"));
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["count"].as_u64(), rows[0]["sum"].as_f64()),
        (Some(3), Some(7.0))
    );
}

#[test]
fn query_errors_are_problem_documents_that_say_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    for (query, needle) in [
        ("/metrics?start=1700000000000", "'end' is required"),
        (
            "/metrics?start=2023-11-14T22:13:20Z&end=1600000000000",
            "before 'start'",
        ),
        (
            "/metrics?start=1&end=2&metric=cpu",
            "unknown query parameter 'metric'",
        ),
        (
            "/metrics?start=1&end=2&window=nope",
            "unknown window 'nope'",
        ),
        ("/metrics?start=1&end=2&limit=0", "'limit'"),
        ("/metrics?start=soon&end=2", "parameter 'start'"),
        ("/nothing-here", "no route"),
    ] {
        let (status, body) = p.get(query);
        assert!(status == 400 || status == 404, "{query}: {status} {body}");
        assert!(
            body["detail"].as_str().unwrap_or("").contains(needle),
            "{query}: {body}"
        );
    }
    // RFC 3339 and epoch ms both work.
    let (status, body) = p.get("/metrics?start=2023-11-14T22:13:20Z&end=1700000100000");
    assert_eq!((status, body["time_unit"].as_str()), (200, Some("ms")));
}

#[test]
fn an_idempotency_key_dedupes_retries_but_not_a_corrected_body() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let bad = "{\"metric_id\":\"k\",\"ts\":1700000001000,\"value\":1}\n{\"metric_id\":\"k\",\"ts\":1700000002000}\n";
    let fixed = "{\"metric_id\":\"k\",\"ts\":1700000001000,\"value\":1}\n{\"metric_id\":\"k\",\"ts\":1700000002000,\"value\":2}\n";
    let (status, first) = p.post(bad, "application/x-ndjson", Some("key-1")).unwrap();
    assert_eq!((status, first["accepted"].as_u64()), (400, Some(1)));
    let (status, corrected) = p
        .post(fixed, "application/x-ndjson", Some("key-1"))
        .unwrap();
    assert_eq!(
        (status, corrected["duplicate"].as_bool()),
        (200, Some(false)),
        "{corrected}"
    );
    let (status, retry) = p
        .post(fixed, "application/x-ndjson", Some("key-1"))
        .unwrap();
    assert_eq!(
        (status, retry["duplicate"].as_bool()),
        (200, Some(true)),
        "{retry}"
    );
    assert_eq!(
        p.status()["ingest_accepted"],
        3,
        "1 from the first body, 2 from the corrected one"
    );
}
