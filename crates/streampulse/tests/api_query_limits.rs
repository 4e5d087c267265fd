//! What a query may ask, over real HTTP against the binary: `GET /alerts` and `GET /metrics` keep
//! the alerts and window results whose metric carries every `tag=key:value` given (a malformed tag
//! is a 400); a range longer than `server.max_query_range` is a 400 naming the key on
//! every ranged endpoint; an end before the start, an unknown parameter and a repeated one are 400s
//! too. Every refusal is a problem document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_port, Platform};

const T0: i64 = 1_700_000_000_000;
const HOUR: i64 = 3_600_000;

const CONFIG: &str = "\
server:
  max_query_range: 1h
log:
  partitions: 2
job:
  windows:
    - {name: tumble_10s, type: tumbling, size: 10s}
  detectors:
    - {name: z, type: zscore, series: raw, n: 20, min_points: 10, warning: 4, critical: 8, resolve_after: 3}
";

/// For each metric, a steady series (10, 11, 10, ...) of one event a second, then a spike at
/// 30 s: one alert each. Interleaved by time, since a detector on raw values skips events behind
/// its partition's watermark.
fn spiking(metrics: &[(&str, Value)]) -> String {
    let mut body = String::new();
    for i in 0..31 {
        let value = if i == 30 { 100 } else { 10 + i % 2 };
        for (metric, tags) in metrics {
            let e = json!({"metric_id": metric, "ts": T0 + i * 1000, "value": value, "tags": tags});
            body.push_str(&format!("{e}\n"));
        }
    }
    body
}

/// Asserts `path` is a 400 problem document whose detail holds every one of `needles`.
fn refused(p: &Platform, path: &str, needles: &[&str]) {
    let (status, content_type, body) = p.get_typed(path);
    assert_eq!(status, 400, "{path}: {body}");
    assert_eq!(content_type, "application/problem+json", "{path}");
    assert_eq!(body["status"], 400, "{path}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    for needle in needles {
        assert!(
            detail.contains(needle),
            "{path}: {needle:?} not in {detail:?}"
        );
    }
}

