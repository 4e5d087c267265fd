//! Metric filters over real HTTP: `GET /metrics/{metric_id}`, and on `/metrics` a literal
//! `metric_id`, a glob (`cpu.*`, `?`, or one with no literal prefix like `*.a`) and `prefix`, each
//! returning exactly the matching rows and paging like the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use support::{free_port, Platform};

const T0: i64 = 1_700_000_000_000;
const METRICS: [&str; 6] = ["cpu.a", "cpu.b", "cpu.ab", "mem.a", "disk.a1", "cpu"];

const CONFIG: &str = r#"
log:
  partitions: 2
job:
  idle_timeout: 500ms
  windows:
    - { name: tumble_10s, type: tumbling, size: 10s }
"#;

fn start() -> (tempfile::TempDir, Platform) {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let mut body = String::new();
    for w in 0..3 {
        for m in METRICS {
            let e = json!({"metric_id": m, "ts": T0 + w * 10_000 + 1_000, "value": w});
            body.push_str(&format!("{e}\n"));
        }
    }
    let (status, reply) = p.post(&body, "application/x-ndjson", None).expect("post");
    assert_eq!(status, 200, "{reply}");
    p.wait_drained(Duration::from_secs(30));
    (dir, p)
}

fn rows(p: &Platform, path: &str) -> Vec<(String, i64)> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, body) = p.get(&format!("{path}{sep}start={T0}&end={}", T0 + 60_000));
    assert_eq!(status, 200, "{path}: {body}");
    assert!(body["next_cursor"].is_null(), "{body}");
    body["results"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r: &Value| {
            (
                r["metric_id"].as_str().unwrap_or_default().to_string(),
                r["window_start"].as_i64().unwrap_or_default() - T0,
            )
        })
        .collect()
}

fn metrics(rows: &[(String, i64)]) -> BTreeSet<String> {
    rows.iter().map(|(m, _)| m.clone()).collect()
}

fn by_metric(ids: &[&str]) -> Vec<(String, i64)> {
    let mut ids: Vec<&str> = ids.to_vec();
    ids.sort();
    ids.iter()
        .flat_map(|m| (0..3).map(move |w| (m.to_string(), w * 10_000)))
        .collect()
}

