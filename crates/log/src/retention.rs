//! Retention: deleting old records by age and by total size, and expiring idempotency keys.
//!
//! Runs on the writer thread (see [`crate::writer`]), in one write transaction, so it is
//! serialized with appends. Records are only ever deleted as a prefix of a partition, and this
//! module must NEVER delete a record at or above the partition's safe (checkpointed) offset:
//! un-checkpointed data is kept even when that means exceeding the limits, with a warning.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redb::{ReadableTable, Table, WriteTransaction};
use tracing::{info, warn};

use crate::chunk;
use crate::error::LogError;
use crate::schema::{PartitionTables, IDEMPOTENCY, IDEMPOTENCY_BY_TIME, META};
use crate::shared::Core;

/// What one retention run deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Records deleted, indexed by partition.
    pub deleted_records: Vec<u64>,
    /// Payload bytes deleted, all partitions.
    pub deleted_bytes: u64,
    /// Expired idempotency keys forgotten.
    pub pruned_idempotency_keys: u64,
    /// True when a limit was exceeded but could not be met because the data above a safe
    /// offset is not checkpointed yet.
    pub limited_by_checkpoint: bool,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Applies both limits and expires idempotency keys. `safe_offsets[p]` is the offset below which
/// partition p is checkpointed; a missing entry means nothing of p is safe to delete.
pub(crate) fn apply(core: &Core, safe_offsets: &[u64]) -> Result<RetentionReport, LogError> {
    let now = core.now_ms();
    let mut run = Run::new(core, safe_offsets);
    let db = core.db.get()?;
    let mut txn = db.begin_write()?;
    txn.set_durability(core.durability())?;

    if let Some(age) = core.config.retention_age {
        let cutoff = now.saturating_sub(millis(age));
        for p in 0..run.ends.len() {
            let boundary = age_boundary(&txn, &core.tables[p], cutoff, run.ends[p])?;
            if boundary > run.safe[p] {
                run.report.limited_by_checkpoint = true;
                warn!(
                    partition = p,
                    expired_until = boundary,
                    checkpointed_until = run.safe[p],
                    "records are past retention_age but not checkpointed; keeping them"
                );
            }
            run.delete(&txn, p, boundary.min(run.safe[p]))?;
        }
    }

    if let Some(limit) = core.config.retention_bytes {
        let total = run.sizes.iter().fold(0u64, |a, &b| a.saturating_add(b));
        if total > limit {
            let (targets, unmet) =
                plan_bytes(&txn, core, &run.starts, &run.ends, &run.safe, total - limit)?;
            if unmet > 0 {
                run.report.limited_by_checkpoint = true;
                warn!(
                    limit,
                    over_by = unmet,
                    "retention_bytes exceeded but the remaining data is not checkpointed; keeping it"
                );
            }
            for (p, &upto) in targets.iter().enumerate() {
                run.delete(&txn, p, upto)?;
            }
        }
    }

    let key_cutoff = now.saturating_sub(millis(core.config.idempotency_ttl()));
    run.report.pruned_idempotency_keys = prune_idempotency_keys(&txn, key_cutoff)?;
    txn.commit()?;

    // Published only after the commit: a reader must never be told data is gone that is not.
    for (p, state) in core.partitions.iter().enumerate() {
        state.start.store(run.starts[p], Ordering::Release);
        state.bytes.store(run.sizes[p], Ordering::Release);
    }
    let report = run.report;
    let deleted: u64 = report.deleted_records.iter().sum();
    if deleted > 0 || report.pruned_idempotency_keys > 0 {
        info!(
            deleted_records = deleted,
            deleted_bytes = report.deleted_bytes,
            pruned_idempotency_keys = report.pruned_idempotency_keys,
            "retention applied"
        );
    }
    Ok(report)
}

/// Working state of one retention run; vectors are indexed by partition.
struct Run<'c> {
    core: &'c Core,
    ends: Vec<u64>,
    safe: Vec<u64>,
    starts: Vec<u64>,
    sizes: Vec<u64>,
    report: RetentionReport,
}

impl<'c> Run<'c> {
    fn new(core: &'c Core, safe_offsets: &[u64]) -> Self {
        // The writer thread is the only mutator of these counters and runs this, so they are
        // exact here.
        let load = |f: fn(&crate::shared::PartitionState) -> u64| -> Vec<u64> {
            core.partitions.iter().map(f).collect()
        };
        let ends = load(|p| p.end.load(Ordering::Acquire));
        // A checkpoint can never be ahead of the data; capping keeps the arithmetic honest.
        let safe = ends
            .iter()
            .enumerate()
            .map(|(p, &end)| safe_offsets.get(p).copied().unwrap_or(0).min(end))
            .collect();
        Self {
            core,
            safe,
            starts: load(|p| p.start.load(Ordering::Acquire)),
            sizes: load(|p| p.bytes.load(Ordering::Acquire)),
            report: RetentionReport {
                deleted_records: vec![0; ends.len()],
                ..RetentionReport::default()
            },
            ends,
        }
    }

