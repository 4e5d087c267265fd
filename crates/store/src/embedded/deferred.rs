//! Batches `apply` kept in memory instead of writing them: the partition that applied them
//! publishes its results at once, and the writes follow, after its results are out.
//!
//! Writing a batch takes redb's write lock, which one writer holds at a time: another
//! partition's batch, a write-out of held-back index rows (10-20 ms a transaction), or a durable
//! flush, which holds it while it writes out every page the commits since the last one left in
//! redb's write buffer and through the fsync (60-400 ms at each checkpoint under a steady
//! stream). A partition whose apply waited there held back the results it had just fired. So
//! `apply` keeps a copy of its outputs here and returns; after publishing, the partition has
//! `write_behind` called (by its job's write-behind thread in the engine), which writes every
//! batch waiting (every partition's) in one transaction, unless another caller is writing them
//! already or a durable flush runs (which writes those waiting when it begins, in a transaction
//! of their own, those that came since in its last one, and after its commit those that came
//! during it).
//!
//! Whoever writes batches (`write_behind`, an apply past the cap, a read's catch-up, a durable
//! flush) writes every waiting one, in arrival order and in one transaction,
//! before its own: so one partition's batches reach the tables in its order. If that
//! transaction fails because of one batch (a stored row that does not parse, say) rather than
//! the file, the batches are written a transaction each: the one that fails waits, with its
//! partition's later ones behind it, and the other partitions' go on. It holds up its partition
//! and the checkpoints (which must include it), not every partition's writes. A durable flush
//! writes those waiting when it begins and when its last transaction begins, whose commit makes
//! them durable: so a flush makes durable every batch applied before it was called.
//! Every read first writes what waits, or waits for the transaction writing it to commit
//! (`EmbeddedStore::catch_up`), so a result on the live feed is in the store by the time a query
//! looks for it.
//!
//! This module must never hold more than its byte cap, by its estimate, counting batches taken
//! until their transaction committed (a batch past it is written by its own apply, waiting for
//! the lock, as backpressure), and never drop a batch that no committed transaction wrote but
//! with the rest of what a file failure lost.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use streampulse_core::output::Output;

/// One partition's outputs of one batch, as `apply` got them.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) job: String,
    pub(crate) partition: u32,
    pub(crate) outputs: Vec<Output>,
    /// About the memory it takes ([`footprint`]), counted against the cap while it is held.
    bytes: usize,
}

impl Batch {
    pub(crate) fn new(job: String, partition: u32, outputs: Vec<Output>) -> Self {
        let bytes = outputs
            .iter()
            .map(footprint)
            .fold(BATCH + job.len(), usize::saturating_add);
        Self {
            job,
            partition,
            outputs,
            bytes,
        }
    }
}

/// What an allocation of its own costs beyond its bytes, about: the allocator's header and
/// rounding.
const ALLOCATION: usize = 16;

/// A batch's own share: its place in the waiting list, its job's name and its vector.
const BATCH: usize = std::mem::size_of::<Batch>() + 2 * ALLOCATION;

/// A map's node holds 11 entries and is allocated whole (a `String` pair each, plus its
/// length, keys' order and parent link): a map of one tag takes one.
const TAG_NODE: usize = 11 * 2 * std::mem::size_of::<String>() + 2 * ALLOCATION;

/// About the memory one output of a batch takes: its slot in the batch's vector and what it
/// owns on the heap. A result's metric id and window name are shared (`Arc<str>`) with the
/// engine, which holds them anyway, so a result owns nothing more: most batches are results,
/// and a fixed guess per output (it was 512 bytes) counted them at about twice their size, so a
/// flush's wait filled the cap at half the memory it allows.
fn footprint(output: &Output) -> usize {
    fn text(s: &str) -> usize {
        s.len() + ALLOCATION
    }
    fn tags(t: &BTreeMap<String, String>) -> usize {
        t.len().div_ceil(11) * TAG_NODE + t.iter().map(|(k, v)| text(k) + text(v)).sum::<usize>()
    }
    let owned = match output {
        Output::Result(_) => 0,
        Output::Retract {
            metric_id, window, ..
        } => text(metric_id) + text(window),
        Output::Late(e) => text(&e.window) + text(&e.metric_id),
        Output::Alert(a) => {
            text(&a.id) + text(&a.metric_id) + text(&a.detector) + text(&a.series) + tags(&a.tags)
        }
        Output::Metric { metric_id, tags: t } => text(metric_id) + tags(t),
        Output::Raw(e) => text(&e.metric_id) + tags(&e.tags),
    };
    std::mem::size_of::<Output>() + owned
}

