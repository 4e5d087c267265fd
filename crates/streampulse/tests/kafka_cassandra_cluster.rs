//! The cluster deployment end to end: two Kafka workers of one consumer group writing one
//! Cassandra keyspace, and a `streampulse serve` process answering from it, all real processes
//! against a real Apache Kafka broker and a real Apache Cassandra node.
//!
//! One worker is SIGKILLed mid-stream; its partitions move to the survivor, which resumes them from
//! their checkpoints. Then every answer must be whole, from any process: the survivor's
//! `GET /metrics` and the serve process's both equal the batch computation over everything
//! produced (every partition, whoever computed it), and the serve process's WebSocket delivered a
//! result for every window of every partition (it follows the results topic).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod console_support;
mod kafka_support;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_support::{
    batch, brokers, create_topics, differences, end_offsets, fresh, group_job_yaml, owned,
    stored_results, stream, BASE_TS, TS_STEP,
};
use support::{cassandra_node, cassandra_store_yaml, free_port, ws_open, Platform};

const PARTITIONS: u32 = 6;
const JOB: &str = "shared";
const EVENTS: u64 = 40_000;

fn config(brokers: &str, topic: &str, store: &str, checkpoints: &Path) -> String {
    format!(
        r#"kafka:
  brokers: "{brokers}"
  topic: {topic}
  results_topic: {topic}.results
  dead_letter_topic: {topic}.dlq
  properties:
    session.timeout.ms: "6000"
    heartbeat.interval.ms: "500"
{store}{}"#,
        group_job_yaml(JOB, checkpoints)
    )
}

/// Waits until `p` owns every partition and has read each to the topic's end.
fn wait_caught_up(p: &Platform, brokers: &str, topic: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let ends = end_offsets(brokers, topic);
        let owned = owned(p, JOB);
        let done = owned.len() == PARTITIONS as usize
            && owned
                .iter()
                .all(|(q, next)| *next as i64 >= ends[*q as usize]);
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor did not take over and catch up within {timeout:?}: owns {owned:?}, ends {ends:?}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads `/ws` of `p` on a thread until `stop`; returns the (metric, window start) of every
/// result message received.
fn follow_ws(
    p: &Platform,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<BTreeSet<(String, i64)>> {
    let mut ws = ws_open(p, "").expect("open /ws on the serve process");
    std::thread::spawn(move || {
        let mut seen = BTreeSet::new();
        while !stop.load(Ordering::Relaxed) {
            let message = match ws.read() {
                Ok(tungstenite::Message::Text(t)) => t,
                Ok(_) => continue,
                // The read timeout (10 s): look at `stop` again.
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    continue
                }
                Err(err) => panic!("the WebSocket of the serve process failed: {err}"),
            };
            let v: serde_json::Value = serde_json::from_str(&message).unwrap();
            if v["type"] == "result" && v["partial"].is_null() {
                seen.insert((
                    v["metric_id"].as_str().unwrap().to_string(),
                    v["window_start"].as_i64().unwrap(),
                ));
            }
        }
        seen
    })
}

#[test]
fn any_process_answers_for_every_partition_after_a_worker_dies() {
    let Some(node) = cassandra_node() else { return };
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("shared");
    let store = cassandra_store_yaml(&node, "cluster");
    let config = config(&brokers, &topic, &store, &dir.path().join("checkpoints"));
    create_topics(&config, dir.path(), PARTITIONS);

    // One at a time: the first creates the keyspace and tables, the others find them.
    let w1 = Platform::start(&dir.path().join("w1"), &config, free_port());
    let w2 = Platform::start(&dir.path().join("w2"), &config, free_port());
    let serve = Platform::serve(&dir.path().join("serve"), &config, free_port());

    let (status, job) = serve.get(&format!("/jobs/{JOB}"));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "remote", "{job}");
    let (status, refused) = serve.send("DELETE", &format!("/jobs/{JOB}"), &serde_json::json!({}));
    assert_eq!(
        status, 409,
        "the serve process cannot stop the workers' job: {refused}"
    );
    // Its web console follows the workers' job live (a `remote` job pushes over /ws too).
    if let Some(chromium) = console_support::browser() {
        console_support::run_e2e(&chromium, &serve, "serve", &[("JOB", JOB.to_string())]);
    }

    let stop_ws = Arc::new(AtomicBool::new(false));
    let ws = follow_ws(&serve, stop_ws.clone());

    // Both workers own partitions before the stream starts, so both write rows.
    let deadline = Instant::now() + Duration::from_secs(60);
    while owned(&w1, JOB).is_empty() || owned(&w2, JOB).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the group did not spread the partitions"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let producing = stream(&brokers, &topic, 0, EVENTS, 2_000);
    std::thread::sleep(Duration::from_secs(8));
    let had = owned(&w1, JOB).len();
    w1.kill();
    producing.join().unwrap();
    wait_caught_up(&w2, &brokers, &topic, Duration::from_secs(120));
    assert!(had > 0, "the killed worker owned partitions");

    // Every window of every partition, from the survivor and from the serve process.
    let want = batch(EVENTS);
    let end = BASE_TS + EVENTS as i64 * TS_STEP + 10_000;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let survivor = differences(&want, &stored_results(&w2, BASE_TS, end), "tumble_10s");
        let served = differences(&want, &stored_results(&serve, BASE_TS, end), "tumble_10s");
        if survivor.is_empty() && served.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "survivor: {} differences {:?}\nserve: {} differences {:?}\nsurvivor log:\n{}",
            survivor.len(),
            &survivor[..survivor.len().min(5)],
            served.len(),
            &served[..served.len().min(5)],
            w2.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The live feed of the serve process carried every partition's windows too.
    let wanted: BTreeSet<(String, i64)> = want.keys().cloned().collect();
    std::thread::sleep(Duration::from_secs(2));
    stop_ws.store(true, Ordering::Relaxed);
    let seen = ws.join().unwrap();
    let missing: Vec<_> = wanted.difference(&seen).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} windows never reached the serve process's WebSocket, e.g. {missing:?}",
        wanted.difference(&seen).count(),
        wanted.len()
    );
}
