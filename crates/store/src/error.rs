//! The store's error type.
//!
//! Every failure of the store is a [`StoreError`]: the caller (the engine) decides whether to retry,
//! fail the job or stop. Nothing here may panic or log-and-swallow; an error always reaches the
//! caller with enough context (path, table) to act on it.

use std::path::PathBuf;

use thiserror::Error;

use crate::keys::KeyError;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create store directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot open result store {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },

    /// Any failure of the underlying database after it was opened (I/O, commit, corruption).
    #[error("result store database: {0}")]
    Db(#[from] redb::Error),

    /// The database file failed (a full disk) and is not reopened yet.
    #[error("the result store is unavailable: {0}")]
    Unavailable(#[from] streampulse_dbfile::Unavailable),

    #[error("cannot encode {what} for the result store: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },

    /// Bytes read back from a table do not parse: the file was damaged or written by an
    /// incompatible version.
    #[error("corrupt entry in table {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },

    /// A store on another system (e.g. Cassandra) failed an operation: unreachable, timed out,
    /// refused. The engine holds its checkpoint back and retries.
    #[error("{backend} store: {op}: {source}")]
    Backend {
        backend: &'static str,
        op: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    pub(crate) fn corrupt_key(table: &'static str, e: KeyError) -> Self {
        Self::Corrupt {
            table,
            reason: format!("key: {e}"),
        }
    }
}

// redb splits its errors by operation; callers do not care which step failed, so they all fold into
// `redb::Error`, which keeps each one's message.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Db(redb::Error::from(e))
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
