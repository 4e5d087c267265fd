//! What the tests against a real Apache Kafka broker share (`kafka_*.rs`): the broker address
//! (`STREAMPULSE_TEST_KAFKA_BROKERS`; skip without it, fail without it under CI), fresh topic
//! names, topics created through `streampulse topics create`, keyed production, reading a topic
//! back to its end, the window results every worker of a group stored, and the group tests'
//! stream of events with its batch computation.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use streampulse_kafka::producer::EventProducer;
use streampulse_kafka::KafkaConfig;

use crate::support::{agent, free_port, Platform};

pub const ENV: &str = "STREAMPULSE_TEST_KAFKA_BROKERS";

/// The broker's bootstrap address, or `None` (after saying so) when the test must be skipped.
pub fn brokers() -> Option<String> {
    streampulse_testkit::env::required(
        ENV,
        "an Apache Kafka broker (host:port; deploy/local/services.sh start kafka prints it)",
    )
}

/// A topic name no earlier run used (the broker may outlive test runs).
pub fn fresh(name: &str) -> String {
    let nanos = streampulse_core::clock::since_epoch().as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// Creates the topics `config` (YAML with a `kafka:` section) names, with the real CLI.
pub fn create_topics(config: &str, dir: &std::path::Path, partitions: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("topics.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["topics", "create", "--partitions"])
        .arg(partitions.to_string())
        .arg("--config")
        .arg(&path)
        .output()
        .expect("run streampulse topics create");
    assert!(
        out.status.success(),
        "topics create failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn producer(brokers: &str, topic: &str) -> EventProducer {
    let config = KafkaConfig {
        brokers: brokers.to_string(),
        ..Default::default()
    };
    EventProducer::new(&config, topic).expect("producer")
}

/// One record read back: key, value, headers.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", fresh("test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

/// Each partition's high watermark (the offset the next record will get).
pub fn end_offsets(brokers: &str, topic: &str) -> Vec<i64> {
    let c = consumer(brokers);
    let meta = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = meta.topics()[0].partitions().len() as i32;
    (0..partitions)
        .map(|p| {
            // A topic created a moment ago may not have its leaders everywhere yet
            // (NotLeaderForPartition, LeaderNotAvailable): ask again for a while.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match c.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                    Ok((_, high)) => break high,
                    Err(err) if Instant::now() < deadline => {
                        eprintln!("watermarks of {topic}/{p}: {err}; asking again");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    Err(err) => panic!("watermarks of {topic}/{p}: {err}"),
                }
            }
        })
        .collect()
}

/// Every record of `topic` a consumer with `isolation.level` `isolation` (`read_committed` or
/// `read_uncommitted`) reads from the beginning until each partition reports its end. Under
/// read_committed the end is the last stable offset: records of aborted transactions are never
/// delivered and open transactions hold it back, so call it when no transaction is open.
pub fn read_isolated(brokers: &str, topic: &str, isolation: &str) -> Vec<Record> {
    let partitions = end_offsets(brokers, topic).len() as i32;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", fresh("test-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut at_end = std::collections::BTreeSet::new();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{isolation}: {} of {partitions} partitions of {topic} read to their end",
            at_end.len()
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(err)) => panic!("consume {topic}: {err}"),
            Some(Ok(msg)) => {
                at_end.remove(&msg.partition());
                records.push(record(&msg));
            }
        }
    }
    records
}

fn record(msg: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let headers = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        value: msg.payload().map(<[u8]>::to_vec),
        headers,
    }
}

/// Every record of `topic`, from the beginning to the end offsets seen when called.
pub fn read_all(brokers: &str, topic: &str) -> Vec<Record> {
    let ends = end_offsets(brokers, topic);
    let c = consumer(brokers);
    let mut tpl = TopicPartitionList::new();
    for p in 0..ends.len() as i32 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let want: i64 = ends.iter().sum();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = vec![0i64; ends.len()];
    while seen.iter().zip(&ends).any(|(s, e)| s < e) {
        assert!(
            Instant::now() < deadline,
            "read {} of {want} records of {topic}",
            records.len()
        );
        let Some(msg) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("consume");
        let p = msg.partition() as usize;
        if msg.offset() >= ends[p] {
            continue;
        }
        seen[p] = seen[p].max(msg.offset() + 1);
        records.push(record(&msg));
    }
    records
}

