//! Tests of [`EmbeddedStore`] against an in-memory model of what it must return.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use streampulse_core::output::{LateEvent, Output, WindowResult};

use super::EmbeddedStore;
use crate::{LateQuery, ResultQuery, ResultStore, StoreCounts};

fn result(metric: &str, window: &str, start: i64, revision: u32) -> WindowResult {
    WindowResult {
        metric_id: metric.into(),
        window: window.into(),
        window_start: start,
        window_end: start + 10_000,
        count: u64::from(revision) + 1,
        sum: f64::from(revision) * 2.5,
        min: -1.0,
        max: 1.0,
        mean: 0.5,
        extra: vec![],
        revision,
    }
}

fn retract(metric: &str, window: &str, start: i64) -> Output {
    Output::Retract {
        metric_id: metric.into(),
        window: window.into(),
        window_start: start,
    }
}

fn late(metric: &str, window: &str, ts: i64, offset: u64) -> LateEvent {
    LateEvent {
        window: window.into(),
        metric_id: metric.into(),
        ts,
        value: offset as f64,
        watermark: ts + 60_000,
        offset,
    }
}

fn query(
    job: &str,
    start: i64,
    end: i64,
    metric: Option<&str>,
    window: Option<&str>,
    limit: usize,
) -> ResultQuery {
    ResultQuery {
        job: job.into(),
        start,
        end,
        metric_id: metric.map(Into::into),
        window: window.map(Into::into),
        limit,
    }
}

fn all(job: &str) -> ResultQuery {
    query(job, i64::MIN, i64::MAX, None, None, usize::MAX)
}

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir).expect("open store")
}

#[test]
fn open_creates_the_directory_and_an_empty_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a/b");
    let store = open(&dir);
    assert_eq!(store.path(), dir.join("store.redb"));
    assert!(store.path().is_file());
    assert_eq!(store.counts().expect("counts"), StoreCounts::default());
    assert_eq!(store.query_results(&all("job")).expect("query"), vec![]);
}

#[test]
fn upsert_of_the_same_key_keeps_one_row_with_the_last_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let batch = [
        Output::Result(result("cpu", "w", 0, 0)),
        Output::Result(result("cpu", "w", 0, 1)),
    ];
    store.apply("job", 0, &batch).expect("apply");
    // Replaying the same batch after a crash rewrites the same row.
    store.apply("job", 0, &batch).expect("replay");
    assert_eq!(store.counts().expect("counts").results, 1);
    let want = vec![result("cpu", "w", 0, 1)];
    assert_eq!(store.query_results(&all("job")).expect("by time"), want);
    let by_metric = query("job", i64::MIN, i64::MAX, Some("cpu"), None, 10);
    assert_eq!(store.query_results(&by_metric).expect("by metric"), want);
}

#[test]
fn retract_deletes_from_both_access_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    store
        .apply(
            "job",
            0,
            &[
                Output::Result(result("cpu", "s", 0, 0)),
                Output::Result(result("cpu", "s", 5_000, 0)),
            ],
        )
        .expect("apply");
    // Retracting a row that is not there is a no-op, not an error (replay may retract twice).
    store
        .apply(
            "job",
            0,
            &[
                retract("cpu", "s", 0),
                retract("cpu", "s", 0),
                retract("x", "s", 1),
            ],
        )
        .expect("retract");
    let want = vec![result("cpu", "s", 5_000, 0)];
    assert_eq!(store.query_results(&all("job")).expect("by time"), want);
    let q = query("job", i64::MIN, i64::MAX, Some("cpu"), Some("s"), 10);
    assert_eq!(store.query_results(&q).expect("by metric"), want);
    let q = query("job", i64::MIN, i64::MAX, Some("cpu"), None, 10);
    assert_eq!(store.query_results(&q).expect("by metric, skip-scan"), want);
    assert_eq!(store.counts().expect("counts").results, 1);
}

#[test]
fn a_retract_and_an_upsert_in_one_batch_apply_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    store
        .apply(
            "job",
            0,
            &[
                Output::Result(result("m", "s", 0, 0)),
                retract("m", "s", 0),
                Output::Result(result("m", "s", 100, 0)),
            ],
        )
        .expect("apply");
    assert_eq!(
        store.query_results(&all("job")).expect("query"),
        vec![result("m", "s", 100, 0)]
    );
}

