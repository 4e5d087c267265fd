//! One pass over an event's JSON text into the fields an [`EventFormat`] names.
//!
//! A serde visitor keeps those fields as [`Raw`] values (strings borrowed from the text where it
//! has no escapes) and skips every other field without building it: no JSON tree per event. This
//! module only reads; judging the fields (types, limits, the time) is `EventFormat`'s job. The one
//! rule applied here is that an object naming a field twice is refused: parsers disagree on which
//! of two `metric_id`s wins, so such an event is refused rather than guessed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;

use super::EventFormat;

/// A field's value as read. Objects keep their members only where asked (the tags field), and
/// only one level deep: a member's own arrays and objects are skipped.
#[derive(Debug)]
pub(crate) enum Raw<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    /// Members, later duplicates replacing earlier ones; `None` where they were skipped.
    Object(Option<BTreeMap<Cow<'a, str>, Raw<'a>>>),
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
            Raw::Object(_) => "an object",
        }
    }
}

/// The named fields of one event object, each as read (absent: `None`).
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    pub metric_id: Option<Raw<'a>>,
    pub ts: Option<Raw<'a>>,
    pub value: Option<Raw<'a>>,
    pub tags: Option<Raw<'a>>,
}

/// What a text held: an object's fields, or some other JSON value.
#[derive(Debug)]
pub(crate) enum Read<'a> {
    Object(Fields<'a>),
    Other(Raw<'a>),
}

/// Reads `text` (one JSON value, nothing after it but whitespace).
pub(crate) fn read<'a>(text: &'a str, format: &EventFormat) -> serde_json::Result<Read<'a>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let object = text.trim_start().starts_with('{');
    let read = if object {
        Read::Object(de.deserialize_map(FieldsVisitor { format })?)
    } else {
        Read::Other(RawSeed { members: false }.deserialize(&mut de)?)
    };
    de.end()?;
    Ok(read)
}

struct FieldsVisitor<'f> {
    format: &'f EventFormat,
}

impl<'de> Visitor<'de> for FieldsVisitor<'_> {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let format = self.format;
        let mut fields = Fields::default();
        // Names of the fields not read, kept only to refuse one given twice; most events have
        // none, so the set is made on the first.
        let mut others: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let (slot, members) = if key == format.metric_id_field {
                (&mut fields.metric_id, false)
            } else if key == format.timestamp_field {
                (&mut fields.ts, false)
            } else if key == format.value_field {
                (&mut fields.value, false)
            } else if key == format.tags_field {
                (&mut fields.tags, true)
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
            *slot = Some(map.next_value_seed(RawSeed { members })?);
        }
        Ok(fields)
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

/// Reads one value as [`Raw`]; `members`: keep an object's members.
#[derive(Clone, Copy)]
struct RawSeed {
    members: bool,
}

impl<'de> DeserializeSeed<'de> for RawSeed {
    type Value = Raw<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Raw<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RawSeed {
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
        if !self.members {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Raw::Object(None));
        }
        let mut members = BTreeMap::new();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let value = map.next_value_seed(RawSeed { members: false })?;
            members.insert(key, value);
        }
        Ok(Raw::Object(Some(members)))
    }
}
