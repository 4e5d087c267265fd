//! A checkpoint that resumes at an offset the topic no longer holds, on Apache Kafka: a worker
//! checkpoints partition 0 at offset 100 and stops; records 100..150 are then deleted with Kafka's
//! DeleteRecords admin call. Under `kafka.on_data_loss: fail` the next worker stops at start-up
//! naming the topic, partition, the offset wanted and the earliest one there; under `skip` it
//! resumes at 150, counts the 50 lost records, and its windows are those of what it did see.
//!
//! The same while a worker runs: paused (SIGSTOP) at offset 200, records 200..300 are produced
//! and those below 250 deleted before it reads them; resumed, under `skip` it goes on at 250 and
//! counts 50 more lost, and under `fail` (another worker, paused at 300 the same way) it stops
//! naming the offsets, instead of the consumer jumping silently past the gap.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::time::{Duration, Instant};

use kafka_support::{brokers, create_topics, fresh, owned, producer, refused_worker};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use support::{free_port, Platform};

const JOB: &str = "loss";
const T0: i64 = 1_700_000_000_000;

fn config(brokers: &str, topic: &str, checkpoints: &std::path::Path, on_loss: &str) -> String {
    format!(
        "kafka:\n  brokers: \"{brokers}\"\n  topic: {topic}\n  group_id: {topic}-group\n  \
         dead_letter_topic: {topic}.dlq\n  on_data_loss: {on_loss}\n  properties:\n    \
         session.timeout.ms: \"6000\"\ncheckpoint:\n  storage: \"{}\"\n  interval: 500ms\n\
         job:\n  name: {JOB}\n  max_out_of_orderness: 0s\n  idle_timeout: 1h\n  windows:\n    \
         - {{name: tumble_10s, type: tumbling, size: 10s}}\n  detectors: []\n",
        checkpoints.display()
    )
}

/// Events `from..to` of metric `m`, one per second of event time.
fn produce(brokers: &str, topic: &str, range: std::ops::Range<i64>) {
    let p = producer(brokers, topic);
    for i in range {
        let line = format!(r#"{{"metric_id":"m","ts":{},"value":1}}"#, T0 + i * 1_000);
        p.send("m", line.as_bytes()).unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

fn wait_offset(p: &mut Platform, offset: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(exit) = p.exited() {
            panic!(
                "the worker exited ({exit}) before offset {offset}:\n{}",
                p.log()
            );
        }
        if owned(p, JOB).get(&0) == Some(&offset) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partition 0 never reached offset {offset}: {:?}\n{}",
            owned(p, JOB),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deletes the records of partition 0 below `offset`, with Kafka's DeleteRecords admin call.
fn delete_records_below(brokers: &str, topic: &str, offset: i64) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    let done = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(admin.delete_records(&tpl, &AdminOptions::new()))
        .unwrap();
    for e in done.elements() {
        assert!(e.error().is_ok(), "DeleteRecords: {:?}", e.error());
    }
}

#[test]
fn a_checkpoint_past_what_kafka_still_holds_fails_or_is_skipped_and_counted() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("loss");
    let checkpoints = dir.path().join("checkpoints");
    let failing = config(&brokers, &topic, &checkpoints, "fail");
    create_topics(&failing, &dir.path().join("topics"), 1);

    produce(&brokers, &topic, 0..100);
    let mut p = Platform::start(&dir.path().join("w1"), &failing, free_port());
    wait_offset(&mut p, 100);
    assert!(p.interrupt().success(), "a clean stop checkpoints at 100");

    produce(&brokers, &topic, 100..200);
    delete_records_below(&brokers, &topic, 150);

    let log = refused_worker(&dir.path().join("w2"), &failing, true);
    assert!(
        log.contains(&format!(
            "partition 0 of topic '{topic}': the checkpoint resumes at offset 100, but the topic \
             holds records from offset 150 on"
        )),
        "the error names topic, partition and both offsets:\n{log}"
    );

    let skipping = config(&brokers, &topic, &checkpoints, "skip");
    let mut p = Platform::start(&dir.path().join("w3"), &skipping, free_port());
    wait_offset(&mut p, 200);
    let (_, status) = p.get(&format!("/jobs/{JOB}"));
    assert_eq!(status["partitions"][0]["lost_records"], 50, "{status}");
    // This worker's own store holds the windows it fired: [90 s, 100 s) from the restored state
    // (its last event came before the stop), then [150 s, 160 s) .. [180 s, 190 s); the windows
    // of 100 s .. 150 s never saw their events, and [190 s, 200 s) is still open.
    let rows = p.results(T0, T0 + 200_000, Some("m"));
    let counts: Vec<(i64, u64)> = rows
        .iter()
        .map(|r| {
            (
                (r["window_start"].as_i64().unwrap() - T0) / 1_000,
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let want: Vec<(i64, u64)> = [9, 15, 16, 17, 18].iter().map(|w| (w * 10, 10)).collect();
    assert_eq!(counts, want, "{}", p.log());

    // While running (well within the 6 s session timeout, so the group keeps it).
    p.signal("STOP");
    produce(&brokers, &topic, 200..300);
    delete_records_below(&brokers, &topic, 250);
    p.signal("CONT");
    wait_offset(&mut p, 300);
    let (_, status) = p.get(&format!("/jobs/{JOB}"));
    assert_eq!(status["partitions"][0]["lost_records"], 100, "{status}");
    assert!(p.interrupt().success(), "a clean stop checkpoints at 300");

    let mut p = Platform::start(&dir.path().join("w4"), &failing, free_port());
    wait_offset(&mut p, 300);
    p.signal("STOP");
    produce(&brokers, &topic, 300..400);
    delete_records_below(&brokers, &topic, 350);
    p.signal("CONT");
    let exit = p.wait_exit(
        Duration::from_secs(60),
        "the worker went on past lost records",
    );
    assert!(!exit.success(), "{}", p.log());
    let log = p.log();
    assert!(
        log.contains(&format!(
            "partition 0 of topic '{topic}': the worker reads at offset 300, but the topic holds \
             records from offset 350 on"
        )),
        "the error names topic, partition and both offsets:\n{log}"
    );
}
