//! Tests of retention with exact row counts: what a sweep deletes and keeps at its cutoff and
//! around it, in every table, in small batches, across a crash, and against a model.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use streampulse_core::detect::{Alert, AlertState, Severity};
use streampulse_core::output::{LateEvent, Output, RawEvent, WindowResult};

use super::{cutoff, Limits};
use crate::{
    AlertQuery, EmbeddedStore, ExpiryReport, LateQuery, RawQuery, ResultQuery, ResultStore,
    RetentionPolicy, StoreCounts,
};

const HOUR: Duration = Duration::from_secs(3600);
const NOW: i64 = 1_700_000_000_000;
/// `cutoff(NOW, HOUR)`: rows strictly before it go.
const CUT: i64 = NOW - 3_600_000;

fn open(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir).expect("open store")
}

fn result(metric: &str, window: &str, start: i64, end: i64) -> WindowResult {
    WindowResult {
        metric_id: metric.into(),
        window: window.into(),
        window_start: start,
        window_end: end,
        count: 1,
        sum: 2.0,
        min: 2.0,
        max: 2.0,
        mean: 2.0,
        extra: Default::default(),
        revision: 0,
    }
}

fn late(metric: &str, ts: i64, offset: u64) -> LateEvent {
    LateEvent {
        window: "w".into(),
        metric_id: metric.into(),
        ts,
        value: 1.0,
        watermark: ts + 60_000,
        offset,
    }
}

fn raw(metric: &str, ts: i64, offset: u64) -> RawEvent {
    RawEvent {
        metric_id: metric.into(),
        ts,
        value: offset as f64,
        tags: BTreeMap::from([("host".to_string(), "a".to_string())]),
        offset,
    }
}

/// An alert of one point at `last_ts` (first_ts = last_ts − 1000), resolved at `resolved` if given.
fn alert(id: &str, metric: &str, last_ts: i64, resolved: Option<i64>) -> Alert {
    Alert {
        id: id.into(),
        metric_id: metric.into(),
        detector: "z".into(),
        series: "raw".into(),
        state: match resolved {
            Some(_) => AlertState::Resolved,
            None => AlertState::Firing,
        },
        severity: Severity::Warning,
        observed: 10.0,
        expected: 1.0,
        score: 5.0,
        peak_score: 5.0,
        threshold: 4.0,
        first_ts: last_ts - 1_000,
        last_ts,
        resolved_ts: resolved,
        sequence: u32::from(resolved.is_some()),
        tags: BTreeMap::new(),
    }
}

fn every_table(ttl: Duration) -> RetentionPolicy {
    RetentionPolicy {
        results: Some(ttl),
        late_events: Some(ttl),
        alerts: Some(ttl),
        raw_events: Some(ttl),
    }
}

fn counts(store: &EmbeddedStore) -> StoreCounts {
    store.counts().expect("counts")
}

fn counts_of(results: u64, late: u64, alerts: u64, raw: u64) -> StoreCounts {
    StoreCounts {
        results,
        late,
        alerts,
        raw,
    }
}

fn results_query(job: &str, metric: Option<&str>) -> ResultQuery {
    ResultQuery {
        job: job.into(),
        start: i64::MIN,
        end: i64::MAX,
        metric_id: metric.map(Into::into),
        metric_match: None,
        window: None,
        tags: Vec::new(),
        limit: usize::MAX,
        after: None,
        scan_limit: usize::MAX,
    }
}

/// (metric, window, window_start, window_end) of every result of `job`, read by time; checks that
/// the metric access path holds exactly the same rows.
fn results_of(store: &EmbeddedStore, job: &str) -> BTreeSet<(String, String, i64, i64)> {
    let rows = |q: &ResultQuery| -> BTreeSet<(String, String, i64, i64)> {
        store
            .query_results(q)
            .expect("query results")
            .into_iter()
            .map(|r| {
                (
                    r.metric_id.to_string(),
                    r.window.to_string(),
                    r.window_start,
                    r.window_end,
                )
            })
            .collect()
    };
    let by_time = rows(&results_query(job, None));
    let metrics: BTreeSet<&String> = by_time.iter().map(|r| &r.0).collect();
    let mut by_metric = BTreeSet::new();
    for m in metrics {
        by_metric.extend(rows(&results_query(job, Some(m))));
    }
    assert_eq!(by_metric, by_time, "the two result tables disagree");
    by_time
}

