//! The Go producer (`producers/go`), with the Go of `STREAMPULSE_TEST_GO` (`.ci/run` sets it to
//! the machine's `go`): its own tests (`go vet`, `go test`, the Kafka one against the broker of
//! `STREAMPULSE_TEST_KAFKA_BROKERS`), then the built binary against the real platform over HTTP
//! and against the real broker beside librdkafka, whose partitioner it must agree with; with
//! `--trace-ratio` and a Jaeger (`STREAMPULSE_TEST_JAEGER`), one trace holds the producer's send,
//! the worker's processing of the record and the window result.
//!
//! Without the variables the tests print "skipped" and pass, unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod jaeger_support;
mod kafka_support;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use jaeger_support::{assert_send_processing_and_result, first_trace, jaeger, traced_worker};
use kafka_support::{brokers, create_topics, fresh, producer, read_all};
use support::{describe, free_port, Platform};

fn go() -> Option<PathBuf> {
    streampulse_testkit::env::required_file(
        "STREAMPULSE_TEST_GO",
        "the go command (its path, e.g. $(command -v go))",
    )
}

fn module() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../producers/go")
}

fn go_command(go: &Path, args: &[&str]) -> Output {
    Command::new(go)
        .args(args)
        .current_dir(module())
        // Built in a clean clone or a copy: no version control stamp to read.
        .env("GOFLAGS", "-buildvcs=false")
        .output()
        .expect("run go")
}

/// Builds the producer into `dir`.
fn build(go: &Path, dir: &Path) -> PathBuf {
    let binary = dir.join("producer");
    let out = go_command(go, &["build", "-o", binary.to_str().unwrap(), "."]);
    assert!(out.status.success(), "go build\n{}", describe(&out));
    binary
}

/// The number after `label ` in the summary line (`... accepted 2000, rejected 0, ...`).
fn summary_count(out: &Output, label: &str) -> u64 {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stderr
        .lines()
        .find(|l| l.contains("done after"))
        .unwrap_or_else(|| panic!("no summary line\n{}", describe(out)));
    let at = summary
        .find(&format!("{label} "))
        .unwrap_or_else(|| panic!("no {label:?} in {summary:?}"))
        + label.len()
        + 1;
    summary[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no count after {label:?} in {summary:?}"))
}

#[test]
fn go_vet_and_go_test_pass() {
    let Some(go) = go() else { return };
    let out = go_command(&go, &["vet", "./..."]);
    assert!(out.status.success(), "go vet\n{}", describe(&out));
    // The Kafka test inherits STREAMPULSE_TEST_KAFKA_BROKERS and CI: under CI it must run.
    let out = go_command(&go, &["test", "-count=1", "-v", "./..."]);
    assert!(out.status.success(), "go test\n{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(stdout.contains("--- PASS: TestARetriedBatchKeepsItsIdempotencyKey"));
}

#[test]
fn go_producer_over_http_feeds_the_platform() {
    let Some(go) = go() else { return };
    let dir = tempfile::tempdir().unwrap();
    let binary = build(&go, dir.path());
    let platform = Platform::start(
        &dir.path().join("platform"),
        "job:\n  idle_timeout: 1s\n",
        free_port(),
    );
    let out = Command::new(&binary)
        .args(["--target", &platform.base])
        .args(["--count", "2000", "--rate", "4000", "--metrics", "20"])
        .args(["--seed", "3", "--duration", "60s", "--late-fraction", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(summary_count(&out, "sent"), 2000, "{}", describe(&out));
    assert_eq!(summary_count(&out, "accepted"), 2000, "{}", describe(&out));
    assert_eq!(summary_count(&out, "lost"), 0, "{}", describe(&out));

    platform.wait_drained(Duration::from_secs(60));
    let now = streampulse_core::clock::now_ms();
    let rows = platform.walk_results(&format!(
        "start={}&end={}&window=tumble_10s",
        now - 600_000,
        now + 60_000
    ));
    let counted: u64 = rows.values().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(
        counted, 2000,
        "every event the producer sent is in a window"
    );
    let metrics: std::collections::BTreeSet<&str> = rows
        .values()
        .map(|r| r["metric_id"].as_str().unwrap())
        .collect();
    assert!(metrics.len() >= 15, "20 metrics drawn: {metrics:?}");

    // Nothing listening: a clear start-up error and exit status 1.
    let out = Command::new(&binary)
        .args(["--target", &format!("http://127.0.0.1:{}", free_port())])
        .args(["--count", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is 'streampulse run' running?"),
        "{}",
        describe(&out)
    );
}

#[test]
fn go_producer_partitions_each_metric_where_librdkafka_does() {
    let (Some(go), Some(brokers)) = (go(), brokers()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let binary = build(&go, dir.path());
    let topic = fresh("go-producer");
    create_topics(
        &format!("kafka:\n  brokers: \"{brokers}\"\n  topic: {topic}\n"),
        dir.path(),
        5,
    );
    let out = Command::new(&binary)
        .args(["--bootstrap-servers", &brokers, "--topic", &topic])
        .args(["--count", "1000", "--rate", "2000", "--metrics", "30"])
        .args(["--seed", "11", "--duration", "60s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(summary_count(&out, "produced"), 1000, "{}", describe(&out));

    // One more record per metric through librdkafka (the platform's own producer), keyed alike.
    let go_records = read_all(&brokers, &topic);
    assert_eq!(go_records.len(), 1000);
    let mut metrics: Vec<String> = go_records
        .iter()
        .map(|r| r.key.clone().expect("keyed"))
        .collect();
    metrics.sort();
    metrics.dedup();
    let rdkafka = producer(&brokers, &topic);
    for m in &metrics {
        rdkafka.send(m, b"{}").unwrap();
    }
    rdkafka.flush(Duration::from_secs(30)).unwrap();

    let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for r in read_all(&brokers, &topic) {
        let list = partitions.entry(r.key.clone().unwrap()).or_default();
        if !list.contains(&r.partition) {
            list.push(r.partition);
        }
    }
    for (metric, list) in &partitions {
        assert_eq!(
            list.len(),
            1,
            "{metric} is in partitions {list:?}: the Go producer and librdkafka disagree"
        );
    }
    let used: std::collections::BTreeSet<i32> = partitions.values().map(|l| l[0]).collect();
    assert!(
        used.len() >= 3,
        "30 metrics over 5 partitions: {partitions:?}"
    );
}

#[test]
fn a_traced_send_is_one_trace_with_the_workers_processing_and_the_window_result() {
    let (Some(go), Some(brokers), Some(jaeger)) = (go(), brokers(), jaeger()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let binary = build(&go, dir.path());
    let (topic, service, p) = traced_worker(&jaeger, &brokers, dir.path(), "go-traced");

    let out = Command::new(&binary)
        .args(["--bootstrap-servers", &brokers, "--topic", &topic])
        .args(["--count", "200", "--rate", "1000", "--metrics", "5"])
        .args(["--late-fraction", "0", "--spike-probability", "0"])
        .args(["--trace-ratio", "1", "--otlp-endpoint"])
        .arg(format!("http://{}", jaeger.otlp_http))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    let trace_id = first_trace(&out);
    // The worker closes the windows 3 s after the partition falls silent (idle_timeout).
    assert_send_processing_and_result(&jaeger, &trace_id, &topic, &service, || p.log());
    p.interrupt();
}