/// The batches waiting, those a transaction is writing, and whether a durable flush runs.
#[derive(Debug)]
pub(crate) struct Deferred {
    /// Durable flushes running: each job's checkpoint coordinator flushes the one store.
    flushing: usize,
    batches: Vec<Batch>,
    /// About the memory the waiting batches and those being written take ([`footprint`]):
    /// they are in memory until their transaction committed.
    bytes: usize,
    cap: usize,
    /// Transactions writing batches they took: a read must wait for them, since the batches are
    /// neither waiting nor in the file.
    writing: usize,
    /// Counts [`Deferred::clear`]s: batches taken before one are not put back after it.
    epoch: u64,
    /// Batches held since the store opened.
    held: u64,
}

/// Batches a transaction took to write ([`Deferred::take`]); handed back with
/// [`Deferred::written`] once it committed, or [`Deferred::put_back`] if it did not.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) batches: Vec<Batch>,
    epoch: u64,
}

/// Locks the waiting batches. A poisoned lock is taken as it is: every change is whole before
/// its guard drops.
pub(crate) fn lock(deferred: &Mutex<Deferred>) -> MutexGuard<'_, Deferred> {
    deferred.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Deferred {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            flushing: 0,
            batches: Vec::new(),
            bytes: 0,
            cap,
            writing: 0,
            epoch: 0,
            held: 0,
        }
    }

    fn bytes_of(batches: &[Batch]) -> usize {
        batches.iter().map(|b| b.bytes).sum()
    }

    /// Keeps `batch` if it fits; returns whether it did.
    pub(crate) fn hold(&mut self, batch: Batch) -> bool {
        if self.bytes.saturating_add(batch.bytes) > self.cap {
            return false;
        }
        self.bytes += batch.bytes;
        self.held += 1;
        self.batches.push(batch);
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

    /// Whether a transaction is writing batches it took (see [`Deferred::take`]).
    pub(crate) fn writing(&self) -> bool {
        self.writing > 0
    }

    /// The waiting batches, in arrival order, for the caller's write transaction; it hands them
    /// back with [`Deferred::written`] once that transaction committed, or
    /// [`Deferred::put_back`] if it did not.
    pub(crate) fn take(&mut self) -> Taken {
        let batches = std::mem::take(&mut self.batches);
        if !batches.is_empty() {
            self.writing += 1;
        }
        Taken {
            batches,
            epoch: self.epoch,
        }
    }

    /// The first waiting batches, in arrival order, up to about `outputs` outputs (at least one
    /// batch), as [`Deferred::take`] takes them all: a transaction of a few thousand rows rather
    /// than of every batch that waited out a long flush.
    pub(crate) fn take_up_to(&mut self, outputs: usize) -> Taken {
        let mut n = 0;
        let mut sum = 0;
        for b in &self.batches {
            if n > 0 && sum + b.outputs.len() > outputs {
                break;
            }
            sum += b.outputs.len();
            n += 1;
        }
        if n > 0 {
            self.writing += 1;
        }
        Taken {
            batches: self.batches.drain(..n).collect(),
            epoch: self.epoch,
        }
    }

    /// The first waiting batch that `wanted` accepts, alone, as [`Deferred::take`] takes them
    /// all; none if it accepts none.
    pub(crate) fn take_first(&mut self, wanted: impl Fn(&Batch) -> bool) -> Taken {
        let batches = match self.batches.iter().position(wanted) {
            Some(i) => {
                self.writing += 1;
                vec![self.batches.remove(i)]
            }
            None => Vec::new(),
        };
        Taken {
            batches,
            epoch: self.epoch,
        }
    }

    /// No batch: for a transaction that writes only its caller's.
    pub(crate) fn take_none(&mut self) -> Taken {
        Taken {
            batches: Vec::new(),
            epoch: self.epoch,
        }
    }

    /// Batches from [`Deferred::take`] whose transaction committed: their memory is free.
    pub(crate) fn written(&mut self, taken: Taken) {
        if taken.batches.is_empty() {
            return;
        }
        self.writing = self.writing.saturating_sub(1);
        if taken.epoch == self.epoch {
            self.bytes = self.bytes.saturating_sub(Self::bytes_of(&taken.batches));
        }
    }

    /// Batches from [`Deferred::take`] that were not committed, before any waiting now (a
    /// batch from [`Deferred::take_first`] was its partition's first waiting one, so its
    /// partition's order holds); dropped if the file failed since they were taken (the engine
    /// replays them).
    pub(crate) fn put_back(&mut self, taken: Taken) {
        if taken.batches.is_empty() {
            return;
        }
        self.writing = self.writing.saturating_sub(1);
        if taken.epoch != self.epoch {
            return;
        }
        let mut batches = taken.batches;
        batches.append(&mut self.batches);
        self.batches = batches;
    }

    /// Forgets every waiting batch: the file failed and was reopened at its last flush, and the
    /// engine replays what came after it. Batches a transaction is writing are forgotten when it
    /// hands them back.
    pub(crate) fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
        self.epoch += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streampulse_core::output::Output;

    /// `n` outputs of the same size, [`one`] each.
    fn batch(partition: u32, n: usize) -> Batch {
        let outputs = (0..n)
            .map(|i| Output::Metric {
                metric_id: format!("m{}", i % 10),
                tags: Default::default(),
            })
            .collect();
        Batch::new("j".into(), partition, outputs)
    }

    /// One output's share: a batch of one, less the batch's own.
    fn one() -> usize {
        batch(0, 1).bytes - BATCH - 1
    }

    #[test]
    fn batches_are_held_within_the_cap_in_arrival_order() {
        let mut d = Deferred::new(3 * one() + 3 * (BATCH + 1));
        assert!(d.hold(batch(0, 2)));
        assert!(!d.hold(batch(1, 2)), "past the cap");
        assert!(d.hold(batch(1, 1)));
        assert!(!d.hold(batch(2, 1)), "full");
        let taken = d.take();
        assert_eq!(
            taken
                .batches
                .iter()
                .map(|b| b.partition)
                .collect::<Vec<_>>(),
            [0, 1]
        );
        assert!(d.is_empty() && d.writing());
        assert!(
            !d.hold(batch(2, 1)),
            "taken batches keep their room until written"
        );
        d.written(taken);
        assert!(!d.writing());
        assert!(d.hold(batch(2, 3)), "written batches free their room");
        assert_eq!(d.held(), 3);
    }

    #[test]
    fn a_bounded_take_takes_the_first_batches_up_to_its_outputs_and_at_least_one() {
        let mut d = Deferred::new(usize::MAX);
        for (partition, n) in [(0, 3), (1, 4), (2, 2), (3, 9)] {
            d.hold(batch(partition, n));
        }
        let partitions = |t: &Taken| t.batches.iter().map(|b| b.partition).collect::<Vec<_>>();
        let first = d.take_up_to(8);
        assert_eq!(
            partitions(&first),
            [0, 1],
            "3 + 4 outputs; 2 more would be 9"
        );
        let second = d.take_up_to(1);
        assert_eq!(partitions(&second), [2], "one batch even past the bound");
        d.written(first);
        d.written(second);
        assert_eq!(partitions(&d.take_up_to(100)), [3]);
        assert!(d.take_up_to(100).batches.is_empty());
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
        d.hold(batch(0, 1));
        let taken = d.take();
        d.hold(batch(1, 1));
        d.put_back(taken);
        assert!(!d.writing());
        let order: Vec<u32> = d.take().batches.iter().map(|b| b.partition).collect();
        assert_eq!(order, [0, 1]);
    }

    #[test]
    fn batches_taken_before_a_file_failure_are_not_put_back_after_it() {
        let mut d = Deferred::new(4 * one() + 2 * (BATCH + 1));
        d.hold(batch(0, 2));
        let taken = d.take();
        d.clear();
        d.hold(batch(1, 1));
        d.put_back(taken);
        assert!(!d.writing());
        let order: Vec<u32> = d.take().batches.iter().map(|b| b.partition).collect();
        assert_eq!(order, [1], "the engine replays what the failure lost");
        assert!(d.hold(batch(2, 3)), "their room is free");
    }

    #[test]
    fn a_batch_counts_its_slots_and_what_its_outputs_own() {
        let slot = std::mem::size_of::<Output>();
        assert_eq!(one(), slot + 2 + ALLOCATION, "a slot and its id");
        let mut tags = BTreeMap::new();
        tags.insert("host".to_string(), "a".repeat(1000));
        let tagged = Batch::new(
            "j".into(),
            0,
            vec![Output::Metric {
                metric_id: "m0".into(),
                tags,
            }],
        );
        assert!(
            tagged.bytes > BATCH + one() + TAG_NODE + 1000,
            "{} bytes",
            tagged.bytes
        );
        let result = Output::Result(crate::conformance::result("cpu", "w", 0, 0));
        assert_eq!(
            Batch::new("j".into(), 0, vec![result; 3]).bytes,
            BATCH + 1 + 3 * slot,
            "a result's strings are shared with the engine"
        );
    }
}
