//! Savepoints of a consumer group on Apache Kafka: two workers share a 4-partition topic while a
//! producer streams; one of them is asked to stop the job with a savepoint
//! (`DELETE /jobs/{id}?savepoint=NAME`), and both stop at it (the other one on its own, through
//! the checkpoint storage). More events are produced, and a worker started without the savepoint
//! processes them all (so the group's latest checkpoints are past the savepoint). Then the group
//! is started from the savepoint, once with one worker and once (from a copy of the same storage)
//! with three: each time the union of what the first two workers stored before the savepoint and
//! what the resumed workers stored equals the batch computation over everything produced. A
//! savepoint whose state was lost, a worker that went on past the savepoint, or a resume from the
//! latest checkpoints instead of the savepoint would miss or double counts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_support::{
    batch, brokers, create_topics, differences, end_offsets, fresh, group_config, owned,
    stored_results, stream, union, Stored, BASE_TS, TS_STEP,
};
use support::{free_port, Platform};

const PARTITIONS: u32 = 4;
const JOB: &str = "sp";

fn config(brokers: &str, topic: &str, group: &str, checkpoints: &Path) -> String {
    group_config(
        brokers,
        topic,
        &[format!("group_id: {group}")],
        JOB,
        checkpoints,
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn state(p: &Platform) -> String {
    let (_, status) = p.get(&format!("/jobs/{JOB}"));
    status["state"].as_str().unwrap_or_default().to_string()
}

fn wait_until(what: &str, timeout: Duration, workers: &[&Platform], done: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
            let logs: Vec<String> = workers
                .iter()
                .map(|w| {
                    w.log()
                        .lines()
                        .rev()
                        .take(25)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect();
            panic!(
                "{what} within {timeout:?}; logs:\n{}",
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Starts `n` workers of a group from savepoint `sp` over `checkpoints`, and waits until the
/// union of what they and `before` stored equals the batch over `total` events.
fn resume(
    dir: &Path,
    brokers: &str,
    topic: &str,
    checkpoints: &Path,
    n: usize,
    before: &[Stored],
    total: u64,
) {
    let group = format!("{topic}-resume-{n}");
    let config = config(brokers, topic, &group, checkpoints);
    let workers: Vec<Platform> = (0..n)
        .map(|i| {
            Platform::start_with(
                &dir.join(format!("resume{n}-{i}")),
                &config,
                free_port(),
                &["--from-savepoint", "sp"],
            )
        })
        .collect();
    let refs: Vec<&Platform> = workers.iter().collect();
    let want = batch(total);
    let end = BASE_TS + total as i64 * TS_STEP + 10_000;
    let got = || {
        let mut stores = before.to_vec();
        stores.extend(refs.iter().map(|w| stored_results(w, BASE_TS, end)));
        union(&stores)
    };
    wait_until(
        &format!("{n} resumed workers did not complete the batch computation"),
        Duration::from_secs(120),
        &refs,
        || differences(&want, &got(), "tumble_10s").is_empty(),
    );
    let diffs = differences(&want, &got(), "tumble_10s");
    assert!(diffs.is_empty(), "{diffs:?}");
    let imported = refs
        .iter()
        .filter(|w| w.log().contains("the group starts from the savepoint"))
        .count();
    assert!(imported >= 1, "no worker imported the savepoint");
    for w in workers {
        assert!(w.interrupt().success());
    }
}

#[test]
fn a_group_stops_at_a_savepoint_and_resumes_from_it_with_one_or_three_workers() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("savepoint");
    let checkpoints = dir.path().join("checkpoints");
    let config = config(&brokers, &topic, &format!("{topic}-group"), &checkpoints);
    create_topics(&config, dir.path(), PARTITIONS);

    let w1 = Platform::start(&dir.path().join("w1"), &config, free_port());
    let w2 = Platform::start(&dir.path().join("w2"), &config, free_port());
    wait_until(
        "the two workers did not share the partitions",
        Duration::from_secs(60),
        &[&w1, &w2],
        || {
            let (a, b) = (owned(&w1, JOB), owned(&w2, JOB));
            !a.is_empty() && !b.is_empty() && a.len() + b.len() == PARTITIONS as usize
        },
    );

    // Mid-stream: stop the group with a savepoint while events flow.
    const FIRST: u64 = 20_000;
    let producing = stream(&brokers, &topic, 0, FIRST, 4_000);
    std::thread::sleep(Duration::from_secs(2));
    let (status, answer) = w1.delete(&format!("/jobs/{JOB}?savepoint=sp"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(state(&w1), "stopped");
    wait_until(
        "the other worker did not stop at the savepoint",
        Duration::from_secs(30),
        &[&w1, &w2],
        || state(&w2) == "stopped",
    );
    producing.join().unwrap();
    const SECOND: u64 = 5_000;
    stream(&brokers, &topic, FIRST, FIRST + SECOND, 20_000)
        .join()
        .unwrap();
    let total = FIRST + SECOND;
    assert_eq!(
        end_offsets(&brokers, &topic).iter().sum::<i64>(),
        total as i64
    );
    let end = BASE_TS + total as i64 * TS_STEP + 10_000;
    let before = vec![
        stored_results(&w1, BASE_TS, end),
        stored_results(&w2, BASE_TS, end),
    ];
    let seen = batch(total).len();
    assert!(
        union(&before).len() < seen,
        "the group stopped before the end of the stream, so windows remained for a resume"
    );
    w1.kill();
    w2.kill();

    // The group runs on without the savepoint: its checkpoints move past it.
    let later = Platform::start(&dir.path().join("later"), &config, free_port());
    wait_until(
        "the later worker did not read every record",
        Duration::from_secs(60),
        &[&later],
        || owned(&later, JOB).values().sum::<u64>() == total,
    );
    assert!(later.interrupt().success());

    let copy = dir.path().join("checkpoints-copy");
    copy_dir(&checkpoints, &copy);
    resume(
        dir.path(),
        &brokers,
        &topic,
        &checkpoints,
        1,
        &before,
        total,
    );
    resume(dir.path(), &brokers, &topic, &copy, 3, &before, total);
}
