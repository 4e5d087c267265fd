//! Retention per table: a sweep deletes the stored rows whose *event time* is older than their
//! table's TTL, so the store stops growing forever (raw events, one row per event, fastest).
//!
//! [`RetentionPolicy`] gives each kind of row a TTL, or none (kept forever). A sweep at wall-clock
//! time `now` deletes, per table with a TTL, the rows whose event time is strictly before the
//! cutoff `now − ttl` ([`cutoff`]); a row exactly at the cutoff is kept. The event time of a row is:
//! - a window result: its `window_end` (the window's exclusive end), so a window goes only once
//!   all of it is older than the TTL;
//! - a late event: its event `ts`;
//! - an alert: the event time of its latest transition, `resolved_ts` (never before `last_ts`),
//!   and only once it is resolved: a firing alert is still open and is kept whatever its age;
//! - a raw event: its `ts`.
//!
//! Event time, not write time, because outputs are idempotent upserts: a replay after a crash (or
//! from a savepoint) rewrites rows a sweep may already have deleted. Judged by event time, a
//! rewritten row is exactly as old as before, so the next sweep deletes it again; judged by write
//! time it would come back for another whole TTL. For the same reason a sweep needs no
//! coordination with checkpoints: its batches commit without fsync (like `apply`) and a sweep that
//! deleted anything ends with one durable commit; a crash that undoes some deletions only brings
//! back rows that the next sweep deletes again. A row written after a sweep passed its key (a
//! late revision of an old window, say) waits for the next sweep.
//!
//! A sweep runs in bounded batches: one write transaction deletes at most [`Limits::delete`] rows
//! and reads at most [`Limits::scan`] index entries, then commits, so a partition thread waiting
//! to `apply` waits for one batch at most; the next batch resumes after the last key read. The
//! time indexes are ordered by (job, time, …) (`raw_events` by (job, metric, time, …)), so the rows
//! older than a cutoff are a prefix of each job (or metric): a batch reads that prefix and jumps to
//! the next job (or metric) at the first younger row. Besides what it deletes, it reads one row per
//! job or metric, the windows that straddle the cutoff and the alerts still firing.
//!
//! This module must never:
//! - delete a row younger than its TTL: each row is judged on its value as read in the very
//!   transaction that deletes it, never on an earlier read;
//! - touch the metric catalog (`metric_tags`), which says which metrics exist and what tags they
//!   carry, not when: tag filters keep working on the rows that remain. Nor `alert_spans`, an
//!   upper bound that stays safe when alerts go;
//! - delete one access path of a row without the others: both result tables, both late-event
//!   tables and the three alert tables lose a row in the same transaction.

use std::sync::Mutex;
use std::time::Duration;

use redb::{Database, Durability, ReadableTable, WriteTransaction};
use streampulse_core::detect::{Alert, AlertState};
use streampulse_core::time::Millis;

use crate::codec::{decode_alert, decode_result};
use crate::embedded::pending::{self, PendingIndex};
use crate::embedded::{write_out_chunks, write_pending, Until};
use crate::error::StoreError;
use crate::keys::{self, KeyReader};
use crate::schema::{
    Bytes, ALERTS, ALERTS_BY_METRIC, ALERTS_BY_TIME, ALERTS_BY_TIME_NAME, LATE_BY_TS,
    LATE_BY_TS_NAME, LATE_EVENTS, RAW_EVENTS, RAW_EVENTS_NAME, RESULTS_BY_METRIC, RESULTS_BY_TIME,
    RESULTS_BY_TIME_NAME,
};

/// How long each kind of stored row is kept, by event time; `None` keeps it forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Window results, by `window_end`.
    pub results: Option<Duration>,
    /// Late events, by their event `ts`.
    pub late_events: Option<Duration>,
    /// Resolved alerts, by the event time of their resolution; firing alerts are always kept.
    pub alerts: Option<Duration>,
    /// Raw events, by `ts`.
    pub raw_events: Option<Duration>,
}

impl RetentionPolicy {
    /// No table has a TTL: a sweep would delete nothing.
    pub fn keeps_everything(&self) -> bool {
        self.results.is_none()
            && self.late_events.is_none()
            && self.alerts.is_none()
            && self.raw_events.is_none()
    }
}

/// What one sweep deleted, in rows per table (an alert counts once, whatever its indexes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExpiryReport {
    pub results: u64,
    pub late_events: u64,
    pub alerts: u64,
    pub raw_events: u64,
    /// Write transactions that deleted rows.
    pub batches: u64,
}