#[test]
fn queries_respect_half_open_range_filters_order_and_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let mut outputs = vec![];
    for metric in ["b", "a"] {
        for window in ["w2", "w1"] {
            for start in [20, -10, 0, 10] {
                outputs.push(Output::Result(result(metric, window, start, 0)));
            }
        }
    }
    store.apply("job", 0, &outputs).expect("apply");

    let starts = |rows: Vec<WindowResult>| -> Vec<(String, String, i64)> {
        rows.into_iter()
            .map(|r| (r.metric_id, r.window, r.window_start))
            .collect()
    };
    let row = |m: &str, w: &str, s: i64| (m.to_string(), w.to_string(), s);

    // All metrics: ordered by (window_start, metric, window); `end` is exclusive.
    let got = starts(
        store
            .query_results(&query("job", -10, 10, None, None, 100))
            .expect("q"),
    );
    assert_eq!(
        got,
        vec![
            row("a", "w1", -10),
            row("a", "w2", -10),
            row("b", "w1", -10),
            row("b", "w2", -10),
            row("a", "w1", 0),
            row("a", "w2", 0),
            row("b", "w1", 0),
            row("b", "w2", 0),
        ]
    );
    let got = starts(
        store
            .query_results(&query("job", -10, 10, None, Some("w2"), 3))
            .expect("q"),
    );
    assert_eq!(
        got,
        vec![row("a", "w2", -10), row("b", "w2", -10), row("a", "w2", 0)]
    );

    // One metric: ordered by (metric, window, window_start), across windows.
    let got = starts(
        store
            .query_results(&query("job", 0, 21, Some("b"), None, 100))
            .expect("q"),
    );
    assert_eq!(
        got,
        vec![
            row("b", "w1", 0),
            row("b", "w1", 10),
            row("b", "w1", 20),
            row("b", "w2", 0),
            row("b", "w2", 10),
            row("b", "w2", 20)
        ]
    );
    let got = starts(
        store
            .query_results(&query("job", 0, 21, Some("b"), None, 4))
            .expect("q"),
    );
    assert_eq!(
        got,
        vec![
            row("b", "w1", 0),
            row("b", "w1", 10),
            row("b", "w1", 20),
            row("b", "w2", 0)
        ]
    );
    let got = starts(
        store
            .query_results(&query("job", -10, 0, Some("a"), Some("w1"), 100))
            .expect("q"),
    );
    assert_eq!(got, vec![row("a", "w1", -10)]);

    // Empty ranges, zero limits and unknown names return nothing.
    for q in [
        query("job", 10, 10, None, None, 100),
        query("job", 10, -10, Some("a"), None, 100),
        query("job", i64::MIN, i64::MAX, None, None, 0),
        query("job", i64::MIN, i64::MAX, Some("a"), None, 0),
        query("job", i64::MIN, i64::MAX, Some("c"), None, 100),
        query("job", i64::MIN, i64::MAX, Some("a"), Some("w3"), 100),
    ] {
        assert_eq!(store.query_results(&q).expect("q"), vec![], "{q:?}");
    }
}

#[test]
fn two_jobs_do_not_see_each_others_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    // "job" is a byte prefix of the others: their keys must still not interleave.
    for (i, job) in ["job", "job\0", "jobs"].into_iter().enumerate() {
        let i = i as u32;
        store
            .apply(
                job,
                0,
                &[
                    Output::Result(result("m", "w", 0, i)),
                    Output::Late(late("m", "w", 0, u64::from(i))),
                ],
            )
            .expect("apply");
    }
    for (i, job) in ["job", "job\0", "jobs"].into_iter().enumerate() {
        let i = i as u32;
        assert_eq!(
            store.query_results(&all(job)).expect("q"),
            vec![result("m", "w", 0, i)]
        );
        let q = query(job, i64::MIN, i64::MAX, Some("m"), None, 10);
        assert_eq!(
            store.query_results(&q).expect("q"),
            vec![result("m", "w", 0, i)]
        );
        let q = LateQuery {
            job: job.into(),
            start: i64::MIN,
            end: i64::MAX,
            metric_id: None,
            limit: 10,
        };
        assert_eq!(
            store.query_late(&q).expect("late"),
            vec![late("m", "w", 0, u64::from(i))]
        );
    }
    assert_eq!(
        store.counts().expect("counts"),
        StoreCounts {
            results: 3,
            late: 3
        }
    );
    assert_eq!(store.query_results(&all("jo")).expect("q"), vec![]);
}

