//! A body of many events, as producers send them: one JSON object, a JSON array of objects, or
//! NDJSON (one object per line), split and validated one event at a time.
//!
//! Memory is bounded by what is kept, not by what is sent: an element is read as raw text, its
//! size checked against `max_event_bytes` before a JSON tree is built of it, and the walk stops at
//! `max_events`. A body of millions of tiny elements, or one huge nested element, costs at most
//! `max_events` small events. This module must never build a tree of the whole body.

use std::fmt;

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event::{Event, EventError, EventFormat, EventRef};

/// How the body is framed (from its content type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One object or an array of objects; a body that is not one JSON value is read as NDJSON.
    Json,
    /// One object per line; blank lines are skipped.
    Ndjson,
}

/// One event of a body: its 1-based position (array element or line) and the event or why it was
/// refused.
pub type Item = (usize, Result<Event, EventError>);

/// An [`Item`] whose event borrows from the body (see [`parse_refs`]).
pub type ItemRef<'a> = (usize, Result<EventRef<'a>, EventError>);

/// Why a body as a whole is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("the body is not UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 { valid_up_to: usize },
    #[error("the body holds more than {limit} events (server.max_events_per_request); split it into smaller requests")]
    TooManyEvents { limit: usize },
    #[error("the body holds no events")]
    Empty,
}

/// Splits and validates `body`. Each event is judged on its own; the body is refused as a whole
/// only when it is not UTF-8 (NDJSON), holds more than `max_events` events, or holds none.
pub fn parse(
    body: &[u8],
    framing: Framing,
    format: &EventFormat,
    max_events: usize,
) -> Result<Vec<Item>, BatchError> {
    Ok(parse_refs(body, framing, format, max_events)?
        .into_iter()
        .map(|(position, event)| (position, event.map(EventRef::into_event)))
        .collect())
}

/// [`parse`] without copying the events out of `body`.
pub fn parse_refs<'a>(
    body: &'a [u8],
    framing: Framing,
    format: &EventFormat,
    max_events: usize,
) -> Result<Vec<ItemRef<'a>>, BatchError> {
    let items = match framing {
        Framing::Ndjson => parse_lines(body, format, max_events)?,
        Framing::Json => match parse_json(body, format, max_events) {
            Some(items) => items?,
            None => parse_lines(body, format, max_events)?,
        },
    };
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(items)
}

/// `None` when the body is not one JSON value (the caller reads it as NDJSON instead).
fn parse_json<'a>(
    body: &'a [u8],
    format: &EventFormat,
    max_events: usize,
) -> Option<Result<Vec<ItemRef<'a>>, BatchError>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'[' {
        let raw: &RawValue = serde_json::from_slice(body).ok()?;
        return Some(Ok(vec![(1, format.parse_ref(raw.get()))]));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut walk = ArrayWalk {
        format,
        max_events,
        items: Vec::new(),
        too_many: false,
    };
    let parsed = (&mut walk).deserialize(&mut de).and_then(|()| de.end());
    if walk.too_many {
        return Some(Err(BatchError::TooManyEvents { limit: max_events }));
    }
    parsed.ok()?;
    Some(Ok(walk.items))
}

fn parse_lines<'a>(
    body: &'a [u8],
    format: &EventFormat,
    max_events: usize,
) -> Result<Vec<ItemRef<'a>>, BatchError> {
    let text = std::str::from_utf8(body).map_err(|e| BatchError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    // Sized once: a vector grown by doubling to a body's thousands of events copied them about
    // once more. Lines bound the events; the limit bounds the room a body of blank lines gets.
    let lines = body.iter().filter(|&&b| b == b'\n').count() + 1;
    let mut items = Vec::with_capacity(lines.min(max_events));
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if items.len() == max_events {
            return Err(BatchError::TooManyEvents { limit: max_events });
        }
        items.push((i + 1, format.parse_ref(line)));
    }
    Ok(items)
}

/// Walks a top-level array element by element, keeping only the parsed events.
struct ArrayWalk<'f, 'de> {
    format: &'f EventFormat,
    max_events: usize,
    items: Vec<ItemRef<'de>>,
    too_many: bool,
}

impl<'de> DeserializeSeed<'de> for &mut ArrayWalk<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for &mut ArrayWalk<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            if self.items.len() == self.max_events {
                self.too_many = true;
                return Err(serde::de::Error::custom("too many events"));
            }
            let position = self.items.len() + 1;
            self.items
                .push((position, self.format.parse_ref(raw.get())));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, framing: Framing, max: usize) -> Result<Vec<Item>, BatchError> {
        parse(body.as_bytes(), framing, &EventFormat::default(), max)
    }

    const A: &str = r#"{"metric_id":"a","ts":1,"value":1}"#;

    #[test]
    fn an_object_an_array_and_ndjson_give_the_same_events() {
        let one = run(A, Framing::Json, 10).unwrap();
        let array = run(&format!("[{A}, {A}]"), Framing::Json, 10).unwrap();
        let lines = run(&format!("{A}\n\n{A}\n"), Framing::Ndjson, 10).unwrap();
        let lines_as_json = run(&format!("{A}\n{A}"), Framing::Json, 10).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(array.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(lines.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(lines_as_json.len(), 2);
        for (_, e) in one.iter().chain(&array).chain(&lines).chain(&lines_as_json) {
            assert_eq!(e.as_ref().unwrap().metric_id, "a");
        }
    }

    #[test]
    fn bad_elements_are_refused_one_by_one() {
        let items = run(&format!("[{A}, 5, {{\"x\":1}}, {A}]"), Framing::Json, 10).unwrap();
        let ok: Vec<bool> = items.iter().map(|i| i.1.is_ok()).collect();
        assert_eq!(ok, [true, false, false, true]);
    }

    #[test]
    fn the_event_count_is_capped_before_the_rest_is_read() {
        let zeros = format!("[{}0]", "0,".repeat(1_000_000));
        assert_eq!(
            run(&zeros, Framing::Json, 1000).unwrap_err(),
            BatchError::TooManyEvents { limit: 1000 }
        );
        let lines = format!("{A}\n").repeat(11);
        assert_eq!(
            run(&lines, Framing::Ndjson, 10).unwrap_err(),
            BatchError::TooManyEvents { limit: 10 }
        );
        assert_eq!(
            run(&format!("{A}\n").repeat(10), Framing::Ndjson, 10)
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn a_huge_element_is_refused_without_a_tree() {
        let nested = format!(
            r#"[{{"metric_id":"a","ts":1,"value":1,"x":[{}0]}}]"#,
            "0,".repeat(100_000)
        );
        let items = run(&nested, Framing::Json, 10).unwrap();
        let err = items[0].1.as_ref().unwrap_err();
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
    fn empty_and_non_utf8_bodies_are_refused_as_a_whole() {
        assert_eq!(run("[]", Framing::Json, 10).unwrap_err(), BatchError::Empty);
        assert_eq!(
            run(" \n\n", Framing::Ndjson, 10).unwrap_err(),
            BatchError::Empty
        );
        let bad = parse(
            b"{\"a\":1}\n\xff",
            Framing::Ndjson,
            &EventFormat::default(),
            10,
        );
        assert!(matches!(bad, Err(BatchError::NotUtf8 { .. })));
    }

    #[test]
    fn deep_nesting_is_an_error_for_that_event_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let items = run(&deep, Framing::Json, 10).unwrap();
        assert_eq!(items.len(), 1);
        assert!(items[0].1.is_err());
    }
}
