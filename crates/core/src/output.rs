//! What a pipeline emits: window results, retractions of superseded session rows, late events,
//! alerts, catalog entries and (when the job keeps them) raw events.
//!
//! Every output carries its own idempotency key (see [`Output::key`]), so a sink that upserts by
//! that key turns replay after a crash into a no-op rewrite. This module holds data only.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::aggregate::{Accumulator, AggregateKind, ExtraValues};
use crate::time::Millis;

/// The aggregates of one window of one metric, as emitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    /// Shared with the partition's key table (and the window name with its operator): a firing
    /// of thousands of windows allocated both strings for each result, and again for each copy.
    pub metric_id: Arc<str>,
    /// The window's name from the job config, e.g. `tumble_10s`.
    pub window: Arc<str>,
    /// Inclusive start, epoch ms.
    pub window_start: Millis,
    /// Exclusive end, epoch ms.
    pub window_end: Millis,
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Further aggregates the window asked for, in the order of its config.
    #[serde(default, skip_serializing_if = "ExtraValues::is_empty")]
    pub extra: ExtraValues,
    /// 0 for the first emission; each late update within `allowed_lateness` adds one.
    pub revision: u32,
}

impl WindowResult {
    pub fn from_accumulator(
        metric_id: &Arc<str>,
        window: &Arc<str>,
        (window_start, window_end): (Millis, Millis),
        acc: &Accumulator,
        extra: &[AggregateKind],
        revision: u32,
    ) -> Self {
        let basic = |k| acc.value(k).unwrap_or(f64::NAN);
        Self {
            metric_id: Arc::clone(metric_id),
            window: Arc::clone(window),
            window_start,
            window_end,
            count: acc.count(),
            sum: basic(AggregateKind::Sum),
            min: basic(AggregateKind::Min),
            max: basic(AggregateKind::Max),
            mean: basic(AggregateKind::Mean),
            extra: acc.values(extra),
            revision,
        }
    }

    /// The flat JSON form used by the API and by NDJSON output: the basic aggregates, then any
    /// further ones by name, then `revision`. Undefined values are `null`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("metric_id".into(), (*self.metric_id).into());
        obj.insert("window".into(), (*self.window).into());
        obj.insert("window_start".into(), self.window_start.into());
        obj.insert("window_end".into(), self.window_end.into());
        obj.insert("count".into(), self.count.into());
        for (name, v) in [
            ("sum", self.sum),
            ("min", self.min),
            ("max", self.max),
            ("mean", self.mean),
        ] {
            obj.insert(name.into(), json_number(Some(v)));
        }
        for (kind, v) in self.extra.iter() {
            obj.insert(kind.name().into(), json_number(v));
        }
        obj.insert("revision".into(), self.revision.into());
        serde_json::Value::Object(obj)
    }

    /// The result that [`Self::to_json`] wrote (e.g. a record of the results topic read back);
    /// `None` for anything else, such as a retraction record. A `null` basic aggregate reads as
    /// NaN, as it was before encoding.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        let obj = value.as_object()?;
        let basic = |name: &str| match obj.get(name)? {
            serde_json::Value::Null => Some(f64::NAN),
            v => v.as_f64(),
        };
        let extra = AggregateKind::ALL
            .iter()
            .filter(|k| !k.is_basic())
            .filter_map(|&k| Some((k, obj.get(k.name())?.as_f64())))
            .collect();
        Some(Self {
            metric_id: obj.get("metric_id")?.as_str()?.into(),
            window: obj.get("window")?.as_str()?.into(),
            window_start: obj.get("window_start")?.as_i64()?,
            window_end: obj.get("window_end")?.as_i64()?,
            count: obj.get("count")?.as_u64()?,
            sum: basic("sum")?,
            min: basic("min")?,
            max: basic("max")?,
            mean: basic("mean")?,
            extra,
            revision: u32::try_from(obj.get("revision")?.as_u64()?).ok()?,
        })
    }

    /// The value of any aggregate this result carries.
    pub fn get(&self, kind: AggregateKind) -> Option<f64> {
        match kind {
            AggregateKind::Count => Some(self.count as f64),
            AggregateKind::Sum => Some(self.sum),
            AggregateKind::Min => Some(self.min),
            AggregateKind::Max => Some(self.max),
            AggregateKind::Mean => Some(self.mean),
            other => self.extra.get(other),
        }
    }
}

fn json_number(v: Option<f64>) -> serde_json::Value {
    v.and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// An event that arrived after every window it belongs to had expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateEvent {
    pub window: String,
    pub metric_id: String,
    pub ts: Millis,
    pub value: f64,
    /// The watermark the event was judged against.
    pub watermark: Millis,
    /// The event's position in its source partition (makes the record idempotent).
    pub offset: u64,
}

/// A valid event as processed, kept when the job sets `keep_raw_events`. Its partition is not
/// here (a pipeline does not know it): the sink adds it, and (partition, offset) makes the record
/// idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub metric_id: String,
    pub ts: Millis,
    pub value: f64,
    pub tags: std::collections::BTreeMap<String, String>,
    /// The event's position in its source partition.
    pub offset: u64,
}

/// One output of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Output {
    /// Upsert by (metric, window, window_start).
    Result(WindowResult),
    /// A session that was emitted and later merged into one with another start: its row is gone.
    /// `window_end` is the end of the retracted session as last emitted (stores that order writes
    /// by time need it to place the deletion after every write of the row).
    Retract {
        metric_id: String,
        window: String,
        window_start: Millis,
        window_end: Millis,
    },
    /// Insert by (window, offset).
    Late(LateEvent),
    /// A transition of an alert: upsert by alert id (the latest transition wins).
    Alert(crate::detect::Alert),
    /// A metric this partition sees for the first time, with the tags of its first event: upsert
    /// into the metric catalog (what tag filters on results look up). A replay re-creates only
    /// the metrics first seen after its checkpoint, with the same tags: idempotent.
    Metric {
        metric_id: String,
        tags: std::collections::BTreeMap<String, String>,
    },
    /// An event as it was processed (only when the job keeps raw events): upsert by
    /// (metric, ts, partition, offset), so a replay rewrites the same row.
    Raw(RawEvent),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_json_reads_back_what_to_json_wrote() {
        let mut acc = Accumulator::new(true);
        for (ts, v) in [(1, 2.0), (2, 4.0), (3, 9.0)] {
            acc.add(ts, v);
        }
        let extra = [AggregateKind::Stddev, AggregateKind::P99];
        let r = WindowResult::from_accumulator(
            &"cpu".into(),
            &"tumble_10s".into(),
            (0, 10_000),
            &acc,
            &extra,
            2,
        );
        assert_eq!(WindowResult::from_json(&r.to_json()), Some(r));
        let empty = WindowResult::from_accumulator(
            &"m".into(),
            &"w".into(),
            (0, 1),
            &Accumulator::new(false),
            &[],
            0,
        );
        let back = WindowResult::from_json(&empty.to_json()).unwrap();
        assert!(back.min.is_nan() && back.count == 0);
        let retraction = serde_json::json!({"metric_id": "m", "window": "w", "window_start": 0, "retracted": true});
        assert_eq!(WindowResult::from_json(&retraction), None);
    }
}
