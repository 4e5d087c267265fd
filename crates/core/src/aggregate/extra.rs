//! [`ExtraValues`]: the aggregates a result carries beyond the basic five, held inline.
//!
//! A window firing for ten thousand metrics made one small heap vector per result, and the
//! store's deferred copy and the live feed's drop made and freed it again (BENCHMARKS (l)). At
//! most one value per [`AggregateKind`] exists, so a fixed array holds any result. It encodes
//! exactly as the vector of `(kind, value)` pairs it replaces: stored rows, checkpoints and topic
//! records read the same. It must never hold two values of one kind.

use std::fmt;

use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::AggregateKind;

const CAPACITY: usize = AggregateKind::ALL.len();

/// `(kind, value)` pairs in the order they were pushed (a window's config order); `None` is an
/// aggregate without a value (e.g. the standard deviation of nothing).
#[derive(Clone)]
pub struct ExtraValues {
    kinds: [AggregateKind; CAPACITY],
    values: [f64; CAPACITY],
    /// Bit `i` set: `values[i]` holds a value.
    present: u16,
    len: u8,
}

impl ExtraValues {
    pub const fn new() -> Self {
        Self {
            kinds: [AggregateKind::Count; CAPACITY],
            values: [0.0; CAPACITY],
            present: 0,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `kind`'s value, or replaces it if `kind` is already here (so the array never
    /// overflows).
    pub fn push(&mut self, kind: AggregateKind, value: Option<f64>) {
        let i = self.kinds[..self.len()]
            .iter()
            .position(|&k| k == kind)
            .unwrap_or_else(|| {
                self.len += 1;
                self.len() - 1
            });
        self.kinds[i] = kind;
        self.values[i] = value.unwrap_or(0.0);
        if value.is_some() {
            self.present |= 1 << i;
        } else {
            self.present &= !(1 << i);
        }
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (AggregateKind, Option<f64>)> + '_ {
        (0..self.len()).map(|i| {
            let value = (self.present & (1 << i) != 0).then_some(self.values[i]);
            (self.kinds[i], value)
        })
    }

    /// `kind`'s value: `None` if this holds no value of it.
    pub fn get(&self, kind: AggregateKind) -> Option<f64> {
        self.iter().find(|&(k, _)| k == kind).and_then(|(_, v)| v)
    }
}

impl Default for ExtraValues {
    fn default() -> Self {
        Self::new()
    }
}

/// As the vector it replaces compared: pair by pair, NaN unequal to itself.
impl PartialEq for ExtraValues {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl fmt::Debug for ExtraValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl FromIterator<(AggregateKind, Option<f64>)> for ExtraValues {
    fn from_iter<I: IntoIterator<Item = (AggregateKind, Option<f64>)>>(iter: I) -> Self {
        let mut extra = Self::new();
        for (kind, value) in iter {
            extra.push(kind, value);
        }
        extra
    }
}

impl Serialize for ExtraValues {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for pair in self.iter() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ExtraValues {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = ExtraValues;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of (aggregate, value) pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ExtraValues, A::Error> {
                let mut extra = ExtraValues::new();
                while let Some((kind, value)) = seq.next_element()? {
                    extra.push(kind, value);
                }
                Ok(extra)
            }
        }
        deserializer.deserialize_seq(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = AggregateKind> {
        prop::sample::select(AggregateKind::ALL.to_vec())
    }

    fn value() -> impl Strategy<Value = Option<f64>> {
        prop::option::of(prop_oneof![
            any::<f64>(),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(0.0)
        ])
    }

    /// What a push of `pairs` holds, as the vector did without duplicate kinds.
    fn model(pairs: &[(AggregateKind, Option<f64>)]) -> Vec<(AggregateKind, Option<f64>)> {
        let mut out: Vec<(AggregateKind, Option<f64>)> = Vec::new();
        for &(k, v) in pairs {
            match out.iter_mut().find(|(o, _)| *o == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        out
    }

    fn same_bits(a: &[(AggregateKind, Option<f64>)], b: &[(AggregateKind, Option<f64>)]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|((ka, va), (kb, vb))| {
                ka == kb && va.map(f64::to_bits) == vb.map(f64::to_bits)
            })
    }

    proptest! {
        #[test]
        fn holds_what_was_pushed_in_order(pairs in prop::collection::vec((kind(), value()), 0..40)) {
            let extra: ExtraValues = pairs.iter().copied().collect();
            let held: Vec<_> = extra.iter().collect();
            prop_assert!(same_bits(&held, &model(&pairs)));
            for (k, v) in model(&pairs) {
                prop_assert_eq!(extra.get(k).map(f64::to_bits), v.map(f64::to_bits));
            }
        }

        /// Stored rows, checkpoints and topic records were written from the vector.
        #[test]
        fn encodes_as_the_vector_of_pairs(pairs in prop::collection::vec((kind(), value()), 0..40)) {
            let pairs = model(&pairs);
            let extra: ExtraValues = pairs.iter().copied().collect();
            let as_vec = postcard::to_allocvec(&pairs).unwrap();
            prop_assert_eq!(postcard::to_allocvec(&extra).unwrap(), as_vec.clone());
            let back: ExtraValues = postcard::from_bytes(&as_vec).unwrap();
            prop_assert!(same_bits(&back.iter().collect::<Vec<_>>(), &pairs));
            prop_assert_eq!(serde_json::to_string(&extra).unwrap(), serde_json::to_string(&pairs).unwrap());
        }
    }

    #[test]
    fn a_sequence_of_every_kind_twice_keeps_one_of_each() {
        let pairs: Vec<_> = AggregateKind::ALL
            .iter()
            .chain(AggregateKind::ALL.iter())
            .enumerate()
            .map(|(i, &k)| (k, Some(i as f64)))
            .collect();
        let bytes = postcard::to_allocvec(&pairs).unwrap();
        let extra: ExtraValues = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(extra.len(), AggregateKind::ALL.len());
        assert_eq!(extra.get(AggregateKind::Count), Some(12.0));
        assert_eq!(extra.get(AggregateKind::P99), Some(23.0));
    }

    #[test]
    fn a_value_removed_reads_as_none() {
        let mut extra = ExtraValues::new();
        extra.push(AggregateKind::P50, Some(1.0));
        extra.push(AggregateKind::P50, None);
        assert_eq!(
            extra.iter().collect::<Vec<_>>(),
            vec![(AggregateKind::P50, None)]
        );
        assert_eq!(extra, [(AggregateKind::P50, None)].into_iter().collect());
    }
}
