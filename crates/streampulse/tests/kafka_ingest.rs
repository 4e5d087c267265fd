//! A job that reads a Kafka topic, against a real Kafka-protocol broker: the Flink reference
//! rows from the public events produced to a one-partition topic, and poison records that land
//! in the dead-letter topic with their reasons while the job goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod flink_support;
mod kafka_support;
mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use flink_support::{assert_same, read_flink, repo, rows_by_window, Key, Row, WINDOWS};
use kafka_support::{brokers, create_topics, fresh, producer, read_all, stored_results};
use support::{free_port, Platform};

const PARITY_WINDOWS: &str = r#"
  windows:
    - name: tumble_10s
      type: tumbling
      size: 10s
    - name: hop_30s_10s
      type: sliding
      size: 30s
      slide: 10s
    - name: session_5s
      type: session
      gap: 5s
"#;

fn kafka_section(brokers: &str, topic: &str) -> String {
    format!(
        "kafka:\n  brokers: \"{brokers}\"\n  topic: {topic}\n  dead_letter_topic: {topic}.dlq\n  \
         results_topic: {topic}.results\n  properties:\n    session.timeout.ms: \"6000\"\n"
    )
}

#[test]
fn kafka_public_events_give_flinks_rows() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("parity");
    let config = format!(
        "{}checkpoint:\n  interval: 2s\njob:\n  name: flink_parity\n  max_out_of_orderness: 5s\n  \
         allowed_lateness: 0s\n  idle_timeout: 2s\n{PARITY_WINDOWS}",
        kafka_section(&brokers, &topic)
    );
    create_topics(&config, dir.path(), 1);

    // Flink read the file in order with parallelism 1: one partition, file order.
    let file = std::fs::File::open(repo().join("testdata/public.jsonl.gz")).unwrap();
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let events = producer(&brokers, &topic);
    let mut produced = 0;
    for line in lines {
        let line = line.unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        events
            .send(v["metric_id"].as_str().unwrap(), line.as_bytes())
            .unwrap();
        produced += 1;
    }
    events.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(produced, 200_000);

    let flink: BTreeMap<&str, BTreeMap<Key, Row>> = WINDOWS
        .iter()
        .map(|(w, f)| (*w, read_flink(&repo().join("testdata/flink").join(f))))
        .collect();
    let want: usize = flink.values().map(BTreeMap::len).sum();
    let p = Platform::start(&dir.path().join("worker"), &config, free_port());
    let (start, end) = (1_699_999_800_000, 1_700_000_400_000);
    let deadline = Instant::now() + Duration::from_secs(120);
    let ours = loop {
        let stored = stored_results(&p, start, end);
        if stored.len() >= want || Instant::now() > deadline {
            break rows_by_window(&stored);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    for (window, rows) in &flink {
        assert_same(window, ours.get(*window).unwrap_or(&BTreeMap::new()), rows);
    }
    // The same rows went to the results topic (at least once: dedupe by key and revision).
    let mut on_topic = BTreeMap::new();
    for r in read_all(&brokers, &format!("{topic}.results")) {
        let v: serde_json::Value = serde_json::from_slice(&r.value.unwrap()).unwrap();
        assert_eq!(r.key.as_deref(), v["metric_id"].as_str());
        let key = (
            v["metric_id"].as_str().unwrap().to_string(),
            v["window"].as_str().unwrap().to_string(),
            v["window_start"].as_i64().unwrap(),
        );
        if v["retracted"] == true {
            on_topic.remove(&key);
        } else {
            on_topic.insert(key, v);
        }
    }
    assert_eq!(
        on_topic.len(),
        want,
        "distinct windows on the results topic"
    );
    let status = p.get("/jobs/flink_parity").1;
    assert_eq!(status["ingest_accepted"], 200_000, "{status}");
    p.interrupt();
}

#[test]
fn kafka_poison_records_go_to_the_dead_letter_topic() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("poison");
    let config = format!(
        "{}job:\n  name: poison\n  idle_timeout: 1s\n  windows:\n    - name: tumble_10s\n      \
         type: tumbling\n      size: 10s\n  detectors: []\n",
        kafka_section(&brokers, &topic)
    );
    create_topics(&config, dir.path(), 1);
    let bad: [(&str, &str); 4] = [
        ("cpu", "{not json"),
        ("cpu", r#"{"metric_id":"cpu","ts":1700000001000}"#),
        (
            "cpu",
            r#"{"metric_id":"cpu","ts":1700000001000,"value":"NaN"}"#,
        ),
        ("cpu", r#"[1,2,3]"#),
    ];
    let events = producer(&brokers, &topic);
    let mut good = 0;
    for i in 0..100 {
        let line = format!(
            r#"{{"metric_id":"cpu","ts":{},"value":{i}}}"#,
            1_700_000_000_000i64 + i * 100
        );
        events.send("cpu", line.as_bytes()).unwrap();
        good += 1;
        if i % 25 == 10 {
            let (key, payload) = bad[(i / 25) as usize];
            events.send(key, payload.as_bytes()).unwrap();
        }
    }
    events.flush(Duration::from_secs(30)).unwrap();

    let p = Platform::start(&dir.path().join("worker"), &config, free_port());
    let deadline = Instant::now() + Duration::from_secs(60);
    let results = loop {
        let r = p.results(1_700_000_000_000, 1_700_000_100_000, Some("cpu"));
        let counted: u64 = r.iter().map(|r| r["count"].as_u64().unwrap()).sum();
        if counted == good || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let counted: u64 = results.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, good, "every valid event counted once: {results:?}");
    let sum: f64 = results.iter().map(|r| r["sum"].as_f64().unwrap()).sum();
    assert_eq!(sum, (0..100).sum::<i64>() as f64);

    let dead = read_all(&brokers, &format!("{topic}.dlq"));
    assert_eq!(dead.len(), bad.len(), "{dead:?}");
    for (record, (_, payload)) in dead.iter().zip(bad) {
        assert_eq!(
            record.value.as_deref(),
            Some(payload.as_bytes()),
            "unchanged"
        );
        assert_eq!(record.key.as_deref(), Some("cpu"));
        let reason = &record.headers["streampulse.error"];
        assert!(!reason.is_empty());
        let origin = &record.headers["streampulse.source"];
        assert!(origin.starts_with(&format!("{topic}/0/")), "{origin}");
    }
    assert!(dead[0].headers["streampulse.error"].contains("invalid JSON"));
    assert!(
        dead[1].headers["streampulse.error"].contains("value"),
        "{:?}",
        dead[1].headers
    );
    let (code, problem) = p
        .post(
            r#"{"metric_id":"cpu","ts":1,"value":1}"#,
            "application/json",
            None,
        )
        .unwrap();
    assert_eq!(code, 409, "HTTP ingest is refused, not lost: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("Kafka"));
    let status = p.get("/jobs/poison").1;
    assert_eq!(status["ingest_rejected"], 4, "{status}");
    let scrape = p.scrape();
    assert!(
        scrape.contains("streampulse_events_rejected_total"),
        "rejections are exported"
    );
    p.interrupt();
}

#[test]
fn kafka_oversized_poison_records_are_dead_lettered_cut_and_the_job_goes_on() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("huge");
    let config = format!(
        "{}job:\n  name: huge\n  idle_timeout: 1s\n  windows:\n    - name: tumble_10s\n      \
         type: tumbling\n      size: 10s\n  detectors: []\n",
        kafka_section(&brokers, &topic)
    );
    create_topics(&config, dir.path(), 1);
    // Records close to the broker's 1 MiB limit: the worker's own producer could not forward
    // them to the dead-letter topic as they are.
    let big = streampulse_kafka::KafkaConfig {
        brokers: brokers.clone(),
        properties: [("message.max.bytes".to_string(), "2000000".to_string())].into(),
        ..Default::default()
    };
    let events = streampulse_kafka::producer::EventProducer::new(&big, &topic).unwrap();
    let not_json = vec![b'x'; 1_000_000];
    let long_id = format!(
        r#"{{"metric_id":"{}","ts":1700000001000,"value":1}}"#,
        "a".repeat(900_000)
    );
    for i in 0..100i64 {
        if i == 50 {
            events.send("cpu", &not_json).unwrap();
            events.send("cpu", long_id.as_bytes()).unwrap();
        }
        let line = format!(
            r#"{{"metric_id":"cpu","ts":{},"value":{i}}}"#,
            1_700_000_000_000i64 + i * 100
        );
        events.send("cpu", line.as_bytes()).unwrap();
    }
    events.flush(Duration::from_secs(30)).unwrap();

    let p = Platform::start(&dir.path().join("worker"), &config, free_port());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = p.results(1_700_000_000_000, 1_700_000_100_000, Some("cpu"));
        let counted: u64 = r.iter().map(|r| r["count"].as_u64().unwrap()).sum();
        if counted == 100 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the events after the poison records were not all counted ({counted}):\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let dead = read_all(&brokers, &format!("{topic}.dlq"));
    assert_eq!(
        dead.len(),
        2,
        "{:?}",
        dead.iter().map(|d| &d.headers).collect::<Vec<_>>()
    );
    let cut = streampulse_kafka::sink::MAX_DEAD_LETTER_PAYLOAD;
    for (record, original) in dead.iter().zip([not_json.len(), long_id.len()]) {
        let value = record.value.as_deref().unwrap();
        assert_eq!(value.len(), cut, "the payload is cut");
        assert_eq!(
            record.headers["streampulse.truncated"],
            format!("{original}/3")
        );
        assert!(record.headers["streampulse.source"].starts_with(&topic));
        assert!(!record.headers["streampulse.error"].is_empty());
    }
    assert_eq!(&dead[0].value.as_deref().unwrap()[..4], b"xxxx");
    let (ready, body) = p.get("/readyz");
    assert_eq!(ready, 200, "{body}");
    assert!(
        p.interrupt().success(),
        "a clean stop: {}",
        "checkpoints pass the poison records"
    );
}
