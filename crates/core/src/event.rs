//! The event: what a producer sends, after validation.
//!
//! [`EventFormat`] says which JSON fields hold the metric id, the event time, the value and the
//! tags, and how the time is written, and how large an event may be. [`EventFormat::parse`] turns
//! one JSON object into an [`Event`] or a [`EventError`] that tells the producer what to fix. It
//! never panics on input and never guesses: a value that is not a finite number is an error, not a
//! zero; a metric id or tag past its limit is an error, not a truncation.
//!
//! [`check_future`] is the one guard that needs a clock: the caller brings the reference instant
//! (the wall clock at HTTP ingest, a Kafka record's own timestamp), this module never reads one.

use crate::config::ConfigError;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{self, Millis, TimeParseError};

/// One measurement of one metric at one instant of event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub metric_id: String,
    /// Event time, epoch milliseconds.
    pub ts: Millis,
    pub value: f64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// How the event time is written in the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampFormat {
    /// Integer → epoch ms, fractional number → epoch seconds, string → RFC 3339 or epoch ms.
    #[default]
    Auto,
    EpochMillis,
    EpochSeconds,
    Rfc3339,
}

/// Where the fields of an event are found in an input JSON object, and the size limits of one
/// event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventFormat {
    pub metric_id_field: String,
    pub timestamp_field: String,
    pub timestamp_format: TimestampFormat,
    pub value_field: String,
    pub tags_field: String,
    /// Longest accepted event, in bytes of its JSON text (checked before it is parsed).
    pub max_event_bytes: usize,
    /// Longest accepted metric id, in bytes (UTF-8).
    pub max_metric_id_bytes: usize,
    /// Most tags on one event.
    pub max_tags: usize,
    /// Longest tag key, in bytes.
    pub max_tag_key_bytes: usize,
    /// Longest tag value, in bytes (numbers and booleans count as their JSON text).
    pub max_tag_value_bytes: usize,
}

/// Defaults of the size limits: generous for metrics, small enough that one hostile event cannot
/// grow the metric catalog or the state by more than a few kilobytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;
pub const DEFAULT_MAX_METRIC_ID_BYTES: usize = 256;
pub const DEFAULT_MAX_TAGS: usize = 32;
pub const DEFAULT_MAX_TAG_KEY_BYTES: usize = 128;
pub const DEFAULT_MAX_TAG_VALUE_BYTES: usize = 256;

/// Upper bounds of the limits themselves (a config can raise a limit up to these, no further).
pub const LIMIT_MAX_EVENT_BYTES: usize = 1024 * 1024;
pub const LIMIT_MAX_METRIC_ID_BYTES: usize = 4096;
pub const LIMIT_MAX_TAGS: usize = 256;
pub const LIMIT_MAX_TAG_BYTES: usize = 4096;

impl Default for EventFormat {
    fn default() -> Self {
        Self {
            metric_id_field: "metric_id".into(),
            timestamp_field: "ts".into(),
            timestamp_format: TimestampFormat::Auto,
            value_field: "value".into(),
            tags_field: "tags".into(),
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_metric_id_bytes: DEFAULT_MAX_METRIC_ID_BYTES,
            max_tags: DEFAULT_MAX_TAGS,
            max_tag_key_bytes: DEFAULT_MAX_TAG_KEY_BYTES,
            max_tag_value_bytes: DEFAULT_MAX_TAG_VALUE_BYTES,
        }
    }
}

/// Why an input object is not a valid event. The message names the field and the fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("expected a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("missing field '{0}'")]
    Missing(String),
    #[error("field '{field}' must be {expected}, got {got}")]
    WrongType {
        field: String,
        expected: &'static str,
        got: &'static str,
    },
    #[error("field '{0}' must not be empty")]
    Empty(String),
    #[error("field '{0}' must be a finite number (NaN and infinities are rejected)")]
    NotFinite(String),
    #[error("field '{field}': {source}")]
    Time {
        field: String,
        source: TimeParseError,
    },
    #[error("{what} is {got} bytes, more than the limit of {limit} (event.{key})")]
    TooLarge {
        what: String,
        got: usize,
        limit: usize,
        key: &'static str,
    },
    #[error("field '{field}' has {got} tags, more than the limit of {limit} (event.max_tags)")]
    TooManyTags {
        field: String,
        got: usize,
        limit: usize,
    },
    #[error(
        "event time {} is more than {} ahead of {} (job.max_future): a producer clock is wrong, or the unit is",
        crate::time::format_rfc3339(*ts),
        humantime::format_duration(std::time::Duration::from_millis(*max_future as u64)),
        crate::time::format_rfc3339(*reference)
    )]
    Future {
        ts: Millis,
        reference: Millis,
        max_future: Millis,
    },
}

