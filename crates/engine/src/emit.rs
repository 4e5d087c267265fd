//! Where a partition's outputs go once the pipeline has produced them: the result store first
//! (the record), then the counters, the webhooks and the live feed (notifications).
//! Stored means that a query finds them from then on: the embedded store may write them after
//! they are published (`ResultStore::write_behind`), and every read writes what waits first.
//!
//! Every partition driver (the embedded log's workers, the Kafka consumer) hands its outputs to an
//! [`Emitter`], so the order of these effects and the rule that a store error is retried, never
//! skipped, are the same whatever the source. An emitter never drops an output: it retries the
//! store until it succeeds or its caller gives up (and will replay from the last checkpoint);
//! a write the store put off is retried by the store, or replayed after a file failure.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streampulse_core::output::Output;
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_store::{ResultStore, StoreError};

use crate::feed::LiveFeed;
use crate::status::JobCounters;
use crate::telemetry::OutputTally;
use crate::webhook::WebhookDispatcher;
use crate::write_behind::WriteBehind;

/// What a caller decides while the store keeps failing.
pub enum RetryDecision {
    Retry,
    /// Stop retrying; the outputs stay unapplied and the caller must not move past them.
    GiveUp,
}

#[derive(Clone)]
pub struct Emitter {
    pub job_name: String,
    pub store: Arc<dyn ResultStore>,
    pub counters: Arc<JobCounters>,
    /// Where alert transitions are sent once stored; `None` without webhooks.
    pub webhooks: Option<Arc<WebhookDispatcher>>,
    pub feed: LiveFeed,
    /// The job's thread for the store's put-off writes; `None` does them on the caller's
    /// thread, after it published.
    pub writer: Option<Arc<WriteBehind>>,
}

impl Emitter {
    /// Early firing: pushes the current aggregates of `pipeline`'s unfired windows to live
    /// subscribers. Nothing is computed when nobody listens; nothing is stored.
    pub fn publish_partials(&self, pipeline: &PartitionPipeline) {
        if self.feed.subscribers() == 0 {
            return;
        }
        let mut partials = Vec::new();
        pipeline.partial_results(&mut partials);
        crate::telemetry::count_partials(&self.counters.metrics, &partials);
        self.feed.publish_partials(partials);
    }

    /// Writes `outputs` of `partition` to the store, retrying with backoff until it succeeds,
    /// then counts and publishes them, which empties the vector. `on_failure` is asked after every
    /// failed attempt (with the error, shared so it can be handed on) whether to keep trying;
    /// returns false when it gave up. `started` is when the batch these outputs came from began
    /// processing: the time to publish its results is measured from it.
    pub fn apply(
        &self,
        partition: u32,
        outputs: &mut Vec<Output>,
        tally: &mut OutputTally,
        started: Instant,
        mut on_failure: impl FnMut(&Arc<StoreError>) -> RetryDecision,
    ) -> bool {
        if outputs.is_empty() {
            return true;
        }
        let mut backoff = Duration::from_millis(10);
        while let Err(err) = self.store.apply(&self.job_name, partition, outputs) {
            let err = Arc::new(err);
            tracing::error!(error = %err, partition, "cannot write results; retrying");
            self.counters.store_errors.fetch_add(1, Relaxed);
            if let Ok(mut failing) = self.counters.store_failing.lock() {
                failing.insert(partition, err.to_string());
            }
            if let RetryDecision::GiveUp = on_failure(&err) {
                return false;
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        let (mut results, mut late) = (0, 0);
        for o in outputs.iter() {
            match o {
                Output::Result(_) => results += 1,
                Output::Late(_) => late += 1,
                // Raw events are the input kept as is, not results.
                Output::Retract { .. }
                | Output::Alert(_)
                | Output::Metric { .. }
                | Output::Raw(_) => {}
            }
        }
        if let Some(c) = self.counters.partitions.get(partition as usize) {
            c.results.fetch_add(results, Relaxed);
            c.late.fetch_add(late, Relaxed);
        }
        let now = streampulse_core::clock::now_ms();
        tally.record(&self.counters.metrics, outputs, now);
        // Once stored: a webhook is a notification, the store is the record. Never blocks.
        if let Some(webhooks) = &self.webhooks {
            for o in outputs.iter() {
                if let Output::Alert(alert) = o {
                    webhooks.submit(alert);
                }
            }
        }
        // The last use of the outputs: the feed takes them (the vector keeps its capacity).
        self.feed.publish(outputs.drain(..));
        if results > 0 {
            self.counters
                .metrics
                .result_publish
                .observe(started.elapsed());
        }
        // After publishing, so that the store's deferred writes do not hold these results back.
        // A failure here is the store's file failing: its generation tells the checkpoint.
        if let Some(writer) = &self.writer {
            // Its writes are the writer's to report (under its own slot): the apply took the
            // batch, so this partition is no longer failing.
            if let Ok(mut failing) = self.counters.store_failing.lock() {
                if failing.remove(&partition).is_some() {
                    tracing::info!(partition, "the result store takes writes again");
                }
            }
            writer.wake();
            return true;
        }
        match self.store.write_behind() {
            Ok(_) => {
                // Also after an earlier call gave up (a stop, a rewind) while the store was
                // failing. Not at `apply`: a store may take a batch before writing it.
                if let Ok(mut failing) = self.counters.store_failing.lock() {
                    if failing.remove(&partition).is_some() {
                        tracing::info!(partition, "the result store takes writes again");
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, partition, "the result store's deferred writes failed; retried with the next batch, or replayed from the last checkpoint if its file was reopened");
                self.counters.store_errors.fetch_add(1, Relaxed);
                if let Ok(mut failing) = self.counters.store_failing.lock() {
                    failing.insert(partition, err.to_string());
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
