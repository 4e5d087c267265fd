//! Tests of [`EmbeddedStore`] against an in-memory model of what it must return.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use streampulse_core::detect::{Alert, AlertState, Severity};
use streampulse_core::output::{Output, WindowResult};

use super::EmbeddedStore;
use crate::conformance;
pub(super) use crate::conformance::{alert, raw, raw_query, result};
#[allow(unused_imports)]
use crate::conformance::{alerts_of, all, aq, critical, ids, late, query, resolved, retract, row};
use crate::{
    AlertQuery, BehindOutcome, LateQuery, ResultQuery, ResultStore, ScanBudget, StoreCounts,
};

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
fn the_catalog_lists_metrics_by_id_match_and_tags_in_pages() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::the_catalog_lists_metrics_by_id_match_and_tags_in_pages(&open(tmp.path()));
}

#[test]
fn results_are_filtered_by_the_tags_in_the_metric_catalog() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::results_are_filtered_by_the_tags_in_the_metric_catalog(&open(tmp.path()));
}

#[test]
fn upsert_of_the_same_key_keeps_one_row_with_the_last_value() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::upsert_of_the_same_key_keeps_one_row_with_the_last_value(&open(tmp.path()));
}

#[test]
fn retract_deletes_from_both_access_paths() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::retract_deletes_from_both_access_paths(&open(tmp.path()));
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
    conformance::queries_respect_half_open_range_filters_order_and_limit(&open(tmp.path()));
}

#[test]
fn two_jobs_do_not_see_each_others_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::two_jobs_do_not_see_each_others_rows(&open(tmp.path()));
}

#[test]
fn late_events_are_stored_idempotently_and_queried_by_event_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::late_events_are_stored_idempotently_and_queried_by_event_time(&open(tmp.path()));
}

#[test]
fn raw_events_are_upserted_idempotently_and_read_by_metric_and_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::raw_events_are_upserted_idempotently_and_read_by_metric_and_time(&open(
        tmp.path(),
    ));
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
            late: 1,
            alerts: 0,
            raw: 0
        }
    );
}

#[test]
fn a_clean_close_keeps_what_was_applied_without_a_flush() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = open(tmp.path());
        store
            .apply("job", 0, &[Output::Result(result("m", "w", 0, 1))])
            .expect("apply");
    }
    let store = open(tmp.path());
    let q = query("job", i64::MIN, i64::MAX, Some("m"), None, 10);
    assert_eq!(
        store.query_results(&q).expect("q"),
        vec![result("m", "w", 0, 1)]
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
    crate::crash_test::crash_in_child(
        "embedded::tests::flushed_data_survives_a_crash",
        CRASH_CHILD_ENV,
        tmp.path(),
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

/// Past its cap, the buffer goes out a bounded share per batch (`write_behind`, here one
/// transaction: a budget of zero), not all at once in the batch that crossed it; past twice the
/// cap the batch writes until it is back under. Every row is in `results_by_metric` at the end,
/// as applied.
#[test]
fn held_back_rows_go_out_a_transaction_per_batch_once_over_the_cap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with_caps(tmp.path(), 1 << 20, 2048, 2)
        .expect("open")
        .with_write_behind_budget(std::time::Duration::ZERO);
    let mut applied = 0i64;
    // Applied and written (into the buffer), without `write_behind`'s write-out.
    let apply = |store: &EmbeddedStore, applied: &mut i64| {
        let r = result(&format!("m{}", *applied % 7), "w", *applied * 1_000, 0);
        store.apply("job", 0, &[Output::Result(r)]).expect("apply");
        store.catch_up().expect("write the batch");
        *applied += 1;
    };
    while !store.pending().over_cap() {
        apply(&store, &mut applied);
        assert!(applied < 1_000, "the buffer never reached its cap");
    }
    let held = store.pending().unwritten();
    assert!(held > 4, "{held} rows held at the cap");
    assert_eq!(
        store.write_behind().expect("write behind"),
        BehindOutcome::More,
        "still over the cap"
    );
    assert_eq!(
        store.pending().unwritten(),
        held - 2,
        "one transaction of 2 rows"
    );
    store.write_behind().expect("write behind");
    assert_eq!(store.pending().unwritten(), held - 4);
    while !store.pending().far_over_cap() {
        apply(&store, &mut applied);
        assert!(applied < 10_000, "the buffer never reached twice its cap");
    }
    assert_eq!(
        store.write_behind().expect("write behind"),
        BehindOutcome::Done
    );
    assert!(
        !store.pending().over_cap(),
        "past twice the cap, a batch writes until under it"
    );
    for i in 0..applied {
        let q = query(
            "job",
            i * 1_000,
            i * 1_000 + 1,
            Some(&format!("m{}", i % 7)),
            None,
            10,
        );
        assert_eq!(store.query_results(&q).expect("query").len(), 1, "row {i}");
    }
}

/// With time for it, one `write_behind` past the cap writes the buffer back under it in several
/// transactions, and leaves the rest to later batches once under.
#[test]
fn a_write_behind_with_time_writes_several_transactions_until_under_the_cap() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with_caps(tmp.path(), 1 << 20, 2048, 2)
        .expect("open")
        .with_write_behind_budget(std::time::Duration::from_secs(60));
    let mut applied = 0i64;
    while !store.pending().over_cap() {
        let r = result(&format!("m{}", applied % 7), "w", applied * 1_000, 0);
        store.apply("job", 0, &[Output::Result(r)]).expect("apply");
        store.catch_up().expect("write the batch");
        applied += 1;
    }
    let held = store.pending().unwritten();
    assert!(held > 4, "{held} rows held at the cap");
    store.write_behind().expect("write behind");
    assert!(!store.pending().over_cap(), "written back under the cap");
    assert!(
        store.pending().unwritten() <= held - 4,
        "more than one transaction of 2 rows: {} of {held} left",
        store.pending().unwritten()
    );
    let q = query("job", 0, applied * 1_000, Some("m0"), None, 1_000);
    assert_eq!(
        store.query_results(&q).expect("query").len() as i64,
        (applied + 6) / 7
    );
}

