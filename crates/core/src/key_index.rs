//! Metric id → key id of a partition's live keys: the one hash lookup every event makes.
//!
//! Ids up to [`INLINE`] bytes (most metric ids) are kept inside the table's slot, so the lookup's
//! comparison reads the slot it already fetched instead of following a pointer to a string
//! elsewhere on the heap: with ten thousand metrics that pointer was a cache miss per event.
//! Longer ids live on the heap, as before. Hashing is foldhash, seeded per table like std's
//! SipHash (so ids cannot be chosen to collide without the seed) and a fraction of its cost on
//! short ids.
//!
//! Derived from the pipeline's state (never checkpointed), so its layout can change freely.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// The longest id kept in the slot: with its length and the variant's tag, 24 bytes, the size
/// of the `String` it replaces.
const INLINE: usize = 22;

/// A metric id as the table keeps it. Equal, hashed and borrowed as its bytes, so a `&[u8]`
/// looks it up.
#[derive(Clone)]
enum Id {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Id {
    fn new(id: &str) -> Self {
        let src = id.as_bytes();
        match u8::try_from(src.len()) {
            Ok(len) if src.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..src.len()].copy_from_slice(src);
                Id::Inline { len, bytes }
            }
            _ => Id::Heap(src.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Id::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Id::Heap(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for Id {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// `Borrow` requires these to agree with `[u8]`'s own.
impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Id {}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

#[derive(Clone, Default)]
pub struct KeyIndex {
    map: HashMap<Id, u32, foldhash::fast::RandomState>,
}

impl KeyIndex {
    pub fn get(&self, metric_id: &str) -> Option<u32> {
        self.map.get(metric_id.as_bytes()).copied()
    }

    pub fn insert(&mut self, metric_id: &str, key: u32) {
        self.map.insert(Id::new(metric_id), key);
    }

    pub fn remove(&mut self, metric_id: &str) -> Option<u32> {
        self.map.remove(metric_id.as_bytes())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}

impl<'a> FromIterator<(&'a str, u32)> for KeyIndex {
    fn from_iter<I: IntoIterator<Item = (&'a str, u32)>>(iter: I) -> Self {
        let mut index = KeyIndex::default();
        for (metric_id, key) in iter {
            index.insert(metric_id, key);
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_string_s_size() {
        assert_eq!(std::mem::size_of::<Id>(), std::mem::size_of::<String>());
    }

    #[test]
    fn ids_inline_and_on_the_heap_are_found_and_removed() {
        let short = "m";
        let longest_inline = "a".repeat(INLINE);
        let first_on_heap = "b".repeat(INLINE + 1);
        let long = "c".repeat(300);
        let ids = ["", short, &longest_inline, &first_on_heap, &long, "mé"];
        let mut index = KeyIndex::default();
        for (key, id) in ids.iter().enumerate() {
            index.insert(id, key as u32);
        }
        assert_eq!(index.len(), ids.len());
        for (key, id) in ids.iter().enumerate() {
            assert_eq!(index.get(id), Some(key as u32), "{id:?}");
        }
        // Prefixes and extensions of a kept id are other ids.
        assert_eq!(index.get(&longest_inline[1..]), None);
        assert_eq!(index.get(&format!("{first_on_heap}b")), None);
        assert_eq!(index.get("m\0"), None);
        assert_eq!(index.remove(&first_on_heap), Some(3));
        assert_eq!(index.get(&first_on_heap), None);
        assert_eq!(index.get(&long), Some(4));
        index.insert(short, 9);
        assert_eq!(index.get(short), Some(9));
        assert_eq!(index.len(), ids.len() - 1);
    }
}
