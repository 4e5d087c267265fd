//! The embedded result store: one redb file, `<dir>/store.redb`, for the single-process deployment.
//!
//! Its tables and their key layouts are in [`crate::schema`]; retention ([`crate::retention`])
//! deletes from them.
//!
//! This module must never make a write durable on `apply` (that is `flush`'s job, once per
//! checkpoint) and never hold a write transaction across calls.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
};
use streampulse_core::detect::Alert;
use streampulse_core::output::{LateEvent, Output, RawEvent, WindowResult};
use streampulse_core::time::Millis;
use streampulse_dbfile::DbFile;

use crate::codec::{
    decode_alert, decode_late, decode_raw, decode_result, decode_tags, encode_alert, encode_late,
    encode_raw, encode_result, encode_tags,
};
use crate::error::StoreError;
use crate::keys::{self, KeyBuf, KeyReader};
use crate::retention::{self, Limits};
use crate::schema::{
    Bytes, ALERTS, ALERTS_BY_METRIC, ALERTS_BY_METRIC_NAME, ALERTS_BY_TIME, ALERTS_BY_TIME_NAME,
    ALERTS_NAME, ALERT_SPANS, ALERT_SPANS_NAME, LATE_BY_TS, LATE_BY_TS_NAME, LATE_EVENTS,
    LATE_EVENTS_NAME, METRIC_TAGS, METRIC_TAGS_NAME, RAW_EVENTS, RAW_EVENTS_NAME,
    RESULTS_BY_METRIC, RESULTS_BY_METRIC_NAME, RESULTS_BY_TIME, RESULTS_BY_TIME_NAME,
};
use crate::{
    tag_walk, AlertQuery, BehindOutcome, CatalogPage, CatalogQuery, CatalogWalk, ExpiryReport,
    LateQuery, MetricMatch, RawQuery, RawRow, ResultKey, ResultPage, ResultQuery, ResultStore,
    RetentionPolicy, ScanBudget, StoreCounts,
};
use deferred::{Batch, Deferred, Taken};
use pending::PendingIndex;

type ReadTable = ReadOnlyTable<Bytes, Bytes>;

// Names apart from the definitions so errors can carry them as `&'static str`.

/// The result store in a local redb file.
pub struct EmbeddedStore {
    /// Reopened after an I/O failure (a full disk): see [`EmbeddedStore::checked`].
    db: DbFile,
    path: PathBuf,
    /// `results_by_metric` writes not yet in the file (see [`pending`]). Changed only while
    /// holding a write transaction, but for the reset after an I/O failure.
    pending: Mutex<PendingIndex>,
    /// Batches applied since the last flush, for its debug log: how many the durable commit
    /// makes durable, next to how long it took.
    unflushed_batches: AtomicU64,
    /// Writers of batches (an apply past the waiting batches' cap, `write_behind`, a read's
    /// catch-up) waiting for or holding the write transaction: a write-out of held-back rows
    /// lets them go first (see [`write_out_chunks`]).
    applies: AtomicUsize,
    /// Batches applied and not yet written, written by `write_behind`, a read, an apply past
    /// their cap or the durable flush (see [`deferred`]).
    deferred: Mutex<Deferred>,
    /// Held by the one caller doing `write_behind`'s work (a job's write-behind thread, or a
    /// partition); the others go on.
    writing_behind: Mutex<()>,
    /// How long one `write_behind` writes held-back rows out past the buffer's cap (at least
    /// one transaction): [`WRITE_BEHIND_BUDGET`].
    write_behind_budget: Duration,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.path)
            .finish()
    }
}

impl EmbeddedStore {
    /// The database file's name inside the store directory.
    pub const FILE_NAME: &'static str = "store.redb";