    /// Deletes partition p below `upto`, if that deletes anything. The cap at the safe offset
    /// is re-applied here so no caller can ever get past it.
    fn delete(&mut self, txn: &WriteTransaction, p: usize, upto: u64) -> Result<(), LogError> {
        let upto = upto.min(self.safe[p]);
        if upto <= self.starts[p] {
            return Ok(());
        }
        let (count, bytes) = truncate(
            txn,
            p as u32,
            &self.core.tables[p],
            self.ends[p],
            upto,
            &mut self.sizes[p],
        )?;
        self.starts[p] = upto;
        self.report.deleted_records[p] += count;
        self.report.deleted_bytes += bytes;
        Ok(())
    }
}

/// First offset appended at or after `cutoff_ms` (or `end` if all are older). Batch times are
/// monotonic per partition, so the scan stops at the first young batch.
fn age_boundary(
    txn: &WriteTransaction,
    tables: &PartitionTables,
    cutoff_ms: u64,
    end: u64,
) -> Result<u64, LogError> {
    let index = txn.open_table(tables.batches())?;
    for entry in index.range::<u64>(..)? {
        let (first, value) = entry?;
        let (time_ms, _) = value.value();
        if time_ms >= cutoff_ms {
            return Ok(first.value());
        }
    }
    Ok(end)
}

type Batches<'t> = Table<'t, u64, (u64, u64)>;

/// First batch of the index at or after `from`: `(first offset, append time, bytes)`.
fn batch_at(index: &Batches<'_>, from: u64) -> Result<Option<(u64, u64, u64)>, LogError> {
    match index.range(from..)?.next() {
        Some(entry) => {
            let (k, v) = entry?;
            let (time, bytes) = v.value();
            Ok(Some((k.value(), time, bytes)))
        }
        None => Ok(None),
    }
}

/// Chooses, per partition, the offset to truncate to so that `excess` bytes go, oldest batch
/// first across all partitions, never at or above `safe`. Returns the targets and the bytes
/// that could not be freed.
fn plan_bytes(
    txn: &WriteTransaction,
    core: &Core,
    starts: &[u64],
    ends: &[u64],
    safe: &[u64],
    mut excess: u64,
) -> Result<(Vec<u64>, u64), LogError> {
    let mut indexes = Vec::with_capacity(core.tables.len());
    let mut chunks = Vec::with_capacity(core.tables.len());
    for t in &core.tables {
        indexes.push(txn.open_table(t.batches())?);
        chunks.push(txn.open_table(t.chunks())?);
    }
    // Min-heap by (append time, partition): the globally oldest batch is deleted first.
    let mut heap = BinaryHeap::new();
    for (p, index) in indexes.iter().enumerate() {
        if let Some((first, time, bytes)) = batch_at(index, starts[p])? {
            if first < safe[p] {
                heap.push(Reverse((time, p, first, bytes)));
            }
        }
    }
    let mut targets = starts.to_vec();
    while excess > 0 {
        let Some(Reverse((_, p, first, bytes))) = heap.pop() else {
            break;
        };
        let next = batch_at(&indexes[p], first.saturating_add(1))?;
        let batch_end = next.map_or(ends[p], |(k, _, _)| k);
        let limit = batch_end.min(safe[p]);
        if limit == batch_end && bytes <= excess {
            targets[p] = batch_end;
            excess -= bytes;
        } else {
            // Only part of this batch may or need go: walk its records.
            let mut freed = 0u64;
            // A batch starts at a chunk's key, except in a file whose records were moved into
            // chunks: start from the chunk holding its first record.
            let holding = match chunks[p].range(..=first)?.next_back() {
                Some(entry) => entry?.0.value(),
                None => first,
            };
            'walk: for entry in chunks[p].range(holding..limit)? {
                let (k, v) = entry?;
                let (chunk_first, partition) = (k.value(), p as u32);
                let records = chunk::records(v.value(), partition, chunk_first);
                for (offset, payload) in (chunk_first..limit).zip(records) {
                    let payload = payload?;
                    if offset < first {
                        continue;
                    }
                    freed = freed.saturating_add(payload.len() as u64);
                    targets[p] = offset + 1;
                    if freed >= excess {
                        break 'walk;
                    }
                }
            }
            excess = excess.saturating_sub(freed);
            if limit < batch_end {
                continue; // blocked by the checkpoint: nothing more of p may go
            }
        }
        if let Some((k, time, b)) = next {
            if k < safe[p] {
                heap.push(Reverse((time, p, k, b)));
            }
        }
    }
    Ok((targets, excess))
}