fn late_ts(store: &EmbeddedStore, job: &str) -> Vec<i64> {
    let q = LateQuery {
        job: job.into(),
        start: i64::MIN,
        end: i64::MAX,
        metric_id: None,
        limit: usize::MAX,
    };
    store
        .query_late(&q)
        .expect("query late")
        .iter()
        .map(|e| e.ts)
        .collect()
}

fn raw_ts(store: &EmbeddedStore, job: &str, metric: &str) -> Vec<i64> {
    let q = RawQuery {
        job: job.into(),
        metric_id: metric.into(),
        start: i64::MIN,
        end: i64::MAX,
        limit: usize::MAX,
        after: None,
    };
    store
        .query_raw(&q)
        .expect("query raw")
        .iter()
        .map(|r| r.event.ts)
        .collect()
}

/// Ids of the alerts of `job`, through the time index, the metric index (for `metrics`) and by id.
fn alert_ids(store: &EmbeddedStore, job: &str, metrics: &[&str]) -> BTreeSet<String> {
    let q = AlertQuery {
        job: job.into(),
        start: i64::MIN,
        end: i64::MAX,
        metric_id: None,
        state: None,
        severity: None,
        tags: Vec::new(),
        limit: usize::MAX,
        after: None,
    };
    let by_time: BTreeSet<String> = store
        .query_alerts(&q)
        .expect("query alerts")
        .into_iter()
        .map(|a| a.id)
        .collect();
    let mut by_metric = BTreeSet::new();
    for m in metrics {
        let q = AlertQuery {
            metric_id: Some(m.to_string()),
            ..q.clone()
        };
        by_metric.extend(
            store
                .query_alerts(&q)
                .expect("by metric")
                .into_iter()
                .map(|a| a.id),
        );
    }
    assert_eq!(by_metric, by_time, "the alert indexes disagree");
    for id in &by_time {
        assert!(store.get_alert(job, id).expect("get").is_some(), "{id}");
    }
    by_time
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_cutoff_is_now_minus_the_ttl_and_saturates() {
    assert_eq!(cutoff(NOW, HOUR), CUT);
    assert_eq!(cutoff(NOW, Duration::ZERO), NOW);
    assert_eq!(cutoff(NOW, Duration::from_millis(1)), NOW - 1);
    // A TTL beyond i64 milliseconds counts as i64::MAX ms; the subtraction saturates.
    assert_eq!(cutoff(NOW, Duration::MAX), NOW - i64::MAX);
    assert_eq!(cutoff(-5, Duration::MAX), i64::MIN);
    assert_eq!(cutoff(i64::MIN + 5, HOUR), i64::MIN);
    assert!(RetentionPolicy::default().keeps_everything());
    assert!(!every_table(HOUR).keeps_everything());
}

/// Rows at CUT − 1, CUT and CUT + 1 in every table: only the first goes; the one exactly at the
/// cutoff stays (it is as old as the TTL, not older) until the clock moves on by 1 ms.
#[test]
fn rows_strictly_older_than_the_cutoff_go_and_a_row_at_it_stays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let mut batch = Vec::new();
    for (i, t) in [CUT - 1, CUT, CUT + 1].into_iter().enumerate() {
        let i = i as u64;
        batch.push(Output::Result(result("m", "w", t - 10_000, t)));
        batch.push(Output::Late(late("m", t, i)));
        batch.push(Output::Raw(raw("m", t, i)));
        // Opened and last anomalous long before, resolved at t.
        batch.push(Output::Alert(alert(
            &format!("a{i}"),
            "m",
            t - 50_000,
            Some(t),
        )));
    }
    store.apply("job", 0, &batch).expect("apply");
    assert_eq!(counts(&store), counts_of(3, 3, 3, 3));

    let report = store.expire(&every_table(HOUR), NOW).expect("expire");
    assert_eq!(
        report,
        ExpiryReport {
            results: 1,
            late_events: 1,
            alerts: 1,
            raw_events: 1,
            batches: 4,
        }
    );
    assert_eq!(report.deleted(), 4);
    assert_eq!(counts(&store), counts_of(2, 2, 2, 2));
    let ends: Vec<i64> = results_of(&store, "job").iter().map(|r| r.3).collect();
    assert_eq!(ends, vec![CUT, CUT + 1]);
    assert_eq!(late_ts(&store, "job"), vec![CUT, CUT + 1]);
    assert_eq!(raw_ts(&store, "job", "m"), vec![CUT, CUT + 1]);
    assert_eq!(alert_ids(&store, "job", &["m"]), ids(&["a1", "a2"]));
    assert_eq!(store.get_alert("job", "a0").expect("get"), None);

    // Nothing more to do at the same time.
    let again = store.expire(&every_table(HOUR), NOW).expect("expire");
    assert_eq!(again, ExpiryReport::default());
    assert_eq!(counts(&store), counts_of(2, 2, 2, 2));

    // One millisecond later, the rows at the old cutoff are older than the TTL.
    let later = store.expire(&every_table(HOUR), NOW + 1).expect("expire");
    assert_eq!(later.deleted(), 4);
    assert_eq!(counts(&store), counts_of(1, 1, 1, 1));
    assert_eq!(raw_ts(&store, "job", "m"), vec![CUT + 1]);
    assert_eq!(alert_ids(&store, "job", &["m"]), ids(&["a2"]));
}