    /// Opens (or creates) the store in `dir`, creating the directory if needed.
    ///
    /// After a crash, redb rolls back to the last durable commit, i.e. the last [`flush`]; the
    /// engine replays from the matching checkpoint and rewrites the rest.
    ///
    /// [`flush`]: ResultStore::flush
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, Self::DEFAULT_CACHE_BYTES)
    }

    /// Default page cache of [`EmbeddedStore::open`].
    pub const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

    /// [`EmbeddedStore::open`] with `cache_bytes` of memory: redb's read and write cache and the
    /// held-back index rows of [`pending`], the store's share of the process's memory. Pages
    /// beyond it are read back from the OS page cache or the disk.
    pub fn open_with_cache(dir: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let pending = cache_bytes / Self::PENDING_SHARE;
        Self::open_with_caps(dir, cache_bytes - pending, pending, WRITE_OUT_ROWS)
    }

    /// The held-back `results_by_metric` writes take this share of the store's memory, and redb's
    /// page cache the rest: an eighth keeps several of each metric's results per page at ten
    /// thousand metrics.
    const PENDING_SHARE: usize = 8;

    /// [`EmbeddedStore::open_with_cache`] with `pending_bytes` of held-back index writes, written
    /// out `rows_per_txn` at a time.
    pub(crate) fn open_with_caps(
        dir: &Path,
        cache_bytes: usize,
        pending_bytes: usize,
        rows_per_txn: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(Self::FILE_NAME);
        let db = DbFile::open(&path, cache_bytes).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        // Create every table up front, so read transactions never meet a missing table.
        let txn = db.get()?.begin_write()?;
        for table in [
            RESULTS_BY_METRIC,
            RESULTS_BY_TIME,
            LATE_EVENTS,
            LATE_BY_TS,
            ALERTS,
            ALERTS_BY_TIME,
            ALERTS_BY_METRIC,
            ALERT_SPANS,
            METRIC_TAGS,
            RAW_EVENTS,
        ] {
            txn.open_table(table)?;
        }
        txn.commit()?;
        tracing::info!(path = %path.display(), "result store opened");
        Ok(Self {
            db,
            path,
            pending: Mutex::new(PendingIndex::new(pending_bytes, rows_per_txn)),
            unflushed_batches: AtomicU64::new(0),
            applies: AtomicUsize::new(0),
            deferred: Mutex::new(Deferred::new(DEFERRED_BYTES)),
            writing_behind: Mutex::new(()),
            write_behind_budget: WRITE_BEHIND_BUDGET,
        })
    }

    /// With `budget` for each `write_behind`'s write-out past the cap: zero writes one
    /// transaction a call.
    #[cfg(test)]
    pub(crate) fn with_write_behind_budget(mut self, budget: Duration) -> Self {
        self.write_behind_budget = budget;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, reopened first if an I/O failure closed it.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        Ok(self.db.get()?)
    }

    /// `result` of an operation, after closing the file if it failed with an I/O error: the next
    /// operation reopens it, and [`ResultStore::generation`] tells the engine that writes not yet
    /// flushed may be gone.
    fn checked<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Db(e)) = &result {
            if streampulse_dbfile::is_io_failure(e) {
                self.db.fail(&e.to_string());
                // The reopened file is back at the last flush, and the engine replays from the
                // matching checkpoint: held-back rows of the lost commits are written again.
                self.pending().clear();
                deferred::lock(&self.deferred).clear();
            }
        }
        result
    }

    fn pending(&self) -> MutexGuard<'_, PendingIndex> {
        pending::lock(&self.pending)
    }

    /// Writes the held-back `results_by_metric` rows into the file (not durably), so that a read
    /// transaction begun after this returns sees every row applied before it was called.
    ///
    /// On a full disk the write fails, the file is reopened at its last flush and the held-back
    /// rows are dropped with the rest of what came after it (the engine replays it all): the
    /// query then reads that state, consistent in both indexes, as reads did before rows were
    /// held back.
    fn settle(&self) -> Result<(), StoreError> {
        let caught_up = self.checked(self.catch_up());
        // The held rows are of batches written already: they go out even if a waiting batch
        // cannot be written.
        let written = self.checked(self.write_out());
        Self::readable(caught_up.and(written))
    }

    /// Writes the batches applied and not yet written, if any wait, so that a read begun after
    /// this returns sees them (see [`deferred`]); on a full disk, as [`Self::settle`].
    fn caught_up(&self) -> Result<(), StoreError> {
        Self::readable(self.checked(self.catch_up()))
    }

    /// What a read does when the writes it needed first failed: it reads the file as it is. On
    /// an I/O failure the file was reopened at its last flush, and the read reads that; a batch
    /// that cannot be written (kept to be retried) must not take every query down with it.
    fn readable(result: Result<(), StoreError>) -> Result<(), StoreError> {
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot write what waited before a query; reading the store as it is");
        }
        Ok(())
    }

    fn write_out(&self) -> Result<(), StoreError> {
        if self.pending().is_empty() {
            return Ok(());
        }
        write_out_all(
            &*self.db()?,
            &self.pending,
            &self.applies,
            &self.deferred,
            Durability::None,
        )
    }

    /// Writes the batches applied and not yet written, if any (see [`deferred`]), or waits for
    /// the transaction writing them to end: a read begun after this sees every batch applied
    /// before it was called.
    fn catch_up(&self) -> Result<(), StoreError> {
        let (waiting, writing) = {
            let d = deferred::lock(&self.deferred);
            (!d.is_empty(), d.writing())
        };
        if waiting {
            return self.write_batches(None);
        }
        if writing {
            // Taken by a transaction not yet committed: neither waiting nor in the file. redb
            // runs one write transaction at a time, so this one begins once that one ended.
            self.db()?.begin_write()?.abort()?;
        }
        Ok(())
    }

    /// [`ResultStore::expire`] in batches of `limits`.
    pub(crate) fn expire_with(
        &self,
        policy: &RetentionPolicy,
        now: Millis,
        limits: Limits,
    ) -> Result<ExpiryReport, StoreError> {
        // Batches applied before the sweep are in the tables before it looks (as for a read, a
        // batch that cannot be written does not stop the sweep of everything else).
        self.caught_up()?;
        retention::expire(&*self.db()?, &self.pending, policy, now, limits)
    }

    /// Metric queries: one range scan of `results_by_metric` per window of the metric.
    fn query_by_metric(
        &self,
        q: &ResultQuery,
        metric_id: &str,
        budget: &mut ScanBudget,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let mut out = Vec::new();
        if q.start >= q.end || q.limit == 0 {
            return Ok(out);
        }
        self.settle()?;
        let table = self.db()?.begin_read()?.open_table(RESULTS_BY_METRIC)?;
        scan::metric(&table, q, metric_id, &mut out, budget)?;
        Ok(out)
    }

    /// Queries for the metrics under a literal prefix: the metric scan of each matching metric.
    fn query_by_prefix(
        &self,
        q: &ResultQuery,
        filter: &MetricMatch,
        budget: &mut ScanBudget,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let mut out = Vec::new();
        if q.start >= q.end || q.limit == 0 {
            return Ok(out);
        }
        self.settle()?;
        let table = self.db()?.begin_read()?.open_table(RESULTS_BY_METRIC)?;
        scan::metrics_under(&table, q, filter, &mut out, budget)?;
        Ok(out)
    }

    /// The metrics of `job` whose catalog tags include every pair of `tags`.
    fn metrics_tagged(
        &self,
        job: &str,
        tags: &[(String, String)],
    ) -> Result<HashSet<String>, StoreError> {
        let table = self.db()?.begin_read()?.open_table(METRIC_TAGS)?;
        let prefix = KeyBuf::new().str(job).into_bytes();
        let mut out = HashSet::new();
        let Some(end) = keys::prefix_end(&prefix) else {
            return Ok(out);
        };
        for entry in table.range(prefix.as_slice()..end.as_slice())? {
            let (key, value) = entry?;
            let have = decode_tags(METRIC_TAGS_NAME, value.value())?;
            if tags.iter().all(|(k, v)| have.get(k) == Some(v)) {
                let mut r = keys::KeyReader::new(key.value());
                let metric = r
                    .str()
                    .and_then(|_job| r.str())
                    .map_err(|e| StoreError::corrupt_key(METRIC_TAGS_NAME, e))?;
                out.insert(metric);
            }
        }
        Ok(out)
    }

    /// A result query with a tag filter: the same query without it, restricted to the metrics
    /// the catalog says carry the tags. Walks pages of the unfiltered query until `limit` rows
    /// match, so the order and the cursor are those of the unfiltered query.
    fn query_tagged(&self, q: &ResultQuery) -> Result<ResultPage, StoreError> {
        let wanted = self.metrics_tagged(&q.job, &q.tags)?;
        tag_walk(q, &wanted, |page| self.query_page(page))
    }

    /// Time-range queries: one range scan of `results_by_time`, filtering metric and window.
    fn query_by_time(
        &self,
        q: &ResultQuery,
        budget: &mut ScanBudget,
    ) -> Result<Vec<WindowResult>, StoreError> {
        let mut out = Vec::new();
        if q.start >= q.end || q.limit == 0 {
            return Ok(out);
        }
        let table = self.db()?.begin_read()?.open_table(RESULTS_BY_TIME)?;
        let mut lo = KeyBuf::new().str(&q.job).i64(q.start).into_bytes();
        let hi = KeyBuf::new().str(&q.job).i64(q.end).into_bytes();
        if let Some(a) = &q.after {
            lo = lo.max(scan::just_after(keys::result_by_time(
                &q.job,
                a.window_start,
                &a.metric_id,
                &a.window,
            )));
        }
        if lo >= hi {
            return Ok(out);
        }
        for entry in table.range(lo.as_slice()..hi.as_slice())? {
            let (_, value) = entry?;
            let r = decode_result(RESULTS_BY_TIME_NAME, value.value())?;
            let wanted = q.metric_id.as_ref().is_none_or(|m| **m == *r.metric_id)
                && q.metric_match
                    .as_ref()
                    .is_none_or(|f| f.matches(&r.metric_id))
                && q.window.as_ref().is_none_or(|w| **w == *r.window);
            if wanted && out.len() + 1 >= q.limit {
                out.push(r);
                break;
            }
            if !budget.examined(|| ResultKey::of(&r)) {
                if wanted {
                    out.push(r);
                }
                break;
            }
            if wanted {
                out.push(r);
            }
        }
        Ok(out)
    }
}

