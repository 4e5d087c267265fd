//! The embedded-log partition worker's coordination, with fakes for what it talks to: a source
//! that fails or has lost records, a store that fails until told otherwise, and checkpoint,
//! rewind and stop requests arriving while it works. Window results are compared with the
//! brute-force oracle.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streampulse_core::job::Job;
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_testkit::oracle;

use super::*;
use crate::fakes::{event, events, job, job_idle_after, FakeSource, FlakyStore};
use crate::feed::LiveFeed;
use crate::status::JobCounters;

struct Harness {
    source: Arc<FakeSource>,
    store: Arc<FlakyStore>,
    counters: Arc<JobCounters>,
    failure: Arc<Mutex<Option<String>>>,
    commands: Sender<Command>,
    worker: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(source: FakeSource, next_offset: u64) -> Self {
        Self::start_job(job(), source, next_offset)
    }

    fn start_job(job: Job, source: FakeSource, next_offset: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FlakyStore::open(dir.path()));
        let counters = Arc::new(JobCounters::new(&job, 1));
        let emitter = Emitter {
            job_name: job.name.clone(),
            store: store.clone(),
            counters: counters.clone(),
            webhooks: None,
            feed: LiveFeed::new(16),
            writer: None,
        };
        let source = Arc::new(source);
        let failure = Arc::new(Mutex::new(None));
        let (commands, rx) = mpsc::channel();
        let worker = PartitionWorker::new(
            0,
            (PartitionPipeline::new(&job), next_offset),
            source.clone(),
            emitter,
            rx,
            failure.clone(),
        );
        let worker = Some(std::thread::spawn(move || worker.run()));
        Self {
            source,
            store,
            counters,
            failure,
            commands,
            worker,
            _dir: dir,
        }
    }

    fn next_offset(&self) -> u64 {
        self.counters.partitions[0].next_offset.load(SeqCst)
    }

    fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn checkpoint(&self) -> Result<PartitionCheckpoint, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.commands.send(Command::Checkpoint(reply)).unwrap();
        rx.recv_timeout(Duration::from_secs(20)).unwrap()
    }

    /// The stored window results, as the oracle keys and rows them.
    fn stored(&self) -> BTreeMap<oracle::Key, oracle::Row> {
        self.store.windows("t")
    }

    /// A worker whose store fails from the start, once it has tried to store outputs of
    /// `payloads`.
    fn with_failing_store(payloads: Vec<Vec<u8>>) -> Self {
        let h = Self::start(source_with(Vec::new()), 0);
        h.store.failing.store(true, SeqCst);
        for p in payloads {
            h.source.push(p);
        }
        h.wait_until("the store is tried", |h| {
            h.store.failed_applies.load(SeqCst) > 0
        });
        h
    }

    fn stop(mut self) {
        let _ = self.commands.send(Command::Stop);
        let worker = self.worker.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !worker.is_finished() {
            assert!(Instant::now() < deadline, "the worker did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn source_with(payloads: Vec<Vec<u8>>) -> FakeSource {
    let source = FakeSource::default();
    *source.records.lock().unwrap() = payloads;
    source
}

#[test]
fn a_snapshot_between_batches_covers_exactly_what_is_stored() {
    let (payloads, sent) = events();
    let h = Harness::start(source_with(payloads), 0);
    h.wait_until("every record is read", |h| h.next_offset() == 101);
    let snapshot = h.checkpoint().unwrap();
    assert_eq!((snapshot.partition, snapshot.next_offset), (0, 101));
    assert_eq!(h.stored(), oracle::batch(&job(), &sent));
    h.stop();
}

#[test]
fn a_source_that_fails_is_read_again_from_the_same_offset() {
    let (payloads, sent) = events();
    let source = source_with(payloads);
    source.fail_reads.store(1, SeqCst);
    let h = Harness::start(source, 0);
    h.wait_until("every record is read", |h| h.next_offset() == 101);
    assert_eq!(h.source.fail_reads.load(SeqCst), 0);
    assert_eq!(h.counters.partitions[0].events.load(SeqCst), 101);
    assert_eq!(h.stored(), oracle::batch(&job(), &sent));
    h.stop();
}

#[test]
fn an_offset_retention_deleted_stops_the_partition_with_the_reason() {
    let (payloads, _) = events();
    let source = source_with(payloads);
    source.start.store(50, SeqCst);
    let mut h = Harness::start(source, 10);
    let worker = h.worker.take().unwrap();
    worker.join().unwrap();
    let reason = h.failure.lock().unwrap().clone().unwrap();
    assert!(
        reason.contains("no longer holds offset 10") && reason.contains("before 50"),
        "{reason}"
    );
    assert!(h.stored().is_empty());
}

#[test]
fn a_checkpoint_while_the_store_fails_is_refused_and_nothing_is_skipped() {
    let (payloads, sent) = events();
    let h = Harness::with_failing_store(payloads);
    match h.checkpoint() {
        Err(EngineError::PartitionStore {
            partition: 0,
            source,
        }) => {
            assert!(source.to_string().contains("timed out"), "{source}")
        }
        other => panic!("a checkpoint must not pass unapplied outputs: {other:?}"),
    }
    assert!(h.counters.store_errors.load(SeqCst) > 0);
    h.store.failing.store(false, SeqCst);
    h.wait_until("every record is read", |h| h.next_offset() == 101);
    assert_eq!(h.checkpoint().unwrap().next_offset, 101);
    assert_eq!(h.stored(), oracle::batch(&job(), &sent));
    h.stop();
}

#[test]
fn a_stop_ends_a_worker_whose_store_keeps_failing() {
    let (payloads, _) = events();
    let h = Harness::with_failing_store(payloads);
    h.stop();
}

#[test]
fn a_rewind_while_the_store_fails_replays_from_the_given_offset() {
    let (payloads, sent) = events();
    let h = Harness::with_failing_store(payloads);
    // As the coordinator does after the store lost writes: back to where the job started.
    h.commands
        .send(Command::Rewind {
            pipeline: Box::new(PartitionPipeline::new(&job())),
            next_offset: 0,
        })
        .unwrap();
    h.store.failing.store(false, SeqCst);
    h.wait_until("every record is read again", |h| h.next_offset() == 101);
    assert_eq!(h.checkpoint().unwrap().next_offset, 101);
    assert_eq!(h.stored(), oracle::batch(&job(), &sent));
    h.stop();
}

#[test]
fn undecodable_records_are_counted_and_stepped_over() {
    let (mut payloads, mut sent) = events();
    payloads[40] = vec![0xff, 0xff, 0xff];
    sent.remove(40);
    let h = Harness::start(source_with(payloads), 0);
    h.wait_until("every record is read", |h| h.next_offset() == 101);
    assert_eq!(h.counters.partitions[0].skipped_records.load(SeqCst), 1);
    assert_eq!(h.stored(), oracle::batch(&job(), &sent));
    h.stop();
}

#[test]
fn an_idle_partition_flushes_through_a_marker_it_reads_back() {
    let idle_job = job_idle_after("50ms");
    let h = Harness::start_job(idle_job.clone(), source_with(vec![event(5_000, 1.0)]), 0);
    // The marker is appended at offset 1, decided when the log ended there, and read back.
    h.wait_until("the idle marker is read back", |h| h.next_offset() == 2);
    h.wait_until("the window is stored", |h| !h.stored().is_empty());
    assert_eq!(h.counters.partitions[0].idle_flushes.load(SeqCst), 1);
    assert_eq!(
        h.stored(),
        oracle::batch(&idle_job, &[("m".into(), 5_000, 1.0)])
    );
    // Nothing arrived since: no second marker while the window is already closed.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(h.source.end_offset(0), 2);
    h.stop();
}
