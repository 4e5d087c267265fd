//! Where a job's events come from: a partitioned, offset-addressed, replayable source.
//!
//! Workers and the checkpoint coordinator see the source only through [`EventSource`], so the
//! embedded log today and a Kafka consumer later run the same pipeline, checkpoint and recovery
//! code. A source must return a partition's records in offset order and return the same records
//! for the same offsets on every read: replay after a crash depends on it.

use std::time::Duration;

use streampulse_log::{EmbeddedLog, RecordBatch};

use crate::record;

/// Why a source could not read, append or release.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source: {0}")]
    Log(#[from] streampulse_log::LogError),
    #[error("source: {0}")]
    Record(#[from] record::RecordError),
}

pub trait EventSource: Send + Sync {
    fn partitions(&self) -> u32;
    /// The first offset still available in `partition` (0 when nothing was ever deleted).
    fn start_offset(&self, partition: u32) -> u64;
    /// The offset the next record of `partition` will get.
    fn end_offset(&self, partition: u32) -> u64;
    /// Up to `max` records at offsets `>= from`, in offset order, into `batch` (emptied first;
    /// the caller keeps it across reads, so that its buffers are reused).
    fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
        batch: &mut RecordBatch,
    ) -> Result<(), SourceError>;
    /// Blocks until a record at `offset` exists or `timeout` passes; true if one does.
    fn wait_for(&self, partition: u32, offset: u64, timeout: Duration) -> bool;
    /// Makes `job`'s idle flush part of the partition's input (see [`crate::record`]);
    /// `decided_at` is the end offset at which the partition was found idle.
    fn append_idle_marker(
        &self,
        job: &str,
        partition: u32,
        decided_at: u64,
    ) -> Result<(), SourceError>;
    /// Everything before `offsets[p]` is covered by a completed checkpoint: the source may release
    /// it (retention, committed consumer offsets).
    fn release(&self, offsets: &[u64]) -> Result<(), SourceError>;
}

impl EventSource for EmbeddedLog {
    fn partitions(&self) -> u32 {
        EmbeddedLog::partitions(self)
    }

    fn end_offset(&self, partition: u32) -> u64 {
        EmbeddedLog::end_offset(self, partition)
    }

    fn start_offset(&self, partition: u32) -> u64 {
        EmbeddedLog::start_offset(self, partition).unwrap_or(0)
    }

    fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
        batch: &mut RecordBatch,
    ) -> Result<(), SourceError> {
        Ok(EmbeddedLog::read_into(self, partition, from, max, batch)?)
    }

    fn wait_for(&self, partition: u32, offset: u64, timeout: Duration) -> bool {
        EmbeddedLog::wait_for(self, partition, offset, timeout)
    }

    fn append_idle_marker(
        &self,
        job: &str,
        partition: u32,
        decided_at: u64,
    ) -> Result<(), SourceError> {
        let marker = record::encode_idle_flush(job, decided_at)?;
        self.append_blocking(vec![(partition, marker)], None)?;
        Ok(())
    }

    fn release(&self, offsets: &[u64]) -> Result<(), SourceError> {
        self.apply_retention(offsets)?;
        Ok(())
    }
}
