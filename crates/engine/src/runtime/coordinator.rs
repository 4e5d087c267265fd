//! The checkpoint coordinator of the embedded runtime: asks every partition worker for a snapshot
//! between two batches, makes the store durable, writes the checkpoint (and savepoints), releases
//! the input it covers, and answers the API's savepoint and stop requests.
//!
//! It never writes a checkpoint past outputs the store may not hold: after a flush it compares
//! the store's generation, and if the store was reopened it sends every worker back to the last
//! checkpoint instead.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streampulse_core::clock::now_ms;
use streampulse_core::job::Job;
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_store::ResultStore;
use tracing::field::Empty;

use super::{Control, EngineError};
use crate::checkpoint::{Checkpoint, CheckpointStore, PartitionCheckpoint};
use crate::emit::Emitter;
use crate::partition::{Command, PartitionWorker};
use crate::source::EventSource;
use crate::status::{CheckpointInfo, JobCounters};

/// How long a checkpoint waits for every worker's snapshot before it is abandoned.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(60);

/// A partition worker's command channel and thread.
pub(super) type Worker = (Sender<Command>, JoinHandle<()>);

/// One worker thread per partition, each with its command channel.
pub(super) fn spawn_workers(
    restored: Vec<(PartitionPipeline, u64)>,
    source: &Arc<dyn EventSource>,
    emitter: &Emitter,
    failure: &Arc<Mutex<Option<String>>>,
) -> Result<Vec<Worker>, EngineError> {
    let mut workers = Vec::with_capacity(restored.len());
    for (partition, (pipeline, next_offset)) in (0u32..).zip(restored) {
        let (tx, rx) = mpsc::channel();
        emitter.counters.partitions[partition as usize]
            .next_offset
            .store(next_offset, Relaxed);
        let worker = PartitionWorker::new(
            partition,
            (pipeline, next_offset),
            source.clone(),
            emitter.clone(),
            rx,
            failure.clone(),
        );
        let handle = std::thread::Builder::new()
            .name(format!("partition-{partition}"))
            .spawn(move || worker.run())
            .map_err(|source| EngineError::Spawn {
                thread: format!("partition-{partition}"),
                source,
            })?;
        workers.push((tx, handle));
    }
    Ok(workers)
}

pub(super) struct Coordinator {
    pub(super) job: String,
    pub(super) definition: Job,
    /// Where the partitions started when there was no checkpoint: a rewind before the first
    /// checkpoint goes back there.
    pub(super) initial_offsets: Vec<u64>,
    /// The store's [`ResultStore::generation`] this job's applied outputs belong to.
    pub(super) store_generation: u64,
    pub(super) workers: Vec<Worker>,
    pub(super) store: Arc<dyn ResultStore>,
    pub(super) source: Arc<dyn EventSource>,
    pub(super) checkpoints: CheckpointStore,
    pub(super) counters: Arc<JobCounters>,
    pub(super) next_id: u64,
    pub(super) interval: Duration,
}