/// (metric, window, window_start) → the row, over every page of `/metrics`.
pub type Stored = BTreeMap<(String, String, i64), Value>;

/// Result rows by (metric, window, window start), and the keys read more than once.
pub fn result_rows(records: &[Record]) -> (Stored, Vec<String>) {
    let mut rows = Stored::new();
    let mut twice = Vec::new();
    for r in records {
        let row: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        let key = (
            row["metric_id"].as_str().unwrap().to_string(),
            row["window"].as_str().unwrap().to_string(),
            row["window_start"].as_i64().unwrap(),
        );
        if let Some(prev) = rows.insert(key.clone(), row.clone()) {
            twice.push(format!("{key:?} ({prev} then {row})"));
        }
    }
    (rows, twice)
}

/// Every window result a worker stored in `[start, end)`, walking the pages.
pub fn stored_results(p: &Platform, start: i64, end: i64) -> Stored {
    p.walk_results(&format!("start={start}&end={end}"))
}

/// The union of what several workers stored. Where two stored the same window (a partition that
/// moved, replayed from its checkpoint), the same revision must carry the same aggregates: a
/// replay rewrites identical rows. The highest revision is the window's result.
pub fn union(stores: &[Stored]) -> Stored {
    let mut all = Stored::new();
    for store in stores {
        for (key, row) in store {
            match all.get(key) {
                None => {
                    all.insert(key.clone(), row.clone());
                }
                Some(prev) if prev["revision"] == row["revision"] => {
                    assert_eq!(prev, row, "two workers stored different rows for {key:?}");
                }
                Some(prev) => {
                    if row["revision"].as_u64() > prev["revision"].as_u64() {
                        all.insert(key.clone(), row.clone());
                    }
                }
            }
        }
    }
    all
}

