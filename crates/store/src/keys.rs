//! Order-preserving byte encoding of the store's composite keys.
//!
//! redb compares `&[u8]` keys with `memcmp`, so every tuple is encoded such that the byte order of
//! two encodings equals the tuple order of the values, and two different tuples never share an
//! encoding. That is what lets one B-tree range scan stand in for a Cassandra clustering-key
//! slice. This module only builds and parses bytes: it must never touch the database, and it must
//! never panic on bytes read back from disk (a corrupt key is an error, not a crash).
//!
//! Components:
//! - string: its UTF-8 bytes with every `0x00` written as `0x00 0xFF`, then the terminator
//!   `0x00 0x01`. The terminator sorts below any continuation (`0x00 0xFF` or a byte `>= 0x01`), so
//!   a string sorts before every longer string it is a prefix of, exactly like `str::cmp`; UTF-8
//!   byte order equals code point order, which is also `str::cmp`'s order.
//! - `i64`: big-endian with the sign bit flipped, so negatives sort before positives.
//! - `u32`, `u64`: big-endian.
//!
//! The fixed-width integers need no terminator; strings carry their own, so a key is
//! self-delimiting and a prefix of components is a byte prefix of the key.

use thiserror::Error;

/// Escapes a `0x00` inside a string.
const ESCAPE: u8 = 0xFF;
/// Ends a string: sorts below [`ESCAPE`] and below any non-zero byte.
const TERMINATOR: u8 = 0x01;

/// A key read back from disk does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("key ends inside a component")]
    Truncated,
    #[error("string component has an invalid escape byte {0:#04x}")]
    BadEscape(u8),
    #[error("string component is not UTF-8")]
    NotUtf8,
    #[error("{0} trailing bytes after the last component")]
    Trailing(usize),
}

/// Builds a key component by component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub fn new() -> Self {
        Self(Vec::with_capacity(64))
    }

    pub fn str(self, s: &str) -> Self {
        let mut key = self.str_prefix(s);
        key.0.extend_from_slice(&[0, TERMINATOR]);
        key
    }

    /// The escaped bytes of `s` without its terminator: a byte prefix of the key of every string
    /// that starts with `s`.
    pub fn str_prefix(mut self, s: &str) -> Self {
        for &b in s.as_bytes() {
            self.0.push(b);
            if b == 0 {
                self.0.push(ESCAPE);
            }
        }
        self
    }

    pub fn i64(mut self, v: i64) -> Self {
        self.0
            .extend_from_slice(&((v as u64) ^ (1 << 63)).to_be_bytes());
        self
    }

    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a key back component by component, in the order it was built.
///
/// The store itself only reads strings back (the window name in the metric skip-scan); the other
/// readers exist so the tests can prove every key round-trips.
#[derive(Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

#[cfg_attr(not(test), allow(dead_code))]
impl<'a> KeyReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    pub fn str(&mut self) -> Result<String, KeyError> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let b = *self.rest.get(i).ok_or(KeyError::Truncated)?;
            if b != 0 {
                out.push(b);
                i += 1;
                continue;
            }
            match *self.rest.get(i + 1).ok_or(KeyError::Truncated)? {
                ESCAPE => out.push(0),
                TERMINATOR => {
                    self.rest = &self.rest[i + 2..];
                    return String::from_utf8(out).map_err(|_| KeyError::NotUtf8);
                }
                other => return Err(KeyError::BadEscape(other)),
            }
            i += 2;
        }
    }

    pub fn i64(&mut self) -> Result<i64, KeyError> {
        Ok((u64::from_be_bytes(self.take()?) ^ (1 << 63)) as i64)
    }

    pub fn u32(&mut self) -> Result<u32, KeyError> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    pub fn u64(&mut self) -> Result<u64, KeyError> {
        Ok(u64::from_be_bytes(self.take()?))
    }

    /// Bytes not read yet: `key.len() - remaining()` is the length of the components read so far,
    /// a byte prefix of every key that starts with them.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Fails unless the whole key was consumed (a key with extra bytes is not one we wrote).
    pub fn finish(self) -> Result<(), KeyError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(KeyError::Trailing(n)),
        }
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(KeyError::Truncated)?;
        self.rest = rest;
        Ok(*head)
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, i.e. the
/// exclusive upper bound of a prefix scan; `None` when no such bound exists (all bytes `0xFF`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let keep = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=keep].to_vec();
    end[keep] += 1;
    Some(end)
}

// The keys of each table, in one place so writers and readers cannot disagree.

