//! StreamPulse's embedded, durable, partitioned event log.
//!
//! HTTP ingest appends opaque, already-validated payloads to partitions; one engine task per
//! partition reads them back by offset and, after a crash, replays from its checkpointed offset.
//! Everything lives in one redb database file, `<dir>/log.redb`.
//!
//! Guarantees:
//! - offsets are per partition, dense, start at 0 and are never reused (not even after
//!   retention has deleted every record of a partition);
//! - an append is acknowledged only after the group commit holding it is durable under the
//!   configured [`FsyncPolicy`];
//! - an idempotency key and the records it covers are written in the same transaction, so a
//!   retried request can never be applied twice or half;
//! - retention never deletes a record that has not been checkpointed.
//!
//! Crash recovery: redb commits are atomic and checksummed. A torn or partial tail transaction
//! (a crash mid-commit, or non-durable commits not yet followed by a durable one) is rolled back
//! by redb when the file is opened, so the log is always recovered at the last complete commit.
//! That is how "corrupt or torn tails are detected and cut on recovery" is met; this crate then
//! rebuilds its in-memory end offsets from the last chunk of each partition.
//!
//! Records are stored in chunks: a partition's consecutive records as one value, keyed by the
//! first one's offset (see `chunk`), so the writer pays one B-tree insert per chunk, not per
//! record.
//!
//! This crate must never interpret payloads, and once a log is open, must never let anything but
//! its writer thread run write transactions.

mod batch;
mod chunk;
mod config;
mod embedded;
mod error;
mod partitioner;
mod retention;
mod schema;
mod shared;
mod writer;

pub use batch::RecordBatch;
pub use chunk::MAX_RECORD;
pub use config::{FsyncPolicy, LogConfig, DEFAULT_LOG_CACHE_BYTES};
pub use embedded::{EmbeddedLog, LOG_FILE_NAME};
pub use error::LogError;
pub use partitioner::{fnv1a_64, partition_for};
pub use retention::RetentionReport;
pub use writer::AppendReceipt;
