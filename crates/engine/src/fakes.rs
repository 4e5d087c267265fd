//! Fakes of what the engine talks to, for the coordination tests of its modules: an in-memory
//! source that fails or has lost records on demand, the real embedded store made to fail on
//! demand, and a small job with its events. Test-only.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;
use std::time::Duration;

use streampulse_core::detect::Alert;
use streampulse_core::event::Event;
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::output::{LateEvent, Output};
use streampulse_core::time::Millis;
use streampulse_log::RecordBatch;
use streampulse_store::{
    AlertQuery, EmbeddedStore, ExpiryReport, LateQuery, RawQuery, RawRow, ResultPage, ResultQuery,
    ResultStore, RetentionPolicy, StoreCounts, StoreError,
};
use streampulse_testkit::oracle;

use crate::record;
use crate::source::{EventSource, SourceError};

/// An in-memory partition 0: offsets are positions in `records`; everything before `start` is
/// deleted; the next `fail_reads` reads fail.
#[derive(Default)]
pub struct FakeSource {
    pub records: Mutex<Vec<Vec<u8>>>,
    pub start: AtomicU64,
    pub fail_reads: AtomicUsize,
}

impl FakeSource {
    pub fn push(&self, payload: Vec<u8>) {
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

    fn read(
        &self,
        _: u32,
        from: u64,
        max: usize,
        batch: &mut RecordBatch,
    ) -> Result<(), SourceError> {
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
        batch.clear(from);
        for payload in records.iter().skip(from as usize).take(max) {
            batch.push(payload);
        }
        Ok(())
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

/// The real embedded store, failing every `apply` while `failing` is set (every
/// `write_behind` while `failing_behind` is), and reporting `generation` (bumped to play a store
/// that was reopened and may have lost writes). `write_behind` calls are counted, with those
/// made on a job's write-behind thread, and each sleeps `behind_delay_ms` first; the next
/// `busy_behind` of them answer `Busy` without writing.
pub struct FlakyStore {
    pub inner: EmbeddedStore,
    pub failing: AtomicBool,
    pub failed_applies: AtomicUsize,
    pub generation: AtomicU64,
    pub failing_behind: AtomicBool,
    pub behind_calls: AtomicUsize,
    pub behind_calls_off_caller: AtomicUsize,
    pub behind_delay_ms: AtomicU64,
    pub busy_behind: AtomicUsize,
}

impl FlakyStore {
    /// The stored window results of `job`, keyed and rowed as [`oracle::batch`] gives them.
    pub fn windows(&self, job: &str) -> BTreeMap<oracle::Key, oracle::Row> {
        self.query_results(&streampulse_store::conformance::all(job))
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    (
                        r.metric_id.to_string(),
                        r.window.to_string(),
                        r.window_start,
                    ),
                    (r.window_end, r.count, r.sum, r.min, r.max),
                )
            })
            .collect()
    }

    pub fn open(dir: &std::path::Path) -> Self {
        Self {
            inner: EmbeddedStore::open(dir).unwrap(),
            failing: AtomicBool::new(false),
            failed_applies: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            failing_behind: AtomicBool::new(false),
            behind_calls: AtomicUsize::new(0),
            behind_calls_off_caller: AtomicUsize::new(0),
            behind_delay_ms: AtomicU64::new(0),
            busy_behind: AtomicUsize::new(0),
        }
    }
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
    fn write_behind(&self) -> Result<streampulse_store::BehindOutcome, StoreError> {
        std::thread::sleep(std::time::Duration::from_millis(
            self.behind_delay_ms.load(SeqCst),
        ));
        let name = std::thread::current().name().map(str::to_string);
        if name.is_some_and(|n| n.starts_with(crate::write_behind::THREAD_NAME)) {
            self.behind_calls_off_caller.fetch_add(1, SeqCst);
        }
        self.behind_calls.fetch_add(1, SeqCst);
        if self.failing_behind.load(SeqCst) {
            return Err(StoreError::Backend {
                backend: "flaky",
                op: "write_behind".into(),
                source: "disk full".into(),
            });
        }
        let busy = self
            .busy_behind
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if busy {
            return Ok(streampulse_store::BehindOutcome::Busy);
        }
        self.inner.write_behind()
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }
    fn query_page(&self, q: &ResultQuery) -> Result<ResultPage, StoreError> {
        self.inner.query_page(q)
    }
    fn query_catalog(
        &self,
        q: &streampulse_store::CatalogQuery,
    ) -> Result<streampulse_store::CatalogPage, StoreError> {
        self.inner.query_catalog(q)
    }
    fn query_late(&self, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError> {
        self.inner.query_late(q)
    }
    fn query_raw(&self, q: &RawQuery) -> Result<Vec<RawRow>, StoreError> {
        self.inner.query_raw(q)
    }
    fn query_alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        self.inner.query_alerts(q)
    }
    fn get_alert(&self, job: &str, id: &str) -> Result<Option<Alert>, StoreError> {
        if self.failing.load(SeqCst) {
            return Err(StoreError::Backend {
                backend: "flaky",
                op: "get_alert".into(),
                source: "timed out".into(),
            });
        }
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
pub fn job_idle_after(idle_timeout: &str) -> Job {
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

pub fn job() -> Job {
    job_idle_after("1h")
}

pub fn event(ts: Millis, value: f64) -> Vec<u8> {
    record::encode_event(&Event {
        metric_id: "m".into(),
        ts,
        value,
        tags: BTreeMap::new(),
    })
    .unwrap()
}

/// 100 events one second apart, then one far ahead that closes every window before it.
pub fn events() -> (Vec<Vec<u8>>, Vec<oracle::Event>) {
    let sent: Vec<oracle::Event> = (0..100)
        .map(|i| ("m".into(), i * 1_000, i as f64))
        .collect();
    let mut payloads: Vec<Vec<u8>> = sent.iter().map(|(_, ts, v)| event(*ts, *v)).collect();
    payloads.push(event(1_000_000, 0.0));
    (payloads, sent)
}