/// The partitions a worker owns now, with their resume offsets.
pub fn owned(p: &Platform, job: &str) -> BTreeMap<u32, u64> {
    let (status, body) = p.get(&format!("/jobs/{job}"));
    assert_eq!(status, 200, "{body}");
    body["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            (
                q["partition"].as_u64().unwrap() as u32,
                q["next_offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Starts a worker with `config` that must stop on its own: returns its log once it has exited
/// (not successfully), and fails if it neither stops nor says why within 90 s, or if it becomes
/// ready unless `may_be_ready` (a failure found after start-up, when partitions are assigned).
pub fn refused_worker(dir: &Path, config: &str, may_be_ready: bool) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.yaml"), config).unwrap();
    let log_path = dir.join("platform.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .arg("run")
        .arg("--config")
        .arg(dir.join("config.yaml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn streampulse");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let http = agent();
    let deadline = Instant::now() + Duration::from_secs(90);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        let ready = http
            .get(&format!("http://127.0.0.1:{port}/readyz"))
            .call()
            .is_ok_and(|r| r.status() == 200);
        if (ready && !may_be_ready) || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "a worker that must be refused {}; log:\n{}",
                if ready {
                    "became ready"
                } else {
                    "neither stopped nor said why"
                },
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = log();
    assert!(!exit.success(), "{exit}; log:\n{log}");
    log
}

// The group tests' stream: events keyed by metric, produced at a steady rate, and the batch
// computation their 10 s tumbling windows must equal.

pub const METRICS: u64 = 60;
pub const BASE_TS: i64 = 1_700_000_000_000;
/// Event time advances 5 ms per event, across all metrics: 200 events per second of event time.
pub const TS_STEP: i64 = 5;

/// Event `seq` of the stream: metric, time, value. Times increase with `seq`, so nothing is late.
pub fn event(seq: u64) -> (String, i64, f64) {
    (
        format!("m{:03}", seq % METRICS),
        BASE_TS + seq as i64 * TS_STEP,
        ((seq * 7919) % 1000) as f64 / 10.0,
    )
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Agg {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

/// The batch computation: 10 s tumbling windows over events `0..n`, by (metric, window start).
pub fn batch(n: u64) -> BTreeMap<(String, i64), Agg> {
    let mut out: BTreeMap<(String, i64), Agg> = BTreeMap::new();
    for seq in 0..n {
        let (metric, ts, value) = event(seq);
        let a = out
            .entry((metric, ts - ts.rem_euclid(10_000)))
            .or_insert(Agg {
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                ..Agg::default()
            });
        a.count += 1;
        a.sum += value;
        a.min = a.min.min(value);
        a.max = a.max.max(value);
    }
    out
}

/// Produces events `from..to` at about `rate` per second on its own thread.
pub fn stream(
    brokers: &str,
    topic: &str,
    from: u64,
    to: u64,
    rate: u64,
) -> std::thread::JoinHandle<()> {
    let p = producer(brokers, topic);
    std::thread::spawn(move || {
        let start = Instant::now();
        for seq in from..to {
            let (metric, ts, value) = event(seq);
            let line = format!(r#"{{"metric_id":"{metric}","ts":{ts},"value":{value}}}"#);
            p.send(&metric, line.as_bytes()).unwrap();
            let due = start + Duration::from_secs_f64((seq - from) as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        p.flush(Duration::from_secs(60)).unwrap();
    })
}

/// A group test's worker configuration: `kafka:` with `brokers`, `topic`, its dead-letter topic,
/// the `extra` keys (e.g. `group_id: g`), a 6 s session timeout; then [`group_job_yaml`].
pub fn group_config(
    brokers: &str,
    topic: &str,
    extra: &[String],
    job: &str,
    checkpoints: &Path,
) -> String {
    let extra: String = extra.iter().map(|line| format!("  {line}\n")).collect();
    format!(
        "kafka:\n  brokers: \"{brokers}\"\n  topic: {topic}\n  dead_letter_topic: {topic}.dlq\n\
         {extra}  properties:\n    session.timeout.ms: \"6000\"\n    \
         heartbeat.interval.ms: \"500\"\n{}",
        group_job_yaml(job, checkpoints)
    )
}

/// The part of a group test's configuration after its `kafka:` section: checkpoints every second
/// to `checkpoints` (shared by the workers), and job `job` with the 10 s tumbling window `batch`
/// computes, no detectors, idle partitions flushed after 3 s.
pub fn group_job_yaml(job: &str, checkpoints: &Path) -> String {
    format!(
        r#"checkpoint:
  interval: 1s
  storage: "file://{}"
job:
  name: {job}
  max_out_of_orderness: 2s
  allowed_lateness: 0s
  idle_timeout: 3s
  windows:
    - name: tumble_10s
      type: tumbling
      size: 10s
  detectors: []
"#,
        checkpoints.display()
    )
}

/// Where `got` (rows by metric, window name and start) differs from the batch computation `want`
/// for window `window`: missing rows, different aggregates, extra rows.
pub fn differences(
    want: &BTreeMap<(String, i64), Agg>,
    got: &BTreeMap<(String, String, i64), Value>,
    window: &str,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for ((metric, start), a) in want {
        match got.get(&(metric.clone(), window.to_string(), *start)) {
            None => diffs.push(format!("{metric}@{start}: missing")),
            Some(r) => {
                let ok = r["count"].as_u64() == Some(a.count)
                    && r["min"].as_f64() == Some(a.min)
                    && r["max"].as_f64() == Some(a.max)
                    && r["sum"]
                        .as_f64()
                        .is_some_and(|sum| (sum - a.sum).abs() <= 1e-6 * a.sum.abs().max(1.0));
                if !ok {
                    diffs.push(format!("{metric}@{start}: stored {r}, batch {a:?}"));
                }
            }
        }
    }
    if got.len() > want.len() {
        diffs.push(format!(
            "{} windows stored, {} expected",
            got.len(),
            want.len()
        ));
    }
    diffs
}
