//! Properties of `job.state_ttl`:
//! - a TTL longer than every silence in the input changes no output at all;
//! - a TTL as short as validation allows, over metrics that come and go, never changes a window
//!   result (the stored rows equal a brute-force batch computation), and a restore from a
//!   snapshot taken anywhere, expiries included, replays exactly the outputs of an uninterrupted
//!   run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use streampulse_core::detect::{DetectorSpec, DetectorType};
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::output::Output;
use streampulse_core::pipeline::{PartitionPipeline, PipelineState};
use streampulse_core::time::Millis;
use streampulse_core::window::{WindowSpec, WindowType};
use streampulse_testkit::oracle::{batch, upsert, Event};

const OOO: Millis = 2_000;

fn window(name: &str, t: WindowType, size: Option<u64>, slide: Option<u64>) -> WindowSpec {
    WindowSpec {
        name: name.into(),
        window_type: t,
        size: size.map(Duration::from_millis),
        slide: slide.map(Duration::from_millis),
        gap: (t == WindowType::Session).then(|| Duration::from_millis(700)),
        offset: None,
        aggregates: vec![],
    }
}

/// Windows of every kind, and detectors on raw values and on a window series that alert easily.
fn spec(lateness: Millis) -> JobSpec {
    let z = DetectorSpec {
        n: Some(4),
        min_points: Some(3),
        warning: Some(2.0),
        critical: Some(4.0),
        ..DetectorSpec::raw("z", DetectorType::Zscore)
    };
    let zw = DetectorSpec {
        series: "tumble.max".into(),
        ..DetectorSpec::raw("zw", DetectorType::Zscore)
    };
    let e = DetectorSpec {
        warmup: Some(2),
        ..DetectorSpec::raw("e", DetectorType::Ewma)
    };
    JobSpec {
        name: "ttl".into(),
        max_out_of_orderness: Duration::from_millis(OOO as u64),
        allowed_lateness: Duration::from_millis(lateness as u64),
        windows: vec![
            window("tumble", WindowType::Tumbling, Some(1_000), None),
            window("hop", WindowType::Sliding, Some(3_000), Some(1_000)),
            window("session", WindowType::Session, None, None),
        ],
        detectors: vec![
            DetectorSpec {
                n: Some(3),
                min_points: Some(3),
                ..zw
            },
            z,
            e,
        ],
        ..JobSpec::default()
    }
}

fn job(lateness: Millis, ttl: Option<Millis>) -> Job {
    JobSpec {
        state_ttl: ttl.map(|t| Duration::from_millis(t as u64)),
        ..spec(lateness)
    }
    .validate()
    .unwrap()
}

/// The shortest TTL validation accepts: the longest window plus the lateness.
fn min_ttl(lateness: Millis) -> Millis {
    3_000 + lateness
}

/// Events of `metrics` metrics over `span` ms, in arrival order: sorted by ts + jitter with
/// jitter < OOO − 1, so no event is late. Over a long span, metrics fall silent and come back.
fn arrivals(metrics: u8, span: Millis) -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(
        (0..metrics, 0..span, 0i64..(OOO - 1), -100i32..100, 0u8..10),
        1..150,
    )
    .prop_map(|raw| {
        let mut keyed: Vec<(Millis, Event)> = raw
            .into_iter()
            .map(|(m, ts, jitter, v, spike)| {
                let v = if spike == 0 {
                    v as f64 * 50.0
                } else {
                    v as f64 / 4.0
                };
                (ts + jitter, (format!("m{m}"), 1_000_000 + ts, v))
            })
            .collect();
        keyed.sort_by_key(|(k, _)| *k);
        keyed.into_iter().map(|(_, e)| e).collect()
    })
}

/// The longest a metric's latest event ever lags the watermark while the input is read: a TTL at
/// least this long never expires a key before the end of the input.
fn longest_silence(events: &[Event]) -> Millis {
    let mut last: BTreeMap<&str, Millis> = BTreeMap::new();
    let mut max_ts = Millis::MIN;
    let mut longest = 0;
    for (m, ts, _) in events {
        // As the pipeline does: the event counts for its metric before the watermark moves.
        let latest = last.entry(m).or_insert(*ts);
        *latest = (*latest).max(*ts);
        max_ts = max_ts.max(*ts);
        let watermark = max_ts - OOO;
        for seen in last.values() {
            longest = longest.max(watermark - seen);
        }
    }
    longest
}

fn run(job: &Job, events: &[Event]) -> Vec<Output> {
    let mut p = PartitionPipeline::new(job);
    let mut out = Vec::new();
    for (i, (m, ts, v)) in events.iter().enumerate() {
        p.process(m, *ts, *v, i as u64, &mut out);
    }
    p.finish(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn a_ttl_longer_than_every_silence_changes_nothing(
        events in arrivals(4, 20_000),
        lateness in prop_oneof![Just(0i64), Just(500i64)],
        extra in prop_oneof![Just(0i64), 0i64..2_000],
    ) {
        let ttl = longest_silence(&events).max(min_ttl(lateness)) + extra;
        let with = run(&job(lateness, Some(ttl)), &events);
        let without = run(&job(lateness, None), &events);
        prop_assert_eq!(with, without, "ttl {}", ttl);
    }

    #[test]
    fn a_short_ttl_keeps_every_window_whole_and_restores_exactly(
        events in arrivals(6, 60_000),
        lateness in prop_oneof![Just(0i64), Just(500i64)],
        cut in any::<prop::sample::Index>(),
    ) {
        let job = job(lateness, Some(min_ttl(lateness)));
        let whole = run(&job, &events);
        let mut store = BTreeMap::new();
        upsert(&mut store, &whole);
        let expected = batch(&job, &events);
        prop_assert_eq!(store.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
        for (key, want) in &expected {
            let got = store[key];
            prop_assert_eq!((got.0, got.1, got.3, got.4), (want.0, want.1, want.3, want.4), "{:?}", key);
            prop_assert!((got.2 - want.2).abs() < 1e-6, "{:?} sum {} vs {}", key, got.2, want.2);
        }

        // Snapshot after `cut` events, restore, and go on: the same outputs as one run.
        let cut = cut.index(events.len() + 1);
        let mut p = PartitionPipeline::new(&job);
        let mut out = Vec::new();
        for (i, (m, ts, v)) in events.iter().enumerate().take(cut) {
            p.process(m, *ts, *v, i as u64, &mut out);
        }
        let bytes = postcard::to_allocvec(p.state()).unwrap();
        let state: PipelineState = postcard::from_bytes(&bytes).unwrap();
        let mut p = PartitionPipeline::restore(&job, state).unwrap();
        for (i, (m, ts, v)) in events.iter().enumerate().skip(cut) {
            p.process(m, *ts, *v, i as u64, &mut out);
        }
        p.finish(&mut out);
        prop_assert_eq!(out, whole);
    }
}
