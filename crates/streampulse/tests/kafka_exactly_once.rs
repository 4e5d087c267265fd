//! Exactly-once output topics (`kafka.exactly_once: true`) against a real Apache Kafka broker:
//! a `read_committed` consumer of the results topic must read exactly the batch computation's
//! rows, each once, however the workers die.
//!
//! - Two workers of one group are SIGKILLed in turn, twelve times, each time once both run, at
//!   moments drawn from a printed seed while events flow; each comes back at once with its
//!   `transactional.id`. (With `exactly_once: false` this test fails: results repeat.)
//! - A worker paused (SIGSTOP) past its session timeout loses its partitions; resumed, it must
//!   not commit the transaction it had open (EOS v2 fencing through the group's metadata), and
//!   it stops.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_support::{
    batch, brokers, create_topics, differences, fresh, group_config, owned, read_isolated,
    result_rows, stream, Stored,
};
use support::{free_port, Platform};

const JOB: &str = "eos";
/// The window of [`kafka_support::group_job_yaml`].
const WINDOW: &str = "tumble_10s";

fn config(brokers: &str, topic: &str, checkpoints: &Path, worker: &str) -> String {
    let extra = [
        format!("results_topic: {topic}.results"),
        format!("group_id: {topic}"),
        "exactly_once: true".to_string(),
        format!("transactional_id: {topic}-{worker}"),
    ];
    group_config(brokers, topic, &extra, JOB, checkpoints)
}

struct Group {
    brokers: String,
    topic: String,
    dir: tempfile::TempDir,
}

impl Group {
    fn new(name: &str, partitions: u32) -> Option<Group> {
        let brokers = brokers()?;
        let group = Group {
            topic: fresh(name),
            brokers,
            dir: tempfile::tempdir().unwrap(),
        };
        create_topics(&group.config("w0"), group.dir.path(), partitions);
        Some(group)
    }

    fn config(&self, worker: &str) -> String {
        config(
            &self.brokers,
            &self.topic,
            &self.dir.path().join("checkpoints"),
            worker,
        )
    }

    fn start(&self, worker: &str) -> Platform {
        Platform::start(
            &self.dir.path().join(worker),
            &self.config(worker),
            free_port(),
        )
    }

    /// The results topic as a read_committed consumer sees it: rows by (metric, window, start),
    /// and the keys that appear more than once.
    fn committed_results(&self) -> (Stored, Vec<String>) {
        let records = read_isolated(
            &self.brokers,
            &format!("{}.results", self.topic),
            "read_committed",
        );
        result_rows(&records)
    }

    fn uncommitted_records(&self) -> usize {
        read_isolated(
            &self.brokers,
            &format!("{}.results", self.topic),
            "read_uncommitted",
        )
        .len()
    }

