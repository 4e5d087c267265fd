//! Writes to `results_by_metric` held back and applied in key order, many at once.
//!
//! `results_by_metric` is ordered by (job, metric, window, start), and results arrive in time
//! order across every metric: written one by one, each result lands in another leaf of the
//! B-tree, and redb copies a whole 4 KiB page per leaf a transaction touches (then checksums and
//! writes it). With ten thousand metrics that was one page per result, the largest cost of a
//! partition thread. Held back until a few of each metric's results are waiting, the same rows
//! are written leaf by leaf, several per page.
//!
//! The buffer is one byte arena plus an index, so holding a row costs no allocation of its own.
//! It is written out once it outgrows its cap, for about 20 ms at each `write_behind` (all of it
//! at once past twice the cap), and whole at every durable flush, before a query reads
//! `results_by_metric`, before retention deletes, and when the store is closed. A write-out is a
//! *run*: the rows held when it began, sorted once, written in transactions of a bounded number
//! of rows (one transaction for all of them dirtied a leaf per metric and window at once, tens of
//! MiB past the page cache's budget), the last few in the caller's own transaction. Rows that
//! arrive during a run wait after it, and the run's rows leave the arena together at its end.
//! `results_by_time` is written at once, so it is the table that counts and retention read.
//!
//! Consistency rests on one lock order: a caller holds redb's write transaction *before* it locks
//! the buffer, and keeps both until it commits. So a transaction sees every row an earlier commit
//! wrote to `results_by_time` either also in the buffer or already in `results_by_metric`.
//!
//! This module must never drop a row it has not written into a transaction that then committed,
//! nor keep one from a transaction that did not commit.

use std::sync::{Mutex, MutexGuard, PoisonError};

use redb::Table;

use crate::error::StoreError;
use crate::schema::Bytes;

/// One held-back write: an upsert of `value` at `key`, or a delete (`value` is `None`).
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where the key starts in the arena; the value, if any, follows it.
    at: usize,
    key_len: usize,
    value_len: Option<usize>,
}

/// The held-back writes, in arrival order (a later write to one key wins).
#[derive(Debug, Default)]
pub(crate) struct PendingIndex {
    arena: Vec<u8>,
    entries: Vec<Entry>,
    /// Arena bytes past which [`PendingIndex::over_cap`] says to write the buffer out.
    cap: usize,
    /// Rows a write-out commits per transaction (at least 1).
    rows_per_txn: usize,
    /// A write-out in bounded transactions under way, if any.
    run: Option<Run>,
}

/// The held writes at the run's start (the first `order.len()` entries) in key order, of which
/// `order[..next]` are committed. They leave the arena together once all are: entries arriving
/// meanwhile sit after them.
#[derive(Debug)]
struct Run {
    order: Vec<usize>,
    next: usize,
}

/// Locks the shared buffer. A poisoned lock is taken as it is: every change to the buffer is
/// undone or kept whole before its guard drops.
pub(crate) fn lock(pending: &Mutex<PendingIndex>) -> MutexGuard<'_, PendingIndex> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A length of the buffer to go back to: the writes of a transaction that did not commit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    arena: usize,
    entries: usize,
}

impl PendingIndex {
    pub(crate) fn new(cap: usize, rows_per_txn: usize) -> Self {
        Self {
            rows_per_txn: rows_per_txn.max(1),
            // Reserved once (grown by doubling, the arena would settle at twice what it needs);
            // only the pages written to are taken from the system.
            arena: Vec::with_capacity(Self::reservation(cap)),
            entries: Vec::with_capacity(cap / Self::TYPICAL_ROW),
            cap,
            run: None,
        }
    }

    /// What one apply may add past the cap without the arena growing: a batch's results.
    const SLACK: usize = 1 << 20;