#[test]
fn late_events_are_stored_idempotently_and_queried_by_event_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let p0 = [
        Output::Late(late("cpu", "w", 300, 7)),
        Output::Late(late("mem", "w", 100, 8)),
        Output::Late(late("cpu", "w", -50, 9)),
    ];
    store.apply("job", 0, &p0).expect("apply");
    store.apply("job", 0, &p0).expect("replay");
    // Same (window, offset) in another partition is another event.
    store
        .apply("job", 1, &[Output::Late(late("cpu", "w", 100, 7))])
        .expect("apply p1");
    assert_eq!(
        store.counts().expect("counts"),
        StoreCounts {
            results: 0,
            late: 4
        }
    );

    let lq = |start, end, metric: Option<&str>, limit| LateQuery {
        job: "job".into(),
        start,
        end,
        metric_id: metric.map(Into::into),
        limit,
    };
    // Ordered by (ts, partition, window, offset); end exclusive.
    let got = store.query_late(&lq(-50, 300, None, 10)).expect("q");
    assert_eq!(
        got,
        vec![
            late("cpu", "w", -50, 9),
            late("mem", "w", 100, 8),
            late("cpu", "w", 100, 7)
        ]
    );
    let got = store.query_late(&lq(-50, 301, Some("cpu"), 10)).expect("q");
    assert_eq!(
        got,
        vec![
            late("cpu", "w", -50, 9),
            late("cpu", "w", 100, 7),
            late("cpu", "w", 300, 7)
        ]
    );
    let got = store
        .query_late(&lq(i64::MIN, i64::MAX, Some("cpu"), 2))
        .expect("q");
    assert_eq!(
        got,
        vec![late("cpu", "w", -50, 9), late("cpu", "w", 100, 7)]
    );
    assert_eq!(store.query_late(&lq(5, 5, None, 10)).expect("q"), vec![]);
    assert_eq!(
        store
            .query_late(&lq(i64::MIN, i64::MAX, None, 0))
            .expect("q"),
        vec![]
    );
}

#[test]
fn a_late_event_rewritten_with_another_ts_leaves_one_index_entry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    store
        .apply("job", 0, &[Output::Late(late("m", "w", 10, 1))])
        .expect("apply");
    store
        .apply("job", 0, &[Output::Late(late("m", "w", 20, 1))])
        .expect("apply");
    let q = LateQuery {
        job: "job".into(),
        start: i64::MIN,
        end: i64::MAX,
        metric_id: None,
        limit: 10,
    };
    assert_eq!(
        store.query_late(&q).expect("q"),
        vec![late("m", "w", 20, 1)]
    );
}

#[test]
fn data_survives_close_and_reopen_after_flush() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = open(tmp.path());
        store
            .apply(
                "job",
                3,
                &[
                    Output::Result(result("m", "w", -5, 2)),
                    Output::Late(late("m", "w", 1, 1)),
                ],
            )
            .expect("apply");
        store.flush().expect("flush");
    }
    let store = open(tmp.path());
    assert_eq!(
        store.query_results(&all("job")).expect("q"),
        vec![result("m", "w", -5, 2)]
    );
    assert_eq!(
        store.counts().expect("counts"),
        StoreCounts {
            results: 1,
            late: 1
        }
    );
}

#[test]
fn a_second_open_of_the_same_directory_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let _first = open(tmp.path());
    let second = EmbeddedStore::open(tmp.path());
    assert!(
        matches!(second, Err(crate::StoreError::Open { .. })),
        "{second:?}"
    );
}

const CRASH_CHILD_ENV: &str = "STREAMPULSE_STORE_TEST_CRASH_DIR";

/// The child half of [`flushed_data_survives_a_crash`]: write, flush, write more, then die without
/// closing the database.
fn crash_child(dir: &Path) -> ! {
    let store = open(dir);
    store
        .apply("job", 0, &[Output::Result(result("flushed", "w", 0, 0))])
        .expect("apply");
    store.flush().expect("flush");
    store
        .apply("job", 0, &[Output::Result(result("unflushed", "w", 0, 0))])
        .expect("apply");
    std::process::abort();
}