/// Rows of `results_by_metric` per transaction when held-back rows are written out (the default
/// of [`PendingIndex`]'s `rows_per_txn`). A row dirties at most one leaf, so a transaction holds
/// at most this many new pages (8 MiB): one transaction for the whole buffer dirtied a leaf per
/// metric and window, tens of MiB past the page cache's budget until its commit.
pub(crate) const WRITE_OUT_ROWS: usize = 2048;

/// Memory for batches applied and not yet written (see [`deferred`]): about 150,000 window
/// results (216 bytes each), three seconds at 50,000 a second, enough to wait out a durable
/// flush (0.3-1 s at that rate).
const DEFERRED_BYTES: usize = 32 << 20;

/// Transactions of waiting batches one `write_behind` writes at most: others keep applying, and
/// the held-back rows must get their turn.
const WRITE_BEHIND_ROUNDS: usize = 4;

/// How long one `write_behind` writes held-back rows out while the buffer is over its cap. One
/// transaction a call kept up with 10,000 rows a second but not 50,000: the buffer reached twice
/// its cap, and the partition that found it there wrote tens of thousands of rows at once
/// (0.5-0.7 s) before reading its next events.
const WRITE_BEHIND_BUDGET: Duration = Duration::from_millis(20);

/// Outputs of waiting batches a transaction of `write_behind` or of a flush's own writes takes
/// (at least one batch): about a MiB of held-back index rows, the room the buffer keeps past
/// its cap. Batches that waited out a long flush (up to the 32 MiB cap, 150,000 results) went
/// in one transaction, its index rows past that room.
const TAKE_OUTPUTS: usize = 8_192;

/// [`Deferred::take_up_to`] [`TAKE_OUTPUTS`].
fn take_some(d: &mut Deferred) -> Taken {
    d.take_up_to(TAKE_OUTPUTS)
}

/// Held-back rows a write-out of all of them leaves to its last transaction.
const LAST_ROWS: usize = 64;

/// How far [`write_out_chunks`] goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Until the buffer is back under its cap.
    UnderCap,
    /// Until the buffer is back under its cap or, after the first transaction, this long has
    /// passed (checked before each).
    UnderCapWithin(Duration),
    /// Until at most one transaction's rows are left, for the caller to write in its own.
    LastChunk,
    /// Until at most this many rows are left.
    AtMost(usize),
    /// One transaction's rows, or none when nothing is held.
    OneChunk,
}

/// How long a write-out waits for applies to go first before each of its transactions: a
/// batch's apply takes a few milliseconds, and under a stream that never stops the write-out
/// must still move.
const YIELD_AT_MOST: Duration = Duration::from_millis(10);