    /// The arena's room: rows keep arriving while a write-out moves the rows past the cap out a
    /// transaction per batch, up to twice the cap (see `far_over_cap`), and one batch past that.
    fn reservation(cap: usize) -> usize {
        cap.saturating_mul(2).saturating_add(Self::SLACK)
    }
    /// A result row's key and value, about: the entries are reserved for a full arena of them.
    const TYPICAL_ROW: usize = 128;

    pub(crate) fn rows_per_txn(&self) -> usize {
        self.rows_per_txn
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Held writes not yet committed to the table.
    pub(crate) fn unwritten(&self) -> usize {
        self.entries.len() - self.run.as_ref().map_or(0, |r| r.next)
    }

    pub(crate) fn over_cap(&self) -> bool {
        self.arena.len() > self.cap
    }

    /// Rows arrive faster than a write-out in steps moves them out.
    pub(crate) fn far_over_cap(&self) -> bool {
        self.arena.len() > self.cap.saturating_mul(2)
    }

    /// A write-out in bounded transactions is under way.
    pub(crate) fn in_run(&self) -> bool {
        self.run.is_some()
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            arena: self.arena.len(),
            entries: self.entries.len(),
        }
    }

    /// Forgets every write since `mark`. A run begun since would lose entries it orders: runs
    /// begin only in their own transactions, never between an apply's mark and its commit.
    pub(crate) fn truncate(&mut self, mark: Mark) {
        debug_assert!(self
            .run
            .as_ref()
            .is_none_or(|r| r.order.len() <= mark.entries));
        self.arena.truncate(mark.arena);
        self.entries.truncate(mark.entries);
    }

