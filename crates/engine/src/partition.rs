//! The worker of one log partition: reads events in offset order, runs the partition's pipeline,
//! upserts its outputs into the store, and answers checkpoint requests between batches.
//!
//! A worker owns its pipeline outright; the only things it shares are the log, the store and the
//! counters. It never skips an offset and never drops an output: a store error is retried until it
//! succeeds, holding the partition back rather than losing a result.

use std::cell::RefCell;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streampulse_core::pipeline::PartitionPipeline;
use streampulse_log::RecordBatch;

use crate::checkpoint::PartitionCheckpoint;
use crate::emit::{Emitter, RetryDecision};
use crate::record::{self, Record};
use crate::runtime::EngineError;
use crate::source::EventSource;
use crate::status::PartitionCounters;
use crate::task::PartitionTask;
use crate::telemetry::OutputTally;

/// Records read from the log per batch: bounds the latency of a checkpoint request.
const READ_BATCH: usize = 8192;
/// How long an idle worker sleeps before looking at its commands and the idle clock again.
const POLL: Duration = Duration::from_millis(20);
/// How long a worker waits before reading again after its source failed.
const SOURCE_RETRY: Duration = Duration::from_secs(1);

pub enum Command {
    /// Snapshot the pipeline at the current offset; every output before it is already applied.
    Checkpoint(Sender<Result<PartitionCheckpoint, EngineError>>),
    /// Go back to this state and offset (the last checkpoint's): the store lost outputs applied
    /// since, and replaying the log from there writes them again.
    Rewind {
        pipeline: Box<PartitionPipeline>,
        next_offset: u64,
    },
    Stop,
}

pub struct PartitionWorker {
    task: PartitionTask,
    source: Arc<dyn EventSource>,
    emitter: Emitter,
    commands: Receiver<Command>,
    /// Set when this partition cannot go on (its input was deleted); the process then exits.
    failure: Arc<Mutex<Option<String>>>,
    /// A rewind that arrived while outputs were being retried, applied before the next read.
    rewind: RefCell<Option<(Box<PartitionPipeline>, u64)>>,
}

impl PartitionWorker {
    pub fn new(
        partition: u32,
        (pipeline, next_offset): (PartitionPipeline, u64),
        source: Arc<dyn EventSource>,
        emitter: Emitter,
        commands: Receiver<Command>,
        failure: Arc<Mutex<Option<String>>>,
    ) -> Self {
        Self {
            task: PartitionTask::new(partition, pipeline, Some(next_offset)),
            source,
            emitter,
            commands,
            failure,
            rewind: RefCell::new(None),
        }
    }

    fn partition(&self) -> u32 {
        self.task.partition()
    }

    /// The next offset to read: always known here (the embedded log resolves `latest` at start).
    fn next_offset(&self) -> u64 {
        self.task.next_offset().unwrap_or(0)
    }

    fn counters(&self) -> &PartitionCounters {
        &self.emitter.counters.partitions[self.partition() as usize]
    }

