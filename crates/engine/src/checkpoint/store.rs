//! Naming, listing, pruning and decoding checkpoints on top of a [`CheckpointStorage`].
//!
//! Layout: `<job>/chk-<id, 20 digits>.ckpt` for checkpoints (sorted names = sorted ids) and
//! `<job>/savepoints/<name>.ckpt` for savepoints. Only the last `retain` checkpoints are kept.

use serde::{Deserialize, Serialize};
use streampulse_core::job::Job;
use streampulse_core::pipeline::{PartitionPipeline, PipelineState};
use streampulse_core::time::Millis;

use streampulse_core::pipeline::RestoreError;

use super::{CheckpointError, CheckpointStorage};

/// Why a partition's state could not be snapshotted or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot encode the state of partition {partition}: {source}")]
    Encode {
        partition: u32,
        #[source]
        source: postcard::Error,
    },
    #[error("cannot restore partition {partition}: its state does not decode: {source}")]
    Decode {
        partition: u32,
        #[source]
        source: postcard::Error,
    },
    /// The job changed in a way its saved state cannot follow (a window, a detector, lateness).
    #[error("cannot restore partition {partition}: {source}")]
    Incompatible {
        partition: u32,
        #[source]
        source: RestoreError,
    },
}

/// Bumped when the checkpoint layout changes incompatibly.
const CHECKPOINT_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionCheckpoint {
    pub partition: u32,
    /// The first log offset not covered by `state`: processing resumes here.
    pub next_offset: u64,
    pub watermark: Millis,
    /// postcard-encoded `PipelineState`.
    pub state: Vec<u8>,
}

impl PartitionCheckpoint {
    /// The snapshot of `pipeline`, whose state covers every offset before `next_offset`.
    pub fn of(
        partition: u32,
        next_offset: u64,
        pipeline: &PartitionPipeline,
    ) -> Result<Self, SnapshotError> {
        Self::of_sized(partition, next_offset, pipeline, 0)
    }

    /// [`Self::of`] into a buffer of about `last_size` bytes (the partition's last snapshot, or
    /// 0): the state of ten thousand metrics is megabytes, and a buffer doubled up to that
    /// copied it twice over, a sixth of the snapshot's time, with the partition's events waiting.
    pub fn of_sized(
        partition: u32,
        next_offset: u64,
        pipeline: &PartitionPipeline,
        last_size: usize,
    ) -> Result<Self, SnapshotError> {
        // Room for some growth since the last one.
        let buf = Vec::with_capacity(last_size.saturating_add(last_size / 8));
        let state = postcard::to_extend(pipeline.state(), buf)
            .map_err(|source| SnapshotError::Encode { partition, source })?;
        Ok(Self {
            partition,
            next_offset,
            watermark: pipeline.watermark(),
            state,
        })
    }

    /// The pipeline this snapshot holds, checked against `job` (a changed window, detector or
    /// lateness is refused rather than silently mixed with old state).
    pub fn restore(&self, job: &Job) -> Result<PartitionPipeline, SnapshotError> {
        let partition = self.partition;
        let state: PipelineState = postcard::from_bytes(&self.state)
            .map_err(|source| SnapshotError::Decode { partition, source })?;
        PartitionPipeline::restore(job, state)
            .map_err(|source| SnapshotError::Incompatible { partition, source })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    pub id: u64,
    pub job: String,
    /// Wall-clock time of completion, epoch ms.
    pub created_ms: Millis,
    pub partitions: Vec<PartitionCheckpoint>,
}

impl Checkpoint {
    pub fn new(
        id: u64,
        job: &str,
        created_ms: Millis,
        partitions: Vec<PartitionCheckpoint>,
    ) -> Self {
        Self {
            format: CHECKPOINT_FORMAT,
            id,
            job: job.to_string(),
            created_ms,
            partitions,
        }
    }
}

pub struct CheckpointStore {
    storage: Box<dyn CheckpointStorage>,
    job: String,
    retain: usize,
}

impl CheckpointStore {
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

    fn checkpoint_name(&self, id: u64) -> String {
        format!("{}/chk-{id:020}.ckpt", self.job)
    }

    fn savepoint_name(&self, name: &str) -> String {
        format!("{}/savepoints/{name}.ckpt", self.job)
    }

