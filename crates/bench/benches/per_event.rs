//! Micro-benchmarks of the per-event path, in nanoseconds per event: reading an event's JSON
//! text, then a partition pipeline (window updates, detectors) over events of 10,000 metrics in
//! its steady state; and the snapshot of such a partition that every checkpoint takes.
//!
//! `cargo bench -p streampulse-bench --bench per_event`. The throughput figures of whole paths
//! (replay, HTTP ingest, the engine over the log) are the `streampulse-bench` modes, recorded in
//! BENCHMARKS.md; these isolate the parts. Nothing here asserts a speed.

use std::time::Duration;

use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use streampulse_core::event::EventFormat;
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_core::window::{WindowSpec, WindowType};
use streampulse_engine::checkpoint::PartitionCheckpoint;

const LINE: &str = r#"{"metric_id": "metric_07442", "ts": 1699999998515, "value": 604.649, "tags": {"host": "host-036"}}"#;

fn main() {
    divan::main();
}

#[divan::bench]
fn parse_ref(bencher: Bencher) {
    let format = EventFormat::default();
    bencher.bench(|| format.parse_ref(black_box(LINE)).map(|e| e.ts));
}

#[divan::bench]
fn parse_owned(bencher: Bencher) {
    let format = EventFormat::default();
    bencher.bench(|| format.parse_str(black_box(LINE)).map(|e| e.ts));
}

/// Events of 10,000 metrics, 10,000 per second of event time, up to 3 s out of order (a fixed
/// pseudo-random sequence, so every run sees the same input).
fn events(n: usize) -> Vec<(String, i64, f64)> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let metric = format!("metric_{:05}", next() % 10_000);
            let ts = 1_700_000_000_000 + (i as i64) / 10 - (next() % 3_000) as i64;
            (metric, ts, (next() % 1_000) as f64 / 10.0)
        })
        .collect()
}

fn window(name: &str, kind: WindowType, secs: u64) -> WindowSpec {
    WindowSpec {
        name: name.into(),
        window_type: kind,
        size: (kind != WindowType::Session).then(|| Duration::from_secs(secs)),
        slide: (kind == WindowType::Sliding).then(|| Duration::from_secs(10)),
        gap: (kind == WindowType::Session).then(|| Duration::from_secs(secs)),
        offset: None,
        aggregates: vec![],
    }
}

fn job(name: &str) -> Job {
    let spec = match name {
        // The three queries of the Flink parity test, no detectors.
        "flink_queries" => JobSpec {
            windows: vec![
                window("tumble_10s", WindowType::Tumbling, 10),
                window("hop_30s_10s", WindowType::Sliding, 30),
                window("session_5s", WindowType::Session, 5),
            ],
            detectors: vec![],
            ..JobSpec::default()
        },
        // What `streampulse run` runs without a config.
        _ => JobSpec::default(),
    };
    match spec.validate() {
        Ok(job) => job,
        Err(e) => panic!("bench job: {e}"),
    }
}

/// A checkpoint's snapshot of one partition of the default job with 10,000 metrics in its
/// steady state: what the partition thread spends, between two batches, at every checkpoint.
#[divan::bench(sample_count = 10)]
fn snapshot(bencher: Bencher) {
    let pipeline = warmed(&job("default"), &events(WARM));
    let snapshot = |last_size| match PartitionCheckpoint::of_sized(
        0,
        WARM as u64,
        black_box(&pipeline),
        last_size,
    ) {
        Ok(snapshot) => snapshot.state.len(),
        Err(e) => panic!("snapshot: {e}"),
    };
    // As the partition takes every snapshot but its first.
    let last_size = snapshot(0);
    bencher.bench_local(|| snapshot(last_size));
}

