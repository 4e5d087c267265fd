//! One conformance suite for every [`ResultStore`]: the same test functions run against the
//! embedded store (its unit tests) and the Cassandra store (its tests against a real node), so
//! the two cannot drift. Each function takes an empty store and panics on a wrong answer.
//!
//! What is left out on purpose: the order of a retraction and an upsert of the same key within one
//! batch (the embedded store applies in order; Cassandra orders by output-derived timestamps, and
//! the pipeline never re-creates a retracted key), and retention, which the embedded store sweeps
//! and Cassandra expires by TTL (each backend tests its own).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion
#![allow(clippy::missing_panics_doc)]

use streampulse_core::detect::{Alert, AlertState, Severity};
use streampulse_core::output::{LateEvent, Output, RawEvent, WindowResult};

use crate::{
    AlertQuery, CatalogQuery, LateQuery, MetricMatch, RawKey, RawQuery, RawRow, ResultQuery,
    ResultStore, StoreCounts,
};

pub fn result(metric: &str, window: &str, start: i64, revision: u32) -> WindowResult {
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
        extra: Default::default(),
        revision,
    }
}

pub fn retract(metric: &str, window: &str, start: i64) -> Output {
    Output::Retract {
        metric_id: metric.into(),
        window: window.into(),
        window_start: start,
        window_end: start + 1000,
    }
}

pub fn late(metric: &str, window: &str, ts: i64, offset: u64) -> LateEvent {
    LateEvent {
        window: window.into(),
        metric_id: metric.into(),
        ts,
        value: offset as f64,
        watermark: ts + 60_000,
        offset,
    }
}

pub fn query(
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
        metric_match: None,
        window: window.map(Into::into),
        tags: Vec::new(),
        limit,
        after: None,
        scan_limit: usize::MAX,
    }
}

pub fn all(job: &str) -> ResultQuery {
    query(job, i64::MIN, i64::MAX, None, None, usize::MAX)
}

pub fn raw(metric: &str, ts: i64, offset: u64) -> RawEvent {
    RawEvent {
        metric_id: metric.into(),
        ts,
        value: offset as f64 - 0.5,
        tags: [("host".to_string(), format!("h{offset}"))].into(),
        offset,
    }
}

pub fn raw_query(metric: &str, start: i64, end: i64, limit: usize) -> RawQuery {
    RawQuery {
        job: "job".into(),
        metric_id: metric.into(),
        start,
        end,
        limit,
        after: None,
    }
}

pub fn row(partition: u32, event: RawEvent) -> RawRow {
    RawRow { partition, event }
}

pub fn alert(id: &str, metric: &str, first_ts: i64, last_ts: i64, sequence: u32) -> Alert {
    Alert {
        id: id.into(),
        metric_id: metric.into(),
        detector: "z".into(),
        series: "raw".into(),
        state: AlertState::Firing,
        severity: Severity::Warning,
        observed: 10.0,
        expected: 1.0,
        score: 4.0 + f64::from(sequence),
        peak_score: 4.0 + f64::from(sequence),
        threshold: 4.0,
        first_ts,
        last_ts,
        resolved_ts: None,
        sequence,
        tags: Default::default(),
    }
}

pub fn resolved(mut a: Alert, at: i64) -> Alert {
    a.state = AlertState::Resolved;
    a.resolved_ts = Some(at);
    a
}

pub fn critical(mut a: Alert) -> Alert {
    a.severity = Severity::Critical;
    a.threshold = 8.0;
    a
}

pub fn aq(job: &str, start: i64, end: i64) -> AlertQuery {
    AlertQuery {
        job: job.into(),
        start,
        end,
        metric_id: None,
        state: None,
        severity: None,
        tags: Vec::new(),
        limit: usize::MAX,
        after: None,
    }
}

pub fn ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.id.as_str()).collect()
}

pub fn alerts_of(store: &dyn ResultStore, q: &AlertQuery) -> Vec<Alert> {
    let got = store.query_alerts(q).expect("query alerts");
    // The metric index must agree with the time index.
    if q.metric_id.is_none() {
        let mut metrics: Vec<String> = got.iter().map(|a| a.metric_id.clone()).collect();
        metrics.sort();
        metrics.dedup();
        for m in metrics {
            let one = store
                .query_alerts(&AlertQuery {
                    metric_id: Some(m.clone()),
                    ..q.clone()
                })
                .expect("query alerts by metric");
            let want: Vec<Alert> = got.iter().filter(|a| a.metric_id == m).cloned().collect();
            if q.limit == usize::MAX {
                assert_eq!(one, want, "metric {m}");
            }
        }
    }
    got
}