/// Refuses an event whose time is more than `max_future` ahead of `reference` (the wall clock at
/// ingest, or a Kafka record's timestamp). Such an event would move its partition's watermark
/// past every other metric's events, making them late, and the watermark is checkpointed.
pub fn check_future(ts: Millis, reference: Millis, max_future: Millis) -> Result<(), EventError> {
    if ts.saturating_sub(reference) > max_future {
        return Err(EventError::Future {
            ts,
            reference,
            max_future,
        });
    }
    Ok(())
}

/// A JSON value whose top-level object, if it is one, names no field twice: parsers disagree on
/// which of two `metric_id`s wins, so an event that holds two is refused rather than guessed.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Strict, A::Error> {
                let mut obj = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if obj.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "field '{key}' appears twice"
                        )));
                    }
                    let value: Value = map.next_value()?;
                    obj.insert(key, value);
                }
                Ok(Strict(Value::Object(obj)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Strict, A::Error> {
                let v = Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Strict(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                Ok(Strict(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                Ok(Strict(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                Ok(Strict(
                    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                Ok(Strict(Value::String(v.to_string())))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(Value::Null))
            }
        }
        d.deserialize_any(V)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl EventFormat {
    /// Parses one JSON text holding one object, refusing it unread when it exceeds
    /// `max_event_bytes`.
    pub fn parse_str(&self, text: &str) -> Result<Event, EventError> {
        self.check_event_size(text.len())?;
        let value: Strict =
            serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
        self.parse(&value.0)
    }

    /// Refuses an event of `len` bytes of JSON when it exceeds `max_event_bytes`; callers that
    /// hold the raw text check this before building a JSON tree of it.
    pub fn check_event_size(&self, len: usize) -> Result<(), EventError> {
        if len > self.max_event_bytes {
            return Err(EventError::TooLarge {
                what: "the event".into(),
                got: len,
                limit: self.max_event_bytes,
                key: "max_event_bytes",
            });
        }
        Ok(())
    }

    /// Validates one JSON value as an event.
    pub fn parse(&self, value: &Value) -> Result<Event, EventError> {
        let Value::Object(obj) = value else {
            return Err(EventError::NotAnObject(type_name(value)));
        };
        let field = |name: &str| {
            obj.get(name)
                .ok_or_else(|| EventError::Missing(name.to_string()))
        };

        let metric_id = match field(&self.metric_id_field)? {
            Value::String(s) if s.is_empty() => {
                return Err(EventError::Empty(self.metric_id_field.clone()))
            }
            Value::String(s) if s.len() > self.max_metric_id_bytes => {
                return Err(EventError::TooLarge {
                    what: format!("field '{}'", self.metric_id_field),
                    got: s.len(),
                    limit: self.max_metric_id_bytes,
                    key: "max_metric_id_bytes",
                })
            }
            Value::String(s) => s.clone(),
            other => return Err(self.wrong_type(&self.metric_id_field, "a string", other)),
        };
        let ts = self.parse_timestamp(field(&self.timestamp_field)?)?;
        let value = match field(&self.value_field)? {
            Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
            other => return Err(self.wrong_type(&self.value_field, "a number", other)),
        }
        .ok_or_else(|| EventError::NotFinite(self.value_field.clone()))?;
        let tags = match obj.get(&self.tags_field) {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) if map.len() > self.max_tags => {
                return Err(EventError::TooManyTags {
                    field: self.tags_field.clone(),
                    got: map.len(),
                    limit: self.max_tags,
                })
            }
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        other => {
                            return Err(self.wrong_type(
                                &self.tags_field,
                                "an object of strings",
                                other,
                            ))
                        }
                    };
                    self.check_tag(k, &v)?;
                    Ok((k.clone(), v))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(self.wrong_type(&self.tags_field, "an object", other)),
        };
        Ok(Event {
            metric_id,
            ts,
            value,
            tags,
        })
    }

    fn check_tag(&self, key: &str, value: &str) -> Result<(), EventError> {
        let too_large = |what: String, got, limit, key| EventError::TooLarge {
            what,
            got,
            limit,
            key,
        };
        if key.len() > self.max_tag_key_bytes {
            return Err(too_large(
                format!("a key of '{}'", self.tags_field),
                key.len(),
                self.max_tag_key_bytes,
                "max_tag_key_bytes",
            ));
        }
        if value.len() > self.max_tag_value_bytes {
            return Err(too_large(
                format!("the value of tag '{key}'"),
                value.len(),
                self.max_tag_value_bytes,
                "max_tag_value_bytes",
            ));
        }
        Ok(())
    }

    /// Checks the limits themselves: each at least 1 and at most its documented bound. On error:
    /// the key relative to `event`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, field) in [
            ("metric_id_field", &self.metric_id_field),
            ("timestamp_field", &self.timestamp_field),
            ("value_field", &self.value_field),
            ("tags_field", &self.tags_field),
        ] {
            if field.is_empty() {
                return Err(ConfigError::new(key, "must not be empty"));
            }
        }
        for (key, value, max) in [
            (
                "max_event_bytes",
                self.max_event_bytes,
                LIMIT_MAX_EVENT_BYTES,
            ),
            (
                "max_metric_id_bytes",
                self.max_metric_id_bytes,
                LIMIT_MAX_METRIC_ID_BYTES,
            ),
            ("max_tags", self.max_tags, LIMIT_MAX_TAGS),
            (
                "max_tag_key_bytes",
                self.max_tag_key_bytes,
                LIMIT_MAX_TAG_BYTES,
            ),
            (
                "max_tag_value_bytes",
                self.max_tag_value_bytes,
                LIMIT_MAX_TAG_BYTES,
            ),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError::new(
                    key,
                    format!("must be between 1 and {max}"),
                ));
            }
        }
        Ok(())
    }

    fn wrong_type(&self, field: &str, expected: &'static str, got: &Value) -> EventError {
        EventError::WrongType {
            field: field.to_string(),
            expected,
            got: type_name(got),
        }
    }

    fn parse_timestamp(&self, raw: &Value) -> Result<Millis, EventError> {
        let field = &self.timestamp_field;
        let time_err = |source| EventError::Time {
            field: field.clone(),
            source,
        };
        match (self.timestamp_format, raw) {
            (TimestampFormat::Auto | TimestampFormat::EpochMillis, Value::Number(n)) => {
                if let Some(ms) = n.as_i64() {
                    return time::check_range(ms as i128).map_err(time_err);
                }
                let f = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| EventError::NotFinite(field.clone()))?;
                // A fractional number in Auto mode is epoch seconds (as Unix tools write it).
                let ms = if self.timestamp_format == TimestampFormat::Auto {
                    f * 1000.0
                } else {
                    f
                };
                time::check_range(ms.floor() as i128).map_err(time_err)
            }
            (TimestampFormat::EpochSeconds, Value::Number(n)) => {
                let secs = n
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| EventError::NotFinite(field.clone()))?;
                time::check_range((secs * 1000.0).floor() as i128).map_err(time_err)
            }
            (TimestampFormat::Auto, Value::String(s)) => time::parse_instant(s).map_err(time_err),
            (TimestampFormat::Rfc3339, Value::String(s)) => {
                time::parse_rfc3339(s).map_err(time_err)
            }
            (TimestampFormat::Rfc3339, other) => {
                Err(self.wrong_type(field, "an RFC 3339 string", other))
            }
            (_, other) => Err(self.wrong_type(field, "a number or an RFC 3339 string", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt() -> EventFormat {
        EventFormat::default()
    }

    #[test]
    fn parses_the_reference_event_shape() {
        let e = fmt()
            .parse_str(
                r#"{"metric_id": "m1", "ts": 1700000012345, "value": 1.5, "tags": {"host": "h"}}"#,
            )
            .unwrap();
        assert_eq!(e.metric_id, "m1");
        assert_eq!(e.ts, 1_700_000_012_345);
        assert_eq!(e.value, 1.5);
        assert_eq!(e.tags["host"], "h");
    }

    #[test]
    fn accepts_the_three_time_forms() {
        let f = fmt();
        let ms = f
            .parse_str(r#"{"metric_id":"m","ts":1700000000000,"value":1}"#)
            .unwrap()
            .ts;
        let secs = f
            .parse_str(r#"{"metric_id":"m","ts":1700000000.0,"value":1}"#)
            .unwrap()
            .ts;
        let iso = f
            .parse_str(r#"{"metric_id":"m","ts":"2023-11-14T22:13:20Z","value":1}"#)
            .unwrap()
            .ts;
        assert_eq!(
            (ms, secs, iso),
            (1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_000)
        );
    }

    #[test]
    fn honours_configured_field_names() {
        let f = EventFormat {
            metric_id_field: "name".into(),
            timestamp_field: "time".into(),
            timestamp_format: TimestampFormat::EpochSeconds,
            value_field: "v".into(),
            tags_field: "labels".into(),
            ..fmt()
        };
        let e = f
            .parse_str(r#"{"name":"cpu","time":1700000000,"v":2,"labels":{"dc":"eu"}}"#)
            .unwrap();
        assert_eq!(
            (e.metric_id.as_str(), e.ts, e.value),
            ("cpu", 1_700_000_000_000, 2.0)
        );
        assert_eq!(e.tags["dc"], "eu");
    }

    #[test]
    fn rejects_bad_input_with_a_reason_naming_the_field() {
        let f = fmt();
        let cases = [
            (
                r#"{"metric_id":"m","ts":1700000000000}"#,
                "missing field 'value'",
            ),
            (
                r#"{"metric_id":5,"ts":1700000000000,"value":1}"#,
                "'metric_id' must be a string",
            ),
            (
                r#"{"metric_id":"","ts":1700000000000,"value":1}"#,
                "'metric_id' must not be empty",
            ),
            (
                r#"{"metric_id":"m","ts":1700000000000,"value":"1"}"#,
                "'value' must be a number",
            ),
            (
                r#"{"metric_id":"m","ts":1e300,"value":1}"#,
                "outside the accepted range",
            ),
            (
                r#"{"metric_id":"m","ts":"soon","value":1}"#,
                "neither epoch",
            ),
            (
                r#"{"metric_id":"m","ts":1700000000000,"value":1,"tags":[1]}"#,
                "'tags' must be an object",
            ),
            (r#"[1,2]"#, "expected a JSON object"),
            (r#"{"metric_id":"m","#, "invalid JSON"),
        ];
        for (input, reason) in cases {
            let err = f.parse_str(input).unwrap_err().to_string();
            assert!(err.contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn rejects_ids_tags_and_events_past_their_limits_naming_the_key() {
        let f = EventFormat {
            max_metric_id_bytes: 8,
            max_tags: 2,
            max_tag_key_bytes: 4,
            max_tag_value_bytes: 4,
            max_event_bytes: 200,
            ..fmt()
        };
        let ok = r#"{"metric_id":"12345678","ts":1,"value":1,"tags":{"abcd":"wxyz","b":1}}"#;
        assert_eq!(f.parse_str(ok).unwrap().tags.len(), 2);
        let cases = [
            (
                r#"{"metric_id":"123456789","ts":1,"value":1}"#,
                "field 'metric_id' is 9 bytes, more than the limit of 8 (event.max_metric_id_bytes)",
            ),
            (
                r#"{"metric_id":"m","ts":1,"value":1,"tags":{"a":"1","b":"2","c":"3"}}"#,
                "3 tags, more than the limit of 2 (event.max_tags)",
            ),
            (
                r#"{"metric_id":"m","ts":1,"value":1,"tags":{"abcde":"1"}}"#,
                "(event.max_tag_key_bytes)",
            ),
            (
                r#"{"metric_id":"m","ts":1,"value":1,"tags":{"a":12345}}"#,
                "the value of tag 'a' is 5 bytes",
            ),
        ];
        for (input, reason) in cases {
            let err = f.parse_str(input).unwrap_err().to_string();
            assert!(err.contains(reason), "{input}: {err}");
        }
        let big = format!(
            r#"{{"metric_id":"m","ts":1,"value":1,"pad":"{}"}}"#,
            "x".repeat(200)
        );
        let err = f.parse_str(&big).unwrap_err();
        assert!(
            matches!(
                err,
                EventError::TooLarge {
                    key: "max_event_bytes",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_future_guard_allows_up_to_the_limit_and_names_it() {
        let hour = 3_600_000;
        assert!(check_future(1_000 + hour, 1_000, hour).is_ok());
        assert!(
            check_future(0, 1_000, hour).is_ok(),
            "the past is not guarded"
        );
        let err = check_future(1_001 + hour, 1_000, hour)
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1h ahead"), "{err}");
        assert!(err.contains("job.max_future"), "{err}");
        assert!(check_future(crate::time::MAX_TIMESTAMP, 0, i64::MAX).is_ok());
    }

    #[test]
    fn limits_are_validated() {
        assert!(fmt().validate().is_ok());
        let f = EventFormat {
            max_tags: 0,
            ..fmt()
        };
        assert_eq!(f.validate().unwrap_err().key, "max_tags");
        let f = EventFormat {
            max_event_bytes: LIMIT_MAX_EVENT_BYTES + 1,
            ..fmt()
        };
        assert_eq!(f.validate().unwrap_err().key, "max_event_bytes");
    }

    #[test]
    fn a_field_given_twice_is_refused_not_guessed() {
        let err = fmt()
            .parse_str(r#"{"metric_id":"a","metric_id":"b","ts":1,"value":1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("field 'metric_id' appears twice"), "{err}");
        let err = fmt().parse_str("[1, 2]").unwrap_err();
        assert_eq!(err, EventError::NotAnObject("an array"));
        assert!(fmt().parse_str("7").is_err());
    }

    #[test]
    fn rejects_non_finite_values() {
        // JSON has no NaN literal; serde_json rejects it as invalid JSON, and huge literals overflow to inf.
        let err = fmt()
            .parse_str(r#"{"metric_id":"m","ts":1700000000000,"value":NaN}"#)
            .unwrap_err();
        assert!(matches!(err, EventError::Json(_)));
        assert!(fmt()
            .parse_str(r#"{"metric_id":"m","ts":1700000000000,"value":1e999}"#)
            .is_err());
    }
}