/// The metrics of the alerts `GET /alerts?start&end&<filter>` returns.
fn alerted(p: &Platform, filter: &str) -> BTreeSet<String> {
    let path = format!("/alerts?start={T0}&end={}&{filter}", T0 + HOUR);
    let (status, body) = p.get(&path);
    assert_eq!(status, 200, "{path}: {body}");
    body["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| a["metric_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn rows(p: &Platform, path: &str) -> Vec<Value> {
    let (status, body) = p.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    body["results"].as_array().cloned().unwrap_or_default()
}

/// The metrics of the window results `GET /metrics?start&end&<filter>` returns.
fn measured(p: &Platform, filter: &str) -> BTreeSet<String> {
    rows(
        p,
        &format!("/metrics?start={T0}&end={}&{filter}", T0 + HOUR),
    )
    .iter()
    .map(|r| r["metric_id"].as_str().unwrap_or_default().to_string())
    .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn alerts_and_results_are_filtered_by_every_given_tag() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let body = spiking(&[
        ("cpu.h1", json!({"host": "h1", "dc": "eu"})),
        ("cpu.h2", json!({"host": "h2", "dc": "eu"})),
        (
            "mem.h1",
            json!({"host": "h1", "dc": "us", "url": "http://x:1"}),
        ),
        ("disk.h9", json!({})),
    ]);
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while alerted(&p, "").len() < 4 {
        assert!(Instant::now() < deadline, "4 alerts expected\n{}", p.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(
        alerted(&p, ""),
        set(&["cpu.h1", "cpu.h2", "mem.h1", "disk.h9"])
    );
    assert_eq!(alerted(&p, "tag=host:h1"), set(&["cpu.h1", "mem.h1"]));
    assert_eq!(alerted(&p, "tag=dc:eu"), set(&["cpu.h1", "cpu.h2"]));
    // Several tags: all must match.
    assert_eq!(alerted(&p, "tag=host:h1&tag=dc:eu"), set(&["cpu.h1"]));
    assert_eq!(alerted(&p, "tag=dc:eu&tag=dc:us"), set(&[]));
    // No such value, no such key; a value holding ':' (split at the first one, percent-encoded).
    assert_eq!(alerted(&p, "tag=host:h3"), set(&[]));
    assert_eq!(alerted(&p, "tag=rack:r1"), set(&[]));
    assert_eq!(alerted(&p, "tag=url:http%3A%2F%2Fx%3A1"), set(&["mem.h1"]));
    // Together with the other filters.
    assert_eq!(
        alerted(&p, "tag=host:h1&metric_id=mem.h1&state=firing"),
        set(&["mem.h1"])
    );
    assert_eq!(alerted(&p, "tag=dc:eu&metric_id=mem.h1"), set(&[]));

    // Malformed tags say what to send.
    for bad in ["tag=host", "tag=", "tag=:h1", "tag=dc:eu&tag=h1"] {
        let path = format!("/alerts?start={T0}&end={}&{bad}", T0 + HOUR);
        refused(
            &p,
            &path,
            &["parameter 'tag' must be key:value", "tag=host:h1"],
        );
    }
    // Window results are filtered by the tags of their metric's first event (the metric catalog).
    let deadline = Instant::now() + Duration::from_secs(30);
    while measured(&p, "").len() < 4 {
        assert!(
            Instant::now() < deadline,
            "results of 4 metrics expected\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(measured(&p, "tag=host:h1"), set(&["cpu.h1", "mem.h1"]));
    assert_eq!(measured(&p, "tag=host:h1&tag=dc:eu"), set(&["cpu.h1"]));
    assert_eq!(
        measured(&p, "tag=dc:eu&metric_id=cpu.*"),
        set(&["cpu.h1", "cpu.h2"])
    );
    assert_eq!(measured(&p, "tag=dc:eu&metric_id=mem.h1"), set(&[]));
    assert_eq!(measured(&p, "tag=rack:r1"), set(&[]));
    // A walk one row per page over a tag filter neither skips nor repeats a row.
    let all = rows(
        &p,
        &format!("/metrics?start={T0}&end={}&tag=dc:eu", T0 + HOUR),
    );
    assert!(all.len() >= 4, "{all:?}");
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!(
            "/metrics?start={T0}&end={}&tag=dc:eu&limit=1{cursor}",
            T0 + HOUR
        );
        let (status, body) = p.get(&path);
        assert_eq!(status, 200, "{body}");
        walked.extend(body["results"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, all);
    refused(
        &p,
        &format!("/metrics?start={T0}&end={}&tag=host", T0 + HOUR),
        &["parameter 'tag' must be key:value"],
    );

    // The OpenAPI document describes the repeatable parameter, so clients (and the schemathesis
    // test) send it.
    let (status, doc) = p.get("/openapi.json");
    assert_eq!(status, 200);
    let params = doc["paths"]["/alerts"]["get"]["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let tag = params
        .iter()
        .find(|p| p["name"] == "tag")
        .unwrap_or_else(|| panic!("no tag parameter: {params:?}"));
    assert_eq!(tag["in"], "query");
    assert_eq!(tag["explode"], true, "{tag}");
    assert_eq!(tag["schema"]["type"], "array", "{tag}");
    assert_eq!(tag["schema"]["items"]["type"], "string", "{tag}");
}

#[test]
fn ranges_are_ordered_known_and_at_most_the_configured_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let endpoints = ["/metrics", "/metrics/cpu", "/alerts", "/events/late"];

    for path in endpoints {
        // Exactly the maximum is allowed, in either time format.
        for range in [
            format!("start={T0}&end={}", T0 + HOUR),
            "start=2023-11-14T22:00:00Z&end=2023-11-14T23:00:00Z".to_string(),
        ] {
            let (status, body) = p.get(&format!("{path}?{range}"));
            assert_eq!(status, 200, "{path}?{range}: {body}");
        }
        // One millisecond more is refused, naming the span, the limit and the key that sets it.
        refused(
            &p,
            &format!("{path}?start={T0}&end={}", T0 + HOUR + 1),
            &["spans 1h 1ms", "allows (1h)", "server.max_query_range"],
        );
        refused(
            &p,
            &format!("{path}?start=2023-01-01T00:00:00Z&end=2024-01-01T00:00:00Z"),
            &["spans 365d", "server.max_query_range"],
        );
        // Already refused before this limit existed: an end before the start, an unknown
        // parameter (a typo must not widen the query), and now a repeated one.
        refused(
            &p,
            &format!("{path}?start={}&end={T0}", T0 + 1),
            &["is before 'start'"],
        );
        refused(
            &p,
            &format!("{path}?start={T0}&end={}&metirc_id=cpu", T0 + 1),
            &["unknown query parameter 'metirc_id'"],
        );
        refused(
            &p,
            &format!("{path}?start={T0}&end={}&limit=5&limit=6", T0 + 1),
            &["parameter 'limit' is given more than once"],
        );
    }
}

/// `server.max_query_scan` bounds what one `GET /metrics` reads: a glob that matches nothing
/// answers an empty page that is cut (`truncated`, `next_cursor`) instead of reading every row of
/// the range, and a walk by cursor returns exactly the rows an unbounded filter would.
#[test]
fn a_filter_matching_nothing_costs_one_bounded_step_per_page() {
    let dir = tempfile::tempdir().unwrap();
    let config = CONFIG.replace("server:\n", "server:\n  max_query_scan: 1000\n");
    let p = Platform::start(dir.path(), &config, free_port());
    // 1,200 metrics, one event a second for 40 s: three closed 10 s windows each, 3,600+ rows.
    let mut body = String::new();
    for s in 0..40 {
        for m in 0..1200 {
            let e = json!({"metric_id": format!("m{m:04}"), "ts": T0 + s * 1000, "value": m});
            body.push_str(&format!("{e}\n"));
        }
    }
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
    let range = format!("start={T0}&end={}", T0 + HOUR);
    let walk = |filter: &str| -> (Vec<Value>, Vec<usize>) {
        let (mut out, mut pages, mut cursor) = (Vec::new(), Vec::new(), String::new());
        loop {
            let path = format!("/metrics?{range}&{filter}{cursor}");
            let (status, body) = p.get(&path);
            assert_eq!(status, 200, "{path}: {body}");
            let got = body["results"].as_array().cloned().unwrap_or_default();
            assert_eq!(body["count"], got.len(), "{body}");
            pages.push(got.len());
            out.extend(got);
            assert!(pages.len() < 100, "the walk of {filter} does not end");
            match body["next_cursor"].as_str() {
                Some(c) => {
                    assert_eq!(body["truncated"], true, "{body}");
                    cursor = format!("&cursor={c}");
                }
                None => return (out, pages),
            }
        }
    };
    // Every partition's windows, not only those of the last metric: the partitions go at their
    // own pace.
    let deadline = Instant::now() + Duration::from_secs(60);
    while walk("limit=10000").0.len() < 3_600 {
        assert!(
            Instant::now() < deadline,
            "3,600 windows expected\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing matches: every page is empty and cut, and there are several of them, not one
    // (a scan of rows by time; a seek per metric under the prefix `m`).
    for (filter, steps) in [("metric_id=*zz", 4), ("metric_id=m*zz", 2)] {
        let (found, pages) = walk(filter);
        assert!(found.is_empty(), "{filter}: {found:?}");
        assert!(
            pages.len() >= steps,
            "{filter}: {pages:?} (the budget did not cut)"
        );
    }
    // Something matches: the walk finds exactly what filtering the whole answer finds.
    let (everything, _) = walk("limit=10000");
    assert!(everything.len() >= 3_600, "{}", everything.len());
    for (filter, keep) in [
        (
            "metric_id=*7",
            &(|m: &str| m.ends_with('7')) as &dyn Fn(&str) -> bool,
        ),
        ("metric_id=m1*", &|m: &str| m.starts_with("m1")),
        ("metric_id=m%3F%3F%3F3", &|m: &str| {
            m.len() == 5 && m.ends_with('3')
        }),
    ] {
        let (found, pages) = walk(&format!("{filter}&limit=10000"));
        let mut want: Vec<String> = everything
            .iter()
            .filter_map(|r| r["metric_id"].as_str())
            .filter(|m| keep(m))
            .map(String::from)
            .collect();
        let mut got: Vec<String> = found
            .iter()
            .filter_map(|r| r["metric_id"].as_str())
            .map(String::from)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{filter} ({pages:?})");
    }
}
