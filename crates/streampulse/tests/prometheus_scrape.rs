//! The Prometheus exposition checked by a real Prometheus server (`STREAMPULSE_TEST_PROMETHEUS`,
//! Debian's `prometheus` package in CI; `.ci/run` installs it): it scrapes a running platform fed
//! a known input, and PromQL through its HTTP API must return exactly the expected counts. The
//! deploy/ scrape config and alerting rules are checked with `promtool` (beside the server), the
//! rules are loaded by the live server, and every metric they use, and every metric in
//! docs/instrumentation.md, must be one the binary exports.
//!
//! Without the variable the tests print "skipped" and pass, unless `CI` is set: then they fail.

mod prometheus_support;
mod support;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prometheus_support::{exported, names_in, prometheus, promtool, repo, unix_now, Server};
use serde_json::{json, Value};
use support::{free_port, Platform};

const CONFIG: &str = r"
log:
  partitions: 2
  fsync: never
checkpoint:
  interval: 500ms
job:
  idle_timeout: 1s
  allowed_lateness: 0s
  windows:
    - {name: tumble_10s, type: tumbling, size: 10s}
    - {name: tumble_1m, type: tumbling, size: 1m}
  detectors:
    - {name: spike, type: zscore, series: raw, n: 120, min_points: 30, min_std: 0, warning: 10, critical: 30, resolve_after: 5, cooldown: 30s}
";

/// Minute-aligned, so each metric's 60 events fill 6 windows of 10 s and one of 1 min.
const BASE: i64 = 1_700_000_040_000;
const METRICS: i64 = 4;
const PER_METRIC: i64 = 60;
const LATE: usize = 5;