    /// Writes a checkpoint and prunes the oldest beyond `retain`. Returns its size in bytes.
    pub fn write(&self, checkpoint: &Checkpoint) -> Result<usize, CheckpointError> {
        let bytes = encode(checkpoint)?;
        self.storage
            .put(&self.checkpoint_name(checkpoint.id), &bytes)?;
        prune(&*self.storage, &format!("{}/chk-", self.job), self.retain)?;
        Ok(bytes.len())
    }

    pub fn write_savepoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
    ) -> Result<String, CheckpointError> {
        if !streampulse_core::name::SAVEPOINT.allows(name) {
            return Err(CheckpointError::InvalidName(name.to_string()));
        }
        let path = self.savepoint_name(name);
        self.storage.put(&path, &encode(checkpoint)?)?;
        Ok(format!("{}/{path}", self.storage.describe()))
    }

    /// The highest id of the checkpoints kept (0 when there is none). New checkpoints must be
    /// numbered above it, also after a restore from an older savepoint: ids order checkpoints.
    pub fn max_id(&self) -> Result<u64, CheckpointError> {
        let prefix = format!("{}/chk-", self.job);
        Ok(self
            .storage
            .list(&prefix)?
            .iter()
            .filter_map(|n| {
                n.strip_prefix(&prefix)?
                    .strip_suffix(".ckpt")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0))
    }

    /// The most recent checkpoint that reads back whole, if any (see [`newest_readable`]).
    pub fn latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let names = self.storage.list(&format!("{}/chk-", self.job))?;
        newest_readable(self.storage.as_ref(), &names, decode)
    }

    pub fn savepoint(&self, name: &str) -> Result<Checkpoint, CheckpointError> {
        if !streampulse_core::name::SAVEPOINT.allows(name) {
            return Err(CheckpointError::InvalidName(name.to_string()));
        }
        let path = self.savepoint_name(name);
        let bytes = self
            .storage
            .get(&path)?
            .ok_or_else(|| CheckpointError::SavepointNotFound(name.to_string()))?;
        decode(&path, &bytes)
    }

    pub fn savepoints(&self) -> Result<Vec<String>, CheckpointError> {
        let prefix = format!("{}/savepoints/", self.job);
        Ok(self
            .storage
            .list(&prefix)?
            .into_iter()
            .filter_map(|n| {
                n.strip_prefix(&prefix)?
                    .strip_suffix(".ckpt")
                    .map(str::to_string)
            })
            .collect())
    }
}

/// Reads `names` (oldest first) from the newest back and returns the first that `read` accepts.
/// A corrupt one (a torn upload, a bad disk block, an unknown format) is skipped with a warning
/// naming it, so one bad blob does not stop a restart while an older checkpoint is whole. I/O
/// errors are returned as they are (the storage may be away: an older checkpoint is no answer).
/// When every checkpoint is corrupt, the newest one's error is returned: starting from empty
/// state would replay input that retention may have deleted.
pub(super) fn newest_readable<T>(
    storage: &dyn CheckpointStorage,
    names: &[String],
    read: impl Fn(&str, &[u8]) -> Result<T, CheckpointError>,
) -> Result<Option<T>, CheckpointError> {
    let mut first_error = None;
    for name in names.iter().rev() {
        let Some(bytes) = storage.get(name)? else {
            continue; // pruned between the listing and the read
        };
        match read(name, &bytes) {
            Ok(found) => {
                if let Some(skipped) = &first_error {
                    tracing::warn!(checkpoint = %name, error = %skipped, "a newer checkpoint is unreadable: restoring an older one");
                }
                return Ok(Some(found));
            }
            Err(err @ CheckpointError::Corrupt { .. }) => {
                tracing::warn!(error = %err, "skipping an unreadable checkpoint");
                first_error.get_or_insert(err);
            }
            Err(err) => return Err(err),
        }
    }
    match first_error {
        Some(err) => Err(err),
        // Listed, then gone before they could be read (pruned meanwhile): not "no checkpoint",
        // which would start from empty state; the caller retries.
        None if !names.is_empty() => Err(CheckpointError::Corrupt {
            name: names.last().cloned().unwrap_or_default(),
            reason: "every listed checkpoint disappeared while being read (pruned meanwhile?); \
                     retry"
                .into(),
        }),
        None => Ok(None),
    }
}

