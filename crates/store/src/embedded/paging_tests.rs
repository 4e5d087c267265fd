//! Paged queries: walking a range page by page, each page resuming after the last row of the one
//! before, returns exactly the unpaged answer, in order, on every access path.

use proptest::prelude::*;
use streampulse_core::output::Output;

use super::tests::{alert, raw, raw_query, result};
use super::EmbeddedStore;
use crate::{
    AlertKey, AlertQuery, MetricMatch, RawKey, RawQuery, ResultKey, ResultQuery, ResultStore,
};

fn walk_results(store: &EmbeddedStore, q: &ResultQuery, page: usize) -> Vec<ResultKey> {
    let mut q = ResultQuery {
        limit: page,
        ..q.clone()
    };
    let mut out = Vec::new();
    loop {
        let rows = store.query_results(&q).expect("query");
        out.extend(rows.iter().map(ResultKey::of));
        if rows.len() < page {
            return out;
        }
        q.after = rows.last().map(ResultKey::of);
    }
}

fn walk_alerts(store: &EmbeddedStore, q: &AlertQuery, page: usize) -> Vec<AlertKey> {
    let mut q = AlertQuery {
        limit: page,
        ..q.clone()
    };
    let mut out = Vec::new();
    loop {
        let rows = store.query_alerts(&q).expect("query");
        out.extend(rows.iter().map(AlertKey::of));
        if rows.len() < page {
            return out;
        }
        q.after = rows.last().map(AlertKey::of);
    }
}

fn walk_raw(store: &EmbeddedStore, q: &RawQuery, page: usize) -> Vec<RawKey> {
    let mut q = RawQuery {
        limit: page,
        ..q.clone()
    };
    let mut out = Vec::new();
    loop {
        let rows = store.query_raw(&q).expect("query");
        out.extend(rows.iter().map(RawKey::of));
        if rows.len() < page {
            return out;
        }
        q.after = rows.last().map(RawKey::of);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn raw_pages_neither_skip_nor_repeat(
        // (metric, partition, ts); the offset is the position, so every event is distinct and
        // equal times are common.
        events in proptest::collection::vec((0u8..3, 0u32..3, 0i64..30), 0..80),
        page in 1usize..9,
        metric in 0u8..3,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        for (offset, (m, p, ts)) in events.iter().enumerate() {
            let e = Output::Raw(raw(&format!("m{m}"), ts * 10, offset as u64));
            store.apply("job", *p, &[e]).expect("apply");
        }
        let mut want: Vec<RawKey> = events
            .iter()
            .enumerate()
            .filter(|(_, (m, _, ts))| *m == metric && (50..250).contains(&(ts * 10)))
            .map(|(offset, (_, p, ts))| RawKey { ts: ts * 10, partition: *p, offset: offset as u64 })
            .collect();
        want.sort_by_key(|k| (k.ts, k.partition, k.offset));
        let q = raw_query(&format!("m{metric}"), 50, 250, usize::MAX);
        let all: Vec<RawKey> = store.query_raw(&q).expect("query").iter().map(RawKey::of).collect();
        prop_assert_eq!(&all, &want);
        prop_assert_eq!(walk_raw(&store, &q, page), want);
    }

    #[test]
    fn pages_neither_skip_nor_repeat(
        rows in proptest::collection::vec((0u8..4, 0u8..3, 0i64..30), 0..80),
        alerts in proptest::collection::vec((0u8..3, 0i64..30, 0i64..10), 0..40),
        page in 1usize..9,
        metric in proptest::option::of(0u8..4),
        window in proptest::option::of(0u8..3),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        let mut outputs: Vec<Output> = rows
            .iter()
            .map(|(m, w, s)| Output::Result(result(&format!("m{m}"), &format!("w{w}"), s * 10, 0)))
            .collect();
        outputs.extend(alerts.iter().enumerate().map(|(i, (m, first, len))| {
            Output::Alert(alert(&format!("a{i}"), &format!("m{m}"), first * 10, first * 10 + len * 10, 0))
        }));
        store.apply("job", 0, &outputs).expect("apply");

        let q = ResultQuery {
            job: "job".into(),
            start: 50,
            end: 250,
            metric_id: metric.map(|m| format!("m{m}")),
            metric_match: None,
            window: window.map(|w| format!("w{w}")),
            tags: Vec::new(),
            limit: usize::MAX,
            after: None,
            scan_limit: usize::MAX,
        };
        let all: Vec<ResultKey> = store.query_results(&q).expect("query").iter().map(ResultKey::of).collect();
        prop_assert_eq!(walk_results(&store, &q, page), all);

        // Globs and prefixes: the metric scan under the literal prefix, or the time scan when
        // there is none, hold the same rows as filtering everything; each walks like the rest.
        let everything = ResultQuery { metric_id: None, ..q.clone() };
        let mut all: Vec<ResultKey> = store.query_results(&everything).expect("query").iter().map(ResultKey::of).collect();
        all.sort_by(|a, b| (&a.metric_id, &a.window, a.window_start).cmp(&(&b.metric_id, &b.window, b.window_start)));
        for (filter, by_metric) in [
            (MetricMatch::Glob("m*".into()), true),
            (MetricMatch::Glob("m?".into()), true),
            (MetricMatch::Glob("*1".into()), false),
            (MetricMatch::Glob("?2".into()), false),
            (MetricMatch::Prefix("m".into()), true),
            (MetricMatch::Prefix("m3".into()), true),
            (MetricMatch::Prefix("x".into()), true),
        ] {
            let fq = ResultQuery { metric_match: Some(filter.clone()), ..everything.clone() };
            let mut want: Vec<ResultKey> = all.iter().filter(|k| filter.matches(&k.metric_id)).cloned().collect();
            let mut got = store.query_results(&fq).expect("query").iter().map(ResultKey::of).collect::<Vec<_>>();
            if !by_metric {
                let sort = |v: &mut Vec<ResultKey>| v.sort_by(|a, b| (a.window_start, &a.metric_id, &a.window).cmp(&(b.window_start, &b.metric_id, &b.window)));
                sort(&mut want);
                sort(&mut got);
            }
            prop_assert_eq!(&got, &want, "{:?}", filter);
            let mut walked = walk_results(&store, &fq, page);
            if !by_metric {
                walked.sort_by(|a, b| (a.window_start, &a.metric_id, &a.window).cmp(&(b.window_start, &b.metric_id, &b.window)));
            }
            prop_assert_eq!(walked, want, "{:?}", filter);
        }

        let aq = AlertQuery {
            job: "job".into(),
            start: 50,
            end: 250,
            metric_id: metric.map(|m| format!("m{m}")),
            state: None,
            severity: None,
            tags: Vec::new(),
            limit: usize::MAX,
            after: None,
        };
        let all: Vec<AlertKey> = store.query_alerts(&aq).expect("query").iter().map(AlertKey::of).collect();
        prop_assert_eq!(walk_alerts(&store, &aq, page), all);
    }
}
