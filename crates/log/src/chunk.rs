//! The layout of a chunk: the consecutive records of one partition stored as one redb value.
//!
//! A B-tree row per record made the log's writer spend most of its time in redb's page
//! management; a row per run of records (keyed by its first offset) costs one insert per
//! [`TARGET_BYTES`] of payload. A chunk is the records' payloads, each preceded by its length as
//! a little-endian `u32`; the offset of a record is its chunk's key plus its position.
//!
//! This module must never touch the database: it only builds and walks chunk bytes, and a
//! malformed chunk is an error, never a panic.

use std::ops::Range;

use crate::error::LogError;

/// A chunk is closed once adding the next record would take it past this many bytes (a larger
/// record gets a chunk of its own). At about 150 events a chunk the per-row cost is gone; larger
/// chunks measured slower (64 KiB: 2 % fewer events per server CPU-second), since a read that starts
/// inside a chunk walks the records before its offset.
pub(crate) const TARGET_BYTES: usize = 16 * 1024;

const LEN: usize = std::mem::size_of::<u32>();

/// The longest record an append takes: within what a chunk's `u32` length prefix can say and
/// what redb stores as one value (3 GiB), and far above any event (64 KiB).
pub const MAX_RECORD: usize = 1 << 30;

/// Builds the chunks of one partition within one commit.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    first: u64,
    bytes: Vec<u8>,
}

impl Builder {
    /// Adds the record at `offset` (the offset after the previous one). Returns the chunk it
    /// closed, if the record did not fit in the open one.
    pub(crate) fn push(&mut self, offset: u64, payload: &[u8]) -> Option<(u64, Vec<u8>)> {
        let closed =
            if !self.bytes.is_empty() && self.bytes.len() + LEN + payload.len() > TARGET_BYTES {
                self.take()
            } else {
                None
            };
        if self.bytes.is_empty() {
            self.first = offset;
            self.bytes.reserve(TARGET_BYTES.max(LEN + payload.len()));
        }
        // Appends refuse a payload past `MAX_RECORD` before it reaches a chunk.
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(payload);
        closed
    }

    /// The open chunk, if it holds a record: `(first offset, bytes)`.
    pub(crate) fn take(&mut self) -> Option<(u64, Vec<u8>)> {
        if self.bytes.is_empty() {
            return None;
        }
        Some((self.first, std::mem::take(&mut self.bytes)))
    }
}

/// The payloads of a chunk, in offset order. `partition` and `first` name the chunk in the error
/// a malformed one gives.
pub(crate) fn records(
    chunk: &[u8],
    partition: u32,
    first: u64,
) -> impl Iterator<Item = Result<&[u8], LogError>> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let malformed = || LogError::MalformedChunk { partition, first };
        let Some((len, tail)) = rest.split_first_chunk::<LEN>() else {
            rest = &[];
            return Some(Err(malformed()));
        };
        let len = u32::from_le_bytes(*len) as usize;
        let Some((payload, tail)) = tail.split_at_checked(len) else {
            rest = &[];
            return Some(Err(malformed()));
        };
        rest = tail;
        Some(Ok(payload))
    })
}

/// How many records a chunk holds and their payload bytes.
pub(crate) fn count(chunk: &[u8], partition: u32, first: u64) -> Result<(u64, u64), LogError> {
    count_in(chunk, partition, first, 0..u64::MAX)
}

/// How many of a chunk's records have offsets in `range`, and their payload bytes.
pub(crate) fn count_in(
    chunk: &[u8],
    partition: u32,
    first: u64,
    range: Range<u64>,
) -> Result<(u64, u64), LogError> {
    let (mut records, mut bytes) = (0u64, 0u64);
    for (offset, payload) in (first..).zip(self::records(chunk, partition, first)) {
        let payload = payload?;
        if offset >= range.end {
            break;
        }
        if offset >= range.start {
            records += 1;
            bytes += payload.len() as u64;
        }
    }
    Ok((records, bytes))
}