/// `results_by_metric`: (job, metric_id, window, window_start).
pub fn result_by_metric(job: &str, metric_id: &str, window: &str, window_start: i64) -> Vec<u8> {
    KeyBuf::new()
        .str(job)
        .str(metric_id)
        .str(window)
        .i64(window_start)
        .into_bytes()
}

/// `results_by_time`: (job, window_start, metric_id, window).
pub fn result_by_time(job: &str, window_start: i64, metric_id: &str, window: &str) -> Vec<u8> {
    KeyBuf::new()
        .str(job)
        .i64(window_start)
        .str(metric_id)
        .str(window)
        .into_bytes()
}

/// `late_events`: (job, partition, window, offset), the late output's idempotency key.
pub fn late(job: &str, partition: u32, window: &str, offset: u64) -> Vec<u8> {
    KeyBuf::new()
        .str(job)
        .u32(partition)
        .str(window)
        .u64(offset)
        .into_bytes()
}

/// `late_by_ts`: (job, ts, partition, window, offset).
pub fn late_by_ts(job: &str, ts: i64, partition: u32, window: &str, offset: u64) -> Vec<u8> {
    KeyBuf::new()
        .str(job)
        .i64(ts)
        .u32(partition)
        .str(window)
        .u64(offset)
        .into_bytes()
}

/// `raw_events`: (job, metric_id, ts, partition, offset); (partition, offset) is the event's
/// idempotency key, and the order is the raw-event query's.
pub fn raw(job: &str, metric_id: &str, ts: i64, partition: u32, offset: u64) -> Vec<u8> {
    KeyBuf::new()
        .str(job)
        .str(metric_id)
        .i64(ts)
        .u32(partition)
        .u64(offset)
        .into_bytes()
}

/// `alerts`: (job, id), the alert's idempotency key.
pub fn alert(job: &str, id: &str) -> Vec<u8> {
    KeyBuf::new().str(job).str(id).into_bytes()
}

/// `alerts_by_time`: (job, first_ts, id).
pub fn alert_by_time(job: &str, first_ts: i64, id: &str) -> Vec<u8> {
    KeyBuf::new().str(job).i64(first_ts).str(id).into_bytes()
}

/// `alerts_by_metric`: (job, metric_id, first_ts, id).
pub fn alert_by_metric(job: &str, metric_id: &str, first_ts: i64, id: &str) -> Vec<u8> {
    KeyBuf::new()
        .str(job)
        .str(metric_id)
        .i64(first_ts)
        .str(id)
        .into_bytes()
}

