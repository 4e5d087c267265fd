//! What the tests against a real Prometheus server share (`prometheus_*.rs`): finding the
//! `prometheus` binary (`STREAMPULSE_TEST_PROMETHEUS`; skip without it, fail without it under CI),
//! `promtool`, a server on loopback scraping one target, and reading metric names out of an
//! exposition or a file of rules or dashboards.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{agent, free_port, Platform};

pub const ENV: &str = "STREAMPULSE_TEST_PROMETHEUS";

/// The Prometheus binary, or `None` (after saying so) when the test must be skipped.
pub fn prometheus() -> Option<PathBuf> {
    streampulse_testkit::env::required_file(
        ENV,
        "a prometheus binary (apt-get install prometheus: /usr/bin/prometheus)",
    )
}

/// `promtool`, which ships beside `prometheus`.
pub fn promtool(prometheus: &Path) -> PathBuf {
    let path = prometheus.with_file_name("promtool");
    assert!(
        path.is_file(),
        "no promtool beside {}",
        prometheus.display()
    );
    path
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A Prometheus server on loopback, stopped on drop.
pub struct Server {
    child: Child,
    pub base: String,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(bin: &Path, dir: &Path, target_port: u16, rules: &Path) -> Server {
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    pub fn api(&self, path: &str, query: Option<&str>) -> Value {
        let mut req = agent().get(&format!("{}{path}", self.base));
        if let Some(q) = query {
            req = req.query("query", q);
        }
        let mut resp = req.call().expect("prometheus API");
        let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's `data`, or the error Prometheus answered (a parse error, for instance).
    pub fn try_query(&self, promql: &str) -> Result<Value, String> {
        let mut resp = agent()
            .get(&format!("{}/api/v1/query", self.base))
            .query("query", promql)
            .call()
            .map_err(|e| e.to_string())?;
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let body: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// Waits for a scrape of `up` taken after now, so that queries see everything done before.
    pub fn wait_for_scrape(&self) {
        let after = unix_now();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ts = self.query("timestamp(streampulse_build_info)");
            if ts.first().is_some_and(|(_, t)| *t > after + 0.1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no scrape after {after}: {ts:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// An instant query's samples: (labels, value).
    pub fn query(&self, promql: &str) -> Vec<(Value, f64)> {
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
    pub fn one(&self, promql: &str) -> f64 {
        let samples = self.query(promql);
        assert_eq!(samples.len(), 1, "{promql}: {samples:?}");
        samples[0].1
    }
}

pub fn unix_now() -> f64 {
    streampulse_core::clock::since_epoch().as_secs_f64()
}

/// The metric families the exposition declares (`# TYPE` lines).
pub fn exported(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `streampulse_…` names in `text`, with a histogram's `_bucket`/`_sum`/`_count` suffix removed
/// when the family is a histogram.
pub fn names_in(text: &str, families: &BTreeSet<String>) -> BTreeSet<String> {
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

/// A platform started with `config` under `dir/platform`, and a Prometheus server under
/// `dir/prometheus` scraping its metrics port with the shipped alerting rules.
pub fn platform_scraped(bin: &Path, dir: &Path, config: &str) -> (Platform, Server) {
    let metrics_port = free_port();
    let p = Platform::start_full(
        &dir.join("platform"),
        config,
        free_port(),
        &[],
        Some(metrics_port),
    );
    let rules = repo().join("deploy/prometheus/alerts.yml");
    let prom_dir = dir.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let server = Server::start(bin, &prom_dir, metrics_port, &rules);
    (p, server)
}