impl ExpiryReport {
    /// Rows deleted, all tables.
    pub fn deleted(&self) -> u64 {
        self.results + self.late_events + self.alerts + self.raw_events
    }
}

/// Running totals of every sweep of a process, for the Prometheus exposition
/// (`streampulse_store_rows_expired_total`, `streampulse_store_retention_sweeps_total`).
#[derive(Debug, Default)]
pub struct ExpiryTotals {
    pub results: std::sync::atomic::AtomicU64,
    pub late_events: std::sync::atomic::AtomicU64,
    pub alerts: std::sync::atomic::AtomicU64,
    pub raw_events: std::sync::atomic::AtomicU64,
    pub sweeps_ok: std::sync::atomic::AtomicU64,
    pub sweeps_failed: std::sync::atomic::AtomicU64,
}

impl ExpiryTotals {
    /// Adds one sweep's outcome.
    pub fn record(&self, outcome: Result<&ExpiryReport, ()>) {
        use std::sync::atomic::Ordering::Relaxed;
        match outcome {
            Ok(report) => {
                self.results.fetch_add(report.results, Relaxed);
                self.late_events.fetch_add(report.late_events, Relaxed);
                self.alerts.fetch_add(report.alerts, Relaxed);
                self.raw_events.fetch_add(report.raw_events, Relaxed);
                self.sweeps_ok.fetch_add(1, Relaxed);
            }
            Err(()) => {
                self.sweeps_failed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The oldest event time a table with `ttl` keeps at `now`: rows strictly before it are deleted.
/// Saturates, so a TTL beyond the range of epoch milliseconds keeps everything.
pub fn cutoff(now: Millis, ttl: Duration) -> Millis {
    let ttl = Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX);
    now.saturating_sub(ttl)
}

/// The size of one batch: at most `delete` rows deleted and `scan` index entries read per write
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub delete: usize,
    pub scan: usize,
}

impl Limits {
    pub(crate) const DEFAULT: Self = Self {
        delete: 10_000,
        scan: 50_000,
    };
}

/// One sweep over every table `policy` gives a TTL; see the module docs.
pub(crate) fn expire(
    db: &Database,
    pending: &Mutex<PendingIndex>,
    policy: &RetentionPolicy,
    now: Millis,
    limits: Limits,
) -> Result<ExpiryReport, StoreError> {
    // Zero would never make progress.
    let limits = Limits {
        delete: limits.delete.max(1),
        scan: limits.scan.max(1),
    };
    let mut report = ExpiryReport::default();
    let mut batches = 0;
    // Held-back `results_by_metric` rows are written out before each results batch, the last of
    // them in the batch's transaction: a row the batch deletes from `results_by_time` must not
    // reach the file after it.
    let results = Table {
        ttl: policy.results,
        batch: results_batch,
        pending: Some(pending),
    };
    report.results = sweep(db, results, now, limits, &mut batches)?;
    report.late_events = sweep(
        db,
        Table::plain(policy.late_events, late_batch),
        now,
        limits,
        &mut batches,
    )?;
    report.alerts = sweep(
        db,
        Table::plain(policy.alerts, alerts_batch),
        now,
        limits,
        &mut batches,
    )?;
    report.raw_events = sweep(
        db,
        Table::plain(policy.raw_events, raw_batch),
        now,
        limits,
        &mut batches,
    )?;
    report.batches = batches;
    if report.deleted() > 0 {
        // Persists the batches, and lets redb reuse the pages they freed (it frees pages only on a
        // durable commit), even when no checkpoint follows to flush the store.
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        txn.commit()?;
    }
    Ok(report)
}

/// One table a sweep expires.
struct Table<'a> {
    /// None: nothing to do.
    ttl: Option<Duration>,
    batch: BatchFn,
    /// The held-back writes to write out before each batch (the last of them in its transaction).
    pending: Option<&'a Mutex<PendingIndex>>,
}

impl Table<'_> {
    fn plain(ttl: Option<Duration>, batch: BatchFn) -> Self {
        Self {
            ttl,
            batch,
            pending: None,
        }
    }
}