#[test]
fn a_result_goes_by_its_window_end_not_its_start() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let rows = [
        // A session that started long ago but ends after the cutoff: kept.
        result("m", "session", CUT - 3_600_000, CUT + 5),
        // Ends at the cutoff: kept.
        result("m", "tumble", CUT - 10_000, CUT),
        // Ends just before: goes.
        result("m", "tumble", CUT - 20_000, CUT - 10_000),
        result("n", "tumble", CUT - 20_000, CUT - 10_000),
        // Starts after the cutoff: kept.
        result("n", "tumble", CUT + 10, CUT + 10_010),
    ];
    let batch: Vec<Output> = rows.iter().cloned().map(Output::Result).collect();
    store.apply("job", 0, &batch).expect("apply");
    assert_eq!(counts(&store).results, 5);
    let policy = RetentionPolicy {
        results: Some(HOUR),
        ..RetentionPolicy::default()
    };
    let report = store.expire(&policy, NOW).expect("expire");
    assert_eq!((report.results, report.deleted()), (2, 2));
    assert_eq!(counts(&store).results, 3);
    let kept = results_of(&store, "job");
    let want: BTreeSet<(String, String, i64, i64)> = [&rows[0], &rows[1], &rows[4]]
        .iter()
        .map(|r| {
            (
                r.metric_id.to_string(),
                r.window.to_string(),
                r.window_start,
                r.window_end,
            )
        })
        .collect();
    assert_eq!(kept, want);
}

#[test]
fn firing_alerts_are_kept_and_resolved_ones_age_from_their_resolution() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let alerts = [
        // Firing since long before the cutoff: an open alert is never expired.
        alert("firing-old", "cpu", CUT - 3_600_000, None),
        // Last anomalous point long ago, but resolved at the cutoff: kept.
        alert("resolved-at-cut", "cpu", CUT - 3_600_000, Some(CUT)),
        // Resolved just before the cutoff: goes.
        alert("resolved-old", "mem", CUT - 60_000, Some(CUT - 1)),
        // Another job, same times: goes too (the policy covers every job).
        alert("resolved-old", "mem", CUT - 60_000, Some(CUT - 1)),
        // Recent.
        alert("resolved-new", "mem", CUT + 1_000, Some(CUT + 2_000)),
    ];
    for (i, a) in alerts.iter().enumerate() {
        let job = if i == 3 { "other" } else { "job" };
        store
            .apply(job, 0, &[Output::Alert(a.clone())])
            .expect("apply");
    }
    assert_eq!(counts(&store).alerts, 5);
    let policy = RetentionPolicy {
        alerts: Some(HOUR),
        ..RetentionPolicy::default()
    };
    let report = store.expire(&policy, NOW).expect("expire");
    assert_eq!((report.alerts, report.deleted()), (2, 2));
    assert_eq!(counts(&store).alerts, 3);
    assert_eq!(
        alert_ids(&store, "job", &["cpu", "mem"]),
        ids(&["firing-old", "resolved-at-cut", "resolved-new"])
    );
    assert_eq!(alert_ids(&store, "other", &["mem"]), BTreeSet::new());
    assert_eq!(store.get_alert("job", "resolved-old").expect("get"), None);
    assert_eq!(store.get_alert("other", "resolved-old").expect("get"), None);

    // Years later, the firing alert is still there; once resolved, it ages from its resolution.
    let years = NOW + 10 * 365 * 86_400_000;
    store.expire(&policy, years).expect("expire");
    assert_eq!(
        alert_ids(&store, "job", &["cpu", "mem"]),
        ids(&["firing-old"])
    );
    let resolved = Alert {
        sequence: 1,
        ..alert("firing-old", "cpu", CUT - 3_600_000, Some(years - 10))
    };
    store
        .apply("job", 0, &[Output::Alert(resolved)])
        .expect("apply");
    let at = |now| store.expire(&policy, now).expect("expire").alerts;
    assert_eq!(at(years + 3_600_000 - 10), 0, "exactly at the cutoff");
    assert_eq!(at(years + 3_600_000 - 9), 1);
    assert_eq!(counts(&store).alerts, 0);
}