/// Deletes the oldest blobs under `prefix` beyond the newest `retain` (names sort by id).
pub(super) fn prune(
    storage: &dyn CheckpointStorage,
    prefix: &str,
    retain: usize,
) -> Result<(), CheckpointError> {
    let names = storage.list(prefix)?;
    if names.len() > retain {
        for old in &names[..names.len() - retain] {
            storage.delete(old)?;
        }
    }
    Ok(())
}

pub(super) fn encode(checkpoint: &Checkpoint) -> Result<Vec<u8>, CheckpointError> {
    postcard::to_allocvec(checkpoint).map_err(|e| CheckpointError::Corrupt {
        name: format!("checkpoint {}", checkpoint.id),
        reason: e.to_string(),
    })
}

pub(super) fn decode(name: &str, bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        name: name.to_string(),
        reason,
    };
    let checkpoint: Checkpoint = postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    if checkpoint.format != CHECKPOINT_FORMAT {
        return Err(corrupt(format!(
            "format {} (expected {CHECKPOINT_FORMAT})",
            checkpoint.format
        )));
    }
    Ok(checkpoint)
}

#[cfg(test)]
mod tests {
    use super::super::FileCheckpointStorage;
    use super::*;

    fn store(dir: &std::path::Path, retain: usize) -> CheckpointStore {
        CheckpointStore::new(
            Box::new(FileCheckpointStorage::open(dir).unwrap()),
            "job",
            retain,
        )
    }

    fn chk(id: u64) -> Checkpoint {
        Checkpoint::new(
            id,
            "job",
            0,
            vec![PartitionCheckpoint {
                partition: 0,
                next_offset: id * 10,
                watermark: 5,
                state: vec![1, 2],
            }],
        )
    }

    #[test]
    fn keeps_the_last_n_and_returns_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 2);
        assert!(s.latest().unwrap().is_none());
        for id in 1..=12 {
            s.write(&chk(id)).unwrap();
        }
        let latest = s.latest().unwrap().unwrap();
        assert_eq!((latest.id, latest.partitions[0].next_offset), (12, 120));
        assert_eq!(s.max_id().unwrap(), 12);
        let left = std::fs::read_dir(dir.path().join("job")).unwrap().count();
        assert_eq!(left, 2);
    }

    #[test]
    fn an_unreadable_newest_checkpoint_falls_back_to_the_newest_whole_one() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 3);
        for id in 1..=3 {
            s.write(&chk(id)).unwrap();
        }
        let mut files: Vec<_> = std::fs::read_dir(dir.path().join("job"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        std::fs::write(&files[2], b"torn").unwrap();
        assert_eq!(s.latest().unwrap().unwrap().id, 2);
        std::fs::write(&files[1], b"").unwrap();
        assert_eq!(s.latest().unwrap().unwrap().id, 1);
        std::fs::write(&files[0], b"\xff\xff").unwrap();
        let err = s.latest().unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Corrupt { name, .. } if name.ends_with(&*files[2].file_name().unwrap().to_string_lossy())),
            "all unreadable: the newest one's error, not an empty start: {err}"
        );
    }

    #[test]
    fn savepoints_survive_pruning_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1);
        s.write_savepoint("before-upgrade", &chk(3)).unwrap();
        s.write(&chk(4)).unwrap();
        s.write(&chk(5)).unwrap();
        assert_eq!(s.savepoint("before-upgrade").unwrap().id, 3);
        assert_eq!(s.savepoints().unwrap(), vec!["before-upgrade"]);
        assert!(matches!(
            s.savepoint("nope"),
            Err(CheckpointError::SavepointNotFound(_))
        ));
        assert!(matches!(
            s.write_savepoint("../x", &chk(1)),
            Err(CheckpointError::InvalidName(_))
        ));
    }

    #[test]
    fn a_truncated_checkpoint_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 3);
        s.write(&chk(1)).unwrap();
        let path = dir.path().join("job").join(format!("chk-{:020}.ckpt", 1));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(s.latest(), Err(CheckpointError::Corrupt { .. })));
    }
}