/// Partition threads apply while a query thread reads by metric, with write-outs of two rows per
/// transaction, so runs interleave with applies and queries: a query sees every row whose apply
/// returned before it began, and at the end both indexes hold every row.
#[test]
fn queries_by_metric_see_every_applied_row_while_write_outs_run_in_small_transactions() {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    const PARTITIONS: u32 = 3;
    const APPLIES: i64 = 60;
    const METRICS: i64 = 5;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open_with_caps(tmp.path(), 1 << 20, 256, 2).expect("open");
    let applied: Vec<AtomicI64> = (0..PARTITIONS).map(|_| AtomicI64::new(-1)).collect();
    let writers_done = AtomicUsize::new(0);
    let metric = |p: u32, i: i64| format!("p{p}-m{}", i % METRICS);
    std::thread::scope(|s| {
        for partition in 0..PARTITIONS {
            let (store, applied, writers_done) = (&store, &applied, &writers_done);
            s.spawn(move || {
                for i in 0..APPLIES {
                    let r = result(&metric(partition, i), "w", i * 1_000, 0);
                    store
                        .apply("job", partition, &[Output::Result(r)])
                        .expect("apply");
                    applied[partition as usize].store(i, Ordering::SeqCst);
                    // As a partition's driver does once it published the batch.
                    store.write_behind().expect("write behind");
                }
                writers_done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let (store, applied, writers_done) = (&store, &applied, &writers_done);
        s.spawn(move || {
            let mut round = 0u32;
            while writers_done.load(Ordering::SeqCst) < PARTITIONS as usize {
                let partition = round % PARTITIONS;
                round += 1;
                let i = applied[partition as usize].load(Ordering::SeqCst);
                if i < 0 {
                    continue;
                }
                let m = metric(partition, i);
                let q = query("job", i * 1_000, i * 1_000 + 1, Some(&m), None, 10);
                let rows = store.query_results(&q).expect("query");
                assert_eq!(
                    rows.len(),
                    1,
                    "{m} at {i}: applied, not seen by a later query"
                );
            }
        });
    });
    for partition in 0..PARTITIONS {
        for m in 0..METRICS {
            let q = query(
                "job",
                i64::MIN,
                i64::MAX,
                Some(&metric(partition, m)),
                None,
                1000,
            );
            let rows = store.query_results(&q).expect("query");
            assert_eq!(rows.len() as i64, APPLIES / METRICS, "p{partition}-m{m}");
        }
    }
    let all = query("job", i64::MIN, i64::MAX, None, None, 10_000);
    assert_eq!(
        store.query_results(&all).expect("query").len() as i64,
        i64::from(PARTITIONS) * APPLIES
    );
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
        // Held-back metric-index rows: written out at every apply, every few, or only when read;
        // one, two or many rows per write-out transaction.
        pending_cap in prop_oneof![Just(0usize), Just(300), Just(1 << 20)],
        rows_per_txn in prop_oneof![Just(1usize), Just(2), Just(2048)],
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open_with_caps(tmp.path(), 1 << 20, pending_cap, rows_per_txn).expect("open");
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
                store.write_behind().expect("write behind");
            }
        }
        prop_assert_eq!(store.counts().expect("counts").results, model.len() as u64);
        for (job, start, end, metric, window, limit) in queries {
            let q = query(job, start, end, metric.as_deref(), window.as_deref(), limit);
            let want = model_query(&model, &q);
            prop_assert_eq!(&store.query_results(&q).expect("query"), &want, "{:?}", q);
            // The time index must hold the same rows as the metric index for the same filters.
            let mut via_time = store.query_by_time(&ResultQuery { limit: usize::MAX, ..q.clone() }, &mut ScanBudget::new(&q)).expect("by time");
            via_time.sort_by(|a, b| (&a.metric_id, &a.window, a.window_start).cmp(&(&b.metric_id, &b.window, b.window_start)));
            via_time.truncate(q.limit);
            if let Some(metric) = &q.metric_id {
                prop_assert_eq!(&store.query_by_metric(&q, metric, &mut ScanBudget::new(&q)).expect("by metric"), &via_time);
            }
        }
    }
}

