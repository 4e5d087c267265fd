//! One embedded log read by several jobs, each at its own offsets.
//!
//! Every job of a process reads the same log (HTTP ingest appends to it once), and each
//! checkpoints on its own schedule. Retention may delete a record only when *every* attached job
//! has checkpointed past it, so [`SharedLog`] remembers what each job last released and hands the
//! log the element-wise minimum. A job that is attached but has not checkpointed yet holds back
//! everything, and so does a [`RetentionHold`] (taken while a process starts its jobs, so that
//! the first to checkpoint cannot delete what the others, not yet attached, still need).
//!
//! A job stays attached when it stops with the process, or when the configured job is stopped
//! (both resume from their checkpoints). Only a submitted job stopped for good detaches
//! ([`SharedLog::detach`]): it no longer holds retention back.
//!
//! Retention runs under the same lock as attaching, so a job attached while retention runs never
//! starts at an offset that is being deleted.
//!
//! This module never reads or writes records itself: [`LogReader`] passes reads and appends
//! through to the log unchanged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streampulse_log::{EmbeddedLog, RecordBatch};

use crate::source::{EventSource, SourceError};

/// The log, and what each job that reads it has released.
pub struct SharedLog {
    log: EmbeddedLog,
    /// Job name → offsets released by its last checkpoint; `None` until it has checkpointed.
    released: Mutex<BTreeMap<String, Option<Vec<u64>>>>,
}

impl SharedLog {
    pub fn new(log: EmbeddedLog) -> Arc<Self> {
        Arc::new(Self {
            log,
            released: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn log(&self) -> &EmbeddedLog {
        &self.log
    }

    /// Attaches `job`: until it detaches, retention keeps everything it has not released.
    pub fn reader(self: &Arc<Self>, job: &str) -> Arc<LogReader> {
        self.lock().insert(job.to_string(), None);
        Arc::new(LogReader {
            shared: self.clone(),
            job: job.to_string(),
        })
    }

    /// Holds everything back until the hold is dropped. `name` must not be a job's name (use
    /// a '.', which job names cannot contain).
    pub fn hold(self: &Arc<Self>, name: &str) -> RetentionHold {
        self.lock().insert(name.to_string(), None);
        RetentionHold {
            shared: self.clone(),
            name: name.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<Vec<u64>>>> {
        // The map stays consistent even if a holder panicked.
        self.released.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self, job: &str, offsets: &[u64]) -> Result<(), SourceError> {
        // Held through the retention run: see the module docs.
        let mut released = self.lock();
        if let Some(entry) = released.get_mut(job) {
            *entry = Some(offsets.to_vec());
        }
        match safe_offsets(&released) {
            Some(safe) => {
                self.log.apply_retention(&safe)?;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Attaches `job` without a reader (it failed to start again): retention keeps everything
    /// until it detaches or checkpoints as a reader again.
    pub fn keep(&self, job: &str) {
        self.lock().insert(job.to_string(), None);
    }

    /// `job` has stopped for good: what it has not read no longer needs to be kept for it.
    pub fn detach(&self, job: &str) {
        self.lock().remove(job);
    }
}

/// Keeps retention from deleting anything while it lives.
pub struct RetentionHold {
    shared: Arc<SharedLog>,
    name: String,
}

impl Drop for RetentionHold {
    fn drop(&mut self) {
        self.shared.detach(&self.name);
    }
}

/// Offsets below which every attached job has released the log; `None` while some attached job
/// (or hold) has not checkpointed, or none is attached.
fn safe_offsets(released: &BTreeMap<String, Option<Vec<u64>>>) -> Option<Vec<u64>> {
    let mut safe: Option<Vec<u64>> = None;
    for offsets in released.values() {
        let offsets = offsets.as_ref()?;
        safe = Some(match safe {
            None => offsets.clone(),
            Some(s) => s.iter().zip(offsets).map(|(a, b)| *a.min(b)).collect(),
        });
    }
    safe
}

/// One job's view of a [`SharedLog`].
pub struct LogReader {
    shared: Arc<SharedLog>,
    job: String,
}

impl EventSource for LogReader {
    fn partitions(&self) -> u32 {
        self.shared.log.partitions()
    }

    fn start_offset(&self, partition: u32) -> u64 {
        EventSource::start_offset(&self.shared.log, partition)
    }

    fn end_offset(&self, partition: u32) -> u64 {
        self.shared.log.end_offset(partition)
    }

    fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
        batch: &mut RecordBatch,
    ) -> Result<(), SourceError> {
        EventSource::read(&self.shared.log, partition, from, max, batch)
    }

    fn wait_for(&self, partition: u32, offset: u64, timeout: Duration) -> bool {
        self.shared.log.wait_for(partition, offset, timeout)
    }

    fn append_idle_marker(
        &self,
        job: &str,
        partition: u32,
        decided_at: u64,
    ) -> Result<(), SourceError> {
        self.shared
            .log
            .append_idle_marker(job, partition, decided_at)
    }

    fn release(&self, offsets: &[u64]) -> Result<(), SourceError> {
        self.shared.release(&self.job, offsets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streampulse_log::LogConfig;

    fn log(dir: &std::path::Path) -> EmbeddedLog {
        let config = LogConfig {
            partitions: 2,
            // Everything checkpointed may go: only the safe offsets protect a record.
            retention_bytes: Some(0),
            retention_age: None,
            ..LogConfig::default()
        };
        EmbeddedLog::open(dir, config).unwrap()
    }

    fn fill(log: &EmbeddedLog, per_partition: u64) {
        let records = (0..per_partition)
            .flat_map(|i| [(0, vec![i as u8]), (1, vec![i as u8])])
            .collect();
        log.append_blocking(records, None).unwrap();
    }

    #[test]
    fn retention_keeps_what_the_slowest_attached_job_needs() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        fill(&log, 10);
        let shared = SharedLog::new(log.clone());
        let fast = shared.reader("fast");
        let slow = shared.reader("slow");

        // The slow job has not checkpointed yet: nothing may go.
        fast.release(&[8, 9]).unwrap();
        assert_eq!(EventSource::start_offset(&*fast, 0), 0);
        assert_eq!(EventSource::start_offset(&*fast, 1), 0);

        slow.release(&[3, 10]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 3);
        assert_eq!(log.start_offset(1).unwrap(), 9);

        // Once the slow job stops for good, the fast one alone decides.
        shared.detach("slow");
        fast.release(&[8, 9]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 8);
        assert_eq!(log.start_offset(1).unwrap(), 9);
    }

    #[test]
    fn a_job_attached_later_holds_retention_back_until_its_first_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        fill(&log, 10);
        let shared = SharedLog::new(log.clone());
        let first = shared.reader("first");
        first.release(&[4, 4]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 4);
        let second = shared.reader("second");
        first.release(&[10, 10]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 4);
        second.release(&[6, 7]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 6);
        assert_eq!(log.start_offset(1).unwrap(), 7);
    }

    #[test]
    fn a_hold_keeps_everything_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = log(dir.path());
        fill(&log, 10);
        let shared = SharedLog::new(log.clone());
        let hold = shared.hold("startup.hold");
        let job = shared.reader("job");
        job.release(&[5, 5]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 0);
        drop(hold);
        job.release(&[5, 5]).unwrap();
        assert_eq!(log.start_offset(0).unwrap(), 5);
    }
}
