//! The writer thread: the only place write transactions run.
//!
//! Group commit: take the first queued command, drain every append already queued (up to
//! `max_batch_records`), write them all in one redb transaction, each partition's records as
//! chunks of consecutive records ([`crate::chunk`]), together with their idempotency keys and the
//! batch-time index, commit with the policy's durability, then
//! publish the new end offsets, wake readers and answer each request. Retention runs here too,
//! so it is serialized with appends without extra locking.
//!
//! It must never acknowledge an append before its commit returned, and never advance an
//! in-memory offset for a commit that failed (offsets are assigned from a scratch copy).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::ReadableTable;
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use crate::chunk;
use crate::error::LogError;
use crate::retention::{self, RetentionReport};
use crate::schema::{IDEMPOTENCY, IDEMPOTENCY_BY_TIME, META};
use crate::shared::Core;

/// What an append wrote, or, for a duplicate, what the original append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReceipt {
    /// True when the idempotency key had already been committed and nothing was written.
    pub duplicate: bool,
    /// `(partition, first offset, count)` per partition written, ascending by partition. The
    /// records of one partition in one append always get consecutive offsets.
    pub ranges: Vec<(u32, u64, u64)>,
}

pub(crate) enum Command {
    Append(AppendRequest),
    Retention {
        safe_offsets: Vec<u64>,
        reply: SyncSender<Result<RetentionReport, LogError>>,
    },
}

pub(crate) struct AppendRequest {
    pub(crate) records: Vec<(u32, Vec<u8>)>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) reply: Reply,
}

/// Where to send the outcome: async callers await a oneshot, blocking callers a std channel.
pub(crate) enum Reply {
    Async(oneshot::Sender<Result<AppendReceipt, LogError>>),
    Blocking(SyncSender<Result<AppendReceipt, LogError>>),
}

impl Reply {
    fn send(self, outcome: Result<AppendReceipt, LogError>) {
        // A caller that gave up waiting (dropped future) still had its data committed; there is
        // nobody left to tell, which is fine.
        let _ = match self {
            Reply::Async(tx) => tx.send(outcome).map_err(|_| ()),
            Reply::Blocking(tx) => tx.send(outcome).map_err(|_| ()),
        };
    }
}

/// Expired idempotency keys are pruned at most this often between retention runs, so a log
/// whose retention is never applied still does not grow its key table forever.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

pub(crate) fn spawn(
    core: Arc<Core>,
    commands: Receiver<Command>,
    last_time_ms: u64,
) -> Result<JoinHandle<()>, LogError> {
    let next = core
        .partitions
        .iter()
        .map(|p| p.end.load(Ordering::Acquire))
        .collect();
    let reopened = core.db.reopened();
    let writer = Writer {
        core,
        next,
        last_time_ms,
        last_prune: Instant::now(),
        reopened,
    };
    let handle = std::thread::Builder::new()
        .name("streampulse-log-writer".to_string())
        .spawn(move || writer.run(commands))?;
    Ok(handle)
}

struct Writer {
    core: Arc<Core>,
    /// Authoritative next offsets; the published atomics follow them after each commit.
    next: Vec<u64>,
    /// Append times never go backwards, even if the wall clock does, so the batch index stays
    /// ordered by time and age retention can stop at the first young batch.
    last_time_ms: u64,
    last_prune: Instant,
    /// Reopenings of the file already checked against `next`.
    reopened: u64,
}

impl Writer {
    /// After the file was reopened: the records it holds must be those that were acknowledged.
    /// A commit reported failed may still have become durable (its records are then adopted, and a
    /// client retrying with its idempotency key gets the original receipt); a file with fewer
    /// records than acknowledged means `fsync: never` lost them, and the log stops taking appends.
    ///
    /// Returns the database the commit is to use: the one checked (a reopening between the check
    /// and the commit would escape it).
    fn check_reopened(&mut self) -> Result<Arc<redb::Database>, LogError> {
        let db = self.core.db.get()?;
        let reopened = self.core.db.reopened();
        if reopened == self.reopened {
            return Ok(db);
        }
        let (states, last_time_ms) = crate::embedded::recover(&db, &self.core.tables)?;
        self.reopened = reopened;
        self.last_time_ms = self.last_time_ms.max(last_time_ms);
        for (p, state) in states.iter().enumerate() {
            let file_end = state.end.load(Ordering::Acquire);
            let Some(next) = self.next.get_mut(p) else {
                continue;
            };
            if file_end < *next {
                let reason = format!(
                    "the log file was reopened after an I/O failure without records it had                      acknowledged (partition {p}: {file_end} records, {next} acknowledged;                      fsync: never); restart the process to replay from the checkpoints"
                );
                error!(%reason, "log records lost");
                *self
                    .core
                    .lost
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
                return Ok(db);
            }
            if file_end > *next {
                warn!(
                    partition = p,
                    file_end,
                    next = *next,
                    "a commit reported failed was durable; adopting its records"
                );
                *next = file_end;
                self.core.publish_end(p as u32, file_end);
            }
        }
        Ok(db)
    }