// Alerts.

#[test]
fn an_alert_keeps_its_highest_sequence_whatever_the_arrival_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::an_alert_keeps_its_highest_sequence_whatever_the_arrival_order(&open(tmp.path()));
}

#[test]
fn alert_queries_return_overlapping_episodes_newest_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::alert_queries_return_overlapping_episodes_newest_first(&open(tmp.path()));
}

#[test]
fn alert_queries_keep_alerts_carrying_every_given_tag() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::alert_queries_keep_alerts_carrying_every_given_tag(&open(tmp.path()));
}

#[test]
fn alert_queries_filter_by_metric_state_severity_and_limit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::alert_queries_filter_by_metric_state_severity_and_limit(&open(tmp.path()));
}

#[test]
fn alerts_survive_close_and_reopen_after_flush() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let long = resolved(alert("long", "m", 0, 1_000, 4), 1_200);
    {
        let store = open(tmp.path());
        store
            .apply(
                "job",
                2,
                &[
                    Output::Alert(long.clone()),
                    Output::Alert(alert("s", "n", 10, 10, 0)),
                ],
            )
            .expect("apply");
        store.flush().expect("flush");
    }
    let store = open(tmp.path());
    assert_eq!(
        store.get_alert("job", "long").expect("get"),
        Some(long.clone())
    );
    // The longest-episode bound is persisted too: a query inside the long episode still finds it.
    assert_eq!(ids(&alerts_of(&store, &aq("job", 500, 600))), vec!["long"]);
    assert_eq!(
        ids(&alerts_of(&store, &aq("job", 0, 100))),
        vec!["s", "long"]
    );
    assert_eq!(
        store.counts().expect("counts"),
        StoreCounts {
            results: 0,
            late: 0,
            alerts: 2,
            raw: 0
        }
    );
    // And a replay of an older transition after the reopen still loses.
    store
        .apply("job", 2, &[Output::Alert(alert("long", "m", 0, 10, 1))])
        .expect("replay");
    assert_eq!(store.get_alert("job", "long").expect("get"), Some(long));
}

// Model-based: random transitions in random order against a map keeping the highest sequence;
// random queries must equal brute-force filtering of the model.

