//! The Grafana dashboards in deploy/grafana are checked against a real Prometheus server
//! (`STREAMPULSE_TEST_PROMETHEUS`, as in `prometheus_scrape.rs`) scraping a running platform:
//! every PromQL expression of every panel, with Grafana's variables replaced by concrete values,
//! must be accepted by Prometheus' query API (an empty result is fine, a parse error is not); every
//! template variable's `label_values(...)` query must find its label; every query of a per-job
//! family (one whose series carry `job_name`) must filter by the `$job_name` variable; and every
//! `streampulse_*` metric named by the dashboards or by deploy/prometheus/alerts.yml must be one
//! the binary exports. The provisioning files must point at the dashboards and declare a Prometheus source.
//!
//! Without the variable the tests print "skipped" and pass, unless `CI` is set: then they fail.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod prometheus_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use prometheus_support::{exported, names_in, platform_scraped, prometheus, repo};
use serde_json::{json, Value};

const CONFIG: &str = r"
log:
  partitions: 2
  fsync: never
checkpoint:
  interval: 500ms
job:
  idle_timeout: 1s
  allowed_lateness: 2s
  windows:
    - {name: tumble_10s, type: tumbling, size: 10s}
    - {name: session, type: session, gap: 30s}
  detectors:
    - {name: spike, type: zscore, series: raw, n: 120, min_points: 30, min_std: 0, warning: 10, critical: 30, resolve_after: 5, cooldown: 30s}
alerts:
  webhooks:
    - url: http://127.0.0.1:9/unreachable
";

/// The dashboards: (file name, parsed JSON, text).
fn dashboards() -> Vec<(String, Value, String)> {
    let dir = repo().join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, json, text)
        })
        .collect()
}

/// Every panel, including those nested in collapsed rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

/// Every `expr` string anywhere in `value`.
fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Grafana's built-in variables and the dashboards' template variables, replaced by what Grafana
/// would send for one instance. Panics on a variable it does not know.
fn concrete(expr: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = expr.to_string();
    // Longest names first, so `$__rate_interval` is not taken for `$__range`'s prefix.
    let mut names: Vec<&&str> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let value = &vars[*name];
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "unknown variable in {expr:?} → {out:?}");
    out
}

