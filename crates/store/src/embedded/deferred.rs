//! Batches `apply` kept in memory instead of writing them: the partition that applied them
//! publishes its results at once, and the writes follow, after its results are out.
//!
//! Writing a batch takes redb's write lock, which one writer holds at a time: another
//! partition's batch, a write-out of held-back index rows (10-20 ms a transaction), or a durable
//! flush, which holds it while it writes out every page the commits since the last one left in
//! redb's write buffer and through the fsync (60-400 ms at each checkpoint under a steady
//! stream). A partition whose apply waited there held back the results it had just fired. So
//! `apply` keeps a copy of its outputs here and returns; after publishing, the partition calls
//! `write_behind`, which writes every batch waiting (its own and other partitions') in one
//! transaction, unless another partition is writing them already or a durable flush runs
//! (which writes those waiting when its last transaction begins, and after its commit those that
//! came during it).
//!
//! Whoever takes the write transaction next writes them first, in arrival order and in its own
//! transaction, before its own writes: so one partition's batches reach the tables in its order.
//! A durable flush's own transaction writes those waiting when it begins, so a flush makes
//! durable every batch applied before it was called.
//! Every read first takes a write transaction to write them if any wait
//! (`EmbeddedStore::catch_up`), so a result on the live feed is in the store by the time a query
//! looks for it.
//!
//! This module must never hold more than its byte cap, by its estimate (a batch past it is
//! written by its own apply, waiting for the lock, as backpressure), and never drop a batch that
//! no committed transaction wrote but with the rest of what a file failure lost.

use std::sync::{Mutex, MutexGuard, PoisonError};

use streampulse_core::output::Output;

/// One partition's outputs of one batch, as `apply` got them.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) job: String,
    pub(crate) partition: u32,
    pub(crate) outputs: Vec<Output>,
}

/// The batches waiting, and whether a durable flush runs.
#[derive(Debug)]
pub(crate) struct Deferred {
    /// Durable flushes running: each job's checkpoint coordinator flushes the one store.
    flushing: usize,
    batches: Vec<Batch>,
    /// About the memory the waiting batches take (see [`Deferred::BYTES_PER_OUTPUT`]).
    bytes: usize,
    cap: usize,
    /// Batches held since the store opened.
    held: u64,
}

/// Locks the waiting batches. A poisoned lock is taken as it is: every change is whole before
/// its guard drops.
pub(crate) fn lock(deferred: &Mutex<Deferred>) -> MutexGuard<'_, Deferred> {
    deferred.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Deferred {
    /// An output's share of the memory, about: a window result with its strings and values.
    const BYTES_PER_OUTPUT: usize = 512;

    pub(crate) fn new(cap: usize) -> Self {
        Self {
            flushing: 0,
            batches: Vec::new(),
            bytes: 0,
            cap,
            held: 0,
        }
    }

    /// Keeps a copy of `outputs` if they fit; returns whether it did.
    pub(crate) fn hold(&mut self, job: &str, partition: u32, outputs: &[Output]) -> bool {
        let bytes = outputs.len().saturating_mul(Self::BYTES_PER_OUTPUT);
        if self.bytes.saturating_add(bytes) > self.cap {
            return false;
        }
        self.bytes += bytes;
        self.held += 1;
        self.batches.push(Batch {
            job: job.to_string(),
            partition,
            outputs: outputs.to_vec(),
        });
        true
    }

    /// From here until the matching [`Deferred::end_flush`], a durable flush runs:
    /// `write_behind` leaves the waiting batches to it.
    pub(crate) fn begin_flush(&mut self) {
        self.flushing += 1;
    }

    pub(crate) fn end_flush(&mut self) {
        self.flushing = self.flushing.saturating_sub(1);
    }

    /// Whether a durable flush runs (see [`Deferred::begin_flush`]).
    pub(crate) fn flushing(&self) -> bool {
        self.flushing > 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Batches waiting now.
    pub(crate) fn len(&self) -> usize {
        self.batches.len()
    }

    /// Batches held since the store opened.
    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    /// The waiting batches, in arrival order, for the caller's transaction; it gives them back
    /// ([`Deferred::put_back`]) if that transaction does not commit.
    pub(crate) fn take(&mut self) -> Vec<Batch> {
        self.bytes = 0;
        std::mem::take(&mut self.batches)
    }

    /// `batches` from [`Deferred::take`] that were not committed, before any that came since.
    pub(crate) fn put_back(&mut self, mut batches: Vec<Batch>) {
        let bytes: usize = batches
            .iter()
            .map(|b| b.outputs.len().saturating_mul(Self::BYTES_PER_OUTPUT))
            .sum();
        batches.append(&mut self.batches);
        self.batches = batches;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Forgets every waiting batch: the file failed and was reopened at its last flush, and the
    /// engine replays what came after it.
    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streampulse_core::output::Output;

    fn outputs(n: usize) -> Vec<Output> {
        (0..n)
            .map(|i| Output::Metric {
                metric_id: format!("m{i}"),
                tags: Default::default(),
            })
            .collect()
    }

    #[test]
    fn batches_are_held_within_the_cap_in_arrival_order() {
        let mut d = Deferred::new(3 * Deferred::BYTES_PER_OUTPUT);
        assert!(d.hold("j", 0, &outputs(2)));
        assert!(!d.hold("j", 1, &outputs(2)), "past the cap");
        assert!(d.hold("j", 1, &outputs(1)));
        assert!(!d.hold("j", 2, &outputs(1)), "full");
        let taken = d.take();
        assert_eq!(
            taken.iter().map(|b| b.partition).collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(d.is_empty());
        assert!(d.hold("j", 2, &outputs(3)), "taken batches free their room");
        assert_eq!(d.held(), 3);
    }

    #[test]
    fn a_flush_runs_until_the_last_of_two_ends() {
        let mut d = Deferred::new(usize::MAX);
        d.begin_flush();
        d.begin_flush();
        d.end_flush();
        assert!(d.flushing(), "one flush still runs");
        d.end_flush();
        assert!(!d.flushing());
        d.end_flush();
        assert!(!d.flushing(), "an extra end does not underflow");
    }

    #[test]
    fn batches_put_back_go_before_those_that_came_since() {
        let mut d = Deferred::new(usize::MAX);
        d.hold("j", 0, &outputs(1));
        let taken = d.take();
        d.hold("j", 1, &outputs(1));
        d.put_back(taken);
        let order: Vec<u32> = d.take().iter().map(|b| b.partition).collect();
        assert_eq!(order, [0, 1]);
    }
}