fn alert_op() -> impl Strategy<Value = (String, String, String, i64, i64, u32, bool, bool)> {
    (
        prop_oneof![Just("j"), Just("j\0")].prop_map(String::from),
        prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")].prop_map(String::from),
        name(),
        -20i64..20,
        0i64..15,
        0u32..4,
        any::<bool>(),
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn alert_queries_agree_with_a_model(
        ops in proptest::collection::vec(alert_op(), 1..40),
        queries in proptest::collection::vec(
            (prop_oneof![Just("j"), Just("j\0")], -40i64..40, -40i64..40, proptest::option::of(name()),
             proptest::option::of(any::<bool>()), proptest::option::of(any::<bool>()), 0usize..8),
            1..20,
        ),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        // (job, id) -> alert. The id fixes metric and first_ts, as in the pipeline.
        let mut model: BTreeMap<(String, String), Alert> = BTreeMap::new();
        let mut identity: BTreeMap<String, (String, i64)> = BTreeMap::new();
        for chunk in ops.chunks(3) {
            let mut by_job: BTreeMap<&str, Vec<Output>> = BTreeMap::new();
            for (job, id, metric, first, len, seq, is_resolved, is_critical) in chunk {
                let (metric, first) = identity.entry(id.clone()).or_insert((metric.clone(), *first)).clone();
                let mut a = alert(id, &metric, first, first + len, *seq);
                if *is_resolved { a = resolved(a, first + len + 1); }
                if *is_critical { a = critical(a); }
                let key = (job.clone(), id.clone());
                if model.get(&key).is_none_or(|old| old.sequence <= a.sequence) {
                    model.insert(key, a.clone());
                }
                by_job.entry(job.as_str()).or_default().push(Output::Alert(a));
            }
            for (job, outputs) in by_job {
                store.apply(job, 0, &outputs).expect("apply");
                store.write_behind().expect("write behind");
            }
        }
        prop_assert_eq!(store.counts().expect("counts").alerts, model.len() as u64);
        for ((job, id), a) in &model {
            let stored = store.get_alert(job, id).expect("get");
            prop_assert_eq!(stored.as_ref(), Some(a));
        }
        for (job, start, end, metric, firing, warning, limit) in queries {
            let q = AlertQuery {
                job: job.into(),
                start,
                end,
                metric_id: metric,
                state: firing.map(|f| if f { AlertState::Firing } else { AlertState::Resolved }),
                severity: warning.map(|w| if w { Severity::Warning } else { Severity::Critical }),
                tags: Vec::new(),
                limit,
                after: None,
            };
            let mut want: Vec<&Alert> = model
                .iter()
                .filter(|((j, _), a)| {
                    *j == q.job
                        && q.start < q.end
                        && a.first_ts < q.end
                        && a.last_ts >= q.start
                        && q.metric_id.as_ref().is_none_or(|m| *m == a.metric_id)
                        && q.state.is_none_or(|s| s == a.state)
                        && q.severity.is_none_or(|s| s == a.severity)
                })
                .map(|(_, a)| a)
                .collect();
            want.sort_by(|x, y| (y.first_ts, &y.id).cmp(&(x.first_ts, &x.id)));
            let want: Vec<Alert> = want.into_iter().take(q.limit).cloned().collect();
            prop_assert_eq!(&store.query_alerts(&q).expect("query"), &want, "{:?}", q);
        }
    }
}

#[test]
fn a_series_longer_than_a_page_reads_whole_and_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::a_series_longer_than_a_page_reads_whole_and_in_order(&open(tmp.path()));
}

#[test]
fn a_scan_budget_cuts_pages_that_resume_where_they_stopped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    conformance::a_scan_budget_cuts_pages_that_resume_where_they_stopped(&open(tmp.path()));
}