    pub fn run(mut self) {
        let _span = tracing::info_span!("partition", partition = self.partition()).entered();
        let idle_timeout = self.task.pipeline().job().idle_timeout;
        let early_firing = self.task.pipeline().job().early_firing;
        let mut flush_requested = false;
        let mut tally = OutputTally::new(&self.emitter.counters.metrics);
        // Kept across reads: the log fills it without allocating once it has grown.
        let mut batch = RecordBatch::new();
        let mut next_partials = Instant::now();
        self.task.publish(&self.emitter.counters);
        loop {
            if let Some(every) = early_firing {
                if Instant::now() >= next_partials {
                    self.task.publish_partials(&self.emitter);
                    next_partials = Instant::now() + every;
                }
            }
            loop {
                if let Some((pipeline, next_offset)) = self.rewind.take() {
                    self.task
                        .rewind(*pipeline, next_offset, &self.emitter.counters);
                    flush_requested = false;
                }
                match self.commands.try_recv() {
                    Ok(Command::Checkpoint(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Ok(Command::Rewind {
                        pipeline,
                        next_offset,
                    }) => {
                        self.rewind.replace(Some((pipeline, next_offset)));
                    }
                    Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return,
                    Err(TryRecvError::Empty) => break,
                }
            }
            match self
                .source
                .read(self.partition(), self.next_offset(), READ_BATCH, &mut batch)
            {
                Ok(()) => {}
                Err(err) => {
                    let first = self.source.start_offset(self.partition());
                    if self.next_offset() < first {
                        // Retrying cannot bring deleted records back.
                        let reason = format!(
                            "partition {}: the log no longer holds offset {} (retention deleted \
                             everything before {first}); restore a newer checkpoint or savepoint",
                            self.partition(),
                            self.next_offset()
                        );
                        tracing::error!(%reason, "the partition cannot go on");
                        if let Ok(mut failure) = self.failure.lock() {
                            failure.get_or_insert(reason);
                        }
                        return;
                    }
                    tracing::error!(error = %err, offset = self.next_offset(), "cannot read the source; retrying");
                    std::thread::sleep(SOURCE_RETRY);
                    continue;
                }
            };
            if batch.is_empty() {
                if !flush_requested && self.task.idle_due(idle_timeout) {
                    flush_requested = self.request_idle_flush();
                }
                self.source
                    .wait_for(self.partition(), self.next_offset(), POLL);
                continue;
            }
            let started = Instant::now();
            if self.process(&batch) {
                flush_requested = false;
            }
            self.counters()
                .events
                .fetch_add(batch.len() as u64, Relaxed);
            if !self.apply(&mut tally, started) {
                if self.rewind.borrow().is_some() {
                    // Applied at the top of the loop.
                    continue;
                }
                return;
            }
        }
    }

    /// Runs one batch of log records; true if it held this job's idle-flush marker.
    fn process(&mut self, batch: &RecordBatch) -> bool {
        let job = self.emitter.job_name.clone();
        let mut marker_seen = false;
        // Other jobs' idle markers are not arrivals: only events restart the idle clock.
        let mut arrived = false;
        for (offset, payload) in batch.iter() {
            match record::decode(payload) {
                Ok(Record::Event {
                    metric_id,
                    ts,
                    value,
                }) => {
                    arrived = true;
                    // Tags are decoded only when the pipeline asks: for a metric's first event
                    // (the catalog and alerts carry them), or for every event when the job keeps
                    // raw events.
                    let tags = || record::decode_tags(payload);
                    self.task.event(offset, metric_id, tags, ts, value);
                }
                Ok(marker) => {
                    // Another job's marker is not ours to act on.
                    if let Some(decided_at) = marker.idle_flush_for(&job) {
                        marker_seen = true;
                        // Only if nothing arrived between the decision and the marker.
                        if decided_at == offset {
                            self.task.flush_idle(&self.emitter.counters);
                        }
                    }
                    self.task.step_over(offset);
                }
                Err(err) => {
                    self.counters().skipped_records.fetch_add(1, Relaxed);
                    tracing::error!(error = %err, offset, "skipping an undecodable log record");
                    self.task.step_over(offset);
                }
            }
        }
        if arrived {
            self.task.arrived(Instant::now());
        }
        marker_seen
    }

    /// Appends an idle-flush marker; the flush happens when the marker is read back.
    fn request_idle_flush(&self) -> bool {
        match self.source.append_idle_marker(
            &self.emitter.job_name,
            self.partition(),
            self.next_offset(),
        ) {
            Ok(_) => {
                tracing::debug!("partition idle: idle-flush marker appended");
                true
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot append the idle-flush marker");
                false
            }
        }
    }

    /// Applies the pending outputs through the emitter. Returns false when a stop (or a rewind)
    /// was requested while the store kept failing.
    fn apply(&mut self, tally: &mut OutputTally, started: Instant) -> bool {
        let partition = self.partition();
        let (commands, rewind) = (&self.commands, &self.rewind);
        self.task.apply(&self.emitter, tally, started, |err| {
            // Stay responsive while the store is down: a checkpoint fails fast, and a stop
            // ends the worker (the next start replays these records from the last checkpoint).
            match commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => RetryDecision::GiveUp,
                Ok(Command::Checkpoint(reply)) => {
                    let _ = reply.send(Err(EngineError::PartitionStore {
                        partition,
                        source: err.clone(),
                    }));
                    RetryDecision::Retry
                }
                Ok(Command::Rewind {
                    pipeline,
                    next_offset,
                }) => {
                    // These outputs are from past the rewind's offset: they are dropped and
                    // computed again by the replay.
                    rewind.replace(Some((pipeline, next_offset)));
                    RetryDecision::GiveUp
                }
                Err(TryRecvError::Empty) => RetryDecision::Retry,
            }
        })
    }

    fn snapshot(&self) -> Result<PartitionCheckpoint, EngineError> {
        // The embedded log resolves every start position to an offset, so this always has one.
        self.task
            .snapshot(&self.emitter.counters)?
            .ok_or(EngineError::NoOffset {
                partition: self.partition(),
            })
    }
}

#[cfg(test)]
mod tests;