/// `alert_spans`: (job).
pub fn alert_span(job: &str) -> Vec<u8> {
    KeyBuf::new().str(job).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_metric_tuple(key: &[u8]) -> Result<(String, String, String, i64), KeyError> {
        let mut r = KeyReader::new(key);
        let t = (r.str()?, r.str()?, r.str()?, r.i64()?);
        r.finish()?;
        Ok(t)
    }

    #[test]
    fn tricky_string_prefixes_sort_like_tuples() {
        // Sorted as tuples (str::cmp is byte order): "" < "a" < "a\0" < "a\0b" < "a\u{1}" < "ab" < "é" < "😀".
        let strings = ["", "a", "a\0", "a\0b", "a\u{1}", "ab", "é", "😀"];
        let keys: Vec<Vec<u8>> = strings
            .iter()
            .map(|s| KeyBuf::new().str(s).into_bytes())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        // A string followed by a second component must still sort by the first one first.
        let a_then_max = KeyBuf::new().str("a").str("\u{10FFFF}").into_bytes();
        let a0b_then_min = KeyBuf::new().str("a\0b").str("").into_bytes();
        assert!(a_then_max < a0b_then_min);
    }

    #[test]
    fn i64_sorts_negative_before_positive() {
        let values = [i64::MIN, -1_000, -1, 0, 1, 1_000, i64::MAX];
        let keys: Vec<Vec<u8>> = values
            .iter()
            .map(|&v| KeyBuf::new().i64(v).into_bytes())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn reader_rejects_corrupt_keys() {
        assert_eq!(KeyReader::new(b"abc").str(), Err(KeyError::Truncated));
        assert_eq!(KeyReader::new(b"a\0").str(), Err(KeyError::Truncated));
        assert_eq!(
            KeyReader::new(b"a\0\x07").str(),
            Err(KeyError::BadEscape(7))
        );
        assert_eq!(KeyReader::new(b"\xff\0\x01").str(), Err(KeyError::NotUtf8));
        assert_eq!(KeyReader::new(&[1, 2, 3]).i64(), Err(KeyError::Truncated));
        let mut r = KeyReader::new(b"a\0\x01z");
        assert_eq!(r.str().as_deref(), Ok("a"));
        assert_eq!(r.finish(), Err(KeyError::Trailing(1)));
    }

    #[test]
    fn prefix_end_bounds_exactly_the_prefix() {
        assert_eq!(prefix_end(&[1, 2, 0xFF, 0xFF]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[0xFF]), None);
        assert_eq!(prefix_end(&[]), None);
        let p = KeyBuf::new().str("job").str("m").into_bytes();
        let end = prefix_end(&p).unwrap_or_default();
        let inside = result_by_metric("job", "m", "\u{10FFFF}", i64::MAX);
        let outside = result_by_metric("job", "m\0", "", i64::MIN);
        assert!(p < inside && inside < end);
        assert!(outside >= end);
    }

    fn component() -> impl Strategy<Value = String> {
        // Small alphabet so prefixes, NULs and equal strings are common, plus some unicode.
        proptest::collection::vec(
            prop_oneof![
                Just('\0'),
                Just('\u{1}'),
                Just('a'),
                Just('b'),
                Just('\u{ff}'),
                Just('é'),
                Just('😀')
            ],
            0..5,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn tuple() -> impl Strategy<Value = (String, String, String, i64)> {
        (
            component(),
            component(),
            component(),
            prop_oneof![any::<i64>(), -3i64..3],
        )
    }

    proptest! {
        #[test]
        fn encoding_preserves_tuple_order_and_round_trips(a in tuple(), b in tuple()) {
            let ka = result_by_metric(&a.0, &a.1, &a.2, a.3);
            let kb = result_by_metric(&b.0, &b.1, &b.2, b.3);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            prop_assert_eq!(by_metric_tuple(&ka), Ok(a.clone()));

            // The time-ordered key orders by (job, window_start, metric, window).
            let ta = result_by_time(&a.0, a.3, &a.1, &a.2);
            let tb = result_by_time(&b.0, b.3, &b.1, &b.2);
            prop_assert_eq!(ta.cmp(&tb), (&a.0, a.3, &a.1, &a.2).cmp(&(&b.0, b.3, &b.1, &b.2)));
        }

        #[test]
        fn alert_keys_preserve_order(
            a in (component(), component(), prop_oneof![any::<i64>(), -3i64..3], component()),
            b in (component(), component(), prop_oneof![any::<i64>(), -3i64..3], component()),
        ) {
            let ka = alert_by_metric(&a.0, &a.1, a.2, &a.3);
            let kb = alert_by_metric(&b.0, &b.1, b.2, &b.3);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let mut r = KeyReader::new(&ka);
            prop_assert_eq!((r.str(), r.str(), r.i64(), r.str()), (Ok(a.0.clone()), Ok(a.1.clone()), Ok(a.2), Ok(a.3.clone())));
            prop_assert_eq!(r.finish(), Ok(()));
            let ta = alert_by_time(&a.0, a.2, &a.3);
            let tb = alert_by_time(&b.0, b.2, &b.3);
            prop_assert_eq!(ta.cmp(&tb), (&a.0, a.2, &a.3).cmp(&(&b.0, b.2, &b.3)));
            prop_assert_eq!(alert(&a.0, &a.3).cmp(&alert(&b.0, &b.3)), (&a.0, &a.3).cmp(&(&b.0, &b.3)));
        }

        #[test]
        fn raw_keys_preserve_order_and_round_trip(
            a in (component(), component(), prop_oneof![any::<i64>(), -3i64..3], 0u32..3, 0u64..3),
            b in (component(), component(), prop_oneof![any::<i64>(), -3i64..3], 0u32..3, 0u64..3),
        ) {
            let ka = raw(&a.0, &a.1, a.2, a.3, a.4);
            let kb = raw(&b.0, &b.1, b.2, b.3, b.4);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let mut r = KeyReader::new(&ka);
            prop_assert_eq!(
                (r.str(), r.str(), r.i64(), r.u32(), r.u64()),
                (Ok(a.0.clone()), Ok(a.1.clone()), Ok(a.2), Ok(a.3), Ok(a.4))
            );
            prop_assert_eq!(r.finish(), Ok(()));
        }

        #[test]
        fn late_keys_preserve_order(
            a in (component(), any::<u32>(), component(), any::<u64>()),
            b in (component(), any::<u32>(), component(), any::<u64>()),
        ) {
            let ka = late(&a.0, a.1, &a.2, a.3);
            let kb = late(&b.0, b.1, &b.2, b.3);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let mut r = KeyReader::new(&ka);
            prop_assert_eq!((r.str(), r.u32(), r.str(), r.u64()), (Ok(a.0), Ok(a.1), Ok(a.2), Ok(a.3)));
            prop_assert_eq!(r.finish(), Ok(()));
        }
    }
}