/// Rejected lines by reason: (line, reason).
const BAD: &[(&str, &str)] = &[
    ("{not json", "invalid_json"),
    (r#"{"metric_id": "m0", "ts": 1,"#, "invalid_json"),
    (r#"{"metric_id": "m0", "value": 1}"#, "missing_field"),
    (r#"{"ts": 1, "value": 1}"#, "missing_field"),
    (r#"{"metric_id": "m0", "ts": 1}"#, "missing_field"),
    (r#"{"metric_id": 5, "ts": 1, "value": 1}"#, "wrong_type"),
    (
        r#"{"metric_id": "m0", "ts": "yesterday", "value": 1}"#,
        "bad_timestamp",
    ),
    (
        r#"{"metric_id": "m0", "ts": "2026-13-45T00:00:00Z", "value": 1}"#,
        "bad_timestamp",
    ),
    ("[1, 2]", "not_object"),
    ("42", "not_object"),
    (r#"{"metric_id": "", "ts": 1, "value": 1}"#, "other"),
];

fn post(p: &Platform, lines: &[String]) -> (u16, Value) {
    p.post(&(lines.join("\n") + "\n"), "application/x-ndjson", None)
        .unwrap()
}

#[test]
fn prometheus_scrapes_exact_counts_of_a_known_input() {
    let Some(bin) = prometheus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let p = Platform::start_full(
        &dir.path().join("platform"),
        CONFIG,
        free_port(),
        &[],
        Some(metrics_port),
    );
    let rules = repo().join("deploy/prometheus/alerts.yml");
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let server = Server::start(&bin, &prom_dir, metrics_port, &rules);

    // N good events (one spike on m0: an alert fires, then resolves) and K bad lines.
    let mut lines = Vec::new();
    for i in 0..PER_METRIC {
        for m in 0..METRICS {
            let value = if m == 0 && i == 40 { 1000.0 } else { 1.0 };
            lines.push(
                json!({"metric_id": format!("m{m}"), "ts": BASE + i * 1000, "value": value})
                    .to_string(),
            );
        }
    }
    let good = lines.len();
    lines.extend(BAD.iter().map(|(l, _)| l.to_string()));
    let (status, body) = post(&p, &lines);
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (400, Some(good as u64)),
        "{body}"
    );
    // The idle flush closes every window; then L events older than all of them are late.
    p.wait_drained(Duration::from_secs(30));
    let late: Vec<String> = (0..LATE)
        .map(|i| json!({"metric_id": "m1", "ts": BASE + i as i64, "value": 1}).to_string())
        .collect();
    assert_eq!(post(&p, &late).0, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = p.status();
        let late_seen: u64 = status["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["late_events"].as_u64().unwrap())
            .sum();
        if late_seen == 2 * LATE as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "late events not processed: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Wait for a scrape taken after everything was processed.
    let processed_at = unix_now();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ts = server.query("timestamp(streampulse_build_info)");
        if ts.first().is_some_and(|(_, t)| *t > processed_at + 0.1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape after {processed_at}: {ts:?}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.one(r#"up{job="streampulse"}"#), 1.0);

    let received = (good + BAD.len() + LATE) as f64;
    assert_eq!(server.one("streampulse_events_received_total"), received);
    assert_eq!(
        server.one("streampulse_events_accepted_total"),
        (good + LATE) as f64
    );
    assert_eq!(server.one("streampulse_events_duplicate_total"), 0.0);
    let rejected = server.query("streampulse_events_rejected_total");
    assert_eq!(rejected.len(), 7, "every reason is exported: {rejected:?}");
    for (labels, value) in &rejected {
        let reason = labels["reason"].as_str().unwrap();
        let expected = BAD.iter().filter(|(_, r)| *r == reason).count();
        assert_eq!(*value, expected as f64, "reason {reason}");
    }
    for window in ["tumble_10s", "tumble_1m"] {
        let late = format!(r#"streampulse_late_events_total{{window="{window}"}}"#);
        assert_eq!(server.one(&late), LATE as f64, "{late}");
    }
    let results = |window: &str, kind: &str| {
        server.one(&format!(
            r#"streampulse_window_results_total{{window="{window}",kind="{kind}"}}"#
        ))
    };
    assert_eq!(results("tumble_10s", "final"), (METRICS * 6) as f64);
    assert_eq!(results("tumble_1m", "final"), METRICS as f64);
    assert_eq!(results("tumble_10s", "update"), 0.0);
    assert_eq!(
        server.one("sum(streampulse_window_emit_delay_seconds_count)"),
        (METRICS * 7) as f64
    );
    // The reference windows ended in 2023: every first emission is in the +Inf bucket only.
    assert_eq!(
        server.one(r#"sum(streampulse_window_emit_delay_seconds_bucket{le="3600"})"#),
        0.0
    );
    let alerts = |state: &str| {
        server.one(&format!(
            r#"streampulse_alert_transitions_total{{detector="spike",severity="critical",state="{state}"}}"#
        ))
    };
    assert_eq!((alerts("firing"), alerts("resolved")), (1.0, 1.0));
    assert_eq!(
        server.one(r#"sum(streampulse_alert_transitions_total{severity="warning"})"#),
        0.0
    );
    // After the idle flush a partition's watermark is its max event time + the longest window − 1 ms.
    let watermark = server.one("max(streampulse_watermark_seconds)");
    let expected = (BASE + (PER_METRIC - 1) * 1000 + 60_000 - 1) as f64 / 1000.0;
    assert!(
        (watermark - expected).abs() < 1e-6,
        "{watermark} vs {expected}"
    );
    assert!(server.one("min(streampulse_watermark_lag_seconds)") > 0.0);
    assert_eq!(server.one("sum(streampulse_consumer_lag_records)"), 0.0);
    assert_eq!(server.one("sum(streampulse_open_windows)"), 0.0);
    assert!(server.one("streampulse_checkpoints_completed_total") >= 1.0);
    assert_eq!(server.one("streampulse_checkpoints_failed_total"), 0.0);
    assert!(server.one("streampulse_checkpoint_duration_seconds_count") >= 1.0);
    assert!(server.one("streampulse_checkpoint_last_size_bytes") > 0.0);
    assert!(server.one("sum(streampulse_state_bytes)") > 0.0);
    assert!(server.one("streampulse_checkpoint_last_age_seconds") < 60.0);
    assert!(server.one("streampulse_log_size_bytes") > 0.0);
    let posts = |status: &str| {
        server.one(&format!(
            r#"streampulse_http_request_duration_seconds_count{{route="/events",method="POST",status="{status}"}}"#
        ))
    };
    assert_eq!((posts("400"), posts("200")), (1.0, 1.0));
    assert!(
        server.one(r#"sum(streampulse_http_request_duration_seconds_count{route="/jobs/{id}"})"#)
            >= 1.0
    );

    // The deploy rules are loaded and evaluate without error against the real series.
    let groups = server.api("/api/v1/rules", None)["groups"].clone();
    let loaded: Vec<&Value> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(loaded.len() >= 3, "{groups}");
    for rule in &loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
    }

    // Every metric named by the rules and by the spec is exported, and the spec lists them all.
    let exposition = p.scrape();
    let families = exported(&exposition);
    let used = names_in(&std::fs::read_to_string(&rules).unwrap(), &families);
    assert!(used.len() >= 5, "{used:?}");
    let missing: Vec<_> = used.difference(&families).collect();
    assert!(
        missing.is_empty(),
        "alerts.yml uses unexported metrics: {missing:?}"
    );
    let spec = std::fs::read_to_string(repo().join("docs/instrumentation.md")).unwrap();
    let table: BTreeSet<String> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("| `streampulse_"))
        .filter_map(|l| l.split('`').next())
        .map(|n| format!("streampulse_{n}"))
        .collect();
    assert_eq!(
        table, families,
        "docs/instrumentation.md's table and the exposition differ"
    );

    // promtool's linter accepts the exposition (naming, units, suffixes, help).
    let mut lint = Command::new(promtool(&bin))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lint.stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(p.interrupt().success());
}

#[test]
fn prometheus_deploy_config_and_rules_pass_promtool() {
    let Some(bin) = prometheus() else { return };
    let promtool = promtool(&bin);
    let deploy = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&deploy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
