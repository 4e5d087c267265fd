//! A map kept as a sorted vector, for the few entries a key holds in a window operator (its open
//! slices, its registered windows: one to a handful).
//!
//! A `BTreeMap` allocates a node of eleven slots for even one entry, so ten thousand keys with
//! two maps each spread their state over megabytes and every event missed the cache. Here the
//! entries of a key sit in one small allocation. It serializes as a map, entry by entry in key
//! order, exactly as the `BTreeMap` it replaces did, so checkpoints are unchanged.
//!
//! Never use it for maps that grow with the input: insertion and removal are O(n).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, PartialEq)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord + Copy, V> VecMap<K, V> {
    fn find(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key).ok()?;
        Some(&mut self.entries[i].1)
    }

    /// The value at `key`, inserted with `make` if absent; and whether it was inserted.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> (&mut V, bool) {
        match self.find(&key) {
            Ok(i) => (&mut self.entries[i].1, false),
            Err(i) => {
                self.entries.insert(i, (key, make()));
                (&mut self.entries[i].1, true)
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Drops every entry whose key is before `key`.
    pub fn remove_before(&mut self, key: &K) {
        let keep_from = self.entries.partition_point(|(k, _)| k < key);
        self.entries.drain(..keep_from);
    }

    /// Entries with keys in `range`, in key order.
    pub fn range(&self, range: Range<K>) -> impl Iterator<Item = (&K, &V)> {
        let from = self.entries.partition_point(|(k, _)| *k < range.start);
        let to = self.entries.partition_point(|(k, _)| *k < range.end);
        self.entries[from..to.max(from)].iter().map(|(k, v)| (k, v))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl<K: Serialize, V: Serialize> Serialize for VecMap<K, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, K: Deserialize<'de> + Ord + Copy, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, T>(PhantomData<(K, T)>);
        impl<'de, K: Deserialize<'de> + Ord + Copy, T: Deserialize<'de>> Visitor<'de> for MapVisitor<K, T> {
            type Value = VecMap<K, T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                // The size hint comes from the input: never trust it for an allocation.
                let mut entries: Vec<(K, T)> =
                    Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some((k, v)) = access.next_entry()? {
                    entries.push((k, v));
                }
                // Written in key order; sort anyway (stable: of two equal keys the last wins, as
                // a map read would have it).
                entries.sort_by_key(|a| a.0);
                let mut map = VecMap {
                    entries: Vec::with_capacity(entries.len()),
                };
                for (k, v) in entries {
                    match map.entries.last_mut() {
                        Some(last) if last.0 == k => last.1 = v,
                        _ => map.entries.push((k, v)),
                    }
                }
                Ok(map)
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The same operations on a `BTreeMap` and a `VecMap` leave the same entries, and both
        /// serialize to the same bytes, either way round.
        #[test]
        fn behaves_and_serializes_as_a_btree_map(
            ops in prop::collection::vec((0u8..4, 0i64..40, any::<u16>()), 0..200),
        ) {
            let mut tree: BTreeMap<i64, u16> = BTreeMap::new();
            let mut vec: VecMap<i64, u16> = VecMap::default();
            for (op, k, v) in ops {
                match op {
                    0 => {
                        let inserted = !tree.contains_key(&k);
                        tree.entry(k).or_insert(v);
                        prop_assert_eq!(vec.get_or_insert_with(k, || v).1, inserted);
                    }
                    1 => prop_assert_eq!(tree.remove(&k), vec.remove(&k)),
                    2 => {
                        tree = tree.split_off(&k);
                        vec.remove_before(&k);
                    }
                    _ => {
                        if let (Some(a), Some(b)) = (tree.get_mut(&k), vec.get_mut(&k)) {
                            *a = a.wrapping_add(v);
                            *b = b.wrapping_add(v);
                        }
                    }
                }
                let lo = k - 10;
                let want: Vec<_> = tree.range(lo..k).collect();
                let got: Vec<_> = vec.range(lo..k).collect();
                prop_assert_eq!(want, got);
            }
            prop_assert_eq!(tree.iter().collect::<Vec<_>>(), vec.iter().collect::<Vec<_>>());
            let bytes = postcard::to_allocvec(&tree).unwrap();
            prop_assert_eq!(&bytes, &postcard::to_allocvec(&vec).unwrap());
            let back: VecMap<i64, u16> = postcard::from_bytes(&bytes).unwrap();
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), tree.iter().collect::<Vec<_>>());
        }
    }
}
