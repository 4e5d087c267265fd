//! The embedded runtime: one worker thread per log partition plus a checkpoint coordinator.
//!
//! ```text
//!  ingest ──append──▶ EmbeddedLog ──read──▶ PartitionWorker ×N ──apply──▶ ResultStore
//!                                              ▲  snapshot                    │ flush
//!                       coordinator ──request──┘  ──────▶ CheckpointStore ◀───┘
//! ```
//!
//! A checkpoint asks every worker for a snapshot between two batches (its offset and pipeline
//! state), flushes the store so that every output emitted before those offsets is durable, and
//! only then writes the checkpoint. Recovery restores the latest checkpoint (or a savepoint) and
//! replays the log from its offsets; outputs are idempotent upserts, so what was emitted after the
//! checkpoint is rewritten identically. That is the whole exactly-once argument.
//!
//! Alert transitions are also handed to the [`WebhookDispatcher`] when webhooks are configured;
//! a replay hands them over again, so webhook delivery is at least once (receivers dedupe by
//! alert id and sequence).

use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use streampulse_core::job::Job;
use streampulse_log::EmbeddedLog;
use streampulse_store::{ResultStore, StoreError};

use crate::checkpoint::{CheckpointError, CheckpointStore, SnapshotError};
use crate::emit::Emitter;
use crate::feed::{LiveFeed, LIVE_FEED_CAPACITY};
use crate::source::EventSource;
use crate::status::{JobCounters, JobStatus};
use crate::webhook::{WebhookConfig, WebhookDispatcher};
use crate::write_behind::WriteBehind;
use coordinator::{spawn_workers, Coordinator};
use restore::{restore, Restored};

/// How long webhook deliveries still queued or in flight get at shutdown.
const WEBHOOK_GRACE: Duration = Duration::from_secs(2);