/// Lets the applies counted in `applies` take the write transaction first, for at most
/// [`YIELD_AT_MOST`]. redb's write lock is not fair: a thread that commits and begins again at
/// once keeps it, and partitions waiting behind a write-out of thousands of rows stalled for
/// its whole length, holding back the results they had fired.
fn yield_to_applies(applies: &AtomicUsize) {
    let started = Instant::now();
    while applies.load(Relaxed) > 0 && started.elapsed() < YIELD_AT_MOST {
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Writes held-back `results_by_metric` rows out in key order, in non-durable transactions of at
/// most the buffer's `rows_per_txn` rows, each taken in the lock order of [`pending`] (the write
/// transaction, then the buffer). With `applies`, each transaction waits for the applies counted
/// there first ([`yield_to_applies`]).
pub(crate) fn write_out_chunks(
    db: &Database,
    pending: &Mutex<PendingIndex>,
    applies: Option<&AtomicUsize>,
    until: Until,
) -> Result<(), StoreError> {
    // Bounded, so that rows other partitions keep adding cannot keep the caller here.
    let (rows, unwritten) = {
        let p = pending::lock(pending);
        (p.rows_per_txn(), p.unwritten())
    };
    let mut rounds = match until {
        Until::OneChunk => 1,
        Until::UnderCap | Until::UnderCapWithin(_) | Until::LastChunk | Until::AtMost(_) => {
            unwritten / rows + 2
        }
    };
    let started = Instant::now();
    let mut wrote = false;
    while rounds > 0 {
        rounds -= 1;
        if let Some(applies) = applies {
            yield_to_applies(applies);
        }
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::None)?;
        let mut p = pending::lock(pending);
        let reached = match until {
            Until::UnderCap => !p.over_cap(),
            Until::UnderCapWithin(budget) => {
                !p.over_cap() || (wrote && started.elapsed() >= budget)
            }
            Until::LastChunk => p.unwritten() <= rows,
            Until::OneChunk => p.unwritten() == 0,
            Until::AtMost(n) => p.unwritten() <= n,
        };
        if reached {
            drop(p);
            txn.abort()?;
            return Ok(());
        }
        let n = p.write_chunk(&mut txn.open_table(RESULTS_BY_METRIC)?, rows)?;
        txn.commit()?;
        p.committed(n);
        wrote = true;
    }
    Ok(())
}

/// Writes every held-back row out, most in [`write_out_chunks`]'s transactions and the rest in a
/// last one committed with `durability` (which is committed even with nothing left: a durable
/// flush persists the non-durable commits before it), and empties the buffer.
fn write_out_all(
    db: &Database,
    pending: &Mutex<PendingIndex>,
    applies: &AtomicUsize,
    deferred: &Mutex<Deferred>,
    durability: Durability,
) -> Result<(), StoreError> {
    let started = Instant::now();
    let held = pending::lock(pending).unwritten();
    // Nearly all of them: the last transaction holds the write lock through its commit, a
    // durable one through the fsync too, so the fewer rows it writes the shorter reads (and
    // applies past the waiting batches' cap) wait.
    write_out_chunks(db, pending, Some(applies), Until::AtMost(LAST_ROWS))?;
    let chunks = started.elapsed();
    yield_to_applies(applies);
    let mut txn = db.begin_write()?;
    txn.set_durability(durability)?;
    let mut guard = pending::lock(pending);
    // Batches still waiting were applied before a durable flush was called: its commit makes
    // them durable too. A read's write-out leaves them to the catch-up before it, so that a
    // batch that cannot be written does not keep the rows of those that were out of the index.
    let waiting = match durability {
        Durability::Immediate => deferred::lock(deferred).take(),
        _ => deferred::lock(deferred).take_none(),
    };
    let mark = guard.mark();
    let result = (|| {
        write_waiting(&txn, &mut guard, &waiting.batches)?;
        let last_rows = guard.unwritten();
        write_pending(&txn, &guard)?;
        Ok::<_, StoreError>(last_rows)
    })();
    let committing = Instant::now();
    let last_rows = match result.and_then(|rows| Ok(txn.commit().map(|()| rows)?)) {
        Ok(rows) => rows,
        Err(e) => {
            guard.truncate(mark);
            deferred::lock(deferred).put_back(waiting);
            return Err(e);
        }
    };
    deferred::lock(deferred).written(waiting);
    guard.clear();
    tracing::debug!(held, ?chunks, last_rows, last = ?started.elapsed() - chunks, commit = ?committing.elapsed(), "held-back rows written out");
    Ok(())
}

/// Whether `e`, failing a transaction of batches, came from one of them (a stored row that does
/// not parse, a value that cannot be encoded) rather than from the file, which every batch meets.
fn stops_only_its_batch(e: &StoreError) -> bool {
    match e {
        StoreError::Db(e) => !streampulse_dbfile::is_io_failure(e),
        StoreError::Encode { .. } | StoreError::Corrupt { .. } => true,
        _ => false,
    }
}

/// Whether a batch of `partition` of `job` failed in [`EmbeddedStore::write_batches_apart`].
fn is_held_up(held_up: &[(String, u32)], job: &str, partition: u32) -> bool {
    held_up.iter().any(|(j, p)| j == job && *p == partition)
}

/// Writes the batches applied and not yet written (see [`deferred`]) into `txn`, in arrival
/// order.
fn write_waiting(
    txn: &redb::WriteTransaction,
    pending: &mut PendingIndex,
    waiting: &[Batch],
) -> Result<(), StoreError> {
    for b in waiting {
        EmbeddedStore::write_batch(txn, pending, &b.job, b.partition, &b.outputs)?;
    }
    Ok(())
}

/// Writes the held-back `results_by_metric` rows into `txn`; the caller clears them once it
/// committed.
pub(crate) fn write_pending(
    txn: &redb::WriteTransaction,
    pending: &PendingIndex,
) -> Result<(), StoreError> {
    if !pending.is_empty() {
        pending.write_into(&mut txn.open_table(RESULTS_BY_METRIC)?)?;
    }
    Ok(())
}

/// Writes the alert transitions of one batch, in their order, into an open write transaction.
fn apply_alerts(
    txn: &redb::WriteTransaction,
    job: &str,
    alerts: &[&Alert],
) -> Result<(), StoreError> {
    let mut by_id = txn.open_table(ALERTS)?;
    let mut by_time = txn.open_table(ALERTS_BY_TIME)?;
    let mut by_metric = txn.open_table(ALERTS_BY_METRIC)?;
    let mut spans = txn.open_table(ALERT_SPANS)?;
    let mut longest: Option<i64> = None;
    for a in alerts {
        let k = keys::alert(job, &a.id);
        let old = by_id
            .get(k.as_slice())?
            .map(|v| decode_alert(ALERTS_NAME, v.value()))
            .transpose()?;
        if let Some(old) = &old {
            if old.sequence > a.sequence {
                // A replayed, older transition: the stored one supersedes it.
                continue;
            }
            // The id hashes first_ts and the metric, so these never change for one id; should they
            // ever, the indexes must not keep a second entry for the one alert.
            if old.first_ts != a.first_ts || old.metric_id != a.metric_id {
                by_time.remove(keys::alert_by_time(job, old.first_ts, &old.id).as_slice())?;
                let k = keys::alert_by_metric(job, &old.metric_id, old.first_ts, &old.id);
                by_metric.remove(k.as_slice())?;
            }
        }
        let value = encode_alert(a)?;
        by_id.insert(k.as_slice(), value.as_slice())?;
        let k = keys::alert_by_time(job, a.first_ts, &a.id);
        by_time.insert(k.as_slice(), value.as_slice())?;
        let k = keys::alert_by_metric(job, &a.metric_id, a.first_ts, &a.id);
        by_metric.insert(k.as_slice(), value.as_slice())?;
        let span = a.last_ts.saturating_sub(a.first_ts).max(0);
        longest = Some(longest.map_or(span, |l| l.max(span)));
    }
    if let Some(span) = longest {
        let k = keys::alert_span(job);
        let stored = match spans.get(k.as_slice())? {
            Some(v) => Some(decode_span(v.value())?),
            None => None,
        };
        if stored.is_none_or(|s| span > s) {
            spans.insert(k.as_slice(), span.to_be_bytes().as_slice())?;
        }
    }
    Ok(())
}

fn decode_span(bytes: &[u8]) -> Result<i64, StoreError> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            table: ALERT_SPANS_NAME,
            reason: format!("span value has {} bytes, not 8", bytes.len()),
        })
}