    pub(crate) fn upsert(&mut self, key: &[u8], value: &[u8]) {
        self.push(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: &[u8]) {
        self.push(key, None);
    }

    fn push(&mut self, key: &[u8], value: Option<&[u8]>) {
        let at = self.arena.len();
        self.arena.extend_from_slice(key);
        if let Some(v) = value {
            self.arena.extend_from_slice(v);
        }
        self.entries.push(Entry {
            at,
            key_len: key.len(),
            value_len: value.map(<[u8]>::len),
        });
    }

    fn key(&self, e: &Entry) -> &[u8] {
        &self.arena[e.at..e.at + e.key_len]
    }

    /// Indices of `entries[from..]` in key order; a key's writes stay in arrival order (the sort
    /// is stable), so its last write is applied last.
    fn sorted(&self, from: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (from..self.entries.len()).collect();
        order.sort_by(|&a, &b| self.key(&self.entries[a]).cmp(self.key(&self.entries[b])));
        order
    }

    fn write_one(&self, table: &mut Table<Bytes, Bytes>, i: usize) -> Result<(), StoreError> {
        let e = &self.entries[i];
        let key = self.key(e);
        match e.value_len {
            Some(len) => {
                let start = e.at + e.key_len;
                table.insert(key, &self.arena[start..start + len])?;
            }
            None => {
                table.remove(key)?;
            }
        }
        Ok(())
    }

    /// Applies up to `max` held writes to `table`, the next ones of a run in key order (begun
    /// here over every held write if none is under way), and returns how many. The buffer keeps
    /// them until [`PendingIndex::committed`] is told the transaction committed.
    pub(crate) fn write_chunk(
        &mut self,
        table: &mut Table<Bytes, Bytes>,
        max: usize,
    ) -> Result<usize, StoreError> {
        if self.run.is_none() && !self.entries.is_empty() {
            self.run = Some(Run {
                order: self.sorted(0),
                next: 0,
            });
        }
        let Some(run) = &self.run else { return Ok(0) };
        let chunk = &run.order[run.next..(run.next + max).min(run.order.len())];
        for &i in chunk {
            self.write_one(table, i)?;
        }
        Ok(chunk.len())
    }

    /// The transaction of the last [`PendingIndex::write_chunk`], which wrote `n`, committed.
    /// A run all committed leaves the buffer.
    pub(crate) fn committed(&mut self, n: usize) {
        let Some(run) = &mut self.run else { return };
        run.next = (run.next + n).min(run.order.len());
        if run.next < run.order.len() {
            return;
        }
        let done = run.order.len();
        self.run = None;
        let bytes = self.entries.get(done).map_or(self.arena.len(), |e| e.at);
        self.arena.drain(..bytes);
        self.entries.drain(..done);
        for e in &mut self.entries {
            e.at -= bytes;
        }
    }

    /// Applies every held write not yet committed to `table`, in key order (writes to one key
    /// in arrival order), and returns how many. The buffer keeps them:
    /// [`PendingIndex::clear`] once the transaction committed.
    pub(crate) fn write_into(&self, table: &mut Table<Bytes, Bytes>) -> Result<usize, StoreError> {
        let mut written = 0;
        // A run's rest first: every entry after the run arrived after all of the run's.
        let from = match &self.run {
            Some(run) => {
                for &i in &run.order[run.next..] {
                    self.write_one(table, i)?;
                }
                written += run.order.len() - run.next;
                run.order.len()
            }
            None => 0,
        };
        let rest = self.sorted(from);
        for &i in &rest {
            self.write_one(table, i)?;
        }
        Ok(written + rest.len())
    }

    pub(crate) fn clear(&mut self) {
        self.arena.clear();
        self.entries.clear();
        self.run = None;
        // A burst past the reservation (one huge batch) does not keep its memory.
        let reserved = Self::reservation(self.cap);
        if self.arena.capacity() > reserved {
            self.arena.shrink_to(reserved);
            self.entries.shrink_to(self.cap / Self::TYPICAL_ROW);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;

    const T: TableDefinition<Bytes, Bytes> = TableDefinition::new("t");

    /// The table after `initial`, then `ops` written through the buffer in one transaction.
    fn through_buffer(
        initial: &BTreeMap<Vec<u8>, Vec<u8>>,
        ops: &[(Vec<u8>, Option<Vec<u8>>)],
        undone: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("t.redb")).expect("create");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(T).expect("table");
            for (k, v) in initial {
                t.insert(k.as_slice(), v.as_slice()).expect("insert");
            }
        }
        txn.commit().expect("commit");
        let mut pending = PendingIndex::new(0, 1);
        for (k, v) in ops {
            match v {
                Some(v) => pending.upsert(k, v),
                None => pending.delete(k),
            }
        }
        let mark = pending.mark();
        for (k, v) in undone {
            match v {
                Some(v) => pending.upsert(k, v),
                None => pending.delete(k),
            }
        }
        pending.truncate(mark);
        assert_eq!(pending.len(), ops.len());
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(T).expect("table");
            assert_eq!(pending.write_into(&mut t).expect("write"), ops.len());
        }
        txn.commit().expect("commit");
        pending.clear();
        assert!(pending.is_empty());
        table_of(&db)
    }

