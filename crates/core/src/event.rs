//! The event: what a producer sends, after validation.
//!
//! [`EventFormat`] says which JSON fields hold the metric id, the event time, the value and the
//! tags, and how the time is written. [`EventFormat::parse`] turns one JSON object into an
//! [`Event`] or a [`EventError`] that tells the producer what to fix. It never panics on input
//! and never guesses: a value that is not a finite number is an error, not a zero.

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

/// Where the fields of an event are found in an input JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventFormat {
    pub metric_id_field: String,
    pub timestamp_field: String,
    pub timestamp_format: TimestampFormat,
    pub value_field: String,
    pub tags_field: String,
}

impl Default for EventFormat {
    fn default() -> Self {
        Self {
            metric_id_field: "metric_id".into(),
            timestamp_field: "ts".into(),
            timestamp_format: TimestampFormat::Auto,
            value_field: "value".into(),
            tags_field: "tags".into(),
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
    /// Parses one JSON text holding one object.
    pub fn parse_str(&self, text: &str) -> Result<Event, EventError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| EventError::Json(e.to_string()))?;
        self.parse(&value)
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
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((k.clone(), v.to_string())),
                    other => Err(self.wrong_type(&self.tags_field, "an object of strings", other)),
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
