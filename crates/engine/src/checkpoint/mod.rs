//! Checkpoints: the consistent snapshot of every partition's offsets, watermark and operator state.
//!
//! A checkpoint is complete only once it exists under its final name: a file is written to a
//! temporary name, fsynced, then renamed, and an object store's PUT is atomic, so a crash mid-write
//! leaves the previous checkpoint as the latest. Before a checkpoint is written, the result store is flushed: every output emitted
//! before the checkpointed offsets is durable when the checkpoint says so. Savepoints are the same
//! data under a user-chosen name that retention never deletes.
//!
//! [`CheckpointStorage`] is where the bytes go, addressed by URL; [`CheckpointStore`] names,
//! lists, prunes and decodes whole-job checkpoints on top of any storage, and
//! [`PartitionCheckpointStore`] does the same per partition, for partitions that move between
//! workers (Kafka consumer groups). [`open_storage_with`] picks the storage from the URL: files for
//! `file://` URLs and paths, an object store for `s3://`, `gs://` and `az://` URLs.

use std::collections::BTreeMap;

mod file;
mod object;
mod partitioned;
mod store;

pub use file::FileCheckpointStorage;
pub use object::ObjectStoreCheckpointStorage;
pub use partitioned::{PartitionCheckpointStore, SavepointRequest};
pub use store::{Checkpoint, CheckpointStore, PartitionCheckpoint, SnapshotError};

/// Why checkpoint storage failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint storage i/o on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "unsupported checkpoint storage url '{0}' (supported: file:// URLs, paths, and s3://, \
         gs://, az:// object store URLs)"
    )]
    UnsupportedUrl(String),
    #[error("checkpoint storage {url}: {op} failed: {source}")]
    ObjectStore {
        url: String,
        op: &'static str,
        source: object_store::Error,
    },
    #[error("checkpoint storage {url}: option or name '{key}': {reason}")]
    InvalidOption {
        url: String,
        key: String,
        reason: String,
    },
    #[error("checkpoint {name} is unreadable: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("savepoint '{0}' not found")]
    SavepointNotFound(String),
    #[error("savepoint '{name}' holds {held} partitions, but the topic has {wanted}: a group's state cannot move to another partition count (metrics are spread over partitions by key)")]
    SavepointPartitions {
        name: String,
        held: usize,
        wanted: u32,
    },
    #[error("invalid savepoint name '{0}': use letters, digits, '_', '-' and '.' (at most 128, not starting with '.')")]
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

/// Opens the storage a URL names, with no options: see [`open_storage_with`].
pub fn open_storage(url: &str) -> Result<Box<dyn CheckpointStorage>, CheckpointError> {
    open_storage_with(url, &BTreeMap::new())
}

/// Opens the storage a URL names: `file:///abs/path`, `file://rel/path` or a plain path (files,
/// fsynced and renamed into place), or an object store URL such as `s3://bucket/prefix`,
/// `gs://bucket/prefix` or `az://container/prefix`, configured by the standard environment
/// variables and `options` (`object_store` keys such as `aws_endpoint`; see
/// [`ObjectStoreCheckpointStorage::open`]). Options are refused for files, which take none.
pub fn open_storage_with(
    url: &str,
    options: &BTreeMap<String, String>,
) -> Result<Box<dyn CheckpointStorage>, CheckpointError> {
    check_storage(url, options)?;
    match file_path(url) {
        Some(path) => Ok(Box::new(FileCheckpointStorage::open(
            std::path::Path::new(path),
        )?)),
        None => Ok(Box::new(ObjectStoreCheckpointStorage::open(url, options)?)),
    }
}

/// Checks a storage URL and its options without opening anything (for config validation).
pub fn check_storage(url: &str, options: &BTreeMap<String, String>) -> Result<(), CheckpointError> {
    if file_path(url).is_some() {
        return match options.keys().next() {
            None => Ok(()),
            Some(key) => Err(CheckpointError::InvalidOption {
                url: url.to_string(),
                key: key.clone(),
                reason: "options apply to object store URLs only (s3://, gs://, az://)".into(),
            }),
        };
    }
    if !object::is_object_store_url(url) {
        return Err(CheckpointError::UnsupportedUrl(url.to_string()));
    }
    object::check_options(url, options)
}

/// The directory a `file://` URL or a plain path names; `None` for any other URL.
fn file_path(url: &str) -> Option<&str> {
    match url.split_once("://") {
        None => Some(url),
        Some(("file", rest)) => Some(rest),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_storage() {
        let none = BTreeMap::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c").display().to_string();
        assert!(open_storage(&path)
            .unwrap()
            .describe()
            .starts_with("file://"));
        assert!(open_storage(&format!("file://{path}")).is_ok());
        check_storage("s3://bucket/ckpt", &none).unwrap();
        check_storage("gs://bucket/ckpt", &none).unwrap();
        check_storage("az://container/ckpt", &none).unwrap();
        for bad in ["ftp://host/x", "http://host/x", "memory:///x", "s3://"] {
            assert!(
                matches!(
                    check_storage(bad, &none),
                    Err(CheckpointError::UnsupportedUrl(_))
                ),
                "{bad}"
            );
        }
        let options: BTreeMap<String, String> =
            [("aws_region".to_string(), "us-east-1".to_string())].into();
        assert!(matches!(
            check_storage(&path, &options),
            Err(CheckpointError::InvalidOption { .. })
        ));
    }
}
