//! Live counters of a running job, shared lock-free between the workers and the API (`GET
//! /jobs/{id}` and the Prometheus exposition; labelled series are in [`crate::telemetry`]).
//!
//! Workers only store and add; readers take a [`JobStatus`] snapshot. Nothing here influences
//! processing: the counters are for operators and tests, never for decisions.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;
use streampulse_core::job::Job;
use streampulse_core::time::Millis;

use crate::telemetry::EngineMetrics;
use crate::webhook::WebhookStatus;

#[derive(Debug, Default)]
pub struct PartitionCounters {
    /// Whether this process runs the partition now (always, on the embedded log; in a Kafka
    /// consumer group, while it is assigned here). Status lists only owned partitions.
    pub owned: AtomicBool,
    pub watermark: AtomicI64,
    pub next_offset: AtomicU64,
    pub events: AtomicU64,
    pub results: AtomicU64,
    pub late: AtomicU64,
    pub open_windows: AtomicU64,
    pub idle_flushes: AtomicU64,
    /// Log records that could not be decoded and were stepped over (a damaged or foreign record).
    pub skipped_records: AtomicU64,
    /// Records the source no longer held when the partition resumed from its checkpoint, skipped
    /// by `kafka.on_data_loss: skip`.
    pub lost_records: AtomicU64,
    /// Encoded size of the pipeline state at the last snapshot.
    pub state_bytes: AtomicU64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckpointInfo {
    pub id: u64,
    /// Wall-clock completion time, epoch ms.
    pub completed_ms: Millis,
    pub duration_ms: u64,
    pub bytes: usize,
}

#[derive(Debug)]
pub struct JobCounters {
    pub partitions: Vec<PartitionCounters>,
    /// The job's window names, in the order of its definition (for the status).
    pub windows: Vec<String>,
    /// Whether the job stores raw events (`job.keep_raw_events`), for the status.
    pub keep_raw_events: bool,
    /// Candidate events in ingest requests: accepted + rejected + duplicate (plus those of
    /// requests whose append failed).
    pub ingest_received: AtomicU64,
    pub ingest_accepted: AtomicU64,
    pub ingest_rejected: AtomicU64,
    /// Valid events of requests that repeated a stored `Idempotency-Key` (not appended again).
    pub ingest_duplicate: AtomicU64,
    pub checkpoints_completed: AtomicU64,
    pub checkpoints_failed: AtomicU64,
    pub last_checkpoint: Mutex<Option<CheckpointInfo>>,
    /// Failed attempts to write outputs to the result store (each is retried).
    pub store_errors: AtomicU64,
    /// Partitions whose latest store write failed, with that error; a partition leaves once
    /// its write succeeds (so one recovering partition does not hide another still failing).
    /// Also the job's write-behind thread, under `engine::write_behind::FAILING_SLOT`, while its
    /// latest call failed.
    pub store_failing: Mutex<std::collections::BTreeMap<u32, String>>,
    /// Labelled counters and histograms for the Prometheus exposition.
    pub metrics: EngineMetrics,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: u32,
    /// `null` until the partition has seen an event.
    pub watermark: Option<Millis>,
    pub next_offset: u64,
    pub log_end_offset: u64,
    pub events: u64,
    pub results: u64,
    pub late_events: u64,
    pub open_windows: u64,
    pub idle_flushes: u64,
    pub skipped_records: u64,
    pub lost_records: u64,
    pub state_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub state: &'static str,
    /// The names of the job's windows, in the order of its definition.
    pub windows: Vec<String>,
    /// Whether `GET /events` has this job's raw events (`job.keep_raw_events`).
    pub keep_raw_events: bool,
    pub partitions: Vec<PartitionStatus>,
    pub ingest_accepted: u64,
    pub ingest_rejected: u64,
    pub checkpoints_completed: u64,
    pub checkpoints_failed: u64,
    pub last_checkpoint: Option<CheckpointInfo>,
    /// Failed attempts to write to the result store, since the start.
    pub store_errors: u64,
    /// While writes to the result store keep failing: the latest error (the job retries, and
    /// `/readyz` answers 503); absent when the store takes writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// One entry per configured alert webhook (empty when there is none).
    pub webhooks: Vec<WebhookStatus>,
    /// Why the job is `failed` (it could not be started again when the process started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobCounters {
    pub fn new(job: &Job, partitions: u32) -> Self {
        let partitions = (0..partitions)
            .map(|_| PartitionCounters {
                owned: AtomicBool::new(true),
                watermark: AtomicI64::new(Millis::MIN),
                ..Default::default()
            })
            .collect();
        Self {
            partitions,
            windows: job.windows.iter().map(|w| w.name.to_string()).collect(),
            keep_raw_events: job.keep_raw_events,
            ingest_received: AtomicU64::new(0),
            ingest_accepted: AtomicU64::new(0),
            ingest_rejected: AtomicU64::new(0),
            ingest_duplicate: AtomicU64::new(0),
            checkpoints_completed: AtomicU64::new(0),
            checkpoints_failed: AtomicU64::new(0),
            last_checkpoint: Mutex::new(None),
            store_errors: AtomicU64::new(0),
            store_failing: Mutex::new(std::collections::BTreeMap::new()),
            metrics: EngineMetrics::new(job),
        }
    }

    pub fn snapshot(
        &self,
        job: &str,
        state: &'static str,
        log_end: impl Fn(u32) -> u64,
    ) -> JobStatus {
        let partitions = self
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, c)| c.owned.load(Relaxed))
            .map(|(i, c)| {
                let wm = c.watermark.load(Relaxed);
                PartitionStatus {
                    partition: i as u32,
                    watermark: (wm != Millis::MIN).then_some(wm),
                    next_offset: c.next_offset.load(Relaxed),
                    log_end_offset: log_end(i as u32),
                    events: c.events.load(Relaxed),
                    results: c.results.load(Relaxed),
                    late_events: c.late.load(Relaxed),
                    open_windows: c.open_windows.load(Relaxed),
                    idle_flushes: c.idle_flushes.load(Relaxed),
                    skipped_records: c.skipped_records.load(Relaxed),
                    lost_records: c.lost_records.load(Relaxed),
                    state_bytes: c.state_bytes.load(Relaxed),
                }
            })
            .collect();
        JobStatus {
            job: job.to_string(),
            state,
            windows: self.windows.clone(),
            keep_raw_events: self.keep_raw_events,
            partitions,
            ingest_accepted: self.ingest_accepted.load(Relaxed),
            ingest_rejected: self.ingest_rejected.load(Relaxed),
            checkpoints_completed: self.checkpoints_completed.load(Relaxed),
            checkpoints_failed: self.checkpoints_failed.load(Relaxed),
            last_checkpoint: self.last_checkpoint.lock().ok().and_then(|g| g.clone()),
            store_errors: self.store_errors.load(Relaxed),
            store_error: self
                .store_failing
                .lock()
                .ok()
                .and_then(|g| g.values().next().cloned()),
            webhooks: Vec::new(),
            error: None,
        }
    }
}