/// A replay after a crash rewrites rows the sweep had deleted; judged by event time they are as
/// old as before, so the next sweep deletes them again.
#[test]
fn a_replayed_row_is_expired_again_by_the_next_sweep() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let old = CUT - 5_000;
    let batch = vec![
        Output::Result(result("m", "w", old - 10_000, old)),
        Output::Late(late("m", old, 1)),
        Output::Raw(raw("m", old, 1)),
        Output::Alert(alert("a", "m", old - 1_000, Some(old))),
    ];
    store.apply("job", 0, &batch).expect("apply");
    assert_eq!(
        store.expire(&every_table(HOUR), NOW).expect("e").deleted(),
        4
    );
    assert_eq!(counts(&store), StoreCounts::default());
    store.apply("job", 0, &batch).expect("replay");
    assert_eq!(counts(&store), counts_of(1, 1, 1, 1));
    // Even a sweep a moment later.
    assert_eq!(
        store.expire(&every_table(HOUR), NOW).expect("e").deleted(),
        4
    );
    assert_eq!(counts(&store), StoreCounts::default());
}

#[test]
fn tables_without_a_ttl_and_the_metric_catalog_are_left_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let old = CUT - 1;
    store
        .apply(
            "job",
            0,
            &[
                Output::Metric {
                    metric_id: "m".into(),
                    tags: BTreeMap::from([("host".to_string(), "a".to_string())]),
                },
                Output::Result(result("m", "w", old - 10_000, old)),
                Output::Late(late("m", old, 1)),
                Output::Raw(raw("m", old, 1)),
                Output::Alert(alert("a", "m", old - 1_000, Some(old))),
            ],
        )
        .expect("apply");
    let raw_only = RetentionPolicy {
        raw_events: Some(HOUR),
        ..RetentionPolicy::default()
    };
    let report = store.expire(&raw_only, NOW).expect("expire");
    assert_eq!((report.raw_events, report.deleted()), (1, 1));
    assert_eq!(counts(&store), counts_of(1, 1, 1, 0));
    // A policy without any TTL deletes nothing, however old the rows.
    let report = store
        .expire(&RetentionPolicy::default(), i64::MAX)
        .expect("expire");
    assert_eq!(report, ExpiryReport::default());
    assert_eq!(counts(&store), counts_of(1, 1, 1, 0));

    // Everything expires; the catalog still knows the metric and its tags, so a tag filter finds
    // the next result of it.
    store.expire(&every_table(HOUR), NOW).expect("expire");
    assert_eq!(counts(&store), StoreCounts::default());
    store
        .apply(
            "job",
            0,
            &[Output::Result(result("m", "w", NOW - 10_000, NOW))],
        )
        .expect("apply");
    let tagged = ResultQuery {
        tags: vec![("host".into(), "a".into())],
        ..results_query("job", None)
    };
    assert_eq!(store.query_results(&tagged).expect("q").len(), 1);
}