/// Expires one table in batches; returns the rows deleted and counts the transactions that
/// deleted some in `batches`.
fn sweep(
    db: &Database,
    table: Table<'_>,
    now: Millis,
    limits: Limits,
    batches: &mut u64,
) -> Result<u64, StoreError> {
    let Some(ttl) = table.ttl else { return Ok(0) };
    let cutoff = cutoff(now, ttl);
    let mut deleted = 0;
    let mut from = Vec::new();
    loop {
        if let Some(p) = table.pending {
            // Most of the held-back rows in transactions of their own; the batch's writes the rest.
            write_out_chunks(db, p, None, Until::LastChunk)?;
        }
        let mut txn = db.begin_write()?;
        // As `apply`: made durable by the commit at the end of the sweep (or the next flush).
        txn.set_durability(Durability::None)?;
        // After the write transaction began: the lock order of `embedded::pending`.
        let mut pending = table.pending.map(pending::lock);
        let wrote_pending = match pending.as_deref() {
            Some(p) if !p.is_empty() => {
                write_pending(&txn, p)?;
                true
            }
            _ => false,
        };
        let done = (table.batch)(&txn, &from, cutoff, limits)?;
        if done.deleted == 0 && !wrote_pending {
            txn.abort()?;
        } else {
            txn.commit()?;
            if let Some(p) = pending.as_deref_mut() {
                p.clear();
            }
            if done.deleted > 0 {
                *batches += 1;
            }
            deleted += done.deleted;
        }
        drop(pending);
        match done.next {
            Some(next) => from = next,
            None => return Ok(deleted),
        }
    }
}

/// Where one batch stopped: the rows it deleted, and the key the next batch starts from (`None`:
/// the table is done).
struct Batch {
    deleted: u64,
    next: Option<Vec<u8>>,
}

type BatchFn = fn(&WriteTransaction, &[u8], Millis, Limits) -> Result<Batch, StoreError>;

/// Reads `table` in key order from `from`. Its keys are (`group` string components, event time as
/// i64, …). Each entry whose time is before `cutoff` goes to `visit`, which returns whether it
/// deletes it; at the first entry of a group at or after the cutoff, the scan jumps to the next
/// group. Stops after `limits.delete` deletions or `limits.scan` entries read, and returns where
/// the next batch resumes (`None`: the end of the table).
fn scan(
    table: &impl ReadableTable<Bytes, Bytes>,
    name: &'static str,
    group: usize,
    from: &[u8],
    cutoff: Millis,
    limits: Limits,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut lower = from.to_vec();
    let (mut read, mut deleted) = (0usize, 0usize);
    'seek: loop {
        for entry in table.range(lower.as_slice()..)? {
            let (key, value) = entry?;
            let key = key.value();
            read += 1;
            let mut r = KeyReader::new(key);
            let (group_len, time) = (0..group)
                .try_for_each(|_| r.str().map(drop))
                .and_then(|()| Ok((key.len() - r.remaining(), r.i64()?)))
                .map_err(|e| StoreError::corrupt_key(name, e))?;
            if time >= cutoff {
                // The rest of the group is younger still.
                let Some(next_group) = keys::prefix_end(&key[..group_len]) else {
                    return Ok(None);
                };
                if read >= limits.scan {
                    return Ok(Some(next_group));
                }
                lower = next_group;
                continue 'seek;
            }
            if visit(key, value.value())? {
                deleted += 1;
            }
            if deleted >= limits.delete || read >= limits.scan {
                // The smallest key after this one.
                let mut next = key.to_vec();
                next.push(0);
                return Ok(Some(next));
            }
        }
        return Ok(None);
    }
}

/// `results_by_time`: (job, window_start, metric, window); window_start < window_end, so every
/// expired result is in the scanned prefix.
fn results_batch(
    txn: &WriteTransaction,
    from: &[u8],
    cutoff: Millis,
    limits: Limits,
) -> Result<Batch, StoreError> {
    let mut by_time = txn.open_table(RESULTS_BY_TIME)?;
    let mut doomed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let next = scan(
        &by_time,
        RESULTS_BY_TIME_NAME,
        1,
        from,
        cutoff,
        limits,
        |key, value| {
            let r = decode_result(RESULTS_BY_TIME_NAME, value)?;
            if r.window_end >= cutoff {
                return Ok(false);
            }
            let job = job_of(RESULTS_BY_TIME_NAME, key)?;
            let by_metric = keys::result_by_metric(&job, &r.metric_id, &r.window, r.window_start);
            doomed.push((key.to_vec(), by_metric));
            Ok(true)
        },
    )?;
    let mut by_metric = txn.open_table(RESULTS_BY_METRIC)?;
    for (t, m) in &doomed {
        by_time.remove(t.as_slice())?;
        by_metric.remove(m.as_slice())?;
    }
    Ok(Batch {
        deleted: doomed.len() as u64,
        next,
    })
}