/// The chunk's records from `offset` on, as a chunk of their own (retention keeps the tail of a
/// chunk it cuts through).
pub(crate) fn tail_from(
    chunk: &[u8],
    partition: u32,
    first: u64,
    offset: u64,
) -> Result<&[u8], LogError> {
    let mut cut = 0usize;
    for (_, payload) in (first..offset).zip(records(chunk, partition, first)) {
        cut += LEN + payload?.len();
    }
    Ok(chunk.get(cut..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunk: &[u8]) -> Vec<Vec<u8>> {
        records(chunk, 0, 0)
            .map(|r| r.expect("well formed").to_vec())
            .collect()
    }

    #[test]
    fn records_come_back_in_order_and_chunks_close_at_the_target() {
        let mut builder = Builder::default();
        let mut chunks = Vec::new();
        let payloads: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| vec![(i % 251) as u8; (i % 97) as usize])
            .collect();
        for (offset, p) in (10u64..).zip(&payloads) {
            chunks.extend(builder.push(offset, p));
        }
        chunks.extend(builder.take());
        assert!(
            chunks.len() > 1,
            "2,000 records of up to 96 bytes fill several chunks"
        );
        let mut next = 10u64;
        let mut back = Vec::new();
        for (first, bytes) in &chunks {
            assert_eq!(
                *first, next,
                "chunks are keyed by their first offset, without gaps"
            );
            assert!(bytes.len() <= TARGET_BYTES);
            let (n, _) = count(bytes, 0, *first).expect("count");
            next += n;
            back.extend(all(bytes));
        }
        assert_eq!(back, payloads);
    }

    #[test]
    fn a_record_larger_than_the_target_gets_a_chunk_of_its_own() {
        let mut builder = Builder::default();
        assert!(builder.push(0, b"small").is_none());
        let big = vec![7u8; TARGET_BYTES * 2];
        let closed = builder.push(1, &big).expect("the small one's chunk closes");
        assert_eq!((closed.0, all(&closed.1)), (0, vec![b"small".to_vec()]));
        let (first, alone) = builder
            .push(2, b"after")
            .expect("the big one's chunk closes");
        assert_eq!((first, all(&alone)), (1, vec![big]));
        assert_eq!(builder.take().map(|(f, _)| f), Some(2));
        assert!(builder.take().is_none());
        // An empty payload is a record too.
        assert!(builder.push(3, b"").is_none());
        let (_, empty) = builder.take().expect("one record");
        assert_eq!(count(&empty, 0, 3).expect("count"), (1, 0));
    }

    #[test]
    fn malformed_chunks_are_errors() {
        let mut builder = Builder::default();
        builder.push(5, b"abc");
        let (_, mut bytes) = builder.take().expect("one record");
        bytes.pop();
        assert!(matches!(
            count(&bytes, 2, 5),
            Err(LogError::MalformedChunk {
                partition: 2,
                first: 5
            })
        ));
        assert!(count(&[1, 0], 0, 0).is_err(), "a length cut short");
    }

    #[test]
    fn tails_and_counts_within_a_range() {
        let mut builder = Builder::default();
        for (i, p) in [b"a".as_slice(), b"bb", b"ccc", b"dddd"].iter().enumerate() {
            builder.push(10 + i as u64, p);
        }
        let (_, bytes) = builder.take().expect("chunk");
        let tail = tail_from(&bytes, 0, 10, 12).expect("tail");
        assert_eq!(all(tail), vec![b"ccc".to_vec(), b"dddd".to_vec()]);
        assert_eq!(all(tail_from(&bytes, 0, 10, 10).expect("tail")).len(), 4);
        assert!(tail_from(&bytes, 0, 10, 14).expect("tail").is_empty());
        assert_eq!(count_in(&bytes, 0, 10, 11..13).expect("count"), (2, 5));
        assert_eq!(count_in(&bytes, 0, 10, 0..12).expect("count"), (2, 3));
        assert_eq!(count(&bytes, 0, 10).expect("count"), (4, 10));
    }
}