    fn op() -> impl Strategy<Value = (Vec<u8>, Option<Vec<u8>>)> {
        (
            prop::collection::vec(0u8..4, 0..3),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..5)),
        )
    }

    proptest! {
        /// The buffer's writes, sorted, leave the table as the same writes applied one by one in
        /// arrival order; writes after a mark that is gone back to leave no trace.
        #[test]
        fn writes_in_key_order_equal_writes_in_arrival_order(
            initial in prop::collection::btree_map(prop::collection::vec(0u8..4, 0..3), prop::collection::vec(any::<u8>(), 0..5), 0..6),
            ops in prop::collection::vec(op(), 0..40),
            undone in prop::collection::vec(op(), 0..5),
        ) {
            let mut model = initial.clone();
            for (k, v) in &ops {
                match v {
                    Some(v) => { model.insert(k.clone(), v.clone()); }
                    None => { model.remove(k); }
                }
            }
            prop_assert_eq!(through_buffer(&initial, &ops, &undone), model);
        }
    }

    /// One step of a write-out in bounded transactions, with writes arriving between them.
    #[derive(Debug, Clone)]
    enum Step {
        Push(Vec<u8>, Option<Vec<u8>>),
        /// Writes a chunk of this many rows; commits it, or aborts the transaction.
        Chunk(usize, bool),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => op().prop_map(|(k, v)| Step::Push(k, v)),
            1 => (1usize..4, any::<bool>()).prop_map(|(n, commit)| Step::Chunk(n, commit)),
        ]
    }

    fn table_of(db: &Database) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let txn = db.begin_read().expect("read");
        let t = txn.open_table(T).expect("table");
        t.iter()
            .expect("iter")
            .map(|e| {
                let (k, v) = e.expect("entry");
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect()
    }

    proptest! {
        /// Chunks of a run committed (or aborted) while later writes arrive, then the rest in one
        /// transaction, leave the table as every write applied in arrival order; a finished run
        /// leaves the buffer with only the writes that arrived during it.
        #[test]
        fn a_write_out_in_chunks_equals_writes_in_arrival_order(steps in prop::collection::vec(step(), 0..60)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = Database::create(dir.path().join("t.redb")).expect("create");
            let txn = db.begin_write().expect("write");
            txn.open_table(T).expect("table");
            txn.commit().expect("commit");
            let mut pending = PendingIndex::new(0, 1);
            let mut model = BTreeMap::new();
            for s in &steps {
                match s {
                    Step::Push(k, v) => {
                        match v {
                            Some(v) => { pending.upsert(k, v); model.insert(k.clone(), v.clone()); }
                            None => { pending.delete(k); model.remove(k); }
                        }
                    }
                    Step::Chunk(n, commit) => {
                        let before = pending.unwritten();
                        let txn = db.begin_write().expect("write");
                        let wrote = pending
                            .write_chunk(&mut txn.open_table(T).expect("table"), *n)
                            .expect("chunk");
                        prop_assert!(wrote <= *n && wrote <= before);
                        if *commit {
                            txn.commit().expect("commit");
                            pending.committed(wrote);
                            prop_assert_eq!(pending.unwritten(), before - wrote);
                        } else {
                            txn.abort().expect("abort");
                        }
                    }
                }
            }
            let txn = db.begin_write().expect("write");
            let rest = pending.unwritten();
            prop_assert_eq!(pending.write_into(&mut txn.open_table(T).expect("table")).expect("rest"), rest);
            txn.commit().expect("commit");
            pending.clear();
            prop_assert_eq!(table_of(&db), model);
        }
    }

    #[test]
    fn a_finished_run_leaves_only_the_writes_that_arrived_during_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::create(dir.path().join("t.redb")).expect("create");
        let mut p = PendingIndex::new(0, 1);
        // Writes a chunk of at most `max` rows in a transaction of its own and commits it.
        let commit_chunk = |p: &mut PendingIndex, max: usize| {
            let txn = db.begin_write().expect("write");
            let n = p
                .write_chunk(&mut txn.open_table(T).expect("t"), max)
                .expect("chunk");
            txn.commit().expect("commit");
            p.committed(n);
            n
        };
        p.upsert(b"b", b"1");
        p.upsert(b"a", b"2");
        assert_eq!(commit_chunk(&mut p, 1), 1);
        // Arrives during the run: not part of it.
        p.upsert(b"c", b"3");
        assert_eq!((p.len(), p.unwritten()), (3, 2));
        assert_eq!(commit_chunk(&mut p, 5), 1);
        assert_eq!((p.len(), p.unwritten()), (1, 1));
        assert_eq!(p.arena, b"c3");
        assert_eq!(p.entries[0].at, 0);
    }

    #[test]
    fn the_cap_is_on_the_bytes_held() {
        let mut p = PendingIndex::new(10, 1);
        p.upsert(b"key", b"value");
        assert!(!p.over_cap());
        p.delete(b"another");
        assert!(p.over_cap());
        p.clear();
        assert!(!p.over_cap() && p.is_empty());
    }
}