    fn run(mut self, commands: Receiver<Command>) {
        let max = self.core.config.max_batch_records;
        let mut pending: Option<Command> = None;
        loop {
            let command = match pending.take() {
                Some(c) => c,
                // Disconnected only after every handle is gone and the queue is drained, so
                // shutdown never drops an accepted append.
                None => match commands.recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
            };
            match command {
                Command::Retention {
                    safe_offsets,
                    reply,
                } => {
                    let outcome = self
                        .core
                        .checked(retention::apply(&self.core, &safe_offsets));
                    let _ = reply.send(outcome);
                }
                Command::Append(first) => {
                    let mut records = first.records.len();
                    let mut batch = vec![first];
                    while records < max {
                        match commands.try_recv() {
                            Ok(Command::Append(req)) if records + req.records.len() <= max => {
                                records += req.records.len();
                                batch.push(req);
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(batch, records);
                }
            }
            self.maybe_prune();
        }
        debug!("log writer stopped");
    }

    fn commit(&mut self, batch: Vec<AppendRequest>, records: usize) {
        let checked = self.check_reopened();
        let checked = self.core.checked(checked);
        let lost = self
            .core
            .lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let db = match (checked, lost) {
            (Ok(db), None) => db,
            (Err(e), _) => return answer_all(batch, &e),
            (Ok(_), Some(lost)) => return answer_all(batch, &LogError::Unavailable(lost)),
        };
        let started = Instant::now();
        let now = self.core.now_ms().max(self.last_time_ms);
        let mut next = self.next.clone();
        let written = write_batch(&self.core, &db, &batch, &mut next, now);
        drop(db);
        match self.core.checked(written) {
            Ok(written) => {
                self.last_time_ms = now;
                for (p, state) in self.core.partitions.iter().enumerate() {
                    let added = written.bytes.get(p).copied().unwrap_or(0);
                    if added > 0 {
                        state.bytes.fetch_add(added, Ordering::AcqRel);
                    }
                    let (old, new) = (self.next.get(p), next.get(p));
                    if let (Some(&old), Some(&new)) = (old, new) {
                        if new != old {
                            self.core.publish_end(p as u32, new);
                        }
                    }
                }
                self.next = next;
                debug!(
                    requests = batch.len(),
                    records,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "group commit"
                );
                for (req, receipt) in batch.into_iter().zip(written.receipts) {
                    req.reply.send(Ok(receipt));
                }
            }
            Err(e) => {
                error!(error = %e, requests = batch.len(), "group commit failed; none of its appends was written");
                for req in batch {
                    req.reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn maybe_prune(&mut self) {
        if self.last_prune.elapsed() < PRUNE_INTERVAL {
            return;
        }
        self.last_prune = Instant::now();
        match self
            .core
            .checked(retention::prune_idempotency_now(&self.core))
        {
            Ok(0) => {}
            Ok(pruned) => debug!(pruned, "pruned expired idempotency keys"),
            Err(e) => warn!(error = %e, "pruning idempotency keys failed; will retry"),
        }
    }
}

/// Answers every request of a batch that cannot be committed with `error`.
fn answer_all(batch: Vec<AppendRequest>, error: &LogError) {
    for req in batch {
        req.reply.send(Err(error.clone()));
    }
}

struct Written {
    /// One per request, in request order.
    receipts: Vec<AppendReceipt>,
    /// Payload bytes added per partition.
    bytes: Vec<u64>,
}

/// Writes one group commit. `next` is a scratch copy of the next offsets, advanced as offsets
/// are assigned; the caller keeps it only if this returns `Ok`.
fn write_batch(
    core: &Core,
    db: &redb::Database,
    batch: &[AppendRequest],
    next: &mut [u64],
    now: u64,
) -> Result<Written, LogError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(core.durability())?;
    let partitions = next.len();
    let mut bytes = vec![0u64; partitions];
    let mut first_in_commit: Vec<Option<u64>> = vec![None; partitions];
    let mut receipts = Vec::with_capacity(batch.len());
    {
        let mut keys = txn.open_table(IDEMPOTENCY)?;
        let mut keys_by_time = txn.open_table(IDEMPOTENCY_BY_TIME)?;
        let mut tables: Vec<Option<redb::Table<u64, &'static [u8]>>> =
            (0..partitions).map(|_| None).collect();
        let mut chunks: Vec<chunk::Builder> = (0..partitions).map(|_| Default::default()).collect();
        for req in batch {
            if let Some(key) = req.idempotency_key.as_deref() {
                // Also catches a repeat of a key first seen earlier in this same batch, since
                // the transaction reads its own writes.
                if let Some(original) = keys.get(key)? {
                    let (_, ranges) = original.value();
                    receipts.push(AppendReceipt {
                        duplicate: true,
                        ranges,
                    });
                    continue;
                }
            }
            let mut ranges: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for (partition, payload) in &req.records {
                let p = *partition as usize;
                let invalid = || LogError::InvalidPartition(*partition);
                let offset_slot = next.get_mut(p).ok_or_else(invalid)?;
                let offset = *offset_slot;
                *offset_slot += 1;
                let builder = chunks.get_mut(p).ok_or_else(invalid)?;
                if let Some((first, bytes)) = builder.push(offset, payload) {
                    insert_chunk(&txn, core, &mut tables, *partition, first, &bytes)?;
                }
                if let Some(b) = bytes.get_mut(p) {
                    *b += payload.len() as u64;
                }
                if let Some(first) = first_in_commit.get_mut(p) {
                    first.get_or_insert(offset);
                }
                ranges
                    .entry(*partition)
                    .and_modify(|(_, count)| *count += 1)
                    .or_insert((offset, 1));
            }
            let ranges: Vec<(u32, u64, u64)> = ranges
                .into_iter()
                .map(|(p, (first, count))| (p, first, count))
                .collect();
            if let Some(key) = req.idempotency_key.as_deref() {
                keys.insert(key, (now, ranges.clone()))?;
                keys_by_time.insert((now, key), ())?;
            }
            receipts.push(AppendReceipt {
                duplicate: false,
                ranges,
            });
        }
        for (partition, builder) in (0u32..).zip(&mut chunks) {
            if let Some((first, bytes)) = builder.take() {
                insert_chunk(&txn, core, &mut tables, partition, first, &bytes)?;
            }
        }
    }
    {
        let mut meta = txn.open_table(META)?;
        for (p, first) in first_in_commit.iter().enumerate() {
            let Some(first) = *first else { continue };
            let tables = core.tables(p as u32)?;
            let added = bytes.get(p).copied().unwrap_or(0);
            let mut index = txn.open_table(tables.batches())?;
            index.insert(first, (now, added))?;
            // Running total, so reopening does not have to scan the index to know the size.
            let total = core
                .partition(p as u32)?
                .bytes
                .load(Ordering::Acquire)
                .saturating_add(added);
            meta.insert(tables.bytes_key(), total)?;
        }
    }
    txn.commit()?;
    Ok(Written { receipts, bytes })
}

/// Writes one chunk of `partition`, opening its table on first use within the transaction.
fn insert_chunk<'t>(
    txn: &'t redb::WriteTransaction,
    core: &Core,
    tables: &mut [Option<redb::Table<'t, u64, &'static [u8]>>],
    partition: u32,
    first: u64,
    bytes: &[u8],
) -> Result<(), LogError> {
    let slot = tables
        .get_mut(partition as usize)
        .ok_or(LogError::InvalidPartition(partition))?;
    let table = match slot {
        Some(t) => t,
        None => slot.insert(txn.open_table(core.tables(partition)?.chunks())?),
    };
    table.insert(first, bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use redb::{ReadableDatabase, ReadableTableMetadata};

    use super::*;
    use crate::config::LogConfig;
    use crate::embedded::open_core;
    use crate::shared::system_clock;

    /// Queues `sizes.len()` appends to partition 0 before the writer starts, runs it to
    /// completion, and returns the receipts and the number of group commits made.
    fn run_queued(max_batch_records: usize, sizes: &[usize]) -> (Vec<AppendReceipt>, u64) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            partitions: 1,
            max_batch_records,
            ..LogConfig::default()
        };
        let (core, last_time) = open_core(dir.path(), config, system_clock()).expect("open");
        let (tx, rx) = mpsc::channel();
        let mut replies = Vec::new();
        for &n in sizes {
            let (reply, answer) = mpsc::sync_channel(1);
            let records = (0..n).map(|i| (0, vec![i as u8])).collect();
            tx.send(Command::Append(AppendRequest {
                records,
                idempotency_key: None,
                reply: Reply::Blocking(reply),
            }))
            .expect("queue");
            replies.push(answer);
        }
        drop(tx);
        spawn(Arc::clone(&core), rx, last_time)
            .expect("spawn")
            .join()
            .expect("writer");
        let receipts = replies
            .into_iter()
            .map(|r| r.recv().expect("answered").expect("committed"))
            .collect();
        // One batch-index entry per partition per group commit.
        let txn = core.db.get().expect("db").begin_read().expect("read");
        let commits = txn
            .open_table(core.tables[0].batches())
            .expect("table")
            .len()
            .expect("len");
        (receipts, commits)
    }

    #[test]
    fn queued_appends_share_one_group_commit() {
        let (receipts, commits) = run_queued(100, &[1, 2, 3, 4]);
        assert_eq!(commits, 1);
        let ranges: Vec<_> = receipts.iter().map(|r| r.ranges.clone()).collect();
        assert_eq!(
            ranges,
            vec![
                vec![(0, 0, 1)],
                vec![(0, 1, 2)],
                vec![(0, 3, 3)],
                vec![(0, 6, 4)]
            ]
        );
    }

    #[test]
    fn group_commit_respects_the_record_cap_without_splitting_requests() {
        // Cap 3: [1, 2] fit together, [2] alone (1+2+2 > 3), [5] alone though over the cap.
        let (receipts, commits) = run_queued(3, &[1, 2, 2, 5]);
        assert_eq!(commits, 3);
        assert_eq!(receipts[3].ranges, vec![(0, 5, 5)]);
    }
}