/// Several jobs and metrics, expired in batches of at most 7 deletions and 11 reads: every batch
/// resumes where the one before stopped, the rows deleted are exactly the old ones, and the report
/// is the same as one sweep in default batches.
#[test]
fn small_batches_resume_where_they_stopped() {
    let fill = |store: &EmbeddedStore| {
        for job in ["a", "b", "c"] {
            let mut batch = Vec::new();
            for (m, metric) in ["m1", "m2", "m3", "m4"].into_iter().enumerate() {
                for i in 0..10i64 {
                    // Five before the cutoff, five from it on.
                    let ts = CUT - 5 + i;
                    let offset = (m * 10) as u64 + i as u64;
                    batch.push(Output::Raw(raw(metric, ts, offset)));
                    batch.push(Output::Result(result(metric, "w", ts - 100, ts)));
                    batch.push(Output::Late(late(metric, ts, offset)));
                }
            }
            store.apply(job, 0, &batch).expect("apply");
        }
    };
    let small = tempfile::tempdir().expect("tempdir");
    let small = open(small.path());
    fill(&small);
    assert_eq!(counts(&small), counts_of(120, 120, 0, 120));
    let limits = Limits {
        delete: 7,
        scan: 11,
    };
    let report = small
        .expire_with(&every_table(HOUR), NOW, limits)
        .expect("expire");
    assert_eq!(
        (report.results, report.late_events, report.raw_events),
        (60, 60, 60)
    );
    // 60 rows of each table, at most 7 per transaction.
    assert!(report.batches >= 3 * 60u64.div_ceil(7), "{report:?}");
    assert_eq!(counts(&small), counts_of(60, 60, 0, 60));
    for job in ["a", "b", "c"] {
        for metric in ["m1", "m2", "m3", "m4"] {
            assert_eq!(
                raw_ts(&small, job, metric),
                (CUT..CUT + 5).collect::<Vec<_>>()
            );
        }
        assert!(results_of(&small, job).iter().all(|r| r.3 >= CUT));
        assert_eq!(results_of(&small, job).len(), 20);
        let mut want: Vec<i64> = (CUT..CUT + 5).flat_map(|t| [t; 4]).collect();
        want.sort();
        assert_eq!(late_ts(&small, job), want);
    }

    let big = tempfile::tempdir().expect("tempdir");
    let big = open(big.path());
    fill(&big);
    let one = big.expire(&every_table(HOUR), NOW).expect("expire");
    assert_eq!(
        one.batches, 3,
        "one transaction per table with rows to delete"
    );
    assert_eq!(
        ExpiryReport { batches: 0, ..one },
        ExpiryReport {
            batches: 0,
            ..report
        }
    );
    assert_eq!(counts(&big), counts(&small));
}

#[test]
fn applies_during_a_sweep_all_land() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = open(tmp.path());
    let old: Vec<Output> = (0..2_000u64)
        .map(|i| Output::Raw(raw("m", CUT - 1 - i as i64, i)))
        .collect();
    store.apply("job", 0, &old).expect("apply");
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for i in 0..50u64 {
                let e = raw("m", NOW + i as i64, 10_000 + i);
                store.apply("job", 1, &[Output::Raw(e)]).expect("apply");
            }
        });
        let limits = Limits {
            delete: 10,
            scan: 10,
        };
        let report = store
            .expire_with(&every_table(HOUR), NOW, limits)
            .expect("expire");
        assert_eq!(report.raw_events, 2_000);
        writer.join().expect("writer");
    });
    assert_eq!(counts(&store).raw, 50);
}

const CRASH_CHILD_ENV: &str = "STREAMPULSE_STORE_TEST_RETENTION_CRASH_DIR";

/// The child half of [`a_sweep_is_durable_when_it_returns`]: write, flush, sweep, then die
/// without closing the database.
fn crash_child(dir: &Path) -> ! {
    let store = open(dir);
    let batch: Vec<Output> = (0..100u64)
        .map(|i| Output::Raw(raw("m", CUT - 50 + i as i64, i)))
        .collect();
    store.apply("job", 0, &batch).expect("apply");
    store.flush().expect("flush");
    let report = store.expire(&every_table(HOUR), NOW).expect("expire");
    assert_eq!(report.raw_events, 50);
    std::process::abort();
}