#[test]
fn literal_glob_and_prefix_filters_return_exactly_the_matching_rows() {
    let (_dir, p) = start();
    assert_eq!(rows(&p, "/metrics").len(), 18);

    // A literal id and the path form agree; a literal id is not a prefix.
    assert_eq!(rows(&p, "/metrics?metric_id=cpu"), by_metric(&["cpu"]));
    assert_eq!(rows(&p, "/metrics/cpu"), by_metric(&["cpu"]));
    assert_eq!(rows(&p, "/metrics/cpu.a"), by_metric(&["cpu.a"]));
    assert_eq!(rows(&p, "/metrics/nothing"), vec![]);

    // Globs with a literal prefix come by metric.
    assert_eq!(
        rows(&p, "/metrics?metric_id=cpu.*"),
        by_metric(&["cpu.a", "cpu.ab", "cpu.b"])
    );
    assert_eq!(
        rows(&p, "/metrics?metric_id=cpu.?"),
        by_metric(&["cpu.a", "cpu.b"])
    );
    assert_eq!(
        rows(&p, "/metrics?metric_id=cpu*"),
        by_metric(&["cpu", "cpu.a", "cpu.ab", "cpu.b"])
    );
    // Without one they come by time, filtered.
    let got = rows(&p, "/metrics?metric_id=*.a");
    assert_eq!(got.len(), 6);
    assert_eq!(metrics(&got), ["cpu.a", "mem.a"].map(String::from).into());
    assert!(got.windows(2).all(|w| w[0].1 <= w[1].1), "by time: {got:?}");
    assert_eq!(
        metrics(&rows(&p, "/metrics?metric_id=*a?")),
        ["cpu.ab", "disk.a1"].map(String::from).into()
    );

    // Prefixes.
    assert_eq!(
        rows(&p, "/metrics?prefix=cpu.a"),
        by_metric(&["cpu.a", "cpu.ab"])
    );
    assert_eq!(rows(&p, "/metrics?prefix=zzz"), vec![]);

    // A glob walks page by page like any query.
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = p.get(&format!(
            "/metrics?metric_id=cpu.*&start={T0}&end={}&limit=2{cursor}",
            T0 + 60_000
        ));
        assert_eq!(status, 200, "{body}");
        for r in body["results"].as_array().cloned().unwrap_or_default() {
            walked.push((
                r["metric_id"].as_str().unwrap_or_default().to_string(),
                r["window_start"].as_i64().unwrap_or_default() - T0,
            ));
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, by_metric(&["cpu.a", "cpu.ab", "cpu.b"]));

    // Mistakes are 400 problem documents.
    for bad in [
        "/metrics?metric_id=cpu.*&prefix=cpu",
        "/metrics/cpu.a?metric_id=x",
        "/metrics/cpu.a?window=nope",
        "/metrics/cpu.a?limit=0",
        "/metrics/cpu.a?cursor=00",
    ] {
        let sep = if bad.contains('?') { '&' } else { '?' };
        let (status, body) = p.get(&format!("{bad}{sep}start={T0}&end={}", T0 + 1));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
}

/// `GET /catalog` lists the metrics the job has seen in id order with their first event's tags,
/// by the same filters, page by page.
#[test]
fn the_catalog_lists_every_metric_once_by_filter_and_in_pages() {
    let (_dir, p) = start();
    // A later event with other tags: the catalog keeps the first event's.
    let e = json!({"metric_id": "cpu.a", "ts": T0 + 45_000, "value": 1, "tags": {"host": "h2"}});
    let (status, reply) = p
        .post(&format!("{e}\n"), "application/x-ndjson", None)
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    p.wait_drained(Duration::from_secs(30));
    let ids = |query: &str| -> Vec<String> {
        let (status, body) = p.get(&format!("/catalog{query}"));
        assert_eq!(status, 200, "{query}: {body}");
        assert!(body["next_cursor"].is_null(), "{body}");
        let metrics = body["metrics"].as_array().cloned().unwrap_or_default();
        assert_eq!(body["count"], metrics.len(), "{body}");
        metrics
            .iter()
            .map(|m| m["metric_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let mut all: Vec<&str> = METRICS.to_vec();
    all.sort_unstable();
    assert_eq!(ids(""), all);
    assert_eq!(ids("?metric_id=cpu.*"), ["cpu.a", "cpu.ab", "cpu.b"]);
    assert_eq!(ids("?metric_id=*.a"), ["cpu.a", "mem.a"]);
    assert_eq!(ids("?metric_id=cpu"), ["cpu"]);
    assert_eq!(ids("?prefix=cpu.a"), ["cpu.a", "cpu.ab"]);
    assert!(ids("?prefix=zzz").is_empty());
    assert!(ids("?tag=host:h2").is_empty(), "tags are the first event's");
    let (_, body) = p.get("/catalog?metric_id=cpu.a");
    assert_eq!(body["metrics"][0]["tags"], json!({}), "{body}");

    let mut walked = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let (status, body) = p.get(&format!("/catalog?limit=4{cursor}"));
        assert_eq!(status, 200, "{body}");
        for m in body["metrics"].as_array().cloned().unwrap_or_default() {
            walked.push(m["metric_id"].as_str().unwrap_or_default().to_string());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, all);

    for bad in [
        "/catalog?metric_id=cpu&prefix=c",
        "/catalog?limit=0",
        "/catalog?cursor=00",
        "/catalog?start=1",
        "/catalog?job=nope",
    ] {
        let (status, body) = p.get(bad);
        assert!(status == 400 || status == 404, "{bad}: {status} {body}");
        assert!(body["detail"].is_string(), "{body}");
    }
}
