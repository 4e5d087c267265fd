//! [`EmbeddedLog`]: the public handle. Opens and recovers the log file, queues appends to the
//! writer thread, and serves reads from redb read transactions, concurrently with writes.
//!
//! Recovery relies on redb: its commits are atomic and checksummed, and on open it rolls back
//! a torn or partial tail transaction (including non-durable commits never followed by a
//! durable one). So the file always opens at its last complete commit, and the end offset of
//! each partition is simply the last chunk's key plus its record count (or the retained start,
//! if retention emptied it).
//!
//! Once the writer thread runs, this module must never write records itself: every write goes
//! through that thread, so offsets are assigned in exactly one place. (Opening a file written
//! before chunks moves its records into chunks, before the writer starts.)

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable};
use streampulse_dbfile::DbFile;
use tokio::sync::oneshot;
use tracing::{error, info};

use crate::batch::RecordBatch;
use crate::chunk;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::partitioner::partition_for;
use crate::retention::RetentionReport;
use crate::schema::{PartitionTables, IDEMPOTENCY, IDEMPOTENCY_BY_TIME, META, META_PARTITIONS};
use crate::shared::{system_clock, Clock, Core, PartitionState};
use crate::writer::{self, AppendReceipt, AppendRequest, Command, Reply};

/// File name of the database inside the log directory.
pub const LOG_FILE_NAME: &str = "log.redb";

/// Handle to an open log. Cheap to clone; all clones share one database and writer thread,
/// which stop when the last clone is dropped or any clone is [`closed`](EmbeddedLog::close).
#[derive(Clone)]
pub struct EmbeddedLog {
    inner: Arc<Handle>,
}

struct Handle {
    core: Arc<Core>,
    path: PathBuf,
    commands: Mutex<Option<Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    /// Stops accepting appends, lets the writer drain what is queued, and waits for it.
    fn shutdown(&self) {
        // Dropping the sender disconnects the queue once it is empty; the writer exits then.
        drop(
            self.commands
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                error!(path = %self.path.display(), "log writer thread panicked");
            }
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("path", &self.inner.path)
            .field("partitions", &self.partitions())
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log in `dir` and starts its writer thread.
    ///
    /// Fails with [`LogError::PartitionCountChanged`] if the file was created with another
    /// partition count.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        Self::open_with_clock(dir, config, system_clock())
    }

