//! Savepoints of a consumer group on Apache Kafka: two workers share a 4-partition topic while a
//! producer streams; one of them is asked to stop the job with a savepoint
//! (`DELETE /jobs/{id}?savepoint=NAME`), and both stop at it (the other one on its own, through
//! the checkpoint storage). More events are produced, and a worker started without the savepoint
//! processes them all (so the group's latest checkpoints are past the savepoint). Then the group
//! is started from the savepoint, once with one worker and once (from a copy of the same storage)
//! with three: each time the union of what the first two workers stored before the savepoint and
//! what the resumed workers stored equals the batch computation over everything produced. A
//! savepoint whose state was lost, a worker that went on past the savepoint, or a resume from the
//! latest checkpoints instead of the savepoint would miss or double counts. All of it runs twice:
//! with at-least-once outputs and with `exactly_once` (where each partition's checkpoint is
//! committed with its Kafka transaction, and a savepoint must take the committed one). There, a
//! read_committed reader of the results topics (one for the group up to the savepoint, one per
//! resumed group) must also see each row of the batch computation exactly once. Two more tests
//! cover a stop that cannot complete: one worker paused (given up at the deadline), and the
//! worker asked killed (the request removed once it is twice the deadline old). The stop and
//! resume, and the killed asker, also run under the cooperative rebalance protocol.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_support::{
    batch, brokers, create_topics, differences, end_offsets, fresh, group_config, owned,
    read_isolated, result_rows, stored_results, stream, union, Stored, BASE_TS, TS_STEP,
};
use support::{free_port, Platform};

const PARTITIONS: u32 = 4;
const JOB: &str = "sp";

/// The two runs share the machine's cores with up to five workers each: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(
    brokers: &str,
    topic: &str,
    group: &str,
    checkpoints: &Path,
    exactly_once: bool,
    results: Option<&str>,
) -> String {
    let mut extra = vec![
        format!("group_id: {group}"),
        format!("exactly_once: {exactly_once}"),
    ];
    extra.extend(results.map(|r| format!("results_topic: {r}")));
    group_config(brokers, topic, &extra, JOB, checkpoints)
}

/// The rows a read_committed reader sees on `before` (the group up to its savepoint) and on
/// `after` (a group resumed from it), when no row is there twice: in one topic or in both.
fn committed_once(brokers: &str, before: &str, after: &str) -> Result<Stored, String> {
    let (mut rows, twice) = result_rows(&read_isolated(brokers, before, "read_committed"));
    let (resumed, twice_after) = result_rows(&read_isolated(brokers, after, "read_committed"));
    if !twice.is_empty() || !twice_after.is_empty() {
        return Err(format!("rows read twice: {twice:?} {twice_after:?}"));
    }
    for (key, row) in resumed {
        if let Some(earlier) = rows.insert(key.clone(), row) {
            return Err(format!(
                "{key:?} before the savepoint and after it ({earlier})"
            ));
        }
    }
    Ok(rows)
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
    wait_for(what, timeout, workers, || {
        if done() {
            Ok(())
        } else {
            Err(String::new())
        }
    });
}