/// The operations, before [`EmbeddedStore::checked`].
impl EmbeddedStore {
    /// Keeps the batch for `write_behind` (see [`deferred`]); past the waiting batches' cap,
    /// writes them and it now.
    fn apply_now(&self, job: &str, partition: u32, outputs: &[Output]) -> Result<(), StoreError> {
        if outputs.is_empty() {
            return Ok(());
        }
        self.unflushed_batches.fetch_add(1, Relaxed);
        // Copied before the lock, which every partition takes.
        let batch = Batch::new(job.to_string(), partition, outputs.to_vec());
        if deferred::lock(&self.deferred).hold(batch) {
            return Ok(());
        }
        self.write_batches(Some((job, partition, outputs)))?;
        // Backpressure: while another caller writes behind, this is the only way in for rows.
        if self.pending().far_over_cap() {
            write_out_chunks(&*self.db()?, &self.pending, None, Until::UnderCap)?;
        }
        Ok(())
    }

    /// Writes the batches waiting in [`deferred`], then `own` (a batch of one partition of one
    /// job), in one non-durable transaction: all or nothing, and the waiting ones are kept for
    /// the next one if it fails. If it failed because of one batch rather than the file, they
    /// are written apart ([`Self::write_batches_apart`]), so that the batch holds up only its
    /// own partition.
    fn write_batches(&self, own: Option<(&str, u32, &[Output])>) -> Result<(), StoreError> {
        self.write_batches_taking(Deferred::take, own)
    }

    /// The waiting batches, [`TAKE_OUTPUTS`] a transaction, in at most `steps` transactions;
    /// stops once none wait.
    fn write_waiting_in_steps(&self, steps: usize) -> Result<(), StoreError> {
        for _ in 0..steps {
            if deferred::lock(&self.deferred).is_empty() {
                break;
            }
            self.write_batches_taking(take_some, None)?;
        }
        Ok(())
    }

    /// [`Self::write_batches`] of the waiting batches `take` takes.
    fn write_batches_taking(
        &self,
        take: fn(&mut Deferred) -> Taken,
        own: Option<(&str, u32, &[Output])>,
    ) -> Result<(), StoreError> {
        match self.write_in_one(take, own) {
            Err(e) if stops_only_its_batch(&e) => self.write_batches_apart(own),
            result => result,
        }
    }

    /// Writes what `take` takes out of [`deferred`], then `own`, in one non-durable transaction,
    /// and hands what it took back as written, or to wait again if it failed.
    fn write_in_one(
        &self,
        take: impl FnOnce(&mut Deferred) -> Taken,
        own: Option<(&str, u32, &[Output])>,
    ) -> Result<(), StoreError> {
        // Counted until it committed or failed, so that write-outs let it go first.
        self.applies.fetch_add(1, Relaxed);
        let _applied = Decrement(&self.applies);
        // redb runs one write transaction at a time; concurrent partition threads queue here.
        // An error returns before commit, and dropping the transaction aborts it: all or nothing.
        let mut txn = self.db()?.begin_write()?;
        // Not durable yet: fsync per batch would cap throughput. `flush` makes it durable.
        txn.set_durability(Durability::None)?;
        // After the write transaction began: see `pending` for the lock order, and
        // `catch_up` for why batches are taken only now.
        let mut pending = self.pending();
        let mark = pending.mark();
        let waiting = take(&mut deferred::lock(&self.deferred));
        let result = (|| {
            write_waiting(&txn, &mut pending, &waiting.batches)?;
            if let Some((job, partition, outputs)) = own {
                Self::write_batch(&txn, &mut pending, job, partition, outputs)?;
            }
            Ok::<_, StoreError>(())
        })();
        if let Err(e) = result.and_then(|()| Ok(txn.commit()?)) {
            pending.truncate(mark);
            deferred::lock(&self.deferred).put_back(waiting);
            return Err(e);
        }
        deferred::lock(&self.deferred).written(waiting);
        Ok(())
    }

