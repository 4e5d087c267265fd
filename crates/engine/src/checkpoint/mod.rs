//! Checkpoints: the consistent snapshot of every partition's offsets, watermark and operator state.
//!
//! A checkpoint is complete only once its file exists under its final name; it is written to a
//! temporary name, fsynced, then renamed, so a crash mid-write leaves the previous checkpoint as
//! the latest. Before a checkpoint is written, the result store is flushed: every output emitted
//! before the checkpointed offsets is durable when the checkpoint says so. Savepoints are the same
//! data under a user-chosen name that retention never deletes.
//!
//! [`CheckpointStorage`] is where the bytes go, addressed by URL; [`CheckpointStore`] names,
//! lists, prunes and decodes whole-job checkpoints on top of any storage, and
//! [`PartitionCheckpointStore`] does the same per partition, for partitions that move between
//! workers (Kafka consumer groups).

mod file;
mod partitioned;
mod store;

pub use file::FileCheckpointStorage;
pub use partitioned::PartitionCheckpointStore;
pub use store::{Checkpoint, CheckpointStore, PartitionCheckpoint};

/// Why checkpoint storage failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint storage i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported checkpoint storage url '{0}' (supported: file:// URLs and paths)")]
    UnsupportedUrl(String),
    #[error("checkpoint {name} is unreadable: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("savepoint '{0}' not found")]
    SavepointNotFound(String),
    #[error("invalid savepoint name '{0}': use letters, digits, '_', '-' and '.'")]
    InvalidName(String),
}

/// A flat namespace of named blobs with atomic writes: the only thing checkpoints need from a
/// storage, so an object store (s3://, gs://) can implement it too.
pub trait CheckpointStorage: Send + Sync {
    /// Writes `bytes` under `name` atomically: readers see the old blob or the new, never a part.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), CheckpointError>;
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, CheckpointError>;
    /// Names starting with `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<String>, CheckpointError>;
    fn delete(&self, name: &str) -> Result<(), CheckpointError>;
    /// Where the storage lives, for messages.
    fn describe(&self) -> String;
}

/// Opens the storage a URL names: `file:///abs/path`, `file://rel/path` or a plain path.
pub fn open_storage(url: &str) -> Result<Box<dyn CheckpointStorage>, CheckpointError> {
    let path = match url.split_once("://") {
        None => url,
        Some(("file", rest)) => rest,
        Some(_) => return Err(CheckpointError::UnsupportedUrl(url.to_string())),
    };
    Ok(Box::new(FileCheckpointStorage::open(
        std::path::Path::new(path),
    )?))
}