/// A batch waits in memory and its apply returns at once; a read sees it (a read writes what
/// waits first), and `write_behind` writes it, but not while a durable flush runs (the flush
/// writes it), nor while another partition is at it. One partition's batches reach the tables
/// in its order: the later revision wins.
#[test]
fn applied_batches_wait_in_memory_until_write_behind_or_a_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let waiting = |store: &EmbeddedStore| super::deferred::lock(&store.deferred).len();
    store
        .apply("job", 0, &[Output::Result(result("m", "w", 0, 1))])
        .expect("apply");
    assert_eq!(waiting(&store), 1, "kept, not written");
    let q = query("job", 0, 1, Some("m"), None, 10);
    let rows = store.query_results(&q).expect("query");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].revision, 1);
    assert_eq!(waiting(&store), 0, "the read wrote it");
    assert_eq!(store.counts().expect("counts").results, 1);

    super::deferred::lock(&store.deferred).begin_flush();
    store
        .apply("job", 0, &[Output::Result(result("m", "w", 0, 2))])
        .expect("apply");
    assert_eq!(
        store.write_behind().expect("write behind"),
        BehindOutcome::Busy
    );
    assert_eq!(waiting(&store), 1, "left to the flush that runs");
    super::deferred::lock(&store.deferred).end_flush();
    store
        .apply("job", 0, &[Output::Result(result("m", "w", 0, 3))])
        .expect("apply");
    assert_eq!(
        store.write_behind().expect("write behind"),
        BehindOutcome::Done
    );
    assert_eq!(waiting(&store), 0);
    let rows = store.query_results(&q).expect("query");
    assert_eq!(rows[0].revision, 3, "the batch that waited went first");

    // Another partition is at it: this one goes back to its events instead of waiting.
    let busy = store.writing_behind.lock().expect("lock");
    store
        .apply("job", 0, &[Output::Result(result("m", "w", 0, 4))])
        .expect("apply");
    assert_eq!(
        store.write_behind().expect("write behind"),
        BehindOutcome::Busy
    );
    assert_eq!(waiting(&store), 1, "left to the one at it");
    drop(busy);
    drop(store);
    let rows = open(tmp.path()).query_results(&q).expect("query");
    assert_eq!(rows[0].revision, 4, "a clean close writes what waits");
}

/// A read that comes while another transaction is writing the batches it took (taken, so no
/// longer waiting, and not yet committed) waits for that commit, so it sees them: a result on
/// the live feed is found by a query.
#[test]
fn a_read_waits_for_the_transaction_writing_the_batches_it_took() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    store
        .apply("job", 0, &[Output::Result(result("m", "w", 0, 1))])
        .expect("apply");
    let (took, taken_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let txn = store.db().expect("db").begin_write().expect("begin");
            let taken = {
                let mut pending = store.pending();
                let taken = super::deferred::lock(&store.deferred).take();
                super::write_waiting(&txn, &mut pending, &taken.batches).expect("write");
                taken
            };
            took.send(()).expect("send");
            std::thread::sleep(std::time::Duration::from_millis(200));
            txn.commit().expect("commit");
            super::deferred::lock(&store.deferred).written(taken);
        });
        taken_rx.recv().expect("taken");
        let rows = store
            .query_results(&query("job", 0, 1, None, None, 10))
            .expect("query");
        assert_eq!(rows.len(), 1, "the read saw the batch being written");
    });
}

