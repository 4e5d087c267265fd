//! A checkpoint of state format version 3 with percentile sketches (DDSketch) in its accumulators
//! restores: `testdata/state_v3_percentiles.postcard` is the state of a pipeline with percentile
//! windows after the first half of a fixed stream, written by version 3, and
//! `testdata/state_v3_percentiles.results.json` what version 3 then emitted for the second half.
//! Restored and fed the second half, the pipeline under test must emit the same windows with the
//! same exact aggregates and percentiles within 2 % of version 3's: the guard for any change of
//! the state format or of the sketch (a new sketch may read the old one into its own buckets,
//! each sketch being within 1 % of the truth).
//!
//! `STREAMPULSE_WRITE_STATE_FIXTURE=1` rewrites the files with the code under test (done once,
//! by version 3).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use streampulse_core::aggregate::AggregateKind;
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::output::Output;
use streampulse_core::pipeline::{PartitionPipeline, PipelineState};
use streampulse_core::window::{WindowSpec, WindowType};

fn job() -> Job {
    let window = |name: &str, t, size: Option<u64>, gap: Option<u64>, aggregates| WindowSpec {
        name: name.into(),
        window_type: t,
        size: size.map(Duration::from_millis),
        slide: None,
        gap: gap.map(Duration::from_millis),
        offset: None,
        aggregates,
    };
    JobSpec {
        max_out_of_orderness: Duration::ZERO,
        windows: vec![
            window(
                "tumble_10s",
                WindowType::Tumbling,
                Some(10_000),
                None,
                vec![AggregateKind::P50, AggregateKind::P99],
            ),
            window(
                "session_5s",
                WindowType::Session,
                None,
                Some(5_000),
                vec![AggregateKind::P90],
            ),
        ],
        detectors: vec![],
        ..JobSpec::default()
    }
    .validate()
    .unwrap()
}

/// 4 metrics over 60 s: positive, negative, mixed with zeros, and spanning orders of magnitude.
fn events() -> Vec<(String, i64, f64)> {
    (0..600i64)
        .map(|i| {
            let m = i % 4;
            let ts = i * 100;
            let x = ((i * 7919) % 1000) as f64 / 10.0;
            let value = match m {
                0 => 50.0 + x,
                1 => -(1.0 + x),
                2 => {
                    if i % 5 == 0 {
                        0.0
                    } else {
                        x - 50.0
                    }
                }
                _ => (x / 10.0).exp(),
            };
            (format!("m{m}"), ts, value)
        })
        .collect()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn rows(out: &[Output]) -> Vec<Value> {
    out.iter()
        .filter_map(|o| match o {
            Output::Result(r) => Some(r.to_json()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_version_3_state_with_percentile_sketches_restores() {
    let job = job();
    let events = events();
    let (first, second) = events.split_at(300);
    let state_path = dir().join("state_v3_percentiles.postcard");
    let results_path = dir().join("state_v3_percentiles.results.json");
    if std::env::var_os("STREAMPULSE_WRITE_STATE_FIXTURE").is_some() {
        let mut p = PartitionPipeline::new(&job);
        for (i, (m, ts, v)) in first.iter().enumerate() {
            p.process(m, *ts, *v, i as u64, &mut Vec::new());
        }
        std::fs::write(&state_path, postcard::to_allocvec(p.state()).unwrap()).unwrap();
        let mut out = Vec::new();
        for (i, (m, ts, v)) in second.iter().enumerate() {
            p.process(m, *ts, *v, (300 + i) as u64, &mut out);
        }
        p.finish(&mut out);
        std::fs::write(
            &results_path,
            serde_json::to_vec_pretty(&json!(rows(&out))).unwrap(),
        )
        .unwrap();
    }
    let state: PipelineState = postcard::from_bytes(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(state.format_version, 3);
    let mut p = PartitionPipeline::restore(&job, state).unwrap();
    let mut out = Vec::new();
    for (i, (m, ts, v)) in second.iter().enumerate() {
        p.process(m, *ts, *v, (300 + i) as u64, &mut out);
    }
    p.finish(&mut out);
    let got = rows(&out);
    let want: Vec<Value> = serde_json::from_slice(&std::fs::read(&results_path).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(
        want.len() >= 16,
        "the fixture holds windows: {}",
        want.len()
    );
    for (g, w) in got.iter().zip(&want) {
        for exact in ["metric_id", "window", "window_start", "window_end", "count"] {
            assert_eq!(g[exact], w[exact], "{exact} of {w}");
        }
        // Up to the last bits: a sum's depend on the order of addition (which a restore may
        // change), and JSON's decimal form of a float need not read back to the same bits.
        for close in ["sum", "min", "max"] {
            let (a, b) = (g[close].as_f64().unwrap(), w[close].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                "{close} {a} vs {b} of {w}"
            );
        }
        for pct in ["p50", "p90", "p99"] {
            let (Some(a), Some(b)) = (g[pct].as_f64(), w[pct].as_f64()) else {
                assert_eq!(g[pct], w[pct], "{pct} of {w}");
                continue;
            };
            let scale = a.abs().max(b.abs()).max(1e-9);
            assert!(
                (a - b).abs() / scale <= 0.02,
                "{pct}: {a} now, {b} in version 3, of {w}"
            );
        }
    }
}