/// `late_by_ts`: (job, ts, partition, window, offset), and `late_events` by the same event.
fn late_batch(
    txn: &WriteTransaction,
    from: &[u8],
    cutoff: Millis,
    limits: Limits,
) -> Result<Batch, StoreError> {
    let mut by_ts = txn.open_table(LATE_BY_TS)?;
    let mut doomed: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let next = scan(
        &by_ts,
        LATE_BY_TS_NAME,
        1,
        from,
        cutoff,
        limits,
        |key, _| {
            let mut r = KeyReader::new(key);
            let (job, _ts, partition, window, offset) = r
                .str()
                .and_then(|job| Ok((job, r.i64()?, r.u32()?, r.str()?, r.u64()?)))
                .map_err(|e| StoreError::corrupt_key(LATE_BY_TS_NAME, e))?;
            doomed.push((key.to_vec(), keys::late(&job, partition, &window, offset)));
            Ok(true)
        },
    )?;
    let mut late = txn.open_table(LATE_EVENTS)?;
    for (t, k) in &doomed {
        by_ts.remove(t.as_slice())?;
        late.remove(k.as_slice())?;
    }
    Ok(Batch {
        deleted: doomed.len() as u64,
        next,
    })
}

/// The event time an alert ages from: its resolution; `None` while it is firing.
fn settled_at(a: &Alert) -> Option<Millis> {
    match a.state {
        AlertState::Firing => None,
        AlertState::Resolved => Some(a.resolved_ts.map_or(a.last_ts, |r| r.max(a.last_ts))),
    }
}

/// `alerts_by_time`: (job, first_ts, id); first_ts <= last_ts <= resolved_ts, so every expired
/// alert is in the scanned prefix. Deletes from `alerts` and `alerts_by_metric` too.
fn alerts_batch(
    txn: &WriteTransaction,
    from: &[u8],
    cutoff: Millis,
    limits: Limits,
) -> Result<Batch, StoreError> {
    let mut by_time = txn.open_table(ALERTS_BY_TIME)?;
    let mut doomed: Vec<[Vec<u8>; 3]> = Vec::new();
    let next = scan(
        &by_time,
        ALERTS_BY_TIME_NAME,
        1,
        from,
        cutoff,
        limits,
        |key, value| {
            let a = decode_alert(ALERTS_BY_TIME_NAME, value)?;
            if settled_at(&a).is_none_or(|t| t >= cutoff) {
                return Ok(false);
            }
            let job = job_of(ALERTS_BY_TIME_NAME, key)?;
            doomed.push([
                key.to_vec(),
                keys::alert(&job, &a.id),
                keys::alert_by_metric(&job, &a.metric_id, a.first_ts, &a.id),
            ]);
            Ok(true)
        },
    )?;
    let mut by_id = txn.open_table(ALERTS)?;
    let mut by_metric = txn.open_table(ALERTS_BY_METRIC)?;
    for [t, id, m] in &doomed {
        by_time.remove(t.as_slice())?;
        by_id.remove(id.as_slice())?;
        by_metric.remove(m.as_slice())?;
    }
    Ok(Batch {
        deleted: doomed.len() as u64,
        next,
    })
}

/// `raw_events`: (job, metric_id, ts, partition, offset), one table.
fn raw_batch(
    txn: &WriteTransaction,
    from: &[u8],
    cutoff: Millis,
    limits: Limits,
) -> Result<Batch, StoreError> {
    let mut raw = txn.open_table(RAW_EVENTS)?;
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    let next = scan(&raw, RAW_EVENTS_NAME, 2, from, cutoff, limits, |key, _| {
        doomed.push(key.to_vec());
        Ok(true)
    })?;
    for k in &doomed {
        raw.remove(k.as_slice())?;
    }
    Ok(Batch {
        deleted: doomed.len() as u64,
        next,
    })
}

/// The job, the first component of every key.
fn job_of(table: &'static str, key: &[u8]) -> Result<String, StoreError> {
    KeyReader::new(key)
        .str()
        .map_err(|e| StoreError::corrupt_key(table, e))
}

#[cfg(test)]
mod tests;