/// The catalog entry of a metric whose first event carried `tags`.
fn metric(id: &str, tags: &[(&str, &str)]) -> Output {
    Output::Metric {
        metric_id: id.into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub fn results_are_filtered_by_the_tags_in_the_metric_catalog(store: &dyn ResultStore) {
    let mut batch = vec![
        metric("cpu.a", &[("host", "a"), ("dc", "eu")]),
        metric("cpu.b", &[("host", "b"), ("dc", "eu")]),
        metric("mem.a", &[("host", "a"), ("dc", "us")]),
        metric("bare", &[]),
    ];
    for m in ["cpu.a", "cpu.b", "mem.a", "bare"] {
        for start in 0..300 {
            batch.push(Output::Result(result(m, "w", start * 10, 0)));
        }
    }
    store.apply("job", 0, &batch).expect("apply");
    let metrics = |q: &ResultQuery| -> Vec<String> {
        let mut ids: Vec<String> = store
            .query_results(q)
            .expect("query")
            .into_iter()
            .map(|r| r.metric_id.to_string())
            .collect();
        ids.dedup();
        ids.sort();
        ids.dedup();
        ids
    };
    let tagged = |tags: &[(&str, &str)], metric: Option<&str>| ResultQuery {
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..query("job", i64::MIN, i64::MAX, metric, None, usize::MAX)
    };
    assert_eq!(metrics(&tagged(&[("host", "a")], None)), ["cpu.a", "mem.a"]);
    assert_eq!(
        metrics(&tagged(&[("host", "a"), ("dc", "eu")], None)),
        ["cpu.a"]
    );
    assert_eq!(metrics(&tagged(&[("dc", "eu")], Some("cpu.b"))), ["cpu.b"]);
    assert!(metrics(&tagged(&[("dc", "eu")], Some("mem.a"))).is_empty());
    assert!(metrics(&tagged(&[("rack", "1")], None)).is_empty());
    // Another job's catalog is not consulted.
    assert!(store
        .query_results(&ResultQuery {
            job: "other".into(),
            ..tagged(&[("host", "a")], None)
        })
        .expect("query")
        .is_empty());
    // Pages of a tagged query neither skip nor repeat (the filter drops most scanned rows).
    let q = tagged(&[("dc", "us")], None);
    let everything = store.query_results(&q).expect("query");
    assert_eq!(everything.len(), 300);
    let mut walked = Vec::new();
    let mut page = ResultQuery { limit: 7, ..q };
    loop {
        let rows = store.query_results(&page).expect("page");
        walked.extend(rows.iter().cloned());
        match rows.last() {
            Some(last) if rows.len() == 7 => page.after = Some(crate::ResultKey::of(last)),
            _ => break,
        }
    }
    assert_eq!(walked, everything);
}

/// The catalog lists a job's metrics in id order, each once with its first event's tags, by
/// glob, prefix and tags; pages resume after their cursor (or where the scan budget stopped)
/// and a walk neither skips nor repeats.
pub fn the_catalog_lists_metrics_by_id_match_and_tags_in_pages(store: &dyn ResultStore) {
    let mut batch = vec![
        metric("mem.a", &[("host", "a")]),
        metric("cpu.b", &[("host", "b"), ("dc", "eu")]),
        metric("cpu.a", &[("host", "a"), ("dc", "eu")]),
        metric("bare", &[]),
    ];
    for i in 0..40 {
        batch.push(metric(&format!("disk.{i:02}"), &[("host", "c")]));
    }
    store.apply("job", 0, &batch).expect("apply");
    // A second sighting (another partition) keeps one entry.
    store
        .apply("job", 1, &[metric("cpu.a", &[("host", "a"), ("dc", "eu")])])
        .expect("apply");
    store
        .apply("other", 0, &[metric("cpu.z", &[])])
        .expect("apply");
    let q = |m: Option<MetricMatch>, tags: &[(&str, &str)]| CatalogQuery {
        job: "job".into(),
        metric_match: m,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        after: None,
        limit: usize::MAX,
        scan_limit: usize::MAX,
    };
    let ids = |q: &CatalogQuery| -> Vec<String> {
        let page = store.query_catalog(q).expect("catalog");
        assert_eq!(page.resume_after, None);
        page.entries.into_iter().map(|e| e.metric_id).collect()
    };
    let all = ids(&q(None, &[]));
    assert_eq!(all.len(), 44);
    assert_eq!(&all[..3], ["bare", "cpu.a", "cpu.b"]);
    assert_eq!(all.last().map(String::as_str), Some("mem.a"));
    assert_eq!(
        ids(&q(Some(MetricMatch::Glob("cpu.*".into())), &[])),
        ["cpu.a", "cpu.b"]
    );
    assert_eq!(
        ids(&q(Some(MetricMatch::Glob("*.a".into())), &[])),
        ["cpu.a", "mem.a"]
    );
    assert_eq!(
        ids(&q(Some(MetricMatch::Prefix("c".into())), &[])),
        ["cpu.a", "cpu.b"]
    );
    assert_eq!(ids(&q(None, &[("host", "a")])), ["cpu.a", "mem.a"]);
    assert_eq!(ids(&q(None, &[("dc", "eu"), ("host", "b")])), ["cpu.b"]);
    assert!(ids(&q(Some(MetricMatch::Prefix("zz".into())), &[])).is_empty());
    let entry = store
        .query_catalog(&q(Some(MetricMatch::Glob("cpu.a".into())), &[]))
        .expect("catalog")
        .entries;
    assert_eq!(entry.len(), 1);
    assert_eq!(
        entry[0]
            .tags
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>(),
        ["dc:eu", "host:a"]
    );
    // Pages of 7, with a budget of 5 entries examined per call (the tag filter skips most).
    for (filter, tags) in [(None, vec![]), (None, vec![("host", "a")])] {
        let want = ids(&q(filter.clone(), &tags));
        let mut page = CatalogQuery {
            limit: 7,
            scan_limit: 5,
            ..q(filter, &tags)
        };
        let mut walked = Vec::new();
        for _ in 0..100 {
            let got = store.query_catalog(&page).expect("page");
            let full = got.entries.len() == 7;
            let last = got.entries.last().map(|e| e.metric_id.clone());
            walked.extend(got.entries.into_iter().map(|e| e.metric_id));
            match (got.resume_after, last) {
                (Some(resume), _) => page.after = Some(resume),
                (None, Some(last)) if full => page.after = Some(last),
                _ => break,
            }
        }
        assert_eq!(walked, want);
    }
}

pub fn upsert_of_the_same_key_keeps_one_row_with_the_last_value(store: &dyn ResultStore) {
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

pub fn retract_deletes_from_both_access_paths(store: &dyn ResultStore) {
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

pub fn queries_respect_half_open_range_filters_order_and_limit(store: &dyn ResultStore) {
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
            .map(|r| {
                (
                    r.metric_id.to_string(),
                    r.window.to_string(),
                    r.window_start,
                )
            })
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

pub fn two_jobs_do_not_see_each_others_rows(store: &dyn ResultStore) {
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
            late: 3,
            alerts: 0,
            raw: 0
        }
    );
    assert_eq!(store.query_results(&all("jo")).expect("q"), vec![]);
}

pub fn late_events_are_stored_idempotently_and_queried_by_event_time(store: &dyn ResultStore) {
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
            late: 4,
            alerts: 0,
            raw: 0
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

pub fn raw_events_are_upserted_idempotently_and_read_by_metric_and_time(store: &dyn ResultStore) {
    let p0 = [
        Output::Raw(raw("cpu", 300, 7)),
        Output::Raw(raw("mem", 100, 8)),
        Output::Raw(raw("cpu", -50, 9)),
        Output::Raw(raw("cpu", 100, 10)),
    ];
    store.apply("job", 0, &p0).expect("apply");
    // A replay after a crash rewrites the same rows.
    store.apply("job", 0, &p0).expect("replay");
    // The same offset in another partition is another event; another job sees nothing of it.
    store
        .apply("job", 1, &[Output::Raw(raw("cpu", 100, 7))])
        .expect("apply p1");
    store
        .apply("other", 0, &[Output::Raw(raw("cpu", 100, 1))])
        .expect("apply other job");
    // 4 rows of job's partition 0 (the replay rewrote them), 1 of its partition 1, 1 of other.
    assert_eq!(store.counts().expect("counts").raw, 6);

    let everything = store
        .query_raw(&raw_query("cpu", i64::MIN, i64::MAX, 100))
        .expect("q");
    // By (ts, partition, offset), each event once, with its own value and tags.
    assert_eq!(
        everything,
        vec![
            row(0, raw("cpu", -50, 9)),
            row(0, raw("cpu", 100, 10)),
            row(1, raw("cpu", 100, 7)),
            row(0, raw("cpu", 300, 7)),
        ]
    );
    // [start, end): end exclusive, start inclusive; other metrics (even sharing a prefix) apart.
    assert_eq!(
        store
            .query_raw(&raw_query("cpu", 100, 300, 100))
            .expect("q"),
        everything[1..3].to_vec()
    );
    assert_eq!(
        store
            .query_raw(&raw_query("cp", i64::MIN, i64::MAX, 100))
            .expect("q"),
        vec![]
    );
    assert_eq!(
        store
            .query_raw(&raw_query("mem", 0, 1_000, 100))
            .expect("q"),
        vec![row(0, raw("mem", 100, 8))]
    );
    // Limits, empty ranges, and resuming after a row.
    assert_eq!(
        store
            .query_raw(&raw_query("cpu", i64::MIN, i64::MAX, 2))
            .expect("q"),
        everything[..2].to_vec()
    );
    assert_eq!(
        store.query_raw(&raw_query("cpu", 5, 5, 10)).expect("q"),
        vec![]
    );
    assert_eq!(
        store
            .query_raw(&raw_query("cpu", i64::MIN, i64::MAX, 0))
            .expect("q"),
        vec![]
    );
    let after = RawQuery {
        after: Some(RawKey::of(&everything[1])),
        ..raw_query("cpu", i64::MIN, i64::MAX, 100)
    };
    assert_eq!(
        store.query_raw(&after).expect("q"),
        everything[2..].to_vec()
    );
}

pub fn an_alert_keeps_its_highest_sequence_whatever_the_arrival_order(store: &dyn ResultStore) {
    let opened = alert("a1", "cpu", 100, 100, 0);
    let escalated = critical(alert("a1", "cpu", 100, 150, 1));
    let done = resolved(critical(alert("a1", "cpu", 100, 150, 2)), 300);
    store
        .apply("job", 0, &[Output::Alert(opened.clone())])
        .expect("apply");
    assert_eq!(
        store.get_alert("job", "a1").expect("get"),
        Some(opened.clone())
    );
    // Two transitions in one batch: the later one wins.
    store
        .apply(
            "job",
            0,
            &[
                Output::Alert(escalated.clone()),
                Output::Alert(done.clone()),
            ],
        )
        .expect("apply");
    assert_eq!(
        store.get_alert("job", "a1").expect("get"),
        Some(done.clone())
    );
    // A replay of older transitions, alone or in a batch in any order, changes nothing.
    store
        .apply("job", 0, &[Output::Alert(opened.clone())])
        .expect("replay");
    store
        .apply(
            "job",
            1,
            &[
                Output::Alert(escalated.clone()),
                Output::Alert(opened.clone()),
            ],
        )
        .expect("replay");
    assert_eq!(
        store.get_alert("job", "a1").expect("get"),
        Some(done.clone())
    );
    assert_eq!(
        alerts_of(store, &aq("job", i64::MIN, i64::MAX)),
        vec![done.clone()]
    );
    // Newer then older inside one batch: still the newer.
    store
        .apply(
            "job",
            0,
            &[
                Output::Alert(alert("a2", "cpu", 5, 5, 3)),
                Output::Alert(alert("a2", "cpu", 5, 5, 1)),
            ],
        )
        .expect("apply");
    assert_eq!(
        store
            .get_alert("job", "a2")
            .expect("get")
            .map(|a| a.sequence),
        Some(3)
    );
    // An equal sequence overwrites (a replay rewrites the same transition).
    let mut rewrite = done.clone();
    rewrite.observed = 11.0;
    store
        .apply("job", 0, &[Output::Alert(rewrite.clone())])
        .expect("rewrite");
    assert_eq!(
        store.get_alert("job", "a1").expect("get"),
        Some(rewrite.clone())
    );
    assert_eq!(
        alerts_of(store, &aq("job", i64::MIN, i64::MAX)),
        vec![rewrite, alert("a2", "cpu", 5, 5, 3)]
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
    // Ids are per job.
    assert_eq!(store.get_alert("other", "a1").expect("get"), None);
    assert_eq!(store.get_alert("job", "a3").expect("get"), None);
    assert_eq!(
        store
            .query_alerts(&aq("jo", i64::MIN, i64::MAX))
            .expect("q"),
        vec![]
    );
}

pub fn alert_queries_return_overlapping_episodes_newest_first(store: &dyn ResultStore) {
    // Episodes: long [0, 1000], a [100, 200], b [300, 300], c [300, 450] (same first_ts as b).
    store
        .apply(
            "job",
            0,
            &[
                Output::Alert(alert("long", "m", 0, 1_000, 0)),
                Output::Alert(alert("a", "m", 100, 200, 0)),
                Output::Alert(alert("b", "m", 300, 300, 0)),
                Output::Alert(alert("c", "n", 300, 450, 0)),
                Output::Result(result("m", "w", 0, 0)),
            ],
        )
        .expect("apply");
    let got = |start, end| ids(&alerts_of(store, &aq("job", start, end))).join(",");
    assert_eq!(got(i64::MIN, i64::MAX), "c,b,a,long");
    // first_ts < end: an episode starting at `end` is out, one point before it is in.
    assert_eq!(got(-10, 100), "long");
    assert_eq!(got(-10, 101), "a,long");
    // last_ts >= start: an episode ending at `start` is in, one point after it is out.
    assert_eq!(got(200, 201), "a,long");
    assert_eq!(got(201, 300), "long");
    // Wholly inside an episode that started long before.
    assert_eq!(got(600, 700), "long");
    assert_eq!(got(301, 451), "c,long");
    assert_eq!(got(1_000, 1_001), "long");
    assert_eq!(got(1_001, i64::MAX), "");
    // Empty ranges.
    assert_eq!(got(150, 150), "");
    assert_eq!(got(150, 100), "");
    // A later transition that lengthens an episode widens what it overlaps.
    store
        .apply("job", 0, &[Output::Alert(alert("b", "m", 300, 5_000, 1))])
        .expect("apply");
    assert_eq!(got(4_000, 4_001), "b");
    assert_eq!(got(1_001, i64::MAX), "b");
    // Extreme values do not overflow.
    store
        .apply(
            "job",
            0,
            &[Output::Alert(alert("x", "m", i64::MIN, i64::MAX, 0))],
        )
        .expect("apply");
    assert_eq!(got(i64::MAX - 1, i64::MAX), "x");
    assert_eq!(got(i64::MIN, i64::MIN + 1), "x");
}

pub fn alert_queries_keep_alerts_carrying_every_given_tag(store: &dyn ResultStore) {
    let tagged = |id: &str, metric: &str, first_ts: i64, tags: &[(&str, &str)]| {
        let mut a = alert(id, metric, first_ts, first_ts, 0);
        a.tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Output::Alert(a)
    };
    let outputs = [
        tagged("1", "cpu.a", 10, &[("host", "h1"), ("dc", "eu")]),
        tagged("2", "cpu.b", 20, &[("host", "h2"), ("dc", "eu")]),
        tagged("3", "mem.a", 30, &[("host", "h1")]),
        tagged("4", "disk.a", 40, &[]),
        tagged("5", "cpu.a", 50, &[("host", "h1"), ("dc", "eu")]),
    ];
    store.apply("job", 0, &outputs).expect("apply");
    let q = |metric: Option<&str>, tags: &[(&str, &str)], limit| AlertQuery {
        metric_id: metric.map(Into::into),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limit,
        ..aq("job", 0, 1_000)
    };
    let got = |q: AlertQuery| ids(&alerts_of(store, &q)).join(",");
    assert_eq!(got(q(None, &[], usize::MAX)), "5,4,3,2,1");
    assert_eq!(got(q(None, &[("host", "h1")], usize::MAX)), "5,3,1");
    assert_eq!(got(q(None, &[("dc", "eu")], usize::MAX)), "5,2,1");
    // Every tag must match: a conjunction, not a union.
    assert_eq!(
        got(q(None, &[("host", "h1"), ("dc", "eu")], usize::MAX)),
        "5,1"
    );
    // A key with another value, a missing key, and a value that is only a prefix keep nothing.
    assert_eq!(got(q(None, &[("host", "h3")], usize::MAX)), "");
    assert_eq!(got(q(None, &[("rack", "")], usize::MAX)), "");
    assert_eq!(got(q(None, &[("host", "h")], usize::MAX)), "");
    // With a metric (the metric index), and the limit counting rows after the tag filter.
    assert_eq!(got(q(Some("cpu.a"), &[("dc", "eu")], usize::MAX)), "5,1");
    assert_eq!(got(q(Some("mem.a"), &[("dc", "eu")], usize::MAX)), "");
    assert_eq!(got(q(None, &[("host", "h1")], 2)), "5,3");
}

pub fn alert_queries_filter_by_metric_state_severity_and_limit(store: &dyn ResultStore) {
    let outputs = [
        alert("1", "cpu", 10, 20, 0),
        critical(alert("2", "cpu", 30, 40, 1)),
        resolved(alert("3", "cpu", 50, 60, 1), 70),
        resolved(critical(alert("4", "mem", 80, 90, 2)), 95),
        alert("5", "mem", 100, 100, 0),
        alert("6", "cpu\0", 110, 110, 0),
    ]
    .map(Output::Alert);
    store.apply("job", 0, &outputs).expect("apply");
    // Another job with the same metric and ids stays apart.
    store.apply("job\0", 0, &outputs).expect("apply");
    store
        .apply("jo", 0, &[Output::Alert(alert("7", "cpu", 10, 20, 0))])
        .expect("apply");
    let q = |metric: Option<&str>, state, severity, limit| AlertQuery {
        metric_id: metric.map(Into::into),
        state,
        severity,
        limit,
        ..aq("job", 0, 1_000)
    };
    let got = |q: AlertQuery| ids(&alerts_of(store, &q)).join(",");
    assert_eq!(got(q(None, None, None, usize::MAX)), "6,5,4,3,2,1");
    assert_eq!(got(q(Some("cpu"), None, None, usize::MAX)), "3,2,1");
    assert_eq!(got(q(Some("cpu\0"), None, None, usize::MAX)), "6");
    assert_eq!(got(q(Some("cp"), None, None, usize::MAX)), "");
    assert_eq!(
        got(q(None, Some(AlertState::Firing), None, usize::MAX)),
        "6,5,2,1"
    );
    assert_eq!(
        got(q(None, Some(AlertState::Resolved), None, usize::MAX)),
        "4,3"
    );
    assert_eq!(
        got(q(None, None, Some(Severity::Critical), usize::MAX)),
        "4,2"
    );
    assert_eq!(
        got(q(
            Some("mem"),
            Some(AlertState::Resolved),
            Some(Severity::Critical),
            9
        )),
        "4"
    );
    assert_eq!(
        got(q(
            Some("mem"),
            Some(AlertState::Firing),
            Some(Severity::Critical),
            9
        )),
        ""
    );
    // The limit counts rows after filtering, newest first.
    assert_eq!(got(q(None, None, None, 2)), "6,5");
    assert_eq!(got(q(None, Some(AlertState::Firing), None, 3)), "6,5,2");
    assert_eq!(got(q(Some("cpu"), None, None, 1)), "3");
    assert_eq!(got(q(None, None, None, 0)), "");
    assert_eq!(store.counts().expect("counts").alerts, 13);
}

pub fn a_series_longer_than_a_page_reads_whole_and_in_order(store: &dyn ResultStore) {
    // 2,500 one-second windows of one metric: one partition of a bucketed store, more rows than
    // one page of its reads.
    let rows: Vec<WindowResult> = (0..2_500)
        .map(|i| WindowResult {
            window_end: i * 1_000 + 1_000,
            ..result("m", "w", i * 1_000, 0)
        })
        .collect();
    let outputs: Vec<Output> = rows.iter().cloned().map(Output::Result).collect();
    for chunk in outputs.chunks(500) {
        store.apply("job", 0, chunk).expect("apply");
    }
    let by_metric = query("job", 0, 3_000_000, Some("m"), None, 10_000);
    assert_eq!(store.query_results(&by_metric).expect("by metric"), rows);
    let by_time = query("job", 0, 3_000_000, None, None, 10_000);
    assert_eq!(store.query_results(&by_time).expect("by time"), rows);
    let limited = query("job", 0, 3_000_000, Some("m"), None, 1_234);
    assert_eq!(
        store.query_results(&limited).expect("limited"),
        rows[..1_234]
    );
}

/// Walks `q` as the API does: asks for `limit + 1` rows under a scan budget of `scan`, cuts the
/// page at `limit`, and goes on from the last row shown or from where the scan stopped. Returns
/// the rows and the rows of each page.
fn walk_budgeted(
    store: &dyn ResultStore,
    q: &ResultQuery,
    limit: usize,
    scan: usize,
) -> (Vec<WindowResult>, Vec<usize>) {
    let mut q = ResultQuery {
        limit: limit + 1,
        scan_limit: scan,
        ..q.clone()
    };
    let (mut out, mut pages) = (Vec::new(), Vec::new());
    loop {
        assert!(pages.len() < 10_000, "a budgeted walk of {q:?} never ends");
        let page = store.query_page(&q).expect("page");
        let mut rows = page.rows;
        let resume = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(crate::ResultKey::of)
        } else {
            page.resume_after
        };
        pages.push(rows.len());
        out.extend(rows);
        match resume {
            Some(key) => q.after = Some(key),
            None => return (out, pages),
        }
    }
}

/// The scan budget bounds what one call examines, whatever the filter: a filter that matches
/// nothing answers an empty page with a place to go on from, and a walk page by page under any
/// budget returns exactly the unbudgeted answer, on every access path.
pub fn a_scan_budget_cuts_pages_that_resume_where_they_stopped(store: &dyn ResultStore) {
    let mut batch = Vec::new();
    for m in 0..20 {
        let metric = format!("m{m:02}");
        batch.push(Output::Metric {
            metric_id: metric.clone(),
            tags: [("even".to_string(), (m % 2 == 0).to_string())].into(),
        });
        for w in ["a", "b"] {
            for start in 0..10 {
                batch.push(Output::Result(result(&metric, w, start * 10, 0)));
            }
        }
    }
    store.apply("job", 0, &batch).expect("apply");
    let base = query("job", 0, 1_000, None, None, usize::MAX);
    let with = |f: &dyn Fn(&mut ResultQuery)| {
        let mut q = base.clone();
        f(&mut q);
        q
    };
    let queries = [
        with(&|_| {}),
        with(&|q| q.metric_id = Some("m05".into())),
        with(&|q| q.metric_match = Some(crate::MetricMatch::Glob("*7".into()))),
        with(&|q| q.metric_match = Some(crate::MetricMatch::Glob("m1*".into()))),
        with(&|q| q.metric_match = Some(crate::MetricMatch::Prefix("m0".into()))),
        with(&|q| q.metric_match = Some(crate::MetricMatch::Glob("m*zz".into()))),
        with(&|q| q.metric_match = Some(crate::MetricMatch::Glob("*zz".into()))),
        with(&|q| q.window = Some("b".into())),
        with(&|q| q.tags = vec![("even".into(), "true".into())]),
        with(&|q| q.tags = vec![("even".into(), "maybe".into())]),
    ];
    for q in &queries {
        let everything = store.query_results(q).expect("query");
        for (limit, scan) in [(5, 1), (5, 7), (3, 40), (1_000, 13), (1_000, 1_000)] {
            let (walked, pages) = walk_budgeted(store, q, limit, scan);
            assert_eq!(walked, everything, "limit {limit}, scan {scan}: {q:?}");
            assert!(pages.iter().all(|&n| n <= limit), "{pages:?}");
        }
    }
    // Nothing matches: each call stops after its budget with no rows and a place to go on from.
    for q in [&queries[5], &queries[6]] {
        let page = store
            .query_page(&ResultQuery {
                scan_limit: 10,
                ..q.clone()
            })
            .expect("page");
        assert!(page.rows.is_empty(), "{q:?}");
        assert!(
            page.resume_after.is_some(),
            "{q:?}: a budgeted call must stop early"
        );
    }
}
