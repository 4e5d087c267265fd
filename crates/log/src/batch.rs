//! [`RecordBatch`]: records of one partition at consecutive offsets, read into one buffer.
//!
//! A reader of the log used to get a vector per record: an allocation and a free per event on
//! the partition thread. A batch keeps the payloads back to back with their ends, and a reader
//! that keeps its batch across reads allocates nothing once the buffers have grown. It holds
//! bytes only: it must never interpret a payload.

/// Payloads at consecutive offsets from [`RecordBatch::first_offset`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    first: u64,
    data: Vec<u8>,
    /// End of each payload in `data`.
    ends: Vec<usize>,
}

impl RecordBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Empties the batch, keeping its buffers, for records from `first` on.
    pub fn clear(&mut self, first: u64) {
        self.first = first;
        self.data.clear();
        self.ends.clear();
    }

    /// Adds the payload at the next offset.
    pub fn push(&mut self, payload: &[u8]) {
        self.data.extend_from_slice(payload);
        self.ends.push(self.data.len());
    }

    /// The offset of the first record (of the next one pushed, when empty).
    pub fn first_offset(&self) -> u64 {
        self.first
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records as `(offset, payload)`, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        (self.first..)
            .zip(starts.zip(self.ends.iter().copied()))
            .map(|(offset, (start, end))| (offset, self.data.get(start..end).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_at_their_offsets_and_clear_keeps_nothing() {
        let mut batch = RecordBatch::new();
        batch.clear(7);
        assert!(batch.is_empty());
        for payload in [b"a".as_slice(), b"", b"ccc"] {
            batch.push(payload);
        }
        let got: Vec<(u64, Vec<u8>)> = batch.iter().map(|(o, p)| (o, p.to_vec())).collect();
        assert_eq!(
            got,
            vec![(7, b"a".to_vec()), (8, Vec::new()), (9, b"ccc".to_vec())]
        );
        assert_eq!((batch.len(), batch.first_offset()), (3, 7));
        batch.clear(20);
        assert_eq!(batch.iter().count(), 0);
        batch.push(b"z");
        assert_eq!(batch.iter().next(), Some((20, b"z".as_slice())));
    }
}
