//! `producers/send_events.py --bootstrap-servers`, against a real Kafka-protocol broker: the
//! script, run by the Python of `STREAMPULSE_TEST_KAFKA_PYTHON` (`.ci/run` installs
//! confluent-kafka into its virtualenv), produces a fixed number of events to a fresh 3-partition
//! topic; read back, the topic holds exactly as many records as the script says were produced,
//! each keyed by its event's metric_id, each a valid event, every metric in one partition.
//! Without confluent-kafka the Kafka mode fails with a message naming the package, while
//! `--dry-run` (like the HTTP mode) still needs nothing but the standard library. With
//! `--trace-ratio` and a Jaeger (`STREAMPULSE_TEST_JAEGER`; the Python needs opentelemetry-sdk
//! and opentelemetry-exporter-otlp-proto-http, which `.ci/run` installs too), one trace holds the
//! script's send, the worker's processing of the record and the window result.
//!
//! Without the variables the tests print "skipped" and pass, unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod jaeger_support;
mod kafka_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use streampulse_core::clock::now_ms;

use jaeger_support::{assert_send_processing_and_result, first_trace, jaeger, traced_worker};
use kafka_support::{brokers, create_topics, end_offsets, fresh, read_all};
use serde_json::Value;
use support::describe;

const ENV: &str = "STREAMPULSE_TEST_KAFKA_PYTHON";
const PARTITIONS: u32 = 3;
const COUNT: u64 = 3000;

fn python() -> Option<PathBuf> {
    streampulse_testkit::env::required(
        ENV,
        "a python with confluent-kafka installed (pip install confluent-kafka)",
    )
    .map(PathBuf::from)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../producers/send_events.py")
}

/// The number after `label ` in the script's summary line (`... produced 3000, failed 0; ...`).
fn summary_count(summary: &str, label: &str) -> u64 {
    let pattern = format!("{label} ");
    let at = summary
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {label:?} in the summary {summary:?}"))
        + pattern.len();
    let digits: String = summary[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no count after {label:?} in {summary:?}"))
}

#[test]
fn kafka_python_producer_keys_every_event_by_metric_and_counts_what_it_produced() {
    let (Some(python), Some(brokers)) = (python(), brokers()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("python-producer");
    create_topics(
        &format!("kafka:\n  brokers: \"{brokers}\"\n  topic: {topic}\n"),
        dir.path(),
        PARTITIONS,
    );
    assert_eq!(end_offsets(&brokers, &topic), vec![0; PARTITIONS as usize]);

    let started = now_ms();
    // 3000 events at 1500/s: about two seconds; --duration only bounds a stuck run.
    let out = Command::new(&python)
        .arg(script())
        .args(["--bootstrap-servers", &brokers, "--topic", &topic])
        .args(["--count", &COUNT.to_string(), "--rate", "1500"])
        .args(["--metrics", "40", "--seed", "7", "--duration", "60s"])
        .args(["--late-fraction", "0.01", "--spike-probability", "0.5"])
        .output()
        .expect("run send_events.py");
    let finished = now_ms();
    assert!(out.status.success(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stderr
        .lines()
        .find(|l| l.contains("done after"))
        .unwrap_or_else(|| panic!("no summary line\n{}", describe(&out)));
    assert_eq!(summary_count(summary, "sent"), COUNT, "{summary}");
    let produced = summary_count(summary, "produced");
    assert_eq!(summary_count(summary, "failed"), 0, "{summary}");
    assert_eq!(produced, COUNT, "{summary}");
    assert!(!summary.contains("unconfirmed"), "{summary}");

    let records = read_all(&brokers, &topic);
    assert_eq!(
        records.len() as u64,
        produced,
        "the topic holds a different number of records than the script reported produced"
    );

    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    for r in &records {
        let payload = r.value.as_deref().expect("a record without a value");
        let event: Value = serde_json::from_slice(payload).unwrap_or_else(|e| {
            panic!(
                "record {}@{} is not JSON ({e}): {}",
                r.partition,
                r.offset,
                String::from_utf8_lossy(payload)
            )
        });
        let metric = event["metric_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no metric_id in {event}"));
        assert!(!metric.is_empty(), "{event}");
        assert_eq!(r.key.as_deref(), Some(metric), "key of {event}");
        let ts = event["ts"]
            .as_i64()
            .unwrap_or_else(|| panic!("ts is not epoch ms in {event}"));
        // Event times trail the wall clock by up to 3 s, very late ones by up to 120 s.
        assert!(
            ts >= started - 125_000 && ts <= finished,
            "ts {ts} outside [{}, {finished}]: {event}",
            started - 125_000
        );
        let value = event["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("value is not a number in {event}"));
        assert!(value.is_finite(), "{event}");
        assert!(event["tags"]["host"].is_string(), "{event}");

        let first = *partition_of
            .entry(metric.to_string())
            .or_insert(r.partition);
        assert_eq!(
            first, r.partition,
            "{metric} is in partitions {first} and {}",
            r.partition
        );
    }
    let used: BTreeSet<i32> = partition_of.values().copied().collect();
    assert!(
        used.len() > 1,
        "40 metrics all keyed into one partition: {partition_of:?}"
    );
}

/// Runs the script with `confluent_kafka` made unimportable (a `None` in `sys.modules` makes
/// `import` raise ImportError), whatever the Python has installed.
fn run_without_confluent_kafka(python: &Path, args: &[&str]) -> Output {
    let code = "import sys\n\
                sys.modules['confluent_kafka'] = None\n\
                path = sys.argv[1]\n\
                sys.argv = sys.argv[1:]\n\
                exec(compile(open(path).read(), path, 'exec'))\n";
    Command::new(python)
        .args(["-c", code])
        .arg(script())
        .args(args)
        .output()
        .expect("run send_events.py")
}

#[test]
fn kafka_mode_without_confluent_kafka_names_the_package_and_dry_run_needs_nothing() {
    let Some(python) = python() else { return };

    let out = run_without_confluent_kafka(
        &python,
        &["--bootstrap-servers", "127.0.0.1:9", "--count", "5"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pip install confluent-kafka"),
        "{}",
        describe(&out)
    );

    let out = run_without_confluent_kafka(&python, &["--dry-run", "--count", "5", "--seed", "1"]);
    assert!(out.status.success(), "{}", describe(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an NDJSON event"))
        .collect();
    assert_eq!(lines.len(), 5, "{}", describe(&out));
}

#[test]
fn a_traced_send_is_one_trace_with_the_workers_processing_and_the_window_result() {
    let (Some(python), Some(brokers), Some(jaeger)) = (python(), brokers(), jaeger()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (topic, service, p) = traced_worker(&jaeger, &brokers, dir.path(), "python-traced");

    let out = Command::new(&python)
        .arg(script())
        .args(["--bootstrap-servers", &brokers, "--topic", &topic])
        .args(["--count", "200", "--rate", "1000", "--metrics", "5"])
        .args(["--late-fraction", "0", "--spike-probability", "0"])
        .args(["--trace-ratio", "1", "--otlp-endpoint"])
        .arg(format!("http://{}", jaeger.otlp_http))
        .output()
        .expect("run send_events.py");
    assert!(out.status.success(), "{}", describe(&out));
    let trace_id = first_trace(&out);
    // The worker closes the windows 3 s after the partition falls silent (idle_timeout).
    assert_send_processing_and_result(&jaeger, &trace_id, &topic, &service, || p.log());
    p.interrupt();
}