/// A pipeline of `job` after `events`.
fn warmed(job: &Job, events: &[(String, i64, f64)]) -> PartitionPipeline {
    let mut pipeline = PartitionPipeline::new(job);
    let mut out = Vec::new();
    for (offset, (metric, ts, value)) in events.iter().enumerate() {
        pipeline.process(metric, *ts, *value, offset as u64, &mut out);
        out.clear();
    }
    pipeline
}

/// Events measured per sample, after [`WARM`] events that bring every metric's detectors past
/// their warm-up and fill the windows: the steady state of a long-running job, not its start.
const MEASURED: usize = 200_000;
const WARM: usize = 1_000_000;

#[divan::bench(args = ["flink_queries", "default"], sample_count = 10)]
fn pipeline(bencher: Bencher, name: &str) {
    let job = job(name);
    let events = events(WARM + MEASURED);
    let (warm, measured) = events.split_at(WARM);
    let warmed = warmed(&job, warm);
    bencher
        .counter(ItemsCount::new(measured.len()))
        .with_inputs(
            || match PartitionPipeline::restore(&job, warmed.state().clone()) {
                Ok(pipeline) => pipeline,
                Err(e) => panic!("restore: {e}"),
            },
        )
        .bench_local_values(|mut pipeline| {
            let mut out = Vec::new();
            for (i, (metric, ts, value)) in measured.iter().enumerate() {
                pipeline.process(metric, *ts, *value, (WARM + i) as u64, &mut out);
                out.clear();
            }
            pipeline
        });
}

/// The default job's 10 s windows of `METRICS` metrics (a partition's share of 10,000 metrics),
/// each with one value, and the event time that closes them all.
fn about_to_fire() -> (Job, streampulse_core::pipeline::PipelineState, i64) {
    let job = job("default");
    // A minute boundary, so only the 10 s windows close.
    let start = 1_700_000_040_000i64;
    let mut pipeline = PartitionPipeline::new(&job);
    let mut out = Vec::new();
    for i in 0..METRICS {
        let ts = start + (i as i64 * 4) % 10_000;
        pipeline.process(&format!("metric_{i:05}"), ts, i as f64, i as u64, &mut out);
    }
    let past = start + 10_000 + job.max_out_of_orderness;
    (job, pipeline.state().clone(), past)
}

const METRICS: usize = 2_500;

/// The firing of those windows, from the event that moves the watermark past their end to the
/// outputs: what the result of a window fired with thousands of others waits for before it can
/// be stored.
#[divan::bench(sample_count = 20)]
fn fire(bencher: Bencher) {
    let (job, state, past) = about_to_fire();
    bencher
        .counter(ItemsCount::new(METRICS))
        .with_inputs(|| match PartitionPipeline::restore(&job, state.clone()) {
            Ok(pipeline) => (pipeline, Vec::with_capacity(2 * METRICS)),
            Err(e) => panic!("restore: {e}"),
        })
        .bench_local_values(|(mut pipeline, mut out)| {
            pipeline.process("metric_00000", past, 1.0, METRICS as u64, &mut out);
            assert!(out.len() >= METRICS, "every metric's window fires");
            out
        });
}

/// What that firing's outputs cost once made, before the next batch: the embedded store's
/// deferred copy of them, and the drop of both (the store's after its write, the live feed's
/// when its ring moves past them).
#[divan::bench(sample_count = 20)]
fn fired_outputs_copied(bencher: Bencher) {
    let (job, state, past) = about_to_fire();
    let mut outputs = Vec::new();
    match PartitionPipeline::restore(&job, state) {
        Ok(mut pipeline) => pipeline.process("metric_00000", past, 1.0, 0, &mut outputs),
        Err(e) => panic!("restore: {e}"),
    }
    assert!(outputs.len() >= METRICS, "every metric's window fires");
    bencher
        .counter(ItemsCount::new(outputs.len()))
        .with_inputs(|| outputs.clone())
        .bench_local_values(|fired| {
            let deferred = fired.clone();
            drop(black_box(deferred));
            drop(black_box(fired));
        });
}