#[test]
fn flushed_data_survives_a_crash() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let status = std::process::Command::new(exe)
        .args([
            "--exact",
            "embedded::tests::flushed_data_survives_a_crash",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, tmp.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run child");
    assert!(
        !status.success(),
        "the child must have crashed, not exited cleanly"
    );
    let store = open(tmp.path());
    let q = query("job", i64::MIN, i64::MAX, Some("flushed"), None, 10);
    assert_eq!(
        store.query_results(&q).expect("q"),
        vec![result("flushed", "w", 0, 0)]
    );
    // The unflushed batch may or may not be there (redb returns to the last durable or the last
    // non-durable commit); the engine's replay rewrites it either way.
}

#[test]
fn concurrent_applies_from_partition_threads_all_land() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    std::thread::scope(|s| {
        for partition in 0..4u32 {
            let store = &store;
            s.spawn(move || {
                for i in 0..25i64 {
                    let metric = format!("p{partition}");
                    store
                        .apply(
                            "job",
                            partition,
                            &[Output::Result(result(&metric, "w", i * 1_000, 0))],
                        )
                        .expect("apply");
                }
            });
        }
    });
    assert_eq!(store.counts().expect("counts").results, 100);
}

// Model-based: random upserts and retracts against a BTreeMap, then random queries must return
// exactly what filtering and sorting the model gives, on both access paths.

type ModelKey = (String, String, String, i64);

fn name() -> impl Strategy<Value = String> {
    prop_oneof![Just(""), Just("a"), Just("a\0b"), Just("ab"), Just("é")].prop_map(String::from)
}

fn op() -> impl Strategy<Value = (bool, String, String, String, i64, u32)> {
    (
        proptest::bool::weighted(0.8),
        prop_oneof![Just("j1"), Just("j1\0")].prop_map(String::from),
        name(),
        name(),
        -3i64..3,
        0u32..3,
    )
}

fn model_query(model: &BTreeMap<ModelKey, WindowResult>, q: &ResultQuery) -> Vec<WindowResult> {
    let mut rows: Vec<&WindowResult> = model
        .iter()
        .filter(|((job, metric, window, start), _)| {
            *job == q.job
                && (q.start..q.end).contains(start)
                && q.metric_id.as_ref().is_none_or(|m| m == metric)
                && q.window.as_ref().is_none_or(|w| w == window)
        })
        .map(|(_, r)| r)
        .collect();
    if q.metric_id.is_none() {
        rows.sort_by(|a, b| {
            (a.window_start, &a.metric_id, &a.window).cmp(&(
                b.window_start,
                &b.metric_id,
                &b.window,
            ))
        });
    }
    rows.into_iter().take(q.limit).cloned().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn both_access_paths_agree_with_a_model(
        ops in proptest::collection::vec(op(), 1..40),
        queries in proptest::collection::vec(
            (prop_oneof![Just("j1"), Just("j1\0")], -4i64..4, -4i64..4, proptest::option::of(name()), proptest::option::of(name()), 0usize..8),
            1..20,
        ),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        let mut model = BTreeMap::new();
        // Several ops per batch, so batches mix upserts and retracts of the same key.
        for chunk in ops.chunks(3) {
            let mut by_job: BTreeMap<&str, Vec<Output>> = BTreeMap::new();
            for (upsert, job, metric, window, start, rev) in chunk {
                let key = (job.clone(), metric.clone(), window.clone(), *start);
                let output = if *upsert {
                    let r = result(metric, window, *start, *rev);
                    model.insert(key, r.clone());
                    Output::Result(r)
                } else {
                    model.remove(&key);
                    retract(metric, window, *start)
                };
                by_job.entry(job.as_str()).or_default().push(output);
            }
            for (job, outputs) in by_job {
                store.apply(job, 0, &outputs).expect("apply");
            }
        }
        prop_assert_eq!(store.counts().expect("counts").results, model.len() as u64);
        for (job, start, end, metric, window, limit) in queries {
            let q = query(job, start, end, metric.as_deref(), window.as_deref(), limit);
            let want = model_query(&model, &q);
            prop_assert_eq!(&store.query_results(&q).expect("query"), &want, "{:?}", q);
            // The time index must hold the same rows as the metric index for the same filters.
            let mut via_time = store.query_by_time(&ResultQuery { limit: usize::MAX, ..q.clone() }).expect("by time");
            via_time.sort_by(|a, b| (&a.metric_id, &a.window, a.window_start).cmp(&(&b.metric_id, &b.window, b.window_start)));
            via_time.truncate(q.limit);
            if let Some(metric) = &q.metric_id {
                prop_assert_eq!(&store.query_by_metric(&q, metric).expect("by metric"), &via_time);
            }
        }
    }
}
