//! Property: for any event sequence within the out-of-orderness bound, whatever the arrival order
//! and however processing is interrupted by crashes (restore the last snapshot, replay from its
//! offset, upsert outputs again), the stored results equal a brute-force batch computation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::output::Output;
use streampulse_core::pipeline::{PartitionPipeline, PipelineState};
use streampulse_core::time::Millis;
use streampulse_core::window::{WindowSpec, WindowType};
use streampulse_testkit::oracle::{batch, Key, Row};

const OOO: Millis = 2_000;

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

/// Applies and clears `outputs`; this job has no detector and keeps no raw events.
fn upsert(store: &mut BTreeMap<Key, Row>, outputs: &mut Vec<Output>) {
    for o in outputs.iter() {
        match o {
            Output::Alert(alert) => panic!("this job has no detectors: {alert:?}"),
            Output::Raw(raw) => panic!("this job keeps no raw events: {raw:?}"),
            _ => {}
        }
    }
    streampulse_testkit::oracle::upsert(store, outputs);
    outputs.clear();
}
