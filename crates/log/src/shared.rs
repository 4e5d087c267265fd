//! State shared by the log handles and the writer thread: the database, the per-partition
//! offsets and sizes kept in memory, and the wake-up signals for readers.
//!
//! Only the writer thread may advance these counters, and only after the transaction that
//! justifies them has committed; readers must never see an offset that is not committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::Durability;
use streampulse_dbfile::DbFile;

use crate::config::{FsyncPolicy, LogConfig};
use crate::error::LogError;
use crate::schema::PartitionTables;

/// Wall clock in milliseconds since the Unix epoch; injectable so retention can be tested
/// without sleeping.
pub(crate) type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub(crate) fn system_clock() -> Clock {
    Arc::new(|| u64::try_from(streampulse_core::clock::now_ms()).unwrap_or(0))
}

/// One partition's in-memory view. Atomics so reads never take a lock.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    /// Next offset to assign: every offset below it is committed.
    pub(crate) end: AtomicU64,
    /// First retained offset.
    pub(crate) start: AtomicU64,
    /// Payload bytes retained.
    pub(crate) bytes: AtomicU64,
    /// Waiters for new data park here; the mutex guards nothing but the wake-up handshake.
    signal: Mutex<()>,
    arrived: Condvar,
}

impl PartitionState {
    pub(crate) fn new(start: u64, end: u64, bytes: u64) -> Self {
        Self {
            end: AtomicU64::new(end),
            start: AtomicU64::new(start),
            bytes: AtomicU64::new(bytes),
            ..Self::default()
        }
    }
}

pub(crate) struct Core {
    /// Reopened after an I/O failure; see [`Core::checked`].
    pub(crate) db: DbFile,
    /// Set when a reopened file lacks records that were acknowledged: the log refuses appends
    /// from then on (only `fsync: never` can get here).
    pub(crate) lost: Mutex<Option<String>>,
    pub(crate) config: LogConfig,
    pub(crate) tables: Vec<PartitionTables>,
    pub(crate) partitions: Vec<PartitionState>,
    pub(crate) clock: Clock,
}

impl Core {
    /// `result` of an operation on the database, after closing the file if it failed with an I/O
    /// error (the next operation reopens it).
    pub(crate) fn checked<T>(&self, result: Result<T, LogError>) -> Result<T, LogError> {
        if let Err(LogError::Unavailable(reason)) = &result {
            self.db.fail(reason);
        }
        result
    }

    pub(crate) fn now_ms(&self) -> u64 {
        (self.clock)()
    }

    pub(crate) fn durability(&self) -> Durability {
        match self.config.fsync {
            FsyncPolicy::Always => Durability::Immediate,
            FsyncPolicy::Never => Durability::None,
        }
    }

    pub(crate) fn partition_count(&self) -> u32 {
        self.config.partitions
    }

    pub(crate) fn partition(&self, partition: u32) -> Result<&PartitionState, LogError> {
        self.partitions
            .get(partition as usize)
            .ok_or(LogError::InvalidPartition(partition))
    }

    pub(crate) fn tables(&self, partition: u32) -> Result<&PartitionTables, LogError> {
        self.tables
            .get(partition as usize)
            .ok_or(LogError::InvalidPartition(partition))
    }

    /// Publishes a new end offset after its commit and wakes the partition's waiters.
    pub(crate) fn publish_end(&self, partition: u32, end: u64) {
        let Some(state) = self.partitions.get(partition as usize) else {
            return;
        };
        // Stored before taking the lock: a waiter checks `end` while holding it, so it either
        // sees the new value or is already parked when we notify. No wake-up is lost.
        state.end.store(end, Ordering::Release);
        let _guard = state.signal.lock().unwrap_or_else(PoisonError::into_inner);
        state.arrived.notify_all();
    }

    /// Blocks until `end > offset` or `timeout` passes.
    pub(crate) fn wait_for(&self, partition: u32, offset: u64, timeout: Duration) -> bool {
        let Some(state) = self.partitions.get(partition as usize) else {
            return false;
        };
        if state.end.load(Ordering::Acquire) > offset {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut guard = state.signal.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.end.load(Ordering::Acquire) > offset {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = match state.arrived.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    pub(crate) fn total_bytes(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.bytes.load(Ordering::Acquire))
            .fold(0u64, u64::saturating_add)
    }
}