    /// Waits until the committed results equal the batch computation over events `0..n`, with
    /// no row twice; panics with the differences and the workers' logs otherwise.
    fn wait_exact(&self, n: u64, workers: &[&Platform], timeout: Duration) {
        let want = batch(n);
        let deadline = Instant::now() + timeout;
        loop {
            let (got, twice) = self.committed_results();
            let mut diffs = differences(&want, &got, WINDOW);
            diffs.extend(twice.iter().map(|k| format!("{k}: read twice")));
            if diffs.is_empty() {
                return;
            }
            if Instant::now() > deadline || !twice.is_empty() {
                let logs: Vec<String> = workers
                    .iter()
                    .map(|w| {
                        w.log()
                            .lines()
                            .rev()
                            .take(30)
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .collect();
                panic!(
                    "{} differences, first: {:#?}\nworker logs (tail):\n{}",
                    diffs.len(),
                    &diffs[..diffs.len().min(10)],
                    logs.join("\n-----\n")
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Waits until the workers own all `partitions` between them, each once, and each owns some.
fn wait_spread(workers: &[&Platform], partitions: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let owned: Vec<Vec<u32>> = workers
            .iter()
            .map(|w| owned(w, JOB).keys().copied().collect())
            .collect();
        let total: usize = owned.iter().map(Vec::len).sum();
        if total == partitions && owned.iter().all(|o| !o.is_empty()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not spread over the workers within {timeout:?}: {owned:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One test at a time: the kill test's restarts load the machine enough to starve the other
/// test's workers of heartbeats (a session timeout of 6 s), which would expire the wrong member.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn read_committed_consumers_see_each_result_once_across_sigkills() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(group) = Group::new("eos-kills", 6) else {
        return;
    };
    let mut workers = vec![group.start("w1"), group.start("w2")];
    wait_spread(&[&workers[0], &workers[1]], 6, Duration::from_secs(60));

    // 2,000 events/s: event time runs 10 s per second, so a 10 s window closes about every
    // second on every partition, and a kill at a random moment usually falls between a window's
    // result and the next checkpoint (at least once, that result would be read twice).
    const EVENTS: u64 = 240_000;
    let producing = stream(&group.brokers, &group.topic, 0, EVENTS, 2_000);
    let seed = streampulse_core::clock::since_epoch().as_nanos() as u64;
    eprintln!("kill moments from seed {seed}");
    let mut rng = seed | 1;
    for round in 0..12 {
        // Both workers own partitions and run, then one dies 0.5–2.5 s later (xorshift).
        wait_spread(&[&workers[0], &workers[1]], 6, Duration::from_secs(60));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(500 + rng % 2_000));
        let i = round % 2;
        let name = ["w1", "w2"][i];
        let victim = workers.remove(i);
        victim.kill();
        // Back at once with the same transactional.id: its open transaction is aborted now.
        workers.insert(i, group.start(name));
    }
    producing.join().unwrap();
    group.wait_exact(
        EVENTS,
        &[&workers[0], &workers[1]],
        Duration::from_secs(180),
    );
    let restores: usize = workers
        .iter()
        .map(|w| w.log().matches("restored from its checkpoint").count())
        .sum();
    assert!(restores > 0, "no partition was restored from a checkpoint");

    // A clean stop commits the last transaction; nothing more may appear, nothing twice.
    for w in workers {
        assert!(w.interrupt().success());
    }
    group.wait_exact(EVENTS, &[], Duration::from_secs(10));
    let (committed, _) = group.committed_results();
    eprintln!(
        "results topic: {} records read_committed, {} read_uncommitted (aborted transactions \
         included); {restores} partition restores",
        committed.len(),
        group.uncommitted_records()
    );
}

#[test]
fn a_paused_worker_that_lost_its_partitions_cannot_commit_them() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(group) = Group::new("eos-zombie", 4) else {
        return;
    };
    let mut zombie = group.start("w1");
    let mut survivor = group.start("w2");
    wait_spread(&[&zombie, &survivor], 4, Duration::from_secs(60));

    const EVENTS: u64 = 16_000;
    let producing = stream(&group.brokers, &group.topic, 0, EVENTS, 800);
    std::thread::sleep(Duration::from_secs(4));
    zombie.signal("STOP");
    // The group expires the paused member and gives the survivor every partition. Paused while
    // committing, the member's transaction holds the offsets of its partitions until the broker
    // aborts it (transaction.timeout.ms, 60 s here, plus the broker's 10 s sweep): the survivor
    // waits for that before it restores them.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(exit) = survivor.exited() {
            panic!("the survivor exited ({exit}); log:\n{}", survivor.log());
        }
        if owned(&survivor, JOB).len() >= 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor never took the paused worker's partitions"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    zombie.signal("CONT");
    // Resumed, it finds itself fenced: whatever it held open is aborted, and it stops.
    let exit = zombie.wait_exit(Duration::from_secs(60), "the resumed worker kept running");
    assert!(!exit.success(), "{exit}");
    let log = zombie.log();
    assert!(
        log.contains("partitions were lost") || log.contains("kafka transaction"),
        "the paused worker's log does not say why it stopped:\n{log}"
    );
    producing.join().unwrap();
    group.wait_exact(EVENTS, &[&survivor], Duration::from_secs(120));
    assert!(survivor.interrupt().success());
}
