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
//!
//! Exactly-once groups write *tentative* checkpoints instead: `chk-<id>-<writer>.ckpt`, where the
//! writer token is unique to the process, so a worker that lost its partitions without knowing it
//! (a zombie) can never overwrite its successor's blob. Such a checkpoint counts only once the
//! Kafka transaction that names it (in its committed offset's metadata) has committed; it is
//! read by that name ([`PartitionCheckpointStore::get`]) and older ones are pruned only then
//! ([`PartitionCheckpointStore::prune_before`]), never on write.

use streampulse_core::time::Millis;

use super::store::{decode, encode, newest_readable, prune};
use super::{Checkpoint, CheckpointError, CheckpointStorage, PartitionCheckpoint};

mod savepoint;
pub use savepoint::SavepointRequest;

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

    /// Writes a tentative checkpoint `id` of one partition under a name no other writer uses
    /// (see the module docs); nothing is pruned. Returns the reference that
    /// [`PartitionCheckpointStore::get`] takes, and the size in bytes.
    pub fn write_tentative(
        &self,
        id: u64,
        writer: &str,
        created_ms: Millis,
        snapshot: PartitionCheckpoint,
    ) -> Result<(String, usize), CheckpointError> {
        let reference = format!("{id:020}-{writer}");
        let name = format!("{}{reference}.ckpt", self.prefix(snapshot.partition));
        let checkpoint = Checkpoint::new(id, &self.job, created_ms, vec![snapshot]);
        let bytes = encode(&checkpoint)?;
        self.storage.put(&name, &bytes)?;
        Ok((reference, bytes.len()))
    }

    /// The checkpoint of `partition` that `reference` names (from
    /// [`PartitionCheckpointStore::write_tentative`]) and its id, if the storage holds it.
    pub fn get(
        &self,
        partition: u32,
        reference: &str,
    ) -> Result<Option<(u64, PartitionCheckpoint)>, CheckpointError> {
        let name = format!("{}{reference}.ckpt", self.prefix(partition));
        match self.storage.get(&name)? {
            Some(bytes) => self.read(partition, &name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the checkpoints of `partition` older than the one `reference` names, but for the
    /// `retain - 1` newest of them. Tentative checkpoints newer than it (left by a transaction
    /// that never committed) go once a later committed one passes them.
    pub fn prune_before(&self, partition: u32, reference: &str) -> Result<(), CheckpointError> {
        let prefix = self.prefix(partition);
        let committed = format!("{prefix}{reference}.ckpt");
        let older: Vec<String> = self
            .storage
            .list(&prefix)?
            .into_iter()
            .filter(|name| *name < committed)
            .collect();
        let keep = self.retain.saturating_sub(1);
        if older.len() > keep {
            for name in &older[..older.len() - keep] {
                self.storage.delete(name)?;
            }
        }
        Ok(())
    }

    /// The highest id among the checkpoints of `partition`, tentative ones included (0: none).
    pub fn max_id(&self, partition: u32) -> Result<u64, CheckpointError> {
        let prefix = self.prefix(partition);
        Ok(self
            .storage
            .list(&prefix)?
            .iter()
            .filter_map(|name| name.get(prefix.len()..prefix.len() + 20)?.parse().ok())
            .max()
            .unwrap_or(0))
    }

    /// The latest checkpoint of `partition` and its id, if there is one.
    pub fn latest(
        &self,
        partition: u32,
    ) -> Result<Option<(u64, PartitionCheckpoint)>, CheckpointError> {
        self.newest(partition, |_| true)
    }

    /// The latest checkpoint of `partition` that is not tentative (written outside transactions,
    /// before the job turned `exactly_once` on), if there is one.
    pub fn latest_committed_outside_transactions(
        &self,
        partition: u32,
    ) -> Result<Option<(u64, PartitionCheckpoint)>, CheckpointError> {
        // A tentative name has `-<writer>` after the id.
        self.newest(partition, |id_and_writer| !id_and_writer.contains('-'))
    }

    /// The newest readable checkpoint of `partition` among those whose name after the prefix
    /// passes `keep`.
    fn newest(
        &self,
        partition: u32,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Option<(u64, PartitionCheckpoint)>, CheckpointError> {
        let prefix = self.prefix(partition);
        let names: Vec<String> = self
            .storage
            .list(&prefix)?
            .into_iter()
            .filter(|name| keep(&name[prefix.len()..]))
            .collect();
        newest_readable(self.storage.as_ref(), &names, |name, bytes| {
            self.read(partition, name, bytes)
        })
    }

    fn read(
        &self,
        partition: u32,
        name: &str,
        bytes: &[u8],
    ) -> Result<(u64, PartitionCheckpoint), CheckpointError> {
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
    fn tentative_checkpoints_never_collide_and_are_pruned_only_behind_a_committed_one() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileCheckpointStorage::open(dir.path()).unwrap();
        let s = PartitionCheckpointStore::new(Box::new(storage), "job", 2);
        s.write(1, 0, snapshot(3, 50)).unwrap();
        let (a, _) = s.write_tentative(2, "aaaa", 0, snapshot(3, 100)).unwrap();
        // A zombie writes the same id: its own name, the worker's blob untouched.
        let (z, _) = s.write_tentative(2, "zzzz", 0, snapshot(3, 999)).unwrap();
        assert_ne!(a, z);
        let (id, got) = s.get(3, &a).unwrap().unwrap();
        assert_eq!((id, got.next_offset), (2, 100));
        assert_eq!(s.get(3, &z).unwrap().unwrap().1.next_offset, 999);
        assert!(s.get(3, "00000000000000000009-none").unwrap().is_none());
        // Writing does not prune; the latest outside transactions is the plain one.
        let (b, _) = s.write_tentative(3, "aaaa", 0, snapshot(3, 150)).unwrap();
        let (c, _) = s.write_tentative(4, "aaaa", 0, snapshot(3, 200)).unwrap();
        let files = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path().join("job/partitions/00003"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(files().len(), 5);
        let (id, plain) = s.latest_committed_outside_transactions(3).unwrap().unwrap();
        assert_eq!((id, plain.next_offset), (1, 50));
        // Committing `b` keeps it and one older blob (retain 2), and what came after it.
        s.prune_before(3, &b).unwrap();
        assert_eq!(
            files(),
            [z.clone(), b.clone(), c.clone()].map(|r| format!("chk-{r}.ckpt"))
        );
        s.prune_before(3, &c).unwrap();
        assert_eq!(files(), [b, c].map(|r| format!("chk-{r}.ckpt")));
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