    /// After a transaction of several batches failed because of one of them: each waiting batch
    /// in a transaction of its own, in arrival order. A batch that fails stays waiting, and so
    /// does every later batch of its partition (they must not reach the tables before it); the
    /// other partitions' are written. Then `own`, unless its partition is held up. Returns the
    /// first batch's error, if any failed: checkpoints fail until it is written (a flush writes
    /// every waiting batch), and so do the partition's applies once the waiting batches reach
    /// their cap.
    fn write_batches_apart(&self, own: Option<(&str, u32, &[Output])>) -> Result<(), StoreError> {
        let mut held_up: Vec<(String, u32)> = Vec::new();
        let mut failure = None;
        // Batches applied meanwhile wait for the next write.
        let rounds = deferred::lock(&self.deferred).len();
        for _ in 0..rounds {
            let mut from = None;
            let result = self.write_in_one(
                |d| {
                    let taken = d.take_first(|b| !is_held_up(&held_up, &b.job, b.partition));
                    from = taken.batches.first().map(|b| (b.job.clone(), b.partition));
                    taken
                },
                None,
            );
            let Some((job, partition)) = from else {
                // Nothing taken: an error came before, from the file.
                result?;
                break;
            };
            match result {
                Ok(()) => {}
                Err(e) if stops_only_its_batch(&e) => {
                    tracing::error!(job, partition, error = %e, "a batch of results cannot be written; the partition's later batches wait behind it");
                    held_up.push((job, partition));
                    failure.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        match own {
            // Its partition's earlier batch failed: `failure` says why.
            Some((job, partition, _)) if is_held_up(&held_up, job, partition) => {}
            Some(_) => self.write_in_one(Deferred::take_none, own)?,
            None => {}
        }
        failure.map_or(Ok(()), Err)
    }

    /// The work `apply` put off, after the caller published what it applied: the batches it
    /// kept (see [`deferred`]), then a write-out of held-back rows once the buffer is over its
    /// cap (for about [`WRITE_BEHIND_BUDGET`]) or one transaction of it while one is under
    /// way, so the rows go out a few chunks per batch instead of all at once in the batch that
    /// crossed the cap. Past twice the cap (rows arrive faster than that writes them) the
    /// caller writes until the buffer is back under its cap, as its own backpressure.
    ///
    /// One caller at a time does it (the engine calls it from each job's write-behind thread),
    /// and none while a durable flush runs (the flush writes both): a caller that finds another
    /// at it, or a flush, returns [`BehindOutcome::Busy`] instead of queueing for the write lock.
    /// Meanwhile the held rows grow only through applies past the waiting batches' cap, which
    /// write them out themselves past twice the buffer's cap.
    fn write_behind_now(&self) -> Result<BehindOutcome, StoreError> {
        let _writing = match self.writing_behind.try_lock() {
            Ok(guard) => guard,
            // It guards no data: a panic while it was held left nothing half done here.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(BehindOutcome::Busy),
        };
        let mut wrote = false;
        let stopped = |wrote: bool| {
            Ok(if wrote {
                BehindOutcome::More
            } else {
                BehindOutcome::Busy
            })
        };
        for _ in 0..WRITE_BEHIND_ROUNDS {
            {
                let d = deferred::lock(&self.deferred);
                if d.flushing() {
                    return stopped(wrote);
                }
                if d.is_empty() {
                    break;
                }
            }
            self.write_batches_taking(take_some, None)?;
            wrote = true;
        }
        if deferred::lock(&self.deferred).flushing() {
            return stopped(wrote);
        }
        let until = {
            let p = self.pending();
            if p.far_over_cap() {
                Some(Until::UnderCap)
            } else if p.over_cap() {
                Some(Until::UnderCapWithin(self.write_behind_budget))
            } else if p.in_run() {
                Some(Until::OneChunk)
            } else {
                None
            }
        };
        if let Some(until) = until {
            write_out_chunks(&*self.db()?, &self.pending, Some(&self.applies), until)?;
        }
        let left = !deferred::lock(&self.deferred).is_empty() || self.pending().over_cap();
        Ok(if left {
            BehindOutcome::More
        } else {
            BehindOutcome::Done
        })
    }

    /// The writes of one batch of [`EmbeddedStore::apply_now`] in `txn`.
    fn write_batch(
        txn: &redb::WriteTransaction,
        pending: &mut PendingIndex,
        job: &str,
        partition: u32,
        outputs: &[Output],
    ) -> Result<(), StoreError> {
        // Alerts are keyed apart from every other output, so writing them after the rest (in their
        // own order) is the same as writing them in place; batches without alerts open no alert
        // table.
        let mut alerts: Vec<&Alert> = Vec::new();
        {
            let mut by_time = txn.open_table(RESULTS_BY_TIME)?;
            let mut late = txn.open_table(LATE_EVENTS)?;
            let mut late_by_ts = txn.open_table(LATE_BY_TS)?;
            let mut metric_tags = txn.open_table(METRIC_TAGS)?;
            let mut raw = txn.open_table(RAW_EVENTS)?;
            for output in outputs {
                match output {
                    Output::Result(r) => {
                        let value = encode_result(r)?;
                        let k =
                            keys::result_by_metric(job, &r.metric_id, &r.window, r.window_start);
                        pending.upsert(&k, &value);
                        let k = keys::result_by_time(job, r.window_start, &r.metric_id, &r.window);
                        by_time.insert(k.as_slice(), value.as_slice())?;
                    }
                    Output::Retract {
                        metric_id,
                        window,
                        window_start,
                        ..
                    } => {
                        let k = keys::result_by_metric(job, metric_id, window, *window_start);
                        pending.delete(&k);
                        let k = keys::result_by_time(job, *window_start, metric_id, window);
                        by_time.remove(k.as_slice())?;
                    }
                    Output::Alert(a) => alerts.push(a),
                    Output::Metric { metric_id, tags } => {
                        let k = KeyBuf::new().str(job).str(metric_id).into_bytes();
                        metric_tags.insert(k.as_slice(), encode_tags(tags)?.as_slice())?;
                    }
                    Output::Raw(e) => {
                        let k = keys::raw(job, &e.metric_id, e.ts, partition, e.offset);
                        raw.insert(k.as_slice(), encode_raw(e.value, &e.tags)?.as_slice())?;
                    }
                    Output::Late(e) => {
                        let value = encode_late(e)?;
                        let k = keys::late(job, partition, &e.window, e.offset);
                        let old_ts = late
                            .insert(k.as_slice(), value.as_slice())?
                            .map(|old| decode_late(LATE_EVENTS_NAME, old.value()).map(|o| o.ts))
                            .transpose()?;
                        // A replay carries the same ts; should it ever differ, the index must not
                        // keep a second entry for the one event.
                        if let Some(old_ts) = old_ts.filter(|&t| t != e.ts) {
                            let k = keys::late_by_ts(job, old_ts, partition, &e.window, e.offset);
                            late_by_ts.remove(k.as_slice())?;
                        }
                        let k = keys::late_by_ts(job, e.ts, partition, &e.window, e.offset);
                        late_by_ts.insert(k.as_slice(), value.as_slice())?;
                    }
                }
            }
        }
        if !alerts.is_empty() {
            apply_alerts(txn, job, &alerts)?;
        }
        Ok(())
    }

    fn flush_now(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        // An empty commit with Durability::Immediate persists every earlier Durability::None commit:
        // redb documents `Durability::None` as "will not be persisted to disk unless followed by a
        // commit with Durability::Immediate", and in redb 4.6 `WriteTransaction::durable_commit`
        // writes out the pages and freed-page records those commits kept in memory
        // ("previously unpersisted allocations that are now becoming durable") before its fsync.
        // An empty transaction is not skipped: `commit` always runs the durable path.
        let batches = self.unflushed_batches.swap(0, Relaxed);
        // No write-behind runs during the flush, which writes the waiting batches and the
        // held-back rows itself: partitions that queued for the write lock between its
        // transactions stalled. New ones see it flushing and go back to their events, and one
        // already under way finishes first: one that passed its check just before waited for
        // redb's write lock behind the flush's transactions, and held its partition's next
        // batch back for the whole flush (up to 0.7 s at 50 k events/s).
        let _flushing = Flushing::begin(&self.deferred);
        let _no_write_behind = self
            .writing_behind
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The batches waiting now in transactions of their own, not the durable one: their
        // index rows then go out with the held-back ones in bounded transactions, and the last
        // transaction, which holds the write lock through the fsync, writes only what came
        // since (it wrote ~26,000 rows of waiting batches at 50 k events/s, 0.3 s of the lock).
        let waiting = deferred::lock(&self.deferred).len();
        self.write_waiting_in_steps(waiting)?;
        write_out_all(
            &*self.db()?,
            &self.pending,
            &self.applies,
            &self.deferred,
            Durability::Immediate,
        )?;
        let (waited, held) = {
            let d = deferred::lock(&self.deferred);
            (d.len(), d.held())
        };
        // What came during the flush, a few transactions of it here (the rest is the next
        // `write_behind`'s). The flush itself is done: a failure here is the next write's (on an
        // I/O failure the file is reopened and the engine replays).
        if let Err(err) = self.checked(self.write_waiting_in_steps(WRITE_BEHIND_ROUNDS)) {
            tracing::warn!(error = %err, "cannot write the batches applied during the flush; retried by the next write");
        }
        tracing::debug!(elapsed = ?started.elapsed(), batches, waited, held_since_open = held, "result store flushed");
        Ok(())
    }

    fn query_page_now(&self, q: &ResultQuery) -> Result<ResultPage, StoreError> {
        if !q.tags.is_empty() {
            return self.query_tagged(q);
        }
        let mut budget = ScanBudget::new(q);
        let rows = match (&q.metric_id, &q.metric_match) {
            (Some(metric_id), f) if f.as_ref().is_none_or(|f| f.matches(metric_id)) => {
                self.query_by_metric(q, metric_id, &mut budget)?
            }
            (Some(_), _) => Vec::new(),
            (None, Some(f)) if !f.literal_prefix().is_empty() => {
                self.query_by_prefix(q, f, &mut budget)?
            }
            (None, _) => self.query_by_time(q, &mut budget)?,
        };
        Ok(budget.page(rows))
    }

    /// The catalog of `q.job` in id order from the walk's lower bound, fed to a [`CatalogWalk`].
    fn query_catalog_now(&self, q: &CatalogQuery) -> Result<CatalogPage, StoreError> {
        let mut walk = CatalogWalk::new(q);
        if walk.done_before_start() {
            return Ok(walk.finish());
        }
        let table = self.db()?.begin_read()?.open_table(METRIC_TAGS)?;
        let job = KeyBuf::new().str(&q.job).into_bytes();
        let Some(end) = keys::prefix_end(&job) else {
            return Ok(walk.finish());
        };
        let lower = KeyBuf::new()
            .str(&q.job)
            .str_prefix(walk.lower_bound())
            .into_bytes();
        for entry in table.range(lower.as_slice()..end.as_slice())? {
            let (key, value) = entry?;
            let mut r = KeyReader::new(key.value());
            let metric = r
                .str()
                .and_then(|_job| r.str())
                .map_err(|e| StoreError::corrupt_key(METRIC_TAGS_NAME, e))?;
            let tags = decode_tags(METRIC_TAGS_NAME, value.value())?;
            if !walk.offer(metric, tags) {
                break;
            }
        }
        Ok(walk.finish())
    }

    fn query_late_now(&self, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError> {
        let mut out = Vec::new();
        if q.start >= q.end || q.limit == 0 {
            return Ok(out);
        }
        let table = self.db()?.begin_read()?.open_table(LATE_BY_TS)?;
        let lo = KeyBuf::new().str(&q.job).i64(q.start).into_bytes();
        let hi = KeyBuf::new().str(&q.job).i64(q.end).into_bytes();
        for entry in table.range(lo.as_slice()..hi.as_slice())? {
            let (_, value) = entry?;
            let e = decode_late(LATE_BY_TS_NAME, value.value())?;
            if q.metric_id.as_ref().is_none_or(|m| *m == e.metric_id) {
                out.push(e);
                if out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn query_raw_now(&self, q: &RawQuery) -> Result<Vec<RawRow>, StoreError> {
        let mut out = Vec::new();
        if q.start >= q.end || q.limit == 0 {
            return Ok(out);
        }
        let table = self.db()?.begin_read()?.open_table(RAW_EVENTS)?;
        let prefix = KeyBuf::new().str(&q.job).str(&q.metric_id);
        let mut lo = prefix.clone().i64(q.start).into_bytes();
        let hi = prefix.i64(q.end).into_bytes();
        if let Some(a) = &q.after {
            let cursor = keys::raw(&q.job, &q.metric_id, a.ts, a.partition, a.offset);
            lo = lo.max(scan::just_after(cursor));
        }
        if lo >= hi {
            return Ok(out);
        }
        for entry in table.range(lo.as_slice()..hi.as_slice())? {
            let (key, value) = entry?;
            let mut r = KeyReader::new(key.value());
            let (metric_id, ts, partition, offset) = r
                .str()
                .and_then(|_job| Ok((r.str()?, r.i64()?, r.u32()?, r.u64()?)))
                .and_then(|parts| r.finish().map(|()| parts))
                .map_err(|e| StoreError::corrupt_key(RAW_EVENTS_NAME, e))?;
            let (value, tags) = decode_raw(RAW_EVENTS_NAME, value.value())?;
            out.push(RawRow {
                partition,
                event: RawEvent {
                    metric_id,
                    ts,
                    value,
                    tags,
                    offset,
                },
            });
            if out.len() >= q.limit {
                break;
            }
        }
        Ok(out)
    }

    fn query_alerts_now(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let mut out = Vec::new();
        if q.start >= q.end || q.limit == 0 {
            return Ok(out);
        }
        let txn = self.db()?.begin_read()?;
        let longest = match txn
            .open_table(ALERT_SPANS)?
            .get(keys::alert_span(&q.job).as_slice())?
        {
            Some(v) => decode_span(v.value())?,
            // No alert was ever stored for this job.
            None => return Ok(out),
        };
        // An episode overlaps [start, end) iff first_ts < end and last_ts >= start; with
        // last_ts <= first_ts + longest, only first_ts >= start - longest can qualify.
        // A saturated span (an episode longer than i64::MAX ms) bounds nothing: scan from the start.
        let from = if longest == i64::MAX {
            i64::MIN
        } else {
            q.start.saturating_sub(longest)
        };
        let (table, name, prefix) = match &q.metric_id {
            Some(m) => (
                txn.open_table(ALERTS_BY_METRIC)?,
                ALERTS_BY_METRIC_NAME,
                KeyBuf::new().str(&q.job).str(m),
            ),
            None => (
                txn.open_table(ALERTS_BY_TIME)?,
                ALERTS_BY_TIME_NAME,
                KeyBuf::new().str(&q.job),
            ),
        };
        let lo = prefix.clone().i64(from).into_bytes();
        let mut hi = prefix.clone().i64(q.end).into_bytes();
        // Resuming: only keys strictly before the cursor's (the scan runs backwards).
        if let Some(a) = &q.after {
            hi = hi.min(prefix.i64(a.first_ts).str(&a.id).into_bytes());
        }
        if lo >= hi {
            return Ok(out);
        }
        // Newest first: (first_ts, id) descending.
        for entry in table.range(lo.as_slice()..hi.as_slice())?.rev() {
            let (_, value) = entry?;
            let a = decode_alert(name, value.value())?;
            let wanted = a.last_ts >= q.start
                && q.state.is_none_or(|s| s == a.state)
                && q.severity.is_none_or(|s| s == a.severity)
                && q.tags.iter().all(|(k, v)| a.tags.get(k) == Some(v));
            if wanted {
                out.push(a);
                if out.len() >= q.limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn get_alert_now(&self, job: &str, id: &str) -> Result<Option<Alert>, StoreError> {
        let table = self.db()?.begin_read()?.open_table(ALERTS)?;
        let value = table.get(keys::alert(job, id).as_slice())?;
        value
            .map(|v| decode_alert(ALERTS_NAME, v.value()))
            .transpose()
    }

    fn counts_now(&self) -> Result<StoreCounts, StoreError> {
        let txn = self.db()?.begin_read()?;
        Ok(StoreCounts {
            // `results_by_time` holds every result at once; the other index may hold some back.
            results: txn.open_table(RESULTS_BY_TIME)?.len()?,
            late: txn.open_table(LATE_EVENTS)?.len()?,
            alerts: txn.open_table(ALERTS)?.len()?,
            raw: txn.open_table(RAW_EVENTS)?.len()?,
        })
    }

    fn expire_now(
        &self,
        policy: &RetentionPolicy,
        now: Millis,
    ) -> Result<ExpiryReport, StoreError> {
        self.expire_with(policy, now, Limits::DEFAULT)
    }
}

impl ResultStore for EmbeddedStore {
    fn apply(&self, job: &str, partition: u32, outputs: &[Output]) -> Result<(), StoreError> {
        self.checked(self.apply_now(job, partition, outputs))
    }

    fn write_behind(&self) -> Result<BehindOutcome, StoreError> {
        self.checked(self.write_behind_now())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.checked(self.flush_now())
    }

    fn generation(&self) -> u64 {
        self.db.reopened()
    }

    fn query_page(&self, q: &ResultQuery) -> Result<ResultPage, StoreError> {
        self.caught_up()?;
        self.checked(self.query_page_now(q))
    }

    fn query_catalog(&self, q: &CatalogQuery) -> Result<CatalogPage, StoreError> {
        self.caught_up()?;
        self.checked(self.query_catalog_now(q))
    }

    fn query_late(&self, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError> {
        self.caught_up()?;
        self.checked(self.query_late_now(q))
    }

    fn query_raw(&self, q: &RawQuery) -> Result<Vec<RawRow>, StoreError> {
        self.caught_up()?;
        self.checked(self.query_raw_now(q))
    }

    fn query_alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        self.caught_up()?;
        self.checked(self.query_alerts_now(q))
    }

    fn get_alert(&self, job: &str, id: &str) -> Result<Option<Alert>, StoreError> {
        self.caught_up()?;
        self.checked(self.get_alert_now(job, id))
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.caught_up()?;
        self.checked(self.counts_now())
    }

    fn expire(&self, policy: &RetentionPolicy, now: Millis) -> Result<ExpiryReport, StoreError> {
        self.caught_up()?;
        self.checked(self.expire_now(policy, now))
    }
}

/// A clean close keeps what was applied, as redb keeps non-durable commits on a clean close:
/// the held-back index rows are written first.
impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        let caught_up = self.catch_up();
        if let Err(err) = caught_up.and(self.write_out()) {
            tracing::warn!(error = %err, "cannot write the held-back index rows on close; a replay from the last checkpoint writes them again");
        }
    }
}

/// While a durable flush runs, `write_behind` leaves the batches applied (see [`deferred`]) and
/// the held-back rows to it, until this is dropped, whichever way the flush ends.
struct Flushing<'a>(&'a Mutex<Deferred>);

impl<'a> Flushing<'a> {
    fn begin(deferred: &'a Mutex<Deferred>) -> Self {
        deferred::lock(deferred).begin_flush();
        Self(deferred)
    }
}

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        deferred::lock(self.0).end_flush();
    }
}

/// Takes one off a counter when dropped, whichever way the scope ends.
struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

// Partition threads share one store.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EmbeddedStore>();
};

mod deferred;
pub(crate) mod pending;
mod scan;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod paging_tests;