    pub(crate) fn open_with_clock(
        dir: &Path,
        config: LogConfig,
        clock: Clock,
    ) -> Result<Self, LogError> {
        let (core, last_time_ms) = open_core(dir, config, clock)?;
        let (tx, rx) = mpsc::channel();
        let writer = writer::spawn(Arc::clone(&core), rx, last_time_ms)?;
        Ok(Self {
            inner: Arc::new(Handle {
                core,
                path: dir.join(LOG_FILE_NAME),
                commands: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// Number of partitions.
    pub fn partitions(&self) -> u32 {
        self.core().partition_count()
    }

    /// Partition for `key`: FNV-1a 64 of its UTF-8 bytes modulo the partition count; stable
    /// across versions and platforms.
    pub fn partition_for(&self, key: &str) -> u32 {
        partition_for(key, self.partitions())
    }

    /// Appends `(partition, payload)` records, keeping their order within each partition, and
    /// resolves once the group commit holding them is durable under the fsync policy.
    ///
    /// With `idempotency_key`, a key already committed (and not yet expired) writes nothing and
    /// returns the original receipt with `duplicate: true`. Dropping the future after it was
    /// polled does not cancel the append.
    pub async fn append(
        &self,
        records: Vec<(u32, Vec<u8>)>,
        idempotency_key: Option<String>,
    ) -> Result<AppendReceipt, LogError> {
        if let Some(receipt) = self.check_append(&records, &idempotency_key)? {
            return Ok(receipt);
        }
        let (tx, rx) = oneshot::channel();
        self.submit(Command::Append(AppendRequest {
            records,
            idempotency_key,
            reply: Reply::Async(tx),
        }))?;
        rx.await.map_err(|_| LogError::Closed)?
    }

    /// Blocking form of [`append`](Self::append), for std threads. Do not call it on an async
    /// runtime thread.
    pub fn append_blocking(
        &self,
        records: Vec<(u32, Vec<u8>)>,
        idempotency_key: Option<String>,
    ) -> Result<AppendReceipt, LogError> {
        if let Some(receipt) = self.check_append(&records, &idempotency_key)? {
            return Ok(receipt);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Command::Append(AppendRequest {
            records,
            idempotency_key,
            reply: Reply::Blocking(tx),
        }))?;
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Validates before queueing, so one bad request can never fail a whole group commit.
    /// Returns a receipt directly when there is nothing to do.
    fn check_append(
        &self,
        records: &[(u32, Vec<u8>)],
        idempotency_key: &Option<String>,
    ) -> Result<Option<AppendReceipt>, LogError> {
        let partitions = self.partitions();
        if let Some(&(bad, _)) = records.iter().find(|(p, _)| *p >= partitions) {
            return Err(LogError::InvalidPartition(bad));
        }
        too_large(records, crate::MAX_RECORD)?;
        if records.is_empty() && idempotency_key.is_none() {
            return Ok(Some(AppendReceipt {
                duplicate: false,
                ranges: Vec::new(),
            }));
        }
        Ok(None)
    }

    fn submit(&self, command: Command) -> Result<(), LogError> {
        let commands = self
            .inner
            .commands
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match commands.as_ref() {
            Some(tx) => tx.send(command).map_err(|_| LogError::Closed),
            None => Err(LogError::Closed),
        }
    }

    /// Records of `partition` with offset `>= from`, ascending, at most `max_records`.
    ///
    /// Fails with [`LogError::OffsetTruncated`] if `from` was deleted by retention. Reading at
    /// or past the end returns an empty vector.
    pub fn read(
        &self,
        partition: u32,
        from: u64,
        max_records: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let mut batch = RecordBatch::new();
        self.read_into(partition, from, max_records, &mut batch)?;
        Ok(batch.iter().map(|(o, p)| (o, p.to_vec())).collect())
    }

    /// [`read`](Self::read) into `batch` (emptied first), whose buffers a caller reading again
    /// and again keeps: no allocation per record, nor per read once they have grown.
    pub fn read_into(
        &self,
        partition: u32,
        from: u64,
        max_records: usize,
        batch: &mut RecordBatch,
    ) -> Result<(), LogError> {
        let core = self.core();
        batch.clear(from);
        core.checked(Self::read_from(core, partition, from, max_records, batch))
    }

    fn read_from(
        core: &Core,
        partition: u32,
        from: u64,
        max_records: usize,
        out: &mut RecordBatch,
    ) -> Result<(), LogError> {
        let tables = core.tables(partition)?;
        let txn = core.db.get()?.begin_read()?;
        let chunks = txn.open_table(tables.chunks())?;
        // The truncation check uses the same snapshot as the read, so a concurrent retention
        // run can never make this silently skip records.
        let first_available = match chunks.first()? {
            Some((k, _)) => k.value(),
            None => {
                let meta = txn.open_table(META)?;
                let start = meta.get(tables.start_key())?.map(|v| v.value());
                start.unwrap_or(0)
            }
        };
        if from < first_available {
            return Err(LogError::OffsetTruncated {
                partition,
                requested: from,
                first_available,
            });
        }
        if max_records == 0 {
            return Ok(());
        }
        // The chunk holding `from` is the last one keyed at or before it.
        let Some(holding) = chunks.range(..=from)?.next_back() else {
            return Ok(());
        };
        let start = holding?.0.value();
        for entry in chunks.range(start..)? {
            let (k, v) = entry?;
            let first = k.value();
            for (offset, payload) in (first..).zip(chunk::records(v.value(), partition, first)) {
                if offset < from {
                    continue;
                }
                out.push(payload?);
                if out.len() == max_records {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Next offset to be assigned in `partition` (committed records only); 0 for a partition
    /// that does not exist. Lock-free.
    pub fn end_offset(&self, partition: u32) -> u64 {
        self.core()
            .partition(partition)
            .map_or(0, |p| p.end.load(Ordering::Acquire))
    }

    /// First retained offset of `partition` (equal to the end offset if retention emptied it).
    pub fn start_offset(&self, partition: u32) -> Result<u64, LogError> {
        Ok(self
            .core()
            .partition(partition)?
            .start
            .load(Ordering::Acquire))
    }

    /// Blocks the calling std thread until `end_offset(partition) > offset` or `timeout`
    /// passes. True if the data is available. False at once for a partition that does not
    /// exist.
    pub fn wait_for(&self, partition: u32, offset: u64, timeout: Duration) -> bool {
        self.core().wait_for(partition, offset, timeout)
    }

    /// Deletes records past `retention_age` or beyond `retention_bytes` (oldest first across
    /// partitions), but never one at or above `safe_offsets[p]`; a partition missing from
    /// `safe_offsets` keeps everything. Also expires idempotency keys. Runs on the writer
    /// thread, so it waits for queued appends; call it from a std thread or `spawn_blocking`.
    pub fn apply_retention(&self, safe_offsets: &[u64]) -> Result<RetentionReport, LogError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(Command::Retention {
            safe_offsets: safe_offsets.to_vec(),
            reply: tx,
        })?;
        rx.recv().map_err(|_| LogError::Closed)?
    }

    /// Why the log cannot take appends now, while it cannot: its file failed (a full disk) and is
    /// not reopened yet or the disk has not taken a write since, or it was reopened without records it had acknowledged (only possible
    /// with `fsync: never`; then only a restart, which replays from the checkpoints, helps).
    pub fn failure(&self) -> Option<String> {
        let core = self.core();
        let lost = core
            .lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        lost.or_else(|| core.db.failure())
    }

    /// Approximate payload bytes retained, all partitions.
    pub fn size_bytes(&self) -> u64 {
        self.core().total_bytes()
    }

    /// Stops the writer after it has committed every queued append, for this handle and all its
    /// clones (their later appends fail with [`LogError::Closed`]). Dropping the last clone does
    /// the same.
    pub fn close(self) {
        self.inner.shutdown();
    }
}

/// Opens the database, checks the schema and recovers the in-memory state; returns it with the
/// latest batch append time. No writer is started.
pub(crate) fn open_core(
    dir: &Path,
    config: LogConfig,
    clock: Clock,
) -> Result<(Arc<Core>, u64), LogError> {
    config.validate()?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(LOG_FILE_NAME);
    let db = DbFile::open(&path, config.cache_bytes)?;
    let tables: Vec<PartitionTables> = (0..config.partitions).map(PartitionTables::new).collect();
    let (partitions, last_time_ms) = {
        let handle = db.get()?;
        init_schema(&handle, config.partitions, &tables)?;
        recover(&handle, &tables)?
    };
    info!(
        path = %path.display(),
        partitions = config.partitions,
        end_offsets = ?partitions.iter().map(|p| p.end.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "log opened"
    );
    let core = Core {
        db,
        lost: std::sync::Mutex::new(None),
        config,
        tables,
        partitions,
        clock,
    };
    Ok((Arc::new(core), last_time_ms))
}

/// Creates the tables and records the partition count, or checks it against an existing file.
fn init_schema(db: &Database, configured: u32, tables: &[PartitionTables]) -> Result<(), LogError> {
    let mut txn = db.begin_write()?;
    // The partition count must be durable before any record is routed by it.
    txn.set_durability(Durability::Immediate)?;
    {
        let mut meta = txn.open_table(META)?;
        let existing = meta.get(META_PARTITIONS)?.map(|v| v.value());
        match existing {
            Some(e) if e != u64::from(configured) => {
                return Err(LogError::PartitionCountChanged {
                    existing: u32::try_from(e).unwrap_or(u32::MAX),
                    configured,
                });
            }
            Some(_) => {}
            None => {
                meta.insert(META_PARTITIONS, u64::from(configured))?;
            }
        }
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(IDEMPOTENCY_BY_TIME)?;
        for (partition, t) in (0u32..).zip(tables) {
            txn.open_table(t.chunks())?;
            txn.open_table(t.batches())?;
            move_records_into_chunks(&txn, partition, t)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Rewrites the one-row-per-record table of a file written before chunks as chunks: once, in the
/// transaction that opens such a file, so nothing else ever reads the old layout. Offsets, the
/// batch index and the byte counts do not change.
///
/// The old table's name is then taken by an empty table of another type, which an earlier
/// release's open refuses: it would otherwise find no records, start its offsets again from the
/// retained start and hand out offsets the checkpoints have already passed.
fn move_records_into_chunks(
    txn: &redb::WriteTransaction,
    partition: u32,
    tables: &PartitionTables,
) -> Result<(), LogError> {
    let records = match txn.open_table(tables.legacy_records()) {
        Ok(records) => records,
        // Already moved: the name holds the guard.
        Err(redb::TableError::TableTypeMismatch { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    {
        let mut chunks = txn.open_table(tables.chunks())?;
        let mut builder = chunk::Builder::default();
        let mut moved = 0u64;
        for entry in records.range::<u64>(..)? {
            let (k, v) = entry?;
            if let Some((first, bytes)) = builder.push(k.value(), v.value()) {
                chunks.insert(first, bytes.as_slice())?;
            }
            moved += 1;
        }
        if let Some((first, bytes)) = builder.take() {
            chunks.insert(first, bytes.as_slice())?;
        }
        if moved > 0 {
            info!(partition, records = moved, "log records moved into chunks");
        }
    }
    drop(records);
    txn.delete_table(tables.legacy_records())?;
    txn.open_table(tables.downgrade_guard())?;
    Ok(())
}

/// Rebuilds the in-memory offsets and sizes from the file, and returns the latest batch time.
pub(crate) fn recover(
    db: &Database,
    tables: &[PartitionTables],
) -> Result<(Vec<PartitionState>, u64), LogError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let mut states = Vec::with_capacity(tables.len());
    let mut last_time_ms = 0u64;
    for (partition, t) in (0u32..).zip(tables) {
        let chunks = txn.open_table(t.chunks())?;
        let index = txn.open_table(t.batches())?;
        let retained_start = meta.get(t.start_key())?.map_or(0, |v| v.value());
        let bytes = meta.get(t.bytes_key())?.map_or(0, |v| v.value());
        let first = chunks.first()?.map(|(k, _)| k.value());
        let last_end = match chunks.last()? {
            Some((k, v)) => {
                let first = k.value();
                Some(first + chunk::count(v.value(), partition, first)?.0)
            }
            None => None,
        };
        // An emptied partition continues after its retained start: offsets are never reused.
        let end = last_end.unwrap_or(0).max(retained_start);
        let start = first.unwrap_or(end);
        if let Some((_, v)) = index.last()? {
            last_time_ms = last_time_ms.max(v.value().0);
        }
        states.push(PartitionState::new(start, end, bytes));
    }
    Ok((states, last_time_ms))
}

/// Refuses the append if a record is longer than `limit`, naming the first such record.
fn too_large(records: &[(u32, Vec<u8>)], limit: usize) -> Result<(), LogError> {
    match records.iter().find(|(_, r)| r.len() > limit) {
        Some((partition, payload)) => Err(LogError::RecordTooLarge {
            partition: *partition,
            bytes: payload.len(),
            limit,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