/// [`wait_until`], with what is still missing (the last `Err` of `done`) in the failure.
fn wait_for(
    what: &str,
    timeout: Duration,
    workers: &[&Platform],
    done: impl Fn() -> Result<(), String>,
) {
    let deadline = Instant::now() + timeout;
    while let Err(missing) = done() {
        if Instant::now() > deadline {
            // Each worker's last lines, oldest first, under its directory's name: enough to
            // follow a rebalance and a savepoint's steps.
            let logs: Vec<String> = workers
                .iter()
                .map(|w| {
                    let log = w.log();
                    let lines: Vec<&str> = log.lines().collect();
                    format!(
                        "{} (pid {}):\n{}",
                        w.dir.display(),
                        w.child.id(),
                        lines[lines.len().saturating_sub(80)..].join("\n")
                    )
                })
                .collect();
            panic!(
                "{what} within {timeout:?}{missing}; logs:\n{}",
                logs.join("\n-----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two workers of `config`, once each owns some of the partitions and together all of them.
fn start_two(dir: &Path, config: &str) -> (Platform, Platform) {
    let w1 = Platform::start(&dir.join("w1"), config, free_port());
    let w2 = Platform::start(&dir.join("w2"), config, free_port());
    wait_until(
        "the two workers did not share the partitions",
        Duration::from_secs(60),
        &[&w1, &w2],
        || {
            let (a, b) = (owned(&w1, JOB), owned(&w2, JOB));
            !a.is_empty() && !b.is_empty() && a.len() + b.len() == PARTITIONS as usize
        },
    );
    (w1, w2)
}

/// Waits until what `w1` and `w2` stored together is the batch computation over `total` events.
fn completes(what: &str, w1: &Platform, w2: &Platform, total: u64) {
    let want = batch(total);
    let end = BASE_TS + total as i64 * TS_STEP + 10_000;
    let got = || {
        union(&[
            stored_results(w1, BASE_TS, end),
            stored_results(w2, BASE_TS, end),
        ])
    };
    wait_for(what, Duration::from_secs(90), &[w1, w2], || {
        let diffs = differences(&want, &got(), "tumble_10s");
        if diffs.is_empty() {
            return Ok(());
        }
        let holds = |w: &Platform| format!("{:?}", owned(w, JOB));
        Err(format!(
            " (w1 holds {}, w2 {}; {} differences: {})",
            holds(w1),
            holds(w2),
            diffs.len(),
            diffs[..diffs.len().min(10)].join("; ")
        ))
    });
}

struct Resume<'a> {
    dir: &'a Path,
    brokers: &'a str,
    topic: &'a str,
    exactly_once: bool,
    /// What the group stored before it stopped at the savepoint.
    before: &'a [Stored],
    /// Its results topic, with `exactly_once`.
    results_before: Option<&'a str>,
    total: u64,
    cooperative: bool,
}

/// Starts `n` workers of a group from savepoint `sp` over `checkpoints`, and waits until the
/// union of what they and `before` stored equals the batch over `total` events.
fn resume(r: &Resume<'_>, checkpoints: &Path, n: usize) {
    let Resume {
        dir,
        brokers,
        topic,
        exactly_once,
        before,
        results_before,
        total,
        cooperative,
    } = *r;
    let group = format!("{topic}-resume-{n}");
    let results = results_before.map(|_| format!("{topic}.results-r{n}"));
    let config = protocol(
        config(
            brokers,
            topic,
            &group,
            checkpoints,
            exactly_once,
            results.as_deref(),
        ),
        cooperative,
    );
    if results.is_some() {
        create_topics(&config, &dir.join(format!("resume{n}-topics")), PARTITIONS);
    }
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
    if let (Some(before), Some(after)) = (results_before, results.as_deref()) {
        let exact = || committed_once(brokers, before, after);
        wait_until(
            &format!("the committed results with {n} resumed workers"),
            Duration::from_secs(60),
            &refs,
            || exact().is_ok_and(|rows| differences(&want, &rows, "tumble_10s").is_empty()),
        );
        let rows = exact().unwrap_or_else(|e| panic!("{e}"));
        let diffs = differences(&want, &rows, "tumble_10s");
        assert!(diffs.is_empty(), "{diffs:?}");
    }
    for w in workers {
        assert!(w.interrupt().success());
    }
}

#[test]
fn a_group_stops_at_a_savepoint_and_resumes_from_it_with_one_or_three_workers() {
    stop_and_resume(false, false);
}

#[test]
fn the_same_with_exactly_once_outputs() {
    stop_and_resume(true, false);
}

/// Under the cooperative protocol a rebalance moves only the partitions that change owner, and
/// a hold pauses partitions assigned one by one.
#[test]
fn the_same_under_the_cooperative_protocol() {
    stop_and_resume(false, true);
}

/// `config` with the consumer group's cooperative protocol when `cooperative`.
fn protocol(config: String, cooperative: bool) -> String {
    if !cooperative {
        return config;
    }
    let line = "    heartbeat.interval.ms: \"500\"\n";
    assert!(config.contains(line), "{config}");
    config.replace(
        line,
        &format!("{line}    partition.assignment.strategy: cooperative-sticky\n"),
    )
}

fn stop_and_resume(exactly_once: bool, cooperative: bool) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh(match (exactly_once, cooperative) {
        (true, _) => "savepoint-eos",
        (false, true) => "savepoint-coop",
        (false, false) => "savepoint",
    });
    let checkpoints = dir.path().join("checkpoints");
    let group = format!("{topic}-group");
    let results_before = exactly_once.then(|| format!("{topic}.results"));
    let later_config = protocol(
        config(&brokers, &topic, &group, &checkpoints, exactly_once, None),
        cooperative,
    );
    let config = protocol(
        config(
            &brokers,
            &topic,
            &group,
            &checkpoints,
            exactly_once,
            results_before.as_deref(),
        ),
        cooperative,
    );
    create_topics(&config, dir.path(), PARTITIONS);

    let (w1, w2) = start_two(dir.path(), &config);
    let protocol = if cooperative { "cooperative" } else { "eager" };
    let quoted = format!("\"{protocol}\"");
    assert!(
        w2.log()
            .lines()
            .any(|l| l.contains("partitions assigned by the group") && l.contains(&quoted)),
        "{}",
        w2.log()
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
    if let Some(results) = &results_before {
        let (rows, _) = result_rows(&read_isolated(&brokers, results, "read_committed"));
        assert!(
            !rows.is_empty(),
            "the group committed no result before its savepoint"
        );
    }
    w1.kill();
    w2.kill();

    // The group runs on without the savepoint: its checkpoints move past it (its results go
    // nowhere: the results topic holds the group's rows up to the savepoint).
    let later = Platform::start(&dir.path().join("later"), &later_config, free_port());
    wait_until(
        "the later worker did not read every record",
        Duration::from_secs(60),
        &[&later],
        || owned(&later, JOB).values().sum::<u64>() == total,
    );
    assert!(later.interrupt().success());

    let copy = dir.path().join("checkpoints-copy");
    copy_dir(&checkpoints, &copy);
    let r = Resume {
        dir: dir.path(),
        brokers: &brokers,
        topic: &topic,
        exactly_once,
        before: &before,
        results_before: results_before.as_deref(),
        total,
        cooperative,
    };
    resume(&r, &checkpoints, 1);
    resume(&r, &copy, 3);
}

/// A stop with a savepoint that one worker cannot take part in (paused, yet still in the group:
/// its session outlasts the wait) is given up at the deadline: the asked worker answers 503
/// naming the partitions without a part, processes again from where it was held (what it polled
/// while held included), and once the paused worker resumes, the group's results are the batch
/// computation over everything produced: nothing lost, nothing counted twice.
#[test]
fn a_stop_that_cannot_complete_is_given_up_and_the_group_goes_on() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("savepoint-give-up");
    let checkpoints = dir.path().join("checkpoints");
    let group = format!("{topic}-group");
    // The paused worker must keep its partitions past the savepoint's wait (60 s).
    let config = config(&brokers, &topic, &group, &checkpoints, false, None).replace(
        "session.timeout.ms: \"6000\"",
        "session.timeout.ms: \"180000\"",
    );
    assert!(config.contains("180000"), "{config}");
    create_topics(&config, dir.path(), PARTITIONS);
    let (w1, w2) = start_two(dir.path(), &config);
    let paused: Vec<u32> = owned(&w2, JOB).keys().copied().collect();

    const FIRST: u64 = 8_000;
    stream(&brokers, &topic, 0, FIRST, 4_000).join().unwrap();
    w2.signal("STOP");
    // Events keep coming while the asked worker is held at the savepoint.
    const SECOND: u64 = 8_000;
    let producing = stream(&brokers, &topic, FIRST, FIRST + SECOND, 200);
    let asked = Instant::now();
    let long = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(150)))
        .build();
    let mut resp = ureq::Agent::from(long)
        .delete(&format!("{}/jobs/{JOB}?savepoint=never", w1.base))
        .call()
        .expect("DELETE");
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    w2.signal("CONT");
    assert_eq!(status, 503, "{body}");
    assert!(asked.elapsed() >= Duration::from_secs(55), "{body}");
    assert!(
        body.contains(&format!("{paused:?}")),
        "the answer does not name the paused worker's partitions {paused:?}: {body}"
    );
    assert_eq!(state(&w1), "running");

    producing.join().unwrap();
    completes(
        "the group did not complete the batch computation after the savepoint was given up",
        &w1,
        &w2,
        FIRST + SECOND,
    );
    assert_eq!(state(&w2), "running");
    assert!(w1
        .log()
        .contains("the savepoint was given up: processing again"));
}

/// A stop with a savepoint whose asker dies before it is assembled (SIGKILLed with the request
/// in the checkpoint storage): the other worker writes its parts and holds, processing nothing
/// (also of the dead worker's partitions, which it takes over) while no one can assemble the
/// savepoint. Once the request is twice the wait old (2 × 60 s) it removes it and goes on from
/// where it was held. The dead worker, started again, rejoins, and the group's results are the
/// batch computation over everything produced: nothing lost, nothing counted twice. Under the
/// cooperative protocol.
#[test]
fn a_stop_whose_asker_died_is_dropped_and_the_group_goes_on() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("savepoint-orphan");
    let checkpoints = dir.path().join("checkpoints");
    let group = format!("{topic}-group");
    // Cooperative, so that the take-over while held and the fetch again after it go through the
    // incremental assignment (the given-up test above runs them eager).
    let config = protocol(
        config(&brokers, &topic, &group, &checkpoints, false, None),
        true,
    );
    create_topics(&config, dir.path(), PARTITIONS);
    let (w1, w2) = start_two(dir.path(), &config);

    const FIRST: u64 = 8_000;
    stream(&brokers, &topic, 0, FIRST, 4_000).join().unwrap();
    // w2 is frozen while w1 takes the request (a second or two: well inside its session), so
    // the savepoint cannot be assembled before w1 dies.
    w2.signal("STOP");
    let base = w1.base.clone();
    let asking = std::thread::spawn(move || {
        // Never answered: the worker asked is killed.
        let _ = ureq::delete(&format!("{base}/jobs/{JOB}?savepoint=orphan")).call();
    });
    wait_until(
        "the asked worker did not request the savepoint",
        Duration::from_secs(10),
        &[&w1],
        || w1.log().contains("savepoint of the group requested"),
    );
    w1.signal("STOP");
    w1.kill();
    w2.signal("CONT");
    let killed = Instant::now();
    let _ = asking.join();

    const SECOND: u64 = 8_000;
    let producing = stream(&brokers, &topic, FIRST, FIRST + SECOND, 200);
    wait_until(
        "the other worker did not hold at the stop",
        Duration::from_secs(10),
        &[&w2],
        || {
            w2.log()
                .contains("the group stops at a savepoint: processing nothing more")
        },
    );
    // Once it owns every partition (the session timeout is 6 s), nothing of what arrives is
    // processed while it holds.
    wait_until(
        "the other worker did not take over the dead worker's partitions",
        Duration::from_secs(30),
        &[&w2],
        || owned(&w2, JOB).len() == PARTITIONS as usize,
    );
    let held_at: u64 = owned(&w2, JOB).values().sum();
    std::thread::sleep(Duration::from_secs(20));
    assert_eq!(
        owned(&w2, JOB).values().sum::<u64>(),
        held_at,
        "the worker processed records while held at the stop"
    );

    wait_until(
        "the orphaned request was not removed",
        Duration::from_secs(180),
        &[&w2],
        || {
            w2.log()
                .contains("the savepoint was given up: processing again")
        },
    );
    assert!(w2
        .log()
        .contains("a savepoint request outlived the worker that asked for it: removed"));
    assert!(
        killed.elapsed() >= Duration::from_secs(110),
        "removed after {:?}, before twice the wait",
        killed.elapsed()
    );
    assert_eq!(state(&w2), "running");
    producing.join().unwrap();

    // The dead worker's store holds what it wrote before its last checkpoint.
    let w1 = Platform::start(&dir.path().join("w1"), &config, free_port());
    completes(
        "the group did not complete the batch computation after the orphaned stop",
        &w1,
        &w2,
        FIRST + SECOND,
    );
    let job = checkpoints.join(JOB);
    assert!(!job.join("savepoint-requests/orphan").exists());
    let assembled = std::fs::read_dir(job.join("savepoints"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(assembled, 0, "a savepoint was assembled");
}
