//! The records of the embedded log: events, and the idle-flush markers the engine writes itself.
//!
//! An idle flush is a processing-time decision (no events for `idle_timeout`). Writing it into the
//! partition's log as a marker, and acting on it only when the marker is read back, turns it into
//! part of the input: a replay after a crash meets the marker at the same position and makes the
//! same decision, so the outputs are the same as those of the run that crashed.
//!
//! Several jobs can read one log, each with its own idle timeout, so a marker names the job that
//! wrote it and the other jobs step over it. Markers written before jobs were named
//! ([`Record::IdleFlush`]) apply to whichever job reads them.
//!
//! Encoding: postcard. Readers decode only the head of an event (metric, time, value) without
//! allocating; tags stay in the log for the raw-event API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streampulse_core::event::{Event, EventRef};
use streampulse_core::time::Millis;

/// `T`: the tags, anything that serializes as a map of strings in key order (a `BTreeMap`, or an
/// [`EventRef`]'s pairs): the bytes are the same either way.
#[derive(Serialize)]
enum RecordOut<'a, T> {
    Event {
        metric_id: &'a str,
        ts: Millis,
        value: f64,
        tags: T,
    },
    // Never written any more; kept so that the variant indexes of the others do not move.
    #[allow(dead_code)]
    IdleFlush {
        decided_at: u64,
    },
    IdleFlushOf {
        job: &'a str,
        decided_at: u64,
    },
}

/// A record that is not an event (it carries no tags).
type Marker<'a> = RecordOut<'a, ()>;

/// A decoded log record, borrowing from the payload.
#[derive(Debug, PartialEq, Deserialize)]
pub enum Record<'a> {
    /// Postcard ignores trailing bytes, so the tags written after `value` are skipped unread.
    Event {
        metric_id: &'a str,
        ts: Millis,
        value: f64,
    },
    /// The partition was found idle when its log ended at `decided_at`. The flush applies only if
    /// the marker itself sits at that offset: an event appended in between means the partition
    /// was not idle after all.
    IdleFlush { decided_at: u64 },
    /// [`Record::IdleFlush`] decided by `job`: other jobs reading the same log ignore it.
    IdleFlushOf { job: &'a str, decided_at: u64 },
}

impl Record<'_> {
    /// For an idle-flush marker that `job` must act on, the offset at which it was decided.
    pub fn idle_flush_for(&self, job: &str) -> Option<u64> {
        match self {
            Record::IdleFlush { decided_at } => Some(*decided_at),
            Record::IdleFlushOf {
                job: by,
                decided_at,
            } if *by == job => Some(*decided_at),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("undecodable log record: {0}")]
    Decode(#[source] postcard::Error),
    #[error("cannot encode a log record: {0}")]
    Encode(#[source] postcard::Error),
}

pub fn encode_event(event: &Event) -> Result<Vec<u8>, RecordError> {
    let record = RecordOut::Event {
        metric_id: &event.metric_id,
        ts: event.ts,
        value: event.value,
        tags: &event.tags,
    };
    let tags = event.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    encode_sized(&record, room_for(&event.metric_id, tags))
}

/// Bytes enough for an event record of `metric_id` and `tags`: the strings with a varint length
/// each, and the rest at its widest (variant, ts, value, tag count).
fn room_for<'t>(metric_id: &str, tags: impl Iterator<Item = (&'t str, &'t str)>) -> usize {
    let strings: usize = tags.map(|(k, v)| k.len() + v.len() + 10).sum();
    metric_id.len() + strings + 40
}

/// `record` encoded into a vector made with `room` bytes: postcard's own vector starts empty and
/// doubles, four reallocations for a typical event, a quarter of the request threads' time.
fn encode_sized<T: Serialize>(record: &T, room: usize) -> Result<Vec<u8>, RecordError> {
    postcard::to_extend(record, Vec::with_capacity(room)).map_err(RecordError::Encode)
}

/// [`encode_event`] of an event still borrowing from the request body: the same bytes.
pub fn encode_event_ref(event: &EventRef<'_>) -> Result<Vec<u8>, RecordError> {
    struct Tags<'e, 'a>(&'e EventRef<'a>);
    impl Serialize for Tags<'_, '_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.tag_pairs())
        }
    }
    let record = RecordOut::Event {
        metric_id: &event.metric_id,
        ts: event.ts,
        value: event.value,
        tags: Tags(event),
    };
    encode_sized(&record, room_for(&event.metric_id, event.tag_pairs()))
}

