//! The redb tables of the log file and their key/value layouts.
//!
//! Tables:
//! - `meta`: `&str -> u64`; `partitions` (the partition count, fixed at creation) and
//!   `start/{p}` (first retained offset of partition p, written by retention so that an emptied
//!   partition still knows where its offsets continue) and `bytes/{p}` (payload bytes retained
//!   in p, kept current by every commit so reopening never scans the data).
//! - `chunks_p{p}`: offset of a chunk's first record `u64 -> chunk` (consecutive records of p,
//!   see [`crate::chunk`]). Invariant: the chunks of p cover its retained offsets without gap or
//!   overlap, and the first chunk's key is the first retained offset.
//! - `records_p{p}`: offset `u64 -> payload bytes`, one row per record; the layout of files
//!   written before chunks, read only to move its rows into chunks when such a file is opened.
//!   Then (and in every new file) an empty `u64 -> ()` table holds the name, so that a release
//!   from before chunks refuses the file rather than reading it as empty.
//! - `batches_p{p}`: first offset of a group commit's run in p `u64 -> (append_time_ms,
//!   payload_bytes)`; drives age retention and byte accounting without reading payloads.
//!   Invariant: when the partition is non-empty, its first key equals the first retained offset.
//! - `idempotency`: key `&str -> (committed_at_ms, ranges)`, the receipt of the original append.
//! - `idempotency_by_time`: `(committed_at_ms, key) -> ()`, so expired keys are found without a
//!   full scan.
//!
//! Changing a name or layout here breaks existing log files: this module must never change
//! an existing table without a migration.

use redb::TableDefinition;

pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const META_PARTITIONS: &str = "partitions";

/// Receipt ranges as stored: `(partition, first offset, count)`.
pub(crate) type StoredRanges = Vec<(u32, u64, u64)>;

pub(crate) const IDEMPOTENCY: TableDefinition<&str, (u64, StoredRanges)> =
    TableDefinition::new("idempotency");
pub(crate) const IDEMPOTENCY_BY_TIME: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("idempotency_by_time");

/// Table names of one partition. redb table names are `&str`, so they are built once at open
/// and borrowed by each definition.
#[derive(Debug, Clone)]
pub(crate) struct PartitionTables {
    chunks: String,
    records: String,
    batches: String,
    start_key: String,
    bytes_key: String,
}

impl PartitionTables {
    pub(crate) fn new(partition: u32) -> Self {
        Self {
            chunks: format!("chunks_p{partition}"),
            records: format!("records_p{partition}"),
            batches: format!("batches_p{partition}"),
            start_key: format!("start/{partition}"),
            bytes_key: format!("bytes/{partition}"),
        }
    }

    pub(crate) fn chunks(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.chunks)
    }

    /// The one-row-per-record table of files written before chunks.
    pub(crate) fn legacy_records(&self) -> TableDefinition<'_, u64, &'static [u8]> {
        TableDefinition::new(&self.records)
    }

    /// What holds the old table's name once its rows are in chunks: empty, and of a type that
    /// releases written before chunks fail to open, so they refuse the file instead of reading
    /// it as empty.
    pub(crate) fn downgrade_guard(&self) -> TableDefinition<'_, u64, ()> {
        TableDefinition::new(&self.records)
    }

    pub(crate) fn batches(&self) -> TableDefinition<'_, u64, (u64, u64)> {
        TableDefinition::new(&self.batches)
    }

    /// Key in [`META`] holding the first retained offset.
    pub(crate) fn start_key(&self) -> &str {
        &self.start_key
    }

    /// Key in [`META`] holding the payload bytes retained.
    pub(crate) fn bytes_key(&self) -> &str {
        &self.bytes_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::TableHandle;

    #[test]
    fn names_are_stable() {
        let t = PartitionTables::new(3);
        assert_eq!(t.chunks().name(), "chunks_p3");
        assert_eq!(t.legacy_records().name(), "records_p3");
        assert_eq!(t.batches().name(), "batches_p3");
        assert_eq!(t.start_key(), "start/3");
        assert_eq!(t.bytes_key(), "bytes/3");
        assert_eq!(META.name(), "meta");
        assert_eq!(IDEMPOTENCY.name(), "idempotency");
    }
}
