//! The Prometheus exposition checked by a real Prometheus server (`STREAMPULSE_TEST_PROMETHEUS`,
//! Debian's `prometheus` package in CI; `.ci/run` installs it): it scrapes a running platform fed
//! a known input, and PromQL through its HTTP API must return exactly the expected counts. The
//! deploy/ scrape config and alerting rules are checked with `promtool` (beside the server), the
//! rules are loaded by the live server, and every metric they use, and every metric in
//! docs/instrumentation.md, must be one the binary exports.
//!
//! Without the variable the tests print "skipped" and pass, unless `CI` is set: then they fail.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::{agent, free_port, Platform};

const ENV: &str = "STREAMPULSE_TEST_PROMETHEUS";

/// The Prometheus binary, or `None` (after saying so) when the test must be skipped.
fn prometheus() -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "{ENV}={} is not a file", path.display());
            Some(path)
        }
        _ if std::env::var_os("CI").is_some() => panic!(
            "{ENV} is not set but CI is: this test needs a Prometheus server binary \
             (apt-get install prometheus; {ENV}=/usr/bin/prometheus; .ci/run does both)"
        ),
        _ => {
            eprintln!("skipped: set {ENV} to a prometheus binary (e.g. /usr/bin/prometheus) to run this test");
            None
        }
    }
}

/// `promtool`, which ships beside `prometheus`.
fn promtool(prometheus: &Path) -> PathBuf {
    let path = prometheus.with_file_name("promtool");
    assert!(
        path.is_file(),
        "no promtool beside {}",
        prometheus.display()
    );
    path
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Prometheus server on loopback, stopped on drop.
struct Server {
    child: Child,
    base: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(bin: &Path, dir: &Path, target_port: u16, rules: &Path) -> Server {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 scrape_configs:\n  - job_name: streampulse\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = agent().get(&format!("{}/-/ready", server.base)).call() {
                if r.status() == 200 {
                    return server;
                }
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready; log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    fn api(&self, path: &str, query: Option<&str>) -> Value {
        let mut req = agent().get(&format!("{}{path}", self.base));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        let mut resp = req.call().expect("prometheus API");
        let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's samples: (labels, value).
    fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        self.api("/api/v1/query", Some(promql))["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let v = s["value"][1].as_str().unwrap().parse().unwrap();
                (s["metric"].clone(), v)
            })
            .collect()
    }

    /// The value of a query that must return one sample.
    fn one(&self, promql: &str) -> f64 {
        let samples = self.query(promql);
        assert_eq!(samples.len(), 1, "{promql}: {samples:?}");
        samples[0].1
    }
}

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

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The metric families the exposition declares (`# TYPE` lines).
fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `streampulse_…` names in `text`, with a histogram's `_bucket`/`_sum`/`_count` suffix removed
/// when the family is a histogram.
fn names_in(text: &str, families: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("streampulse_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|s| name.strip_suffix(s))
            .find(|base| families.contains(*base))
            .unwrap_or(name);
        names.insert(family.to_string());
        rest = &tail[end..];
    }
    names
}

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
