//! Checkpoints kept per partition, for jobs whose partitions move between workers.
//!
//! In a consumer group no worker holds every partition, and a partition changes hands at any
//! rebalance; so each partition's snapshot is its own blob, written by whoever owns the partition
//! at that moment and read by whoever owns it next. Layout:
//! `<job>/partitions/<partition, 5 digits>/chk-<id, 20 digits>.ckpt`, ids increasing per
//! partition. The blob is an ordinary [`Checkpoint`] with exactly one partition, so the format,
//! its version check and the corruption errors are those of whole-job checkpoints.
//!
//! Only one worker may write a partition at a time; the consumer group guarantees it (a worker
//! checkpoints a partition before it gives it up, and its successor reads it after).

use streampulse_core::time::Millis;

use super::store::{decode, encode, newest_readable, prune};
use super::{Checkpoint, CheckpointError, CheckpointStorage, PartitionCheckpoint};

pub struct PartitionCheckpointStore {
    storage: Box<dyn CheckpointStorage>,
    job: String,
    retain: usize,
}

impl PartitionCheckpointStore {
    pub fn new(storage: Box<dyn CheckpointStorage>, job: &str, retain: usize) -> Self {
        Self {
            storage,
            job: job.to_string(),
            retain: retain.max(1),
        }
    }

    pub fn describe(&self) -> String {
        self.storage.describe()
    }

    fn prefix(&self, partition: u32) -> String {
        format!("{}/partitions/{partition:05}/chk-", self.job)
    }

    /// Writes checkpoint `id` of one partition and prunes its oldest beyond `retain`; returns
    /// its size in bytes.
    pub fn write(
        &self,
        id: u64,
        created_ms: Millis,
        snapshot: PartitionCheckpoint,
    ) -> Result<usize, CheckpointError> {
        let prefix = self.prefix(snapshot.partition);
        let checkpoint = Checkpoint::new(id, &self.job, created_ms, vec![snapshot]);
        let bytes = encode(&checkpoint)?;
        self.storage
            .put(&format!("{prefix}{id:020}.ckpt"), &bytes)?;
        prune(&*self.storage, &prefix, self.retain)?;
        Ok(bytes.len())
    }

    /// The latest checkpoint of `partition` and its id, if there is one.
    pub fn latest(
        &self,
        partition: u32,
    ) -> Result<Option<(u64, PartitionCheckpoint)>, CheckpointError> {
        let names = self.storage.list(&self.prefix(partition))?;
        newest_readable(self.storage.as_ref(), &names, |name, bytes| {
            let checkpoint = decode(name, bytes)?;
            let corrupt = |reason: String| CheckpointError::Corrupt {
                name: name.to_string(),
                reason,
            };
            if checkpoint.job != self.job {
                return Err(corrupt(format!("belongs to job '{}'", checkpoint.job)));
            }
            let id = checkpoint.id;
            match <[PartitionCheckpoint; 1]>::try_from(checkpoint.partitions) {
                Ok([p]) if p.partition == partition => Ok((id, p)),
                _ => Err(corrupt(format!(
                    "does not hold exactly partition {partition}"
                ))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::FileCheckpointStorage;
    use super::*;

    fn snapshot(partition: u32, next_offset: u64) -> PartitionCheckpoint {
        PartitionCheckpoint {
            partition,
            next_offset,
            watermark: 7,
            state: vec![1, 2, 3],
        }
    }

    #[test]
    fn partitions_are_independent_and_pruned_separately() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileCheckpointStorage::open(dir.path()).unwrap();
        let s = PartitionCheckpointStore::new(Box::new(storage), "job", 2);
        assert!(s.latest(3).unwrap().is_none());
        for id in 1..=5 {
            s.write(id, 0, snapshot(3, id * 100)).unwrap();
        }
        s.write(1, 0, snapshot(11, 42)).unwrap();
        let (id, p) = s.latest(3).unwrap().unwrap();
        assert_eq!((id, p.next_offset, p.partition), (5, 500, 3));
        assert_eq!(s.latest(11).unwrap().unwrap().1.next_offset, 42);
        assert!(s.latest(4).unwrap().is_none());
        let kept = std::fs::read_dir(dir.path().join("job/partitions/00003"))
            .unwrap()
            .count();
        assert_eq!(kept, 2);
    }

    #[test]
    fn a_blob_of_another_partition_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileCheckpointStorage::open(dir.path()).unwrap();
        let s = PartitionCheckpointStore::new(Box::new(storage), "job", 2);
        s.write(1, 0, snapshot(2, 10)).unwrap();
        std::fs::create_dir_all(dir.path().join("job/partitions/00005")).unwrap();
        std::fs::copy(
            dir.path()
                .join(format!("job/partitions/00002/chk-{:020}.ckpt", 1)),
            dir.path()
                .join(format!("job/partitions/00005/chk-{:020}.ckpt", 1)),
        )
        .unwrap();
        assert!(matches!(s.latest(5), Err(CheckpointError::Corrupt { .. })));
    }
}