/// What went wrong in a running job, by the component that failed: the checkpoint storage, a
/// partition's state, the result store, a sink, the threads, or a request the job cannot take.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("checkpoint {id} has {found} partitions but the log has {expected}")]
    PartitionMismatch {
        id: u64,
        found: usize,
        expected: u32,
    },
    #[error("checkpoint {id} belongs to job '{found}', not '{expected}'")]
    JobMismatch {
        id: u64,
        found: String,
        expected: String,
    },
    #[error("checkpoint resumes partition {partition} at offset {offset} but the log ends at {end}: the log and the checkpoints do not belong together")]
    OffsetBeyondLog {
        partition: u32,
        offset: u64,
        end: u64,
    },
    #[error("the checkpoint resumes partition {partition} at offset {offset}, but log retention has deleted everything before {first}; restore a newer checkpoint or savepoint")]
    OffsetTruncated {
        partition: u32,
        offset: u64,
        first: u64,
    },
    /// The store failed to make outputs durable before a checkpoint.
    #[error("result store: {0}")]
    Store(#[from] StoreError),
    /// A partition cannot apply its outputs, so it cannot be checkpointed past them.
    #[error("partition {partition} cannot write to the result store: {source}")]
    PartitionStore {
        partition: u32,
        #[source]
        source: Arc<StoreError>,
    },
    /// The store lost writes that were not flushed yet; the partitions replay from `from`.
    #[error("the result store was reopened after an I/O failure and may have lost writes not yet flushed; the partitions replay from {from}")]
    StoreReopened { from: String },
    /// An output sink (Kafka topics) could not confirm every record: no checkpoint may pass them.
    #[error("{sink}: {source}")]
    Sink {
        sink: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("partition {partition} has no offset to checkpoint yet")]
    NoOffset { partition: u32 },
    #[error("a partition did not answer the checkpoint request within {waited:?}")]
    SnapshotTimeout { waited: Duration },
    #[error("cannot start thread '{thread}': {source}")]
    Spawn {
        thread: String,
        #[source]
        source: std::io::Error,
    },
    /// A thread panicked while holding state this request needs.
    #[error("internal state of {0} is poisoned by a panic; restart the process")]
    Poisoned(&'static str),
    #[error("the job is stopping")]
    Stopping,
    #[error("cannot start webhook delivery: {0}")]
    Webhooks(#[source] std::io::Error),
    #[error("{0}")]
    Unsupported(&'static str),
    /// A group savepoint missing the parts of some partitions when its time ran out.
    #[error("savepoint '{name}' was not taken: after {waited:?} partitions {missing:?} still had no part (is every worker of the group running and reaching the checkpoint storage?); the group goes on")]
    SavepointIncomplete {
        name: String,
        waited: Duration,
        missing: Vec<u32>,
    },
}

/// Where a starting job takes its state from.
#[derive(Debug, Clone)]
pub enum StartFrom {
    /// The latest checkpoint, or empty state when there is none.
    LatestCheckpoint,
    Savepoint(String),
}

/// Where a job with no checkpoint starts reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialPosition {
    /// The oldest record retention has kept.
    #[default]
    Earliest,
    /// The end of the log when the job starts: only events ingested from then on.
    Latest,
    /// These offsets, one per partition (a `Latest` resolved once, so that a restart before the
    /// first checkpoint starts at the same place).
    Offsets(Vec<u64>),
}

pub struct RuntimeConfig {
    pub checkpoint_interval: Duration,
    /// Where alert transitions are POSTed; empty: nowhere.
    pub webhooks: Vec<WebhookConfig>,
    /// Used only when there is no checkpoint to restore.
    pub initial_position: InitialPosition,
}

/// What the API asks of the thread that drives a job's partitions.
pub enum Control {
    Savepoint {
        name: String,
        reply: Sender<Result<String, EngineError>>,
    },
    /// Stop with a final checkpoint. With `savepoint`, the final checkpoint is also kept under
    /// that name, and a failure (or a driver that cannot take savepoints) leaves the job running.
    Stop {
        savepoint: Option<String>,
        reply: Sender<Result<Option<String>, EngineError>>,
    },
}

/// A running job. Cheap to clone; `shutdown` stops it with a final checkpoint.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

/// End offset of a partition's input, for lag.
pub type LogEnd = Arc<dyn Fn(u32) -> u64 + Send + Sync>;

/// What [`Runtime::from_parts`] assembles.
pub struct RuntimeParts {
    pub job: Job,
    pub ingest_log: Option<EmbeddedLog>,
    pub counters: Arc<JobCounters>,
    pub webhooks: Option<Arc<WebhookDispatcher>>,
    pub feed: LiveFeed,
    /// Requests to the thread that drives the partitions and takes the checkpoints.
    pub control: Sender<Control>,
    /// That thread; joined at shutdown.
    pub driver: JoinHandle<()>,
    pub log_end: LogEnd,
    /// Set by the driver when it stopped on an error it cannot recover from.
    pub failure: Arc<Mutex<Option<String>>>,
}

/// Starts delivery to the configured webhooks; `None` when there is none.
pub fn start_webhooks(
    job: &str,
    configs: &[WebhookConfig],
) -> Result<Option<Arc<WebhookDispatcher>>, EngineError> {
    if configs.is_empty() {
        return Ok(None);
    }
    let dispatcher = WebhookDispatcher::start(job, configs).map_err(EngineError::Webhooks)?;
    Ok(Some(Arc::new(dispatcher)))
}

struct Inner {
    job: Job,
    log_end: LogEnd,
    failure: Arc<Mutex<Option<String>>>,
    /// Where HTTP ingest appends, when the source is the embedded log.
    ingest_log: Option<EmbeddedLog>,
    counters: Arc<JobCounters>,
    webhooks: Option<Arc<WebhookDispatcher>>,
    feed: LiveFeed,
    requests: Mutex<Option<Sender<Control>>>,
    coordinator: Mutex<Option<JoinHandle<()>>>,
    /// The job runs in other processes; this one only serves its results.
    remote: bool,
}

impl Runtime {
    /// Restores state and starts the workers and the checkpoint coordinator. `ingest_log` is the
    /// log that HTTP ingest appends to (the embedded log, which is then also the source).
    pub fn start(
        job: Job,
        config: RuntimeConfig,
        source: Arc<dyn EventSource>,
        ingest_log: Option<EmbeddedLog>,
        store: Arc<dyn ResultStore>,
        checkpoints: CheckpointStore,
        start_from: StartFrom,
    ) -> Result<Self, EngineError> {
        let Restored {
            partitions: restored,
            next_id,
        } = restore(
            &job,
            source.as_ref(),
            &checkpoints,
            &start_from,
            &config.initial_position,
        )?;
        let partitions = source.partitions();
        let counters = Arc::new(JobCounters::new(&job, partitions));
        let failure: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let feed = LiveFeed::new(LIVE_FEED_CAPACITY);
        let webhooks = start_webhooks(&job.name, &config.webhooks)?;
        let writer = WriteBehind::start(&job.name, store.clone(), counters.clone())?;
        let emitter = Emitter {
            job_name: job.name.clone(),
            store: store.clone(),
            counters: counters.clone(),
            webhooks: webhooks.clone(),
            feed: feed.clone(),
            writer: Some(Arc::new(writer)),
        };
        let initial_offsets: Vec<u64> = restored.iter().map(|(_, offset)| *offset).collect();
        let workers = spawn_workers(restored, &source, &emitter, &failure)?;
        let coordinator = Coordinator {
            job: job.name.clone(),
            definition: job.clone(),
            initial_offsets,
            store_generation: store.generation(),
            workers,
            store,
            source: source.clone(),
            checkpoints,
            counters: counters.clone(),
            next_id,
            interval: config.checkpoint_interval,
        };
        let (req_tx, req_rx) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("checkpoint-coordinator".into())
            .spawn(move || coordinator.run(req_rx))
            .map_err(|source| EngineError::Spawn {
                thread: "checkpoint-coordinator".into(),
                source,
            })?;
        let log_end = move |p: u32| source.end_offset(p);
        Ok(Self::from_parts(RuntimeParts {
            job,
            ingest_log,
            counters,
            webhooks,
            feed,
            control: req_tx,
            driver: handle,
            log_end: Arc::new(log_end),
            failure,
        }))
    }

    /// A runtime whose partitions are driven by someone else (the Kafka consumer): the driver
    /// thread answers [`Control`] requests, and the API sees the same handle as for the embedded
    /// log.
    pub fn from_parts(parts: RuntimeParts) -> Self {
        Self::assemble(parts, false)
    }

    pub(crate) fn assemble(parts: RuntimeParts, remote: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                job: parts.job,
                log_end: parts.log_end,
                failure: parts.failure,
                ingest_log: parts.ingest_log,
                counters: parts.counters,
                webhooks: parts.webhooks,
                feed: parts.feed,
                requests: Mutex::new(Some(parts.control)),
                coordinator: Mutex::new(Some(parts.driver)),
                remote,
            }),
        }
    }

    /// Whether the job runs in other processes (see [`Self::remote`]).
    pub fn is_remote(&self) -> bool {
        self.inner.remote
    }

    /// Why the job stopped processing on its own, if it did; the process should exit (and be
    /// restarted, resuming from the last checkpoint).
    pub fn failure(&self) -> Option<String> {
        self.inner.failure.lock().ok().and_then(|f| f.clone())
    }

    pub fn job(&self) -> &Job {
        &self.inner.job
    }

    /// The log HTTP ingest appends to, if this job reads the embedded log.
    pub fn ingest_log(&self) -> Option<&EmbeddedLog> {
        self.inner.ingest_log.as_ref()
    }

    /// Results and alerts as they are stored, for push subscribers.
    pub fn feed(&self) -> &LiveFeed {
        &self.inner.feed
    }

    pub fn counters(&self) -> &JobCounters {
        &self.inner.counters
    }

    /// False once `shutdown` has begun, or the driver stopped on its own (a Kafka worker whose
    /// group stopped at a savepoint another worker was asked for): the job takes no more input.
    pub fn is_running(&self) -> bool {
        let asked_to_stop = self.inner.requests.lock().map_or(true, |r| r.is_none());
        let driver_ended = self
            .inner
            .coordinator
            .lock()
            .map_or(true, |d| d.as_ref().is_none_or(JoinHandle::is_finished));
        !asked_to_stop && !driver_ended
    }

    pub fn status(&self) -> JobStatus {
        let running = self.is_running();
        let state = match (self.inner.remote, running) {
            (true, _) => "remote",
            (false, true) => "running",
            (false, false) => "stopped",
        };
        let mut status = self
            .inner
            .counters
            .snapshot(&self.inner.job.name, state, |p| (self.inner.log_end)(p));
        if let Some(webhooks) = &self.inner.webhooks {
            status.webhooks = webhooks.status();
        }
        status
    }

    fn request(&self, make: impl FnOnce() -> Control) -> Result<(), EngineError> {
        let guard = self
            .inner
            .requests
            .lock()
            .map_err(|_| EngineError::Stopping)?;
        let tx = guard.as_ref().ok_or(EngineError::Stopping)?;
        tx.send(make()).map_err(|_| EngineError::Stopping)
    }

    /// Takes a checkpoint now and keeps it as savepoint `name`; returns where it was written.
    /// Blocks until it is durable.
    pub fn savepoint(&self, name: &str) -> Result<String, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.request(|| Control::Savepoint {
            name: name.to_string(),
            reply,
        })?;
        rx.recv().map_err(|_| EngineError::Stopping)?
    }

    /// Takes a final checkpoint, stops every worker, then gives webhook deliveries still queued or
    /// in flight at most [`WEBHOOK_GRACE`] before stopping them. Later calls do nothing.
    pub fn shutdown(&self) -> Result<(), EngineError> {
        let tx = self.inner.requests.lock().ok().and_then(|mut r| r.take());
        let Some(tx) = tx else { return Ok(()) };
        let (reply, rx) = mpsc::channel();
        let result = match tx.send(Control::Stop {
            savepoint: None,
            reply,
        }) {
            Ok(()) => rx.recv().unwrap_or(Err(EngineError::Stopping)),
            Err(_) => Err(EngineError::Stopping),
        };
        self.finish_stop();
        result.map(|_| ())
    }

    /// Stops like [`Self::shutdown`], with the final checkpoint kept as savepoint `name`: the
    /// savepoint is exactly the state the job stopped in (nothing is processed in between, as
    /// with Flink's stop-with-savepoint). Returns where it was written. If the savepoint cannot
    /// be taken, the job keeps running and the error says why.
    pub fn stop_with_savepoint(&self, name: &str) -> Result<String, EngineError> {
        let (reply, rx) = mpsc::channel();
        self.request(|| Control::Stop {
            savepoint: Some(name.to_string()),
            reply,
        })?;
        let path = rx.recv().map_err(|_| EngineError::Stopping)??;
        // Stopped: later requests find no sender.
        if let Ok(mut requests) = self.inner.requests.lock() {
            requests.take();
        }
        self.finish_stop();
        Ok(path.unwrap_or_default())
    }

    /// After the driver has stopped: joins it and winds down webhook delivery.
    fn finish_stop(&self) {
        if let Some(handle) = self
            .inner
            .coordinator
            .lock()
            .ok()
            .and_then(|mut h| h.take())
        {
            let _ = handle.join();
        }
        // The workers have stopped: no transition is submitted any more.
        if let Some(webhooks) = &self.inner.webhooks {
            webhooks.shutdown(WEBHOOK_GRACE);
        }
    }
}

mod coordinator;
mod remote;
mod restore;

#[cfg(test)]
mod tests;
