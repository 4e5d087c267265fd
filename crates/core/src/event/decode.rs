//! One pass over an event's JSON text into the fields an [`EventFormat`] names.
//!
//! A serde visitor keeps those fields as [`Raw`] values (strings borrowed from the text where it
//! has no escapes) and skips every other field without building it: no JSON tree per event. This
//! module only reads; judging the fields (types, limits, the time) is `EventFormat`'s job. The one
//! rule applied here is that an object naming a field twice is refused: parsers disagree on which
//! of two `metric_id`s wins, so such an event is refused rather than guessed.
//!
//! Most events are first scanned by [`super::fast`], which reads the common flat shape without
//! serde; this reader takes every text that scan gives up on.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use smallvec::SmallVec;

use super::EventFormat;

/// A field's value as read. An object's members are kept only where asked (the tags field, in
/// [`Fields::tag_members`]), and only one level deep: a member's own arrays and objects are
/// skipped.
#[derive(Debug)]
pub(crate) enum Raw<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl Raw<'_> {
    /// What a producer is told it sent ("got a string").
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Int(_) | Raw::UInt(_) | Raw::Float(_) => "a number",
            Raw::Str(_) => "a string",
            Raw::Array => "an array",
            Raw::Object => "an object",
        }
    }
}

/// An object's members, sorted by name, each name once (a later duplicate replacing the earlier
/// one). Inline up to two: events carry a tag or two, and a map or a vector cost an allocation
/// and a free per event.
pub(crate) type Members<'a> = SmallVec<[(Cow<'a, str>, Raw<'a>); 2]>;

/// The named fields of one event object, each as read (absent: `None`).
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub metric_id: Option<Raw<'a>>,
    pub ts: Option<Raw<'a>>,
    pub value: Option<Raw<'a>>,
    pub tags: Option<Raw<'a>>,
    /// The members of the tags field when it is an object.
    pub tag_members: Members<'a>,
}

/// What a text held: an object (its fields read into the caller's [`Fields`]), or some other
/// JSON value.
#[derive(Debug)]
pub(crate) enum Read<'a> {
    Object,
    Other(Raw<'a>),
}

/// [`read`] or [`read_generic`].
pub(crate) type Reader =
    for<'a> fn(&'a str, &EventFormat, &mut Fields<'a>) -> serde_json::Result<Read<'a>>;

/// Reads `text` (one JSON value, nothing after it but whitespace). An object's fields go to
/// `fields`, which starts empty: filled in place, not returned, because the fields with their
/// inline tags are large enough that moving them out through each layer of the parser costs
/// more than the allocation the inline tags avoid.
pub(crate) fn read<'a>(
    text: &'a str,
    format: &EventFormat,
    fields: &mut Fields<'a>,
) -> serde_json::Result<Read<'a>> {
    if super::fast::read(text, format, fields).is_some() {
        return Ok(Read::Object);
    }
    *fields = Fields::default();
    read_generic(text, format, fields)
}

/// [`read`] by serde_json alone, without the scan of the common shape.
pub(crate) fn read_generic<'a>(
    text: &'a str,
    format: &EventFormat,
    fields: &mut Fields<'a>,
) -> serde_json::Result<Read<'a>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let object = text.trim_start().starts_with('{');
    let read = if object {
        de.deserialize_map(FieldsVisitor { format, fields })?;
        Read::Object
    } else {
        Read::Other(RawSeed::skip().deserialize(&mut de)?)
    };
    de.end()?;
    Ok(read)
}

struct FieldsVisitor<'f, 'de> {
    format: &'f EventFormat,
    fields: &'f mut Fields<'de>,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let format = self.format;
        let fields = self.fields;
        // Names of the fields not read, kept only to refuse one given twice; most events have
        // none, so the set is made on the first.
        let mut others: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let (slot, seed) = if key == format.metric_id_field {
                (&mut fields.metric_id, RawSeed::skip())
            } else if key == format.timestamp_field {
                (&mut fields.ts, RawSeed::skip())
            } else if key == format.value_field {
                (&mut fields.value, RawSeed::skip())
            } else if key == format.tags_field {
                let seed = RawSeed {
                    members: Some(&mut fields.tag_members),
                };
                (&mut fields.tags, seed)
            } else {
                if !others.get_or_insert_with(HashSet::new).insert(key.clone()) {
                    return Err(twice(&key));
                }
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if slot.is_some() {
                return Err(twice(&key));
            }
            *slot = Some(map.next_value_seed(seed)?);
        }
        Ok(())
    }
}

fn twice<E: de::Error>(key: &str) -> E {
    E::custom(format!("field '{key}' appears twice"))
}

/// A string borrowed from the text when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// Reads one value as [`Raw`], an object's members into `members` when given.
struct RawSeed<'m, 'de> {
    members: Option<&'m mut Members<'de>>,
}

impl RawSeed<'_, '_> {
    fn skip() -> Self {
        RawSeed { members: None }
    }
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_, 'de> {
    type Value = Raw<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RawSeed<'_, 'de> {
    type Value = Raw<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Raw<'de>, E> {
        Ok(Raw::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Raw<'de>, E> {
        Ok(Raw::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Raw<'de>, E> {
        Ok(Raw::UInt(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Raw<'de>, E> {
        Ok(Raw::Float(v))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Raw<'de>, E> {
        Ok(Raw::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw<'de>, E> {
        Ok(Raw::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Raw::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw<'de>, A::Error> {
        let Some(members) = self.members else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Raw::Object);
        };
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value = map.next_value_seed(RawSeed::skip())?;
            members.push((key, value));
        }
        finish_members(members);
        Ok(Raw::Object)
    }
}

/// Sorts an object's members by name and keeps the later of two with one name, as a map that
/// replaces on insert would hold them.
pub(super) fn finish_members(members: &mut Members<'_>) {
    // Stable, so a name's values stay in their order and the last of a run is the later.
    members.sort_by(|a, b| a.0.cmp(&b.0));
    members.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_sorted_and_the_later_duplicate_wins() {
        let text = r#"{"b": 1, "a": 2, "b": 3, "c": 4, "a": 5, "b": 6}"#;
        let mut de = serde_json::Deserializer::from_str(text);
        let mut members = Members::new();
        let seed = RawSeed {
            members: Some(&mut members),
        };
        assert!(matches!(seed.deserialize(&mut de).unwrap(), Raw::Object));
        let got: Vec<(String, i64)> = members
            .into_iter()
            .map(|(k, v)| match v {
                Raw::UInt(u) => (k.into_owned(), u as i64),
                other => panic!("{other:?}"),
            })
            .collect();
        // What a map that replaces on insert holds.
        let want: std::collections::BTreeMap<String, i64> = serde_json::from_str(text).unwrap();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
    }
}
