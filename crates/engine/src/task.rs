//! One partition's processing, whatever drives it: its pipeline, the offset it resumes from, the
//! outputs not applied yet, and its idle clock.
//!
//! Both partition drivers (a thread per embedded-log partition in [`crate::partition`], one Kafka
//! consumer for all its partitions in `streampulse_kafka`) hold a [`PartitionTask`] per partition
//! and differ only in how they read records and when they snapshot. What a record does to the
//! state, when a partition counts as idle, how outputs are applied and published, and what a
//! snapshot holds are written here once.
//!
//! A task never reads a clock itself except through [`PartitionTask::arrived`] and
//! [`PartitionTask::idle_due`], and never moves its offset past an output that is not applied:
//! a snapshot is taken only between batches, after [`PartitionTask::apply`] succeeded.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streampulse_core::output::Output;
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_core::time::Millis;
use streampulse_store::StoreError;

use crate::checkpoint::{PartitionCheckpoint, SnapshotError};
use crate::emit::{Emitter, RetryDecision};
use crate::status::JobCounters;
use crate::telemetry::OutputTally;

pub struct PartitionTask {
    partition: u32,
    pipeline: PartitionPipeline,
    /// The next offset to process; `None` until the first record when the partition has no
    /// checkpoint and starts wherever its source's end is (Kafka's `latest`).
    next_offset: Option<u64>,
    /// Outputs produced but not yet applied.
    outputs: Vec<Output>,
    last_arrival: Instant,
}

impl PartitionTask {
    pub fn new(partition: u32, pipeline: PartitionPipeline, next_offset: Option<u64>) -> Self {
        Self {
            partition,
            pipeline,
            next_offset,
            outputs: Vec::new(),
            last_arrival: Instant::now(),
        }
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    pub fn pipeline(&self) -> &PartitionPipeline {
        &self.pipeline
    }

    pub fn next_offset(&self) -> Option<u64> {
        self.next_offset
    }

    /// Outputs produced and not applied yet (for sinks that take them before the store does).
    pub fn pending(&self) -> &[Output] {
        &self.outputs
    }

    /// False for a record the state already covers: after a rebalance a consumer may hand over
    /// records before the offset the restored state resumes at, and they must not count twice.
    pub fn is_new(&self, offset: u64) -> bool {
        self.next_offset.is_none_or(|next| offset >= next)
    }

    /// Runs the event at `offset` through the pipeline. `tags` is called only if the pipeline
    /// needs them (see [`PartitionPipeline::process_tagged`]).
    pub fn event(
        &mut self,
        offset: u64,
        metric_id: &str,
        tags: impl FnOnce() -> BTreeMap<String, String>,
        ts: Millis,
        value: f64,
    ) {
        self.pipeline
            .process_tagged(metric_id, tags, ts, value, offset, &mut self.outputs);
        self.next_offset = Some(offset + 1);
    }

    /// Consumes a record that holds no event for the pipeline (a marker, a dead-lettered record).
    pub fn step_over(&mut self, offset: u64) {
        self.next_offset = Some(offset + 1);
    }

    /// Restarts the idle clock: input arrived at `now`.
    pub fn arrived(&mut self, now: Instant) {
        self.last_arrival = now;
    }

    /// Whether the partition has been silent for `idle_timeout` while windows hold data, so that
    /// an idle flush would close them (DESIGN: idle partitions).
    pub fn idle_due(&self, idle_timeout: Duration) -> bool {
        self.last_arrival.elapsed() >= idle_timeout && self.pipeline.idle_flush_pending()
    }

    /// Advances the watermark past every window holding data; false if there was nothing to do.
    /// Counted in the partition's `idle_flushes`.
    pub fn flush_idle(&mut self, counters: &JobCounters) -> bool {
        let flushed = self.pipeline.flush_idle(&mut self.outputs);
        if flushed {
            if let Some(c) = counters.partitions.get(self.partition as usize) {
                c.idle_flushes.fetch_add(1, Relaxed);
            }
        }
        flushed
    }

    /// Applies the pending outputs through `emitter` (the store first, retried, then the
    /// notifications), then publishes the partition's progress. `on_failure` decides after each
    /// failed store attempt whether to keep trying; false when it gave up, and the outputs stay
    /// pending.
    pub fn apply(
        &mut self,
        emitter: &Emitter,
        tally: &mut OutputTally,
        started: Instant,
        on_failure: impl FnMut(&Arc<StoreError>) -> RetryDecision,
    ) -> bool {
        let applied = emitter.apply(
            self.partition,
            &mut self.outputs,
            tally,
            started,
            on_failure,
        );
        if applied {
            self.publish(&emitter.counters);
        }
        applied
    }

    /// Publishes watermark, offset and open windows to the partition's counters (status, lag).
    pub fn publish(&self, counters: &JobCounters) {
        if let Some(c) = counters.partitions.get(self.partition as usize) {
            c.watermark.store(self.pipeline.watermark(), Relaxed);
            c.next_offset.store(self.next_offset.unwrap_or(0), Relaxed);
            c.open_windows
                .store(self.pipeline.open_windows() as u64, Relaxed);
        }
    }

    /// Early firing: the current aggregates of unfired windows to live subscribers.
    pub fn publish_partials(&self, emitter: &Emitter) {
        emitter.publish_partials(&self.pipeline);
    }

    /// The state as of `next_offset`, or `None` while the partition has no offset yet (nothing
    /// read since a `latest` start). Every output before it must be applied already: callers
    /// snapshot between batches, after [`Self::apply`].
    pub fn snapshot(
        &self,
        counters: &JobCounters,
    ) -> Result<Option<PartitionCheckpoint>, SnapshotError> {
        let Some(next_offset) = self.next_offset else {
            return Ok(None);
        };
        let counter = counters.partitions.get(self.partition as usize);
        let last_size = counter.map_or(0, |c| c.state_bytes.load(Relaxed));
        let snapshot = PartitionCheckpoint::of_sized(
            self.partition,
            next_offset,
            &self.pipeline,
            usize::try_from(last_size).unwrap_or(0),
        )?;
        if let Some(c) = counter {
            c.state_bytes.store(snapshot.state.len() as u64, Relaxed);
        }
        Ok(Some(snapshot))
    }

    /// Goes back to `pipeline` at `next_offset` (the last checkpoint's): outputs computed since
    /// are dropped, and the replay from there computes them again.
    pub fn rewind(
        &mut self,
        pipeline: PartitionPipeline,
        next_offset: u64,
        counters: &JobCounters,
    ) {
        tracing::warn!(
            partition = self.partition,
            from = ?self.next_offset,
            to = next_offset,
            "rewinding to the last checkpoint: the store lost writes not yet flushed"
        );
        self.pipeline = pipeline;
        self.next_offset = Some(next_offset);
        self.outputs.clear();
        self.publish(counters);
    }
}

#[cfg(test)]
mod tests;