/// The idle-flush marker of `job`, decided when the partition's log ended at `decided_at`.
pub fn encode_idle_flush(job: &str, decided_at: u64) -> Result<Vec<u8>, RecordError> {
    postcard::to_allocvec(&Marker::IdleFlushOf { job, decided_at }).map_err(RecordError::Encode)
}

pub fn decode(payload: &[u8]) -> Result<Record<'_>, RecordError> {
    postcard::from_bytes(payload).map_err(RecordError::Decode)
}

/// The tags of an event record (empty for anything else, or if undecodable).
pub fn decode_tags(payload: &[u8]) -> BTreeMap<String, String> {
    decode_full(payload)
        .ok()
        .flatten()
        .map(|e| e.tags)
        .unwrap_or_default()
}

/// Decodes an event with its tags (for the raw-event path, not the hot path).
pub fn decode_full(payload: &[u8]) -> Result<Option<Event>, RecordError> {
    #[derive(Deserialize)]
    enum Full {
        Event {
            metric_id: String,
            ts: Millis,
            value: f64,
            tags: BTreeMap<String, String>,
        },
        // Decoded only to recognise the variant.
        #[allow(dead_code)]
        IdleFlush { decided_at: u64 },
        #[allow(dead_code)]
        IdleFlushOf { job: String, decided_at: u64 },
    }
    Ok(
        match postcard::from_bytes(payload).map_err(RecordError::Decode)? {
            Full::Event {
                metric_id,
                ts,
                value,
                tags,
            } => Some(Event {
                metric_id,
                ts,
                value,
                tags,
            }),
            Full::IdleFlush { .. } | Full::IdleFlushOf { .. } => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_event_encodes_to_the_same_bytes_as_an_owned_one() {
        let format = streampulse_core::event::EventFormat::default();
        for text in [
            r#"{"metric_id":"cpu","ts":1700000000000,"value":1.5}"#,
            r#"{"metric_id":"c\u0070u","ts":1700000000000,"value":2,"tags":{"z":"1","a":2,"m":true,"a":"x"}}"#,
        ] {
            let owned = encode_event(&format.parse_str(text).unwrap()).unwrap();
            let borrowed = encode_event_ref(&format.parse_ref(text).unwrap()).unwrap();
            assert_eq!(owned, borrowed, "{text}");
        }
    }

    #[test]
    fn events_and_markers_round_trip() {
        let mut tags = BTreeMap::new();
        tags.insert("host".to_string(), "h1".to_string());
        let event = Event {
            metric_id: "cpu".into(),
            ts: 1_700_000_000_000,
            value: -2.5,
            tags,
        };
        let bytes = encode_event(&event).unwrap();
        assert_eq!(
            decode(&bytes).unwrap(),
            Record::Event {
                metric_id: "cpu",
                ts: 1_700_000_000_000,
                value: -2.5
            }
        );
        assert_eq!(decode_full(&bytes).unwrap(), Some(event));
        let marker = encode_idle_flush("hourly", 7).unwrap();
        assert_eq!(
            decode(&marker).unwrap(),
            Record::IdleFlushOf {
                job: "hourly",
                decided_at: 7
            }
        );
        assert_eq!(decode(&marker).unwrap().idle_flush_for("hourly"), Some(7));
        assert_eq!(decode(&marker).unwrap().idle_flush_for("default"), None);
        assert_eq!(decode_full(&marker).unwrap(), None);
        // A marker from before jobs were named applies to any job.
        let unnamed = postcard::to_allocvec(&Marker::IdleFlush { decided_at: 3 }).unwrap();
        assert_eq!(decode(&unnamed).unwrap().idle_flush_for("hourly"), Some(3));
        assert!(decode(&[0xff, 0x01]).is_err());
    }

    proptest::proptest! {
        /// The room reserved always holds the record (no reallocation), and the bytes are
        /// postcard's own.
        #[test]
        fn an_event_record_fits_the_room_made_for_it(
            metric_id in ".{0,40}",
            ts in proptest::prelude::any::<i64>(),
            value in proptest::prelude::any::<f64>(),
            tags in proptest::collection::btree_map(".{0,12}", ".{0,12}", 0..8),
        ) {
            let event = Event { metric_id, ts, value, tags };
            let room = room_for(&event.metric_id, event.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let bytes = encode_event(&event).unwrap();
            proptest::prop_assert!(bytes.len() <= room, "{} > {room}", bytes.len());
            let record = RecordOut::Event {
                metric_id: &event.metric_id,
                ts: event.ts,
                value: event.value,
                tags: &event.tags,
            };
            proptest::prop_assert_eq!(bytes, postcard::to_allocvec(&record).unwrap());
        }
    }
}