/// A batch that cannot be written (here a stored late row that does not parse, which its late
/// event would replace) holds up its own partition's later batches and the durable flush, not
/// the other partitions' writes; once the row is fixed, the held batches go in, in order.
#[test]
fn a_batch_that_cannot_be_written_holds_up_only_its_partition() {
    use crate::error::StoreError;
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let waiting = |store: &EmbeddedStore| super::deferred::lock(&store.deferred).len();
    let bad_row = crate::keys::late("job", 1, "w", 7);
    let set_bad_row = |store: &EmbeddedStore, bad: bool| {
        let txn = store.db().expect("db").begin_write().expect("begin");
        {
            let mut late = txn.open_table(crate::schema::LATE_EVENTS).expect("table");
            if bad {
                late.insert(bad_row.as_slice(), &b"\xffnot a late event"[..])
                    .expect("insert");
            } else {
                late.remove(bad_row.as_slice()).expect("remove");
            }
        }
        txn.commit().expect("commit");
    };
    set_bad_row(&store, true);
    let rows = |store: &EmbeddedStore, metric: &str| {
        store
            .query_results(&query("job", 0, 100_000, Some(metric), None, 10))
            .expect("query")
    };
    store
        .apply("job", 0, &[Output::Result(result("a", "w", 0, 0))])
        .expect("apply");
    store
        .apply("job", 1, &[Output::Late(late("b", "w", 5, 7))])
        .expect("apply");
    store
        .apply("job", 1, &[Output::Result(result("b", "w", 0, 0))])
        .expect("apply");
    store
        .apply("job", 0, &[Output::Result(result("a", "w", 10_000, 0))])
        .expect("apply");

    let err = store.write_behind().expect_err("a batch cannot be written");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(waiting(&store), 2, "partition 1's two batches wait");
    assert_eq!(rows(&store, "a").len(), 2, "partition 0's went in");
    assert_eq!(rows(&store, "b").len(), 0, "held behind its late event");
    assert!(
        store.flush().is_err(),
        "a flush must not pass a batch not written"
    );
    // Partition 0 goes on writing.
    store
        .apply("job", 0, &[Output::Result(result("a", "w", 20_000, 0))])
        .expect("apply");
    assert!(store.write_behind().is_err());
    assert_eq!(rows(&store, "a").len(), 3);
    assert_eq!(waiting(&store), 2);

    set_bad_row(&store, false);
    store.write_behind().expect("written now");
    assert_eq!(waiting(&store), 0);
    assert_eq!(rows(&store, "b").len(), 1);
    let late_rows = store
        .query_late(&LateQuery {
            job: "job".into(),
            start: i64::MIN,
            end: i64::MAX,
            metric_id: None,
            limit: 10,
        })
        .expect("late");
    assert_eq!(late_rows.len(), 1);
    store.flush().expect("flush");
}

/// Partitions apply revisions of their own keys while another thread flushes durably over and
/// over, until some batches waited out a flush (and were written by the next transaction): both
/// indexes end with every key's last revision, and so does the store reopened (what a crash
/// after the last flush leaves, here after a clean close).
#[test]
fn applies_during_repeated_durable_flushes_end_with_every_last_revision() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const PARTITIONS: u32 = 3;
    const KEYS: i64 = 4;
    const AT_MOST: u32 = 100_000;
    let tmp = tempfile::tempdir().expect("tempdir");
    let check = |store: &EmbeddedStore, last: &[u32]| {
        for p in 0..PARTITIONS {
            for k in 0..KEYS {
                let m = format!("p{p}-k{k}");
                let q = query("job", k * 1_000, k * 1_000 + 1, Some(&m), None, 10);
                let rows = store.query_results(&q).expect("query");
                assert_eq!(rows.len(), 1, "{m}");
                assert_eq!(rows[0].revision, last[p as usize], "{m} by metric");
                let q = query("job", k * 1_000, k * 1_000 + 1, None, None, 100);
                let rows = store.query_results(&q).expect("query");
                let row = rows.iter().find(|r| *r.metric_id == *m).expect("by time");
                assert_eq!(row.revision, last[p as usize], "{m} by time");
            }
        }
    };
    let last: Vec<u32> = {
        let store = open(tmp.path());
        let done = AtomicBool::new(false);
        let held = || super::deferred::lock(&store.deferred).held();
        let last = std::thread::scope(|s| {
            let (store, done, held) = (&store, &done, &held);
            let writers: Vec<_> = (0..PARTITIONS)
                .map(|p| {
                    s.spawn(move || {
                        let mut rev = 0;
                        loop {
                            let batch: Vec<Output> = (0..KEYS)
                                .map(|k| {
                                    let m = format!("p{p}-k{k}");
                                    Output::Result(result(&m, "w", k * 1_000, rev))
                                })
                                .collect();
                            store.apply("job", p, &batch).expect("apply");
                            store.write_behind().expect("write behind");
                            if (rev >= 100 && held() >= 3) || rev >= AT_MOST {
                                return rev;
                            }
                            rev += 1;
                        }
                    })
                })
                .collect();
            s.spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    store.flush().expect("flush");
                }
            });
            let last: Vec<u32> = writers
                .into_iter()
                .map(|w| w.join().expect("writer"))
                .collect();
            done.store(true, Ordering::SeqCst);
            last
        });
        assert!(held() >= 3, "no batch came during a flush: nothing waited");
        check(&store, &last);
        last
    };
    check(&open(tmp.path()), &last);
}
