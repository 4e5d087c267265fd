//! Savepoints of a consumer group, whose partitions are spread over workers: the worker asked for
//! a savepoint leaves a request in the checkpoint storage, every worker writes a part for each
//! partition it owns (its state right after a checkpoint), and the asking worker assembles the
//! parts into one savepoint once every partition of the topic has one. Layout:
//!
//! - `<job>/savepoint-requests/<name>`: a savepoint is wanted (body `stop <ms>`: the group stops
//!   once it is taken, `keep <ms>`: it goes on; `<ms>`: when it was asked for, epoch ms);
//! - `<job>/savepoint-parts/<name>/<partition, 5 digits>.ckpt`: one partition's state, written
//!   by its owner (a checkpoint holding that partition alone);
//! - `<job>/savepoints/<name>.ckpt`: the savepoint, a checkpoint holding every partition, as an
//!   embedded job's savepoint is;
//! - `<job>/savepoints/<name>.imported`: a group started from the savepoint has taken it.
//!
//! Starting a group from a savepoint imports it once: each partition's state becomes a new plain
//! checkpoint numbered above every checkpoint of the partition, which is what its next owner
//! restores (see `PartitionCheckpointStore::latest_committed_outside_transactions`); the marker
//! keeps a worker restarted later with the same `--from-savepoint` from rolling the group back.
//!
//! Never decides which worker owns what: callers write parts only for partitions they own.

use std::collections::BTreeSet;

use streampulse_core::time::Millis;

use super::super::store::{decode, encode};
use super::super::{Checkpoint, CheckpointError, PartitionCheckpoint};
use super::PartitionCheckpointStore;

/// A pending request for a group savepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointRequest {
    pub name: String,
    /// The group stops once the savepoint is taken.
    pub stop: bool,
    /// When it was asked for (epoch ms, the asking worker's clock; 0 if unknown).
    pub requested_ms: Millis,
}

fn check_name(name: &str) -> Result<(), CheckpointError> {
    if streampulse_core::name::SAVEPOINT.allows(name) {
        Ok(())
    } else {
        Err(CheckpointError::InvalidName(name.to_string()))
    }
}

impl PartitionCheckpointStore {
    fn requests_prefix(&self) -> String {
        format!("{}/savepoint-requests/", self.job)
    }

    fn parts_prefix(&self, name: &str) -> String {
        format!("{}/savepoint-parts/{name}/", self.job)
    }

    fn savepoint_path(&self, name: &str, suffix: &str) -> String {
        format!("{}/savepoints/{name}.{suffix}", self.job)
    }

    /// Asks every worker of the group for its part of savepoint `name`, at `now_ms`.
    pub fn request_savepoint(
        &self,
        name: &str,
        stop: bool,
        now_ms: Millis,
    ) -> Result<(), CheckpointError> {
        check_name(name)?;
        let body = format!("{} {now_ms}", if stop { "stop" } else { "keep" });
        self.storage.put(
            &format!("{}{name}", self.requests_prefix()),
            body.as_bytes(),
        )
    }

