//! Scale-out, failover and restart of a consumer group of real `streampulse` processes against a
//! real Kafka-protocol broker, checked against a batch computation over everything produced.
//!
//! Three workers share a 12-partition topic while a producer streams. One is SIGKILLed
//! mid-stream (its partitions move to the others when its session expires) and later comes back
//! (with its data directory, as a restarted pod would). Then all three are SIGKILLed at once,
//! more events are produced while none runs, and all three restart. The union of what the workers
//! stored must equal the batch computation: nothing lost, nothing counted twice, and a partition
//! that moved continued from its checkpointed windows (an empty restart would miss the counts of
//! every window open at the checkpoint).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_support::{
    batch, brokers, create_topics, differences, end_offsets, fresh, group_config, owned,
    stored_results, stream, union, BASE_TS, TS_STEP,
};
use support::{free_port, Platform};

const PARTITIONS: u32 = 12;
const JOB: &str = "cluster";

fn config(brokers: &str, topic: &str, checkpoints: &Path) -> String {
    group_config(brokers, topic, &[], JOB, checkpoints)
}

fn start(dir: &Path, name: &str, config: &str) -> Platform {
    Platform::start(&dir.join(name), config, free_port())
}

/// Waits until the live workers own every partition, each exactly once, and each worker owns
/// some; returns the owners.
fn wait_assigned(workers: &[&Platform], timeout: Duration) -> BTreeMap<u32, usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut owners = BTreeMap::new();
        let mut twice = false;
        for (i, w) in workers.iter().enumerate() {
            for p in owned(w, JOB).keys() {
                twice |= owners.insert(*p, i).is_some();
            }
        }
        // Settled: every partition owned once, and every worker in the group owns some (a worker
        // that joined after the first assignment takes part only after the next rebalance).
        let everyone = (0..workers.len()).all(|i| owners.values().any(|&o| o == i));
        if !twice && owners.len() == PARTITIONS as usize && everyone {
            return owners;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not assigned within {timeout:?}: {owners:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the union of the workers' results equals the batch over `n` events; panics with
/// the first differences otherwise.
fn wait_results(workers: &[&Platform], n: u64, timeout: Duration) {
    let want = batch(n);
    let deadline = Instant::now() + timeout;
    let end = BASE_TS + n as i64 * TS_STEP + 10_000;
    loop {
        let stores: Vec<_> = workers
            .iter()
            .map(|w| stored_results(w, BASE_TS, end))
            .collect();
        let got = union(&stores);
        let diffs = differences(&want, &got, "tumble_10s");
        if diffs.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
            panic!(
                "{} differences, first: {:#?}\nworker logs (tail):\n{}",
                diffs.len(),
                &diffs[..diffs.len().min(10)],
                logs.iter()
                    .map(|l| l.lines().rev().take(30).collect::<Vec<_>>().join("\n"))
                    .collect::<Vec<_>>()
                    .join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn processed(workers: &[&Platform]) -> u64 {
    workers
        .iter()
        .map(|w| {
            let (_, s) = w.get(&format!("/jobs/{JOB}"));
            s["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["events"].as_u64().unwrap())
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn kafka_scale_out_failover_and_full_restart() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("cluster");
    let checkpoints = dir.path().join("shared-checkpoints");
    let config = config(&brokers, &topic, &checkpoints);
    create_topics(&config, dir.path(), PARTITIONS);

    // Three workers join; the group spreads the partitions over them.
    let w1 = start(dir.path(), "w1", &config);
    let w2 = start(dir.path(), "w2", &config);
    let w3 = start(dir.path(), "w3", &config);
    let owners = wait_assigned(&[&w1, &w2, &w3], Duration::from_secs(60));
    let spread: BTreeSet<usize> = owners.values().copied().collect();
    assert_eq!(spread.len(), 3, "every worker got partitions: {owners:?}");

    // Phase 1: stream; kill one worker mid-stream; bring it back later.
    const FIRST: u64 = 40_000;
    let producing = stream(&brokers, &topic, 0, FIRST, 2_000);
    std::thread::sleep(Duration::from_secs(7));
    let w2_partitions: Vec<u32> = owned(&w2, JOB).keys().copied().collect();
    assert!(!w2_partitions.is_empty());
    w2.kill();
    let killed = Instant::now();
    let owners = wait_assigned(&[&w1, &w3], Duration::from_secs(60));
    let failover = killed.elapsed();
    eprintln!(
        "failover: partitions {w2_partitions:?} of the killed worker owned again after {:.1} s",
        failover.as_secs_f64()
    );
    assert_eq!(owners.len(), PARTITIONS as usize);
    std::thread::sleep(Duration::from_secs(3));
    let w2 = start(dir.path(), "w2", &config);
    wait_assigned(&[&w1, &w2, &w3], Duration::from_secs(60));
    producing.join().unwrap();
    assert_eq!(
        end_offsets(&brokers, &topic).iter().sum::<i64>(),
        FIRST as i64
    );
    wait_results(&[&w1, &w2, &w3], FIRST, Duration::from_secs(120));
    let restored: usize = [&w1, &w3]
        .iter()
        .map(|w| w.log().matches("restored from its checkpoint").count())
        .sum();
    assert!(
        restored >= w2_partitions.len(),
        "the killed worker's partitions were restored from checkpoints ({restored} restores)"
    );

    // Phase 2: every worker dies at once; events keep coming; all restart.
    for w in [w1, w2, w3] {
        w.kill();
    }
    const SECOND: u64 = 10_000;
    stream(&brokers, &topic, FIRST, FIRST + SECOND, 10_000)
        .join()
        .unwrap();
    let w1 = start(dir.path(), "w1", &config);
    let w2 = start(dir.path(), "w2", &config);
    let w3 = start(dir.path(), "w3", &config);
    wait_assigned(&[&w1, &w2, &w3], Duration::from_secs(60));
    wait_results(&[&w1, &w2, &w3], FIRST + SECOND, Duration::from_secs(120));
    let replayed = processed(&[&w1, &w2, &w3]);
    eprintln!("after the full restart the workers processed {replayed} records");
    // From the checkpoints: the events produced while all were down, plus at most what came after
    // the last checkpoints; never the whole topic again (earliest), and not only new events
    // (latest would have lost the second batch, which wait_results checked).
    assert!(
        (SECOND..FIRST).contains(&replayed),
        "processed {replayed} records after the restart"
    );
    for w in [w1, w2, w3] {
        assert!(w.interrupt().success());
    }
}