impl Coordinator {
    pub(super) fn run(mut self, requests: Receiver<Control>) {
        let mut next_due = Instant::now() + self.interval;
        loop {
            let wait = next_due.saturating_duration_since(Instant::now());
            match requests.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(err) = self.checkpoint(None) {
                        tracing::error!(error = %err, "periodic checkpoint failed");
                    }
                    next_due = Instant::now() + self.interval;
                }
                Ok(Control::Savepoint { name, reply }) => {
                    let _ = reply.send(
                        self.checkpoint(Some(&name))
                            .map(|path| path.unwrap_or_default()),
                    );
                }
                Ok(Control::Stop {
                    savepoint: Some(name),
                    reply,
                }) => {
                    // Nothing runs between this checkpoint and the stop: workers answer the
                    // snapshot request between two batches, and the next command they read is
                    // Stop.
                    match self.checkpoint(Some(&name)) {
                        Ok(path) => {
                            self.stop_workers();
                            let _ = reply.send(Ok(path));
                            return;
                        }
                        Err(err) => {
                            let _ = reply.send(Err(err));
                        }
                    }
                }
                Ok(Control::Stop {
                    savepoint: None,
                    reply,
                }) => {
                    let result = self.checkpoint(None);
                    self.stop_workers();
                    let _ = reply.send(result);
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop_workers();
                    return;
                }
            }
        }
    }

    /// Sends every worker back to the last checkpoint (or to where it started, before the first
    /// one); returns which.
    fn rewind(&mut self) -> Result<String, EngineError> {
        let (targets, from) = match self.checkpoints.latest()? {
            Some(chk) => {
                let mut targets = Vec::with_capacity(chk.partitions.len());
                for p in &chk.partitions {
                    let pipeline = p.restore(&self.definition)?;
                    targets.push((pipeline, p.next_offset));
                }
                (targets, format!("checkpoint {}", chk.id))
            }
            None => (
                self.initial_offsets
                    .iter()
                    .map(|&o| (PartitionPipeline::new(&self.definition), o))
                    .collect(),
                "where the job started".to_string(),
            ),
        };
        for ((tx, _), (pipeline, next_offset)) in self.workers.iter().zip(targets) {
            tx.send(Command::Rewind {
                pipeline: Box::new(pipeline),
                next_offset,
            })
            .map_err(|_| EngineError::Stopping)?;
        }
        Ok(from)
    }

    fn stop_workers(&mut self) {
        for (tx, _) in &self.workers {
            let _ = tx.send(Command::Stop);
        }
        for (_, handle) in self.workers.drain(..) {
            let _ = handle.join();
        }
    }

    /// Takes one checkpoint; with `savepoint`, also keeps it under that name.
    fn checkpoint(&mut self, savepoint: Option<&str>) -> Result<Option<String>, EngineError> {
        let started = Instant::now();
        let result = self.try_checkpoint(savepoint, started);
        if result.is_err() {
            self.counters.checkpoints_failed.fetch_add(1, Relaxed);
        }
        result
    }

    fn try_checkpoint(
        &mut self,
        savepoint: Option<&str>,
        started: Instant,
    ) -> Result<Option<String>, EngineError> {
        let id = self.next_id;
        self.next_id += 1;
        let span = tracing::info_span!(
            "checkpoint",
            checkpoint.id = id as i64,
            checkpoint.bytes = Empty,
            duration_ms = Empty,
            savepoint = savepoint.unwrap_or(""),
        )
        .entered();
        let mut replies = Vec::with_capacity(self.workers.len());
        for (tx, _) in &self.workers {
            let (reply, rx) = mpsc::channel();
            tx.send(Command::Checkpoint(reply))
                .map_err(|_| EngineError::Stopping)?;
            replies.push(rx);
        }
        let mut partitions: Vec<PartitionCheckpoint> = Vec::with_capacity(replies.len());
        for rx in replies {
            let snapshot =
                rx.recv_timeout(SNAPSHOT_TIMEOUT)
                    .map_err(|_| EngineError::SnapshotTimeout {
                        waited: SNAPSHOT_TIMEOUT,
                    })??;
            partitions.push(snapshot);
        }
        // Outputs emitted before the snapshot offsets must be durable before the checkpoint is.
        self.store.flush()?;
        // Read after the flush: if the store was reopened before it, outputs applied since the
        // last checkpoint may be gone, and this checkpoint would skip them for good.
        let generation = self.store.generation();
        if generation != self.store_generation {
            let from = self.rewind()?;
            self.store_generation = generation;
            return Err(EngineError::StoreReopened { from });
        }
        let checkpoint = Checkpoint::new(id, &self.job, now_ms(), partitions);
        let bytes = self.checkpoints.write(&checkpoint)?;
        let savepoint_path = match savepoint {
            Some(name) => Some(self.checkpoints.write_savepoint(name, &checkpoint)?),
            None => None,
        };
        let safe: Vec<u64> = checkpoint
            .partitions
            .iter()
            .map(|p| p.next_offset)
            .collect();
        if let Err(err) = self.source.release(&safe) {
            tracing::warn!(error = %err, "releasing checkpointed input failed");
        }
        let elapsed = started.elapsed();
        self.counters.metrics.checkpoint_duration.observe(elapsed);
        let info = CheckpointInfo {
            id,
            completed_ms: checkpoint.created_ms,
            duration_ms: elapsed.as_millis() as u64,
            bytes,
        };
        // OpenTelemetry attributes are i64: u64 fields would be exported as strings.
        span.record("checkpoint.bytes", bytes as i64);
        span.record("duration_ms", info.duration_ms as i64);
        tracing::debug!(
            id,
            bytes,
            duration_ms = info.duration_ms,
            "checkpoint completed"
        );
        self.counters.checkpoints_completed.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.counters.last_checkpoint.lock() {
            *last = Some(info);
        }
        Ok(savepoint_path)
    }
}
