//! The embedded-log partition worker's coordination, with fakes for what it talks to: a source
//! that fails or has lost records, a store that fails until told otherwise, and checkpoint,
//! rewind and stop requests arriving while it works. Window results are compared with the
//! brute-force oracle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streampulse_core::event::Event;
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::output::Output;
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_core::time::Millis;
use streampulse_store::conformance::all;
use streampulse_store::{
    AlertQuery, EmbeddedStore, ExpiryReport, LateQuery, RawQuery, RawRow, ResultPage, ResultQuery,
    ResultStore, RetentionPolicy, StoreCounts, StoreError,
};
use streampulse_testkit::oracle;

use super::*;
use crate::feed::LiveFeed;
use crate::source::SourceError;
use crate::status::JobCounters;

/// An in-memory partition 0: offsets are positions in `records`; everything before `start` is
/// deleted; the next `fail_reads` reads fail.
#[derive(Default)]
struct FakeSource {
    records: Mutex<Vec<Vec<u8>>>,
    start: AtomicU64,
    fail_reads: AtomicUsize,
}

impl FakeSource {
    fn push(&self, payload: Vec<u8>) {
        self.records.lock().unwrap().push(payload);
    }
}

impl EventSource for FakeSource {
    fn partitions(&self) -> u32 {
        1
    }

    fn start_offset(&self, _: u32) -> u64 {
        self.start.load(SeqCst)
    }

    fn end_offset(&self, _: u32) -> u64 {
        self.records.lock().unwrap().len() as u64
    }

    fn read(&self, _: u32, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, SourceError> {
        let unavailable = || {
            SourceError::Log(streampulse_log::LogError::Unavailable(
                "the fake source fails".into(),
            ))
        };
        if self
            .fail_reads
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
            || from < self.start.load(SeqCst)
        {
            return Err(unavailable());
        }
        let records = self.records.lock().unwrap();
        Ok(records
            .iter()
            .enumerate()
            .skip(from as usize)
            .take(max)
            .map(|(offset, payload)| (offset as u64, payload.clone()))
            .collect())
    }

    fn wait_for(&self, partition: u32, offset: u64, timeout: Duration) -> bool {
        std::thread::sleep(timeout.min(Duration::from_millis(2)));
        offset < self.end_offset(partition)
    }

    fn append_idle_marker(&self, job: &str, _: u32, decided_at: u64) -> Result<(), SourceError> {
        self.push(record::encode_idle_flush(job, decided_at)?);
        Ok(())
    }

    fn release(&self, _: &[u64]) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The real embedded store, failing every `apply` while `failing` is set.
struct FlakyStore {
    inner: EmbeddedStore,
    failing: AtomicBool,
    failed_applies: AtomicUsize,
}

impl ResultStore for FlakyStore {
    fn apply(&self, job: &str, partition: u32, outputs: &[Output]) -> Result<(), StoreError> {
        if self.failing.load(SeqCst) {
            self.failed_applies.fetch_add(1, SeqCst);
            return Err(StoreError::Backend {
                backend: "flaky",
                op: "apply".into(),
                source: "timed out".into(),
            });
        }
        self.inner.apply(job, partition, outputs)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn query_page(&self, q: &ResultQuery) -> Result<ResultPage, StoreError> {
        self.inner.query_page(q)
    }
    fn query_late(
        &self,
        q: &LateQuery,
    ) -> Result<Vec<streampulse_core::output::LateEvent>, StoreError> {
        self.inner.query_late(q)
    }
    fn query_raw(&self, q: &RawQuery) -> Result<Vec<RawRow>, StoreError> {
        self.inner.query_raw(q)
    }
    fn query_alerts(
        &self,
        q: &AlertQuery,
    ) -> Result<Vec<streampulse_core::detect::Alert>, StoreError> {
        self.inner.query_alerts(q)
    }
    fn get_alert(
        &self,
        job: &str,
        id: &str,
    ) -> Result<Option<streampulse_core::detect::Alert>, StoreError> {
        self.inner.get_alert(job, id)
    }
    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.inner.counts()
    }
    fn expire(&self, policy: &RetentionPolicy, now: Millis) -> Result<ExpiryReport, StoreError> {
        self.inner.expire(policy, now)
    }
}

/// One tumbling 10 s window, no disorder, idle after `idle_timeout`.
fn job_idle_after(idle_timeout: &str) -> Job {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "t",
        "max_out_of_orderness": "0s",
        "idle_timeout": idle_timeout,
        "windows": [{"name": "w", "type": "tumbling", "size": "10s"}],
        "detectors": [],
    }))
    .unwrap();
    spec.validate().unwrap()
}

fn job() -> Job {
    job_idle_after("1h")
}

fn event(ts: Millis, value: f64) -> Vec<u8> {
    record::encode_event(&Event {
        metric_id: "m".into(),
        ts,
        value,
        tags: BTreeMap::new(),
    })
    .unwrap()
}

/// 100 events one second apart, then one far ahead that closes every window before it.
fn events() -> (Vec<Vec<u8>>, Vec<oracle::Event>) {
    let sent: Vec<oracle::Event> = (0..100)
        .map(|i| ("m".into(), i * 1_000, i as f64))
        .collect();
    let mut payloads: Vec<Vec<u8>> = sent.iter().map(|(_, ts, v)| event(*ts, *v)).collect();
    payloads.push(event(1_000_000, 0.0));
    (payloads, sent)
}

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
        let store = Arc::new(FlakyStore {
            inner: EmbeddedStore::open(dir.path()).unwrap(),
            failing: AtomicBool::new(false),
            failed_applies: AtomicUsize::new(0),
        });
        let counters = Arc::new(JobCounters::new(&job, 1));
        let emitter = Emitter {
            job_name: job.name.clone(),
            store: store.clone(),
            counters: counters.clone(),
            webhooks: None,
            feed: LiveFeed::new(16),
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
        self.store
            .query_results(&all("t"))
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    (r.metric_id, r.window, r.window_start),
                    (r.window_end, r.count, r.sum, r.min, r.max),
                )
            })
            .collect()
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
    let source = source_with(Vec::new());
    let h = Harness::start(source, 0);
    h.store.failing.store(true, SeqCst);
    for p in payloads {
        h.source.push(p);
    }
    h.wait_until("the store is tried", |h| {
        h.store.failed_applies.load(SeqCst) > 0
    });
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
    let h = Harness::start(source_with(Vec::new()), 0);
    h.store.failing.store(true, SeqCst);
    for p in payloads {
        h.source.push(p);
    }
    h.wait_until("the store is tried", |h| {
        h.store.failed_applies.load(SeqCst) > 0
    });
    h.stop();
}

#[test]
fn a_rewind_while_the_store_fails_replays_from_the_given_offset() {
    let (payloads, sent) = events();
    let h = Harness::start(source_with(Vec::new()), 0);
    h.store.failing.store(true, SeqCst);
    for p in payloads {
        h.source.push(p);
    }
    h.wait_until("the store is tried", |h| {
        h.store.failed_applies.load(SeqCst) > 0
    });
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
