//! The brute-force oracle the property tests compare the streaming pipeline with: every window
//! of every event computed from the whole input at once (no watermark, no state), and the store
//! the pipeline's outputs would leave behind (upserts and retractions applied in order).
//!
//! Written from the window definitions (DESIGN: windows), not from the operators' code: it shares
//! only `core`'s types and its `align_down`.

use std::collections::BTreeMap;

use streampulse_core::job::Job;
use streampulse_core::output::Output;
use streampulse_core::time::{align_down, Millis};
use streampulse_core::window::WindowKind;

/// metric, time, value
pub type Event = (String, Millis, f64);
/// metric, window, start
pub type Key = (String, String, Millis);
/// end, count, sum, min, max
pub type Row = (Millis, u64, f64, f64, f64);

/// Every window result of `job` over all of `events`.
pub fn batch(job: &Job, events: &[Event]) -> BTreeMap<Key, Row> {
    let mut rows: BTreeMap<Key, Row> = BTreeMap::new();
    let mut add = |key: Key, end: Millis, v: f64| {
        let row = rows
            .entry(key)
            .or_insert((end, 0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
        row.1 += 1;
        row.2 += v;
        row.3 = row.3.min(v);
        row.4 = row.4.max(v);
    };
    for def in &job.windows {
        let (size, slide, offset) = match def.kind {
            WindowKind::Tumbling { size, offset } => (size, size, offset),
            WindowKind::Sliding {
                size,
                slide,
                offset,
            } => (size, slide, offset),
            WindowKind::Session { gap } => {
                sessions(&mut add, &def.name, gap, events);
                continue;
            }
        };
        for (m, ts, v) in events {
            let mut s = align_down(*ts, slide, offset);
            while s + size > *ts {
                add((m.clone(), def.name.to_string(), s), s + size, *v);
                s -= slide;
            }
        }
    }
    rows
}

/// Sessions per metric: events no further apart than `gap` (inclusive) share one.
fn sessions(add: &mut impl FnMut(Key, Millis, f64), name: &str, gap: Millis, events: &[Event]) {
    let mut by_metric: BTreeMap<&str, Vec<(Millis, f64)>> = BTreeMap::new();
    for (m, ts, v) in events {
        by_metric.entry(m).or_default().push((*ts, *v));
    }
    for (m, mut evs) in by_metric {
        evs.sort_by_key(|e| e.0);
        let mut i = 0;
        while i < evs.len() {
            let start = evs[i].0;
            let mut j = i;
            while j + 1 < evs.len() && evs[j + 1].0 <= evs[j].0 + gap {
                j += 1;
            }
            for &(_, v) in &evs[i..=j] {
                add((m.to_string(), name.to_string(), start), evs[j].0 + gap, v);
            }
            i = j + 1;
        }
    }
}

/// Applies the window outputs of `outputs` to `store` as the result store does. No event may be
/// late in these tests; alerts, the metric catalog and raw events are not window results.
pub fn upsert(store: &mut BTreeMap<Key, Row>, outputs: &[Output]) {
    for o in outputs {
        match o {
            Output::Result(r) => {
                store.insert(
                    (
                        r.metric_id.to_string(),
                        r.window.to_string(),
                        r.window_start,
                    ),
                    (r.window_end, r.count, r.sum, r.min, r.max),
                );
            }
            Output::Retract {
                metric_id,
                window,
                window_start,
                ..
            } => {
                store.remove(&(metric_id.clone(), window.clone(), *window_start));
            }
            Output::Late(late) => panic!("no event may be late here: {late:?}"),
            Output::Alert(_) | Output::Metric { .. } | Output::Raw(_) => {}
        }
    }
}