#[test]
fn prometheus_dashboards_are_valid_against_a_running_platform() {
    let Some(bin) = prometheus() else { return };

    // Structure: unique uids and panel ids, a data source variable, every panel on it.
    let boards = dashboards();
    let mut uids = BTreeSet::new();
    for (name, board, _) in &boards {
        let uid = board["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(uids.insert(uid.to_string()), "{name}: uid {uid} repeated");
        assert!(
            board["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{name}: no title"
        );
        let vars: Vec<&str> = board["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for v in ["datasource", "job", "instance", "job_name"] {
            assert!(vars.contains(&v), "{name}: no ${v} variable: {vars:?}");
        }
        let mut ids = BTreeSet::new();
        for p in panels(board) {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: panel without id: {p}"));
            assert!(ids.insert(id), "{name}: panel id {id} repeated");
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or_default();
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{name}: {title}");
            let targets = p["targets"].as_array().map(Vec::len).unwrap_or(0);
            assert!(targets > 0, "{name}: panel {title:?} has no query");
            let pos = &p["gridPos"];
            assert!(
                pos["w"].as_u64().is_some_and(|w| w > 0 && w <= 24)
                    && pos["x"]
                        .as_u64()
                        .is_some_and(|x| x + pos["w"].as_u64().unwrap() <= 24),
                "{name}: panel {title:?} gridPos {pos}"
            );
        }
    }

    // Provisioning: a Prometheus data source and a file provider for the dashboards.
    let prov = repo().join("deploy/grafana/provisioning");
    let yaml = |p: &str| -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(&std::fs::read_to_string(prov.join(p)).unwrap())
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let ds = yaml("datasources/prometheus.yml");
    assert_eq!(ds["apiVersion"].as_u64(), Some(1));
    assert_eq!(ds["datasources"][0]["type"].as_str(), Some("prometheus"));
    let dp = yaml("dashboards/streampulse.yml");
    assert_eq!(dp["apiVersion"].as_u64(), Some(1));
    assert_eq!(dp["providers"][0]["type"].as_str(), Some("file"));
    assert!(dp["providers"][0]["options"]["path"].as_str().is_some());

    // A platform with windows, a detector and a webhook, fed good, bad and late events.
    let dir = tempfile::tempdir().unwrap();
    let (p, server) = platform_scraped(&bin, dir.path(), CONFIG);

    let base = 1_700_000_040_000i64;
    let mut lines: Vec<String> = (0..120)
        .map(|i| {
            let value = if i == 100 { 1000.0 } else { 1.0 };
            json!({"metric_id": format!("m{}", i % 3), "ts": base + i * 500, "value": value})
                .to_string()
        })
        .collect();
    lines.push("{not json".into());
    let (status, _) = p
        .post(&(lines.join("\n") + "\n"), "application/x-ndjson", None)
        .unwrap();
    assert_eq!(status, 400);
    // The idle flush closes the tumbling windows (sessions may stay open).
    p.wait_drained_to_log(Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    let late = json!({"metric_id": "m1", "ts": base, "value": 1}).to_string() + "\n";
    assert_eq!(p.post(&late, "application/x-ndjson", None).unwrap().0, 200);
    p.wait_drained_to_log(Duration::from_secs(30));
    // Two scrapes after all of it, so that rate() has points on both sides.
    server.wait_for_scrape();
    server.wait_for_scrape();

    // Every expression parses and evaluates.
    let vars: BTreeMap<&str, String> = [
        ("__rate_interval", "1m".to_string()),
        ("__interval", "15s".to_string()),
        ("__range", "1h".to_string()),
        ("job", "streampulse".to_string()),
        // The configured job (its name is not set in CONFIG).
        ("job_name", "default".to_string()),
        (
            "instance",
            p.metrics_base.trim_start_matches("http://").to_string(),
        ),
        ("datasource", "prometheus".to_string()),
    ]
    .into_iter()
    .collect();
    // The families with a job_name label: a panel showing one must follow the $job_name choice.
    let exposition = p.scrape();
    let families = exported(&exposition);
    let per_job: BTreeSet<String> = exposition
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("job_name=\""))
        .flat_map(|l| names_in(l.split(['{', ' ']).next().unwrap_or(l), &families))
        .collect();
    assert!(
        per_job.contains("streampulse_records_processed_total"),
        "{per_job:?}"
    );
    let mut unfiltered = Vec::new();
    let mut failures = Vec::new();
    let mut empty = Vec::new();
    let mut total = 0;
    for (name, board, _) in &boards {
        let mut found = Vec::new();
        for p in panels(board) {
            exprs(&p["targets"], &mut found);
        }
        assert!(
            found.len() >= 10,
            "{name}: only {} expressions",
            found.len()
        );
        for expr in found {
            total += 1;
            if !names_in(&expr, &families).is_disjoint(&per_job)
                && !expr.contains(r#"job_name=~"$job_name""#)
            {
                unfiltered.push(format!("{name}: {expr}"));
            }
            let promql = concrete(&expr, &vars);
            match server.try_query(&promql) {
                Ok(data) if data["result"].as_array().is_some_and(|r| r.is_empty()) => {
                    empty.push(format!("{name}: {promql}"))
                }
                Ok(_) => {}
                Err(e) => failures.push(format!("{name}: {promql}\n    {e}")),
            }
        }

        // Template variables: `label_values(selector, label)` must find the label.
        for v in board["templating"]["list"].as_array().unwrap() {
            let Some(q) = v["query"]["query"].as_str().or(v["query"].as_str()) else {
                continue;
            };
            let Some(args) = q
                .strip_prefix("label_values(")
                .and_then(|a| a.strip_suffix(')'))
            else {
                continue;
            };
            let (selector, label) = args.rsplit_once(',').unwrap();
            let selector = concrete(selector.trim(), &vars);
            let label = label.trim();
            let data = server
                .try_query(&selector)
                .unwrap_or_else(|e| panic!("{name}: variable {}: {selector}: {e}", v["name"]));
            let values: BTreeSet<&str> = data["result"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s["metric"][label].as_str())
                .collect();
            assert!(
                !values.is_empty(),
                "{name}: variable {} ({q}) finds no {label}",
                v["name"]
            );
        }
    }
    eprintln!(
        "{total} dashboard expressions evaluated, {} with an empty result:\n  {}",
        empty.len(),
        empty.join("\n  ")
    );
    assert!(
        unfiltered.is_empty(),
        "per-job metrics not filtered by $job_name:\n{}",
        unfiltered.join("\n")
    );
    assert!(
        failures.is_empty(),
        "Prometheus rejected {} expression(s):\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Every metric the dashboards and the alerting rules name is exported by the binary.
    let dashboard_text: String = boards.iter().map(|(_, _, t)| t.as_str()).collect();
    let in_dashboards = names_in(&dashboard_text, &families);
    let rules = repo().join("deploy/prometheus/alerts.yml");
    let in_rules = names_in(&std::fs::read_to_string(&rules).unwrap(), &families);
    for (what, used) in [("dashboards", &in_dashboards), ("alerts.yml", &in_rules)] {
        let missing: Vec<_> = used.difference(&families).collect();
        assert!(
            missing.is_empty(),
            "{what} use metrics the binary does not export: {missing:?}"
        );
    }
    // And the dashboards show every exported family (the completion time is shown as its age).
    let unused: Vec<_> = families
        .difference(&in_dashboards)
        .filter(|f| *f != "streampulse_checkpoint_last_completed_timestamp_seconds")
        .collect();
    assert!(
        unused.is_empty(),
        "exported but on no dashboard: {unused:?}"
    );
    assert!(p.interrupt().success());
}