/// Deletes records `[start, upto)` of one partition and keeps the batch index and meta in step:
/// the batch straddling `upto` is re-keyed to `upto` with its remaining bytes, so the index's
/// first key stays the first retained offset, and so is the chunk straddling it, which keeps
/// only its records from `upto` on. Returns `(records, bytes)` deleted.
fn truncate(
    txn: &WriteTransaction,
    partition: u32,
    tables: &PartitionTables,
    end: u64,
    upto: u64,
    size: &mut u64,
) -> Result<(u64, u64), LogError> {
    let mut index = txn.open_table(tables.batches())?;
    let straddling: Option<(u64, (u64, u64))> = match index.range(..upto)?.next_back() {
        Some(entry) => {
            let (k, v) = entry?;
            Some((k.value(), v.value()))
        }
        None => None,
    };
    let straddling_from = straddling.map_or(u64::MAX, |(k, _)| k);
    let (mut count, mut bytes, mut bytes_of_straddling) = (0u64, 0u64, 0u64);
    {
        let mut chunks = txn.open_table(tables.chunks())?;
        // Only the last chunk keyed below `upto` can reach past it: chunks do not overlap.
        let mut kept: Option<Vec<u8>> = None;
        for entry in chunks.extract_from_if(..upto, |_, _| true)? {
            let (k, v) = entry?;
            let (first, chunk) = (k.value(), v.value());
            let (gone, gone_bytes) = chunk::count_in(chunk, partition, first, first..upto)?;
            count += gone;
            bytes += gone_bytes;
            // A batch can span several chunks, and a chunk hold the end of the batch before
            // the straddling one: its part is counted by offset.
            let straddling_part = straddling_from.max(first)..upto;
            bytes_of_straddling += chunk::count_in(chunk, partition, first, straddling_part)?.1;
            if first + gone == upto {
                let tail = chunk::tail_from(chunk, partition, first, upto)?;
                if !tail.is_empty() {
                    kept = Some(tail.to_vec());
                }
            }
        }
        if let Some(tail) = kept {
            chunks.insert(upto, tail.as_slice())?;
        }
    }
    index.retain_in(..upto, |_, _| false)?;
    if let Some((_, (time, batch_bytes))) = straddling {
        let continues_past_upto = upto < end && index.get(upto)?.is_none();
        if continues_past_upto {
            index.insert(
                upto,
                (time, batch_bytes.saturating_sub(bytes_of_straddling)),
            )?;
        }
    }
    *size = size.saturating_sub(bytes);
    let mut meta = txn.open_table(META)?;
    meta.insert(tables.start_key(), upto)?;
    meta.insert(tables.bytes_key(), *size)?;
    Ok((count, bytes))
}

/// Forgets idempotency keys committed before `cutoff_ms`. Returns how many.
pub(crate) fn prune_idempotency_keys(
    txn: &WriteTransaction,
    cutoff_ms: u64,
) -> Result<u64, LogError> {
    let mut expired: Vec<String> = Vec::new();
    {
        let mut by_time = txn.open_table(IDEMPOTENCY_BY_TIME)?;
        // (cutoff, "") sorts before every key committed at `cutoff`, so this is "time < cutoff".
        for entry in by_time.extract_from_if(..(cutoff_ms, ""), |_, _| true)? {
            let (k, _) = entry?;
            expired.push(k.value().1.to_owned());
        }
    }
    let mut keys = txn.open_table(IDEMPOTENCY)?;
    for key in &expired {
        keys.remove(key.as_str())?;
    }
    Ok(expired.len() as u64)
}

/// Expires idempotency keys in a transaction of its own (the writer's periodic pruning).
pub(crate) fn prune_idempotency_now(core: &Core) -> Result<u64, LogError> {
    let cutoff = core
        .now_ms()
        .saturating_sub(millis(core.config.idempotency_ttl()));
    let db = core.db.get()?;
    let mut txn = db.begin_write()?;
    txn.set_durability(core.durability())?;
    let pruned = prune_idempotency_keys(&txn, cutoff)?;
    if pruned == 0 {
        txn.abort()?;
    } else {
        txn.commit()?;
    }
    Ok(pruned)
}
