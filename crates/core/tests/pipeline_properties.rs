//! Property: for any event sequence within the out-of-orderness bound, whatever the arrival order
//! and however processing is interrupted by crashes (restore the last snapshot, replay from its
//! offset, upsert outputs again), the stored results equal a brute-force batch computation.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::output::Output;
use streampulse_core::pipeline::{PartitionPipeline, PipelineState};
use streampulse_core::time::{align_down, Millis};
use streampulse_core::window::{WindowSpec, WindowType};

const OOO: Millis = 2_000;

type Key = (String, String, Millis); // metric, window, start
type Row = (Millis, u64, f64, f64, f64); // end, count, sum, min, max

fn window(
    name: &str,
    t: WindowType,
    size: Option<u64>,
    slide: Option<u64>,
    gap: Option<u64>,
) -> WindowSpec {
    WindowSpec {
        name: name.into(),
        window_type: t,
        size: size.map(Duration::from_millis),
        slide: slide.map(Duration::from_millis),
        gap: gap.map(Duration::from_millis),
        offset: None,
        aggregates: vec![],
    }
}

fn job() -> Job {
    JobSpec {
        name: "prop".into(),
        max_out_of_orderness: Duration::from_millis(OOO as u64),
        windows: vec![
            window("tumble", WindowType::Tumbling, Some(1_000), None, None),
            window("hop", WindowType::Sliding, Some(3_000), Some(1_000), None),
            window(
                "hop_odd",
                WindowType::Sliding,
                Some(2_500),
                Some(1_000),
                None,
            ),
            window("session", WindowType::Session, None, None, Some(700)),
        ],
        detectors: vec![],
        ..JobSpec::default()
    }
    .validate()
    .unwrap()
}

/// Events as (metric, ts, value) in arrival order: sorted by ts + jitter with jitter < OOO - 1, so
/// every event arrives while all its windows are open (see the module doc of `window`).
fn arrivals() -> impl Strategy<Value = Vec<(String, Millis, f64)>> {
    prop::collection::vec(
        (0u8..4, 0i64..20_000, 0i64..(OOO - 1), -100i32..100),
        1..120,
    )
    .prop_map(|raw| {
        let mut with_keys: Vec<(Millis, String, Millis, f64)> = raw
            .into_iter()
            .map(|(m, ts, jitter, v)| {
                (ts + jitter, format!("m{m}"), 1_000_000 + ts, v as f64 / 4.0)
            })
            .map(|(k, m, ts, v)| (k + 1_000_000, m, ts, v))
            .collect();
        with_keys.sort_by_key(|(k, ..)| *k);
        with_keys
            .into_iter()
            .map(|(_, m, ts, v)| (m, ts, v))
            .collect()
    })
}

fn batch(job: &Job, events: &[(String, Millis, f64)]) -> BTreeMap<Key, Row> {
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
        use streampulse_core::window::WindowKind::*;
        let (size, slide, offset) = match def.kind {
            Tumbling { size, offset } => (size, size, offset),
            Sliding {
                size,
                slide,
                offset,
            } => (size, slide, offset),
            Session { gap } => {
                sessions(&mut add, &def.name, gap, events);
                continue;
            }
        };
        for (m, ts, v) in events {
            let mut s = align_down(*ts, slide, offset);
            while s + size > *ts {
                add((m.clone(), def.name.clone(), s), s + size, *v);
                s -= slide;
            }
        }
    }
    rows
}

fn sessions(
    add: &mut impl FnMut(Key, Millis, f64),
    name: &str,
    gap: Millis,
    events: &[(String, Millis, f64)],
) {
    {
        {
            {
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
        }
    }
}

fn upsert(store: &mut BTreeMap<Key, Row>, outputs: &mut Vec<Output>) {
    for o in outputs.drain(..) {
        match o {
            Output::Result(r) => {
                store.insert(
                    (r.metric_id, r.window, r.window_start),
                    (r.window_end, r.count, r.sum, r.min, r.max),
                );
            }
            Output::Retract {
                metric_id,
                window,
                window_start,
            } => {
                store.remove(&(metric_id, window, window_start));
            }
            Output::Late(late) => panic!("no event may be late here: {late:?}"),
            Output::Alert(alert) => panic!("this job has no detectors: {alert:?}"),
            // The metric catalog is not part of the window results compared here.
            Output::Metric { .. } => {}
            Output::Raw(raw) => panic!("this job keeps no raw events: {raw:?}"),
        }
    }
}

fn snapshot(p: &PartitionPipeline) -> Vec<u8> {
    postcard::to_allocvec(p.state()).unwrap()
}

fn restore(job: &Job, bytes: &[u8]) -> PartitionPipeline {
    let state: PipelineState = postcard::from_bytes(bytes).unwrap();
    PartitionPipeline::restore(job, state).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn streaming_with_crashes_equals_batch(
        events in arrivals(),
        checkpoints in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        crashes in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..4),
    ) {
        let job = job();
        let n = events.len();
        let checkpoint_at: Vec<usize> = checkpoints.iter().map(|i| i.index(n + 1)).collect();
        // A crash at position c rolls back to the last checkpoint taken before c and replays.
        let mut crash_at: Vec<usize> = crashes.iter().map(|(c, _)| c.index(n + 1)).collect();
        crash_at.sort_unstable();
        crash_at.dedup();

        let mut store = BTreeMap::new();
        let mut out = Vec::new();
        let mut pipeline = PartitionPipeline::new(&job);
        let mut saved: (usize, Vec<u8>) = (0, snapshot(&pipeline));
        let mut pos = 0;
        let mut crashes_left = crash_at.into_iter().peekable();
        while pos < n {
            if crashes_left.peek() == Some(&pos) {
                crashes_left.next();
                pipeline = restore(&job, &saved.1);
                pos = saved.0;
                continue;
            }
            if checkpoint_at.contains(&pos) && saved.0 != pos {
                saved = (pos, snapshot(&pipeline));
            }
            let (m, ts, v) = &events[pos];
            pipeline.process(m, *ts, *v, pos as u64, &mut out);
            upsert(&mut store, &mut out);
            pos += 1;
        }
        pipeline.finish(&mut out);
        upsert(&mut store, &mut out);

        let expected = batch(&job, &events);
        prop_assert_eq!(store.len(), expected.len(), "rows: {:?}\nvs {:?}", store.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
        for (key, want) in &expected {
            let got = store.get(key);
            prop_assert!(got.is_some(), "missing {:?}", key);
            let got = got.unwrap();
            prop_assert_eq!((got.0, got.1, got.3, got.4), (want.0, want.1, want.3, want.4), "{:?}", key);
            prop_assert!((got.2 - want.2).abs() < 1e-6, "{:?} sum {} vs {}", key, got.2, want.2);
        }
    }
}
