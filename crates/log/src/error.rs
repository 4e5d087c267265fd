//! Errors of the embedded log.
//!
//! Errors are `Clone` because one failed group commit must be reported to every request in it;
//! sources are therefore shared (`Arc`). This module must never hide the cause: every variant says
//! what failed.

use std::sync::Arc;

use thiserror::Error;

/// Everything that can go wrong in the log.
#[derive(Debug, Clone, Error)]
pub enum LogError {
    /// Creating the log directory failed.
    #[error("log i/o error: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// redb reported an error (opening, a transaction, a table, or a commit).
    #[error("log storage error: {0}")]
    Storage(#[source] Arc<redb::Error>),
    /// The log file failed (a full disk, an I/O error) and is closed until it can be reopened
    /// (`streampulse_dbfile`): appends and reads fail meanwhile, and work again once it is.
    #[error("the log is unavailable: {0}")]
    Unavailable(String),
    /// The settings cannot describe a working log.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(#[from] streampulse_core::config::ConfigError),
    /// The log file was created with another partition count; reusing it would re-route keys.
    #[error("log has {existing} partitions but the configuration asks for {configured}")]
    PartitionCountChanged { existing: u32, configured: u32 },
    /// A partition number at or above the partition count.
    #[error("invalid partition {0}")]
    InvalidPartition(u32),
    /// The requested offset was deleted by retention.
    #[error(
        "offset {requested} of partition {partition} was deleted by retention; first available is {first_available}"
    )]
    OffsetTruncated {
        partition: u32,
        requested: u64,
        first_available: u64,
    },
    /// A stored chunk of records does not parse (see `chunk`): the file holds what this version
    /// did not write.
    #[error("the log's chunk at offset {first} of partition {partition} is malformed")]
    MalformedChunk { partition: u32, first: u64 },
    /// A record longer than a chunk's length prefix can say ([`crate::MAX_RECORD`]); nothing
    /// of its append was written.
    #[error("a record of {bytes} bytes for partition {partition} exceeds the log's limit of {limit} bytes")]
    RecordTooLarge {
        partition: u32,
        bytes: usize,
        limit: usize,
    },
    /// The log was closed (or its writer thread stopped); nothing more can be appended.
    #[error("log is closed")]
    Closed,
}

impl From<std::io::Error> for LogError {
    fn from(e: std::io::Error) -> Self {
        LogError::Io(Arc::new(e))
    }
}

impl From<redb::Error> for LogError {
    fn from(e: redb::Error) -> Self {
        if streampulse_dbfile::is_io_failure(&e) {
            LogError::Unavailable(e.to_string())
        } else {
            LogError::Storage(Arc::new(e))
        }
    }
}

impl From<streampulse_dbfile::Unavailable> for LogError {
    fn from(e: streampulse_dbfile::Unavailable) -> Self {
        LogError::Unavailable(e.to_string())
    }
}

// redb has one error type per operation; all of them mean "storage failed" to our callers, and
// an I/O failure among them means the file must be reopened.
macro_rules! storage_error_from {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for LogError {
            fn from(e: $t) -> Self {
                LogError::from(redb::Error::from(e))
            }
        })*
    };
}

storage_error_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_carry_the_numbers() {
        let e = LogError::OffsetTruncated {
            partition: 2,
            requested: 5,
            first_available: 9,
        };
        assert_eq!(
            e.to_string(),
            "offset 5 of partition 2 was deleted by retention; first available is 9"
        );
        let e = LogError::PartitionCountChanged {
            existing: 4,
            configured: 8,
        };
        assert_eq!(
            e.to_string(),
            "log has 4 partitions but the configuration asks for 8"
        );
        assert_eq!(LogError::Closed.to_string(), "log is closed");
    }

    #[test]
    fn redb_errors_become_storage_errors() {
        let e: LogError = redb::StorageError::Corrupted("bad page".to_string()).into();
        assert!(matches!(e, LogError::Storage(_)), "{e:?}");
        assert!(e.to_string().contains("bad page"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }
}