    /// The savepoints asked for and not finished yet.
    pub fn savepoint_requests(&self) -> Result<Vec<SavepointRequest>, CheckpointError> {
        let prefix = self.requests_prefix();
        let mut out = Vec::new();
        for path in self.storage.list(&prefix)? {
            let name = path[prefix.len()..].to_string();
            // Gone meanwhile: finished by the worker that asked.
            let Some(body) = self.storage.get(&path)? else {
                continue;
            };
            let body = String::from_utf8_lossy(&body);
            let mut words = body.split_whitespace();
            out.push(SavepointRequest {
                name,
                stop: words.next() == Some("stop"),
                requested_ms: words.next().and_then(|w| w.parse().ok()).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Writes the part of savepoint `name` for the partition `snapshot` holds.
    pub fn write_savepoint_part(
        &self,
        name: &str,
        created_ms: Millis,
        snapshot: PartitionCheckpoint,
    ) -> Result<(), CheckpointError> {
        check_name(name)?;
        let path = format!("{}{:05}.ckpt", self.parts_prefix(name), snapshot.partition);
        let part = Checkpoint::new(0, &self.job, created_ms, vec![snapshot]);
        self.storage.put(&path, &encode(&part)?)
    }

    /// The partitions that have their part of savepoint `name`.
    pub fn savepoint_parts(&self, name: &str) -> Result<BTreeSet<u32>, CheckpointError> {
        let prefix = self.parts_prefix(name);
        Ok(self
            .storage
            .list(&prefix)?
            .iter()
            .filter_map(|p| p[prefix.len()..].strip_suffix(".ckpt")?.parse().ok())
            .collect())
    }

    /// Once every partition of `0..partitions` has its part: writes savepoint `name` and returns
    /// where it is; `None` while parts are missing.
    pub fn assemble_savepoint(
        &self,
        name: &str,
        partitions: u32,
        created_ms: Millis,
    ) -> Result<Option<String>, CheckpointError> {
        let have = self.savepoint_parts(name)?;
        if (0..partitions).any(|p| !have.contains(&p)) {
            return Ok(None);
        }
        let prefix = self.parts_prefix(name);
        let mut states = Vec::with_capacity(partitions as usize);
        for p in 0..partitions {
            let path = format!("{prefix}{p:05}.ckpt");
            let Some(bytes) = self.storage.get(&path)? else {
                return Ok(None);
            };
            let (_, state) = self.read(p, &path, &bytes)?;
            states.push(state);
        }
        let path = self.savepoint_path(name, "ckpt");
        let savepoint = Checkpoint::new(0, &self.job, created_ms, states);
        self.storage.put(&path, &encode(&savepoint)?)?;
        Ok(Some(format!("{}/{path}", self.storage.describe())))
    }

    /// Forgets the request for savepoint `name` and its parts (once assembled, or given up).
    pub fn finish_savepoint(&self, name: &str) -> Result<(), CheckpointError> {
        check_name(name)?;
        self.storage
            .delete(&format!("{}{name}", self.requests_prefix()))?;
        for path in self.storage.list(&self.parts_prefix(name))? {
            self.storage.delete(&path)?;
        }
        Ok(())
    }

    /// Whether savepoint `name` exists (complete).
    pub fn savepoint_exists(&self, name: &str) -> Result<bool, CheckpointError> {
        check_name(name)?;
        Ok(self
            .storage
            .get(&self.savepoint_path(name, "ckpt"))?
            .is_some())
    }

    /// Starts the group from savepoint `name`, once: each of its partitions' state becomes a new
    /// plain checkpoint numbered above every checkpoint of that partition. `false` when the
    /// savepoint was imported before (nothing is written). The savepoint must hold exactly the
    /// partitions `0..partitions` (metrics are spread over partitions by key, so state cannot
    /// move to another partition count).
    pub fn import_savepoint(&self, name: &str, partitions: u32) -> Result<bool, CheckpointError> {
        check_name(name)?;
        let marker = self.savepoint_path(name, "imported");
        if self.storage.get(&marker)?.is_some() {
            return Ok(false);
        }
        let path = self.savepoint_path(name, "ckpt");
        let bytes = self
            .storage
            .get(&path)?
            .ok_or_else(|| CheckpointError::SavepointNotFound(name.to_string()))?;
        let savepoint = decode(&path, &bytes)?;
        let held: BTreeSet<u32> = savepoint.partitions.iter().map(|p| p.partition).collect();
        if held != (0..partitions).collect() || savepoint.partitions.len() != held.len() {
            return Err(CheckpointError::SavepointPartitions {
                name: name.to_string(),
                held: held.len(),
                wanted: partitions,
            });
        }
        let created = savepoint.created_ms;
        for state in savepoint.partitions {
            let id = self.max_id(state.partition)? + 1;
            self.write(id, created, state)?;
        }
        self.storage.put(&marker, b"imported")?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::FileCheckpointStorage;
    use super::*;

    fn state(partition: u32, next_offset: u64) -> PartitionCheckpoint {
        PartitionCheckpoint {
            partition,
            next_offset,
            watermark: 7,
            state: vec![1, 2, 3],
        }
    }

    fn store(dir: &std::path::Path) -> PartitionCheckpointStore {
        let storage = FileCheckpointStorage::open(dir).unwrap();
        PartitionCheckpointStore::new(Box::new(storage), "job", 3)
    }

    #[test]
    fn parts_from_several_writers_become_one_savepoint_once_every_partition_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (store(dir.path()), store(dir.path()));
        a.request_savepoint("sp1", true, 42).unwrap();
        let wanted = vec![SavepointRequest {
            name: "sp1".into(),
            stop: true,
            requested_ms: 42,
        }];
        assert_eq!(b.savepoint_requests().unwrap(), wanted);
        a.write_savepoint_part("sp1", 5, state(0, 10)).unwrap();
        b.write_savepoint_part("sp1", 5, state(2, 30)).unwrap();
        assert_eq!(a.assemble_savepoint("sp1", 3, 9).unwrap(), None);
        assert!(!a.savepoint_exists("sp1").unwrap());
        b.write_savepoint_part("sp1", 5, state(1, 20)).unwrap();
        let at = a.assemble_savepoint("sp1", 3, 9).unwrap().unwrap();
        assert!(at.ends_with("job/savepoints/sp1.ckpt"), "{at}");
        a.finish_savepoint("sp1").unwrap();
        assert!(b.savepoint_requests().unwrap().is_empty());
        assert!(b.savepoint_parts("sp1").unwrap().is_empty());
        assert!(b.savepoint_exists("sp1").unwrap());
        assert!(matches!(
            a.request_savepoint("../x", false, 0),
            Err(CheckpointError::InvalidName(_))
        ));
    }

    #[test]
    fn an_import_numbers_above_every_checkpoint_and_happens_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        for p in 0..2 {
            s.write_savepoint_part("sp", 0, state(p, 100 + u64::from(p)))
                .unwrap();
        }
        s.assemble_savepoint("sp", 2, 0).unwrap().unwrap();
        // Later progress of the old run, plain and tentative.
        s.write(4, 0, state(0, 400)).unwrap();
        s.write_tentative(9, "w", 0, state(1, 900)).unwrap();

        assert!(matches!(
            s.import_savepoint("sp", 3),
            Err(CheckpointError::SavepointPartitions { wanted: 3, .. })
        ));
        assert!(s.import_savepoint("sp", 2).unwrap());
        let (id, restored) = s.latest_committed_outside_transactions(0).unwrap().unwrap();
        assert_eq!((id, restored.next_offset), (5, 100));
        let (id, restored) = s.latest_committed_outside_transactions(1).unwrap().unwrap();
        assert_eq!((id, restored.next_offset), (10, 101));
        // The run goes on from there; a restart with the same flag does not roll it back.
        s.write(6, 0, state(0, 600)).unwrap();
        assert!(!s.import_savepoint("sp", 2).unwrap());
        assert_eq!(s.latest(0).unwrap().unwrap().1.next_offset, 600);
        assert!(matches!(
            s.import_savepoint("none", 2),
            Err(CheckpointError::SavepointNotFound(_))
        ));
    }
}