#[test]
fn a_sweep_is_durable_when_it_returns() {
    if let Some(dir) = std::env::var_os(CRASH_CHILD_ENV) {
        crash_child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    crate::crash_test::crash_in_child(
        "retention::tests::a_sweep_is_durable_when_it_returns",
        CRASH_CHILD_ENV,
        tmp.path(),
    );
    let store = open(tmp.path());
    assert_eq!(counts(&store).raw, 50);
    assert_eq!(
        raw_ts(&store, "job", "m"),
        (CUT..CUT + 50).collect::<Vec<_>>()
    );
}

/// One stored row of the model: which table, its job, and its key and event time there.
#[derive(Debug, Clone)]
enum Row {
    Raw(String, RawEvent),
    Result(String, WindowResult),
    Late(String, LateEvent),
}

fn row() -> impl Strategy<Value = Row> {
    let job = prop_oneof![Just("a"), Just("b"), Just("")].prop_map(String::from);
    let metric = prop_oneof![Just("m"), Just("mm"), Just("n")];
    let time = CUT - 4..CUT + 4;
    prop_oneof![
        (job.clone(), metric.clone(), time.clone(), 0u64..6)
            .prop_map(|(j, m, t, o)| Row::Raw(j, raw(m, t, o))),
        (job.clone(), metric.clone(), time.clone(), 1i64..5)
            .prop_map(|(j, m, end, len)| Row::Result(j, result(m, "w", end - len, end))),
        (job, metric, time, 0u64..6).prop_map(|(j, m, t, o)| Row::Late(j, late(m, t, o))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the rows and the batch sizes, a sweep leaves exactly the rows a model keeps: the
    /// last write of each key, if its event time is at or after the cutoff.
    #[test]
    fn a_sweep_keeps_exactly_what_a_model_keeps(
        rows in proptest::collection::vec(row(), 0..60),
        delete in 1usize..6,
        scan in 1usize..9,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = open(tmp.path());
        let mut raw_model: BTreeMap<(String, String, i64, u64), ()> = BTreeMap::new();
        let mut result_model: BTreeMap<(String, String, i64), i64> = BTreeMap::new();
        let mut late_model: BTreeMap<(String, u64), (String, i64)> = BTreeMap::new();
        for r in &rows {
            let (job, output) = match r {
                Row::Raw(j, e) => {
                    raw_model.insert((j.clone(), e.metric_id.clone(), e.ts, e.offset), ());
                    (j, Output::Raw(e.clone()))
                }
                Row::Result(j, w) => {
                    result_model.insert((j.clone(), w.metric_id.to_string(), w.window_start), w.window_end);
                    (j, Output::Result(w.clone()))
                }
                Row::Late(j, e) => {
                    late_model.insert((j.clone(), e.offset), (e.metric_id.clone(), e.ts));
                    (j, Output::Late(e.clone()))
                }
            };
            store.apply(job, 0, &[output]).expect("apply");
        }
        let old_raw = raw_model.keys().filter(|k| k.2 < CUT).count() as u64;
        let old_results = result_model.values().filter(|&&end| end < CUT).count() as u64;
        let old_late = late_model.values().filter(|v| v.1 < CUT).count() as u64;
        let report = store
            .expire_with(&every_table(HOUR), NOW, Limits { delete, scan })
            .expect("expire");
        prop_assert_eq!(
            (report.raw_events, report.results, report.late_events, report.alerts),
            (old_raw, old_results, old_late, 0)
        );
        raw_model.retain(|k, _| k.2 >= CUT);
        result_model.retain(|_, end| *end >= CUT);
        late_model.retain(|_, v| v.1 >= CUT);
        prop_assert_eq!(
            counts(&store),
            counts_of(result_model.len() as u64, late_model.len() as u64, 0, raw_model.len() as u64)
        );
        for job in ["a", "b", ""] {
            for metric in ["m", "mm", "n"] {
                let want: Vec<i64> = raw_model
                    .keys()
                    .filter(|k| k.0 == job && k.1 == metric)
                    .map(|k| k.2)
                    .collect();
                let mut got = raw_ts(&store, job, metric);
                got.sort();
                prop_assert_eq!(got, want);
            }
            let want: BTreeSet<(String, String, i64, i64)> = result_model
                .iter()
                .filter(|(k, _)| k.0 == job)
                .map(|(k, end)| (k.1.clone(), "w".to_string(), k.2, *end))
                .collect();
            prop_assert_eq!(results_of(&store, job), want);
            let mut want: Vec<i64> = late_model
                .iter()
                .filter(|(k, _)| k.0 == job)
                .map(|(_, v)| v.1)
                .collect();
            want.sort();
            prop_assert_eq!(late_ts(&store, job), want);
        }
    }
}
