//! The shipped detector defaults, judged on the reference data and on two datasets generated with
//! other seeds, metric counts, sparsity and disorder (`testdata/gen_events.py`, deterministic):
//! each detector catches every injected spike episode that has an event in it (the ground truth
//! of the generator's stats), and outside them there are at most 0.1 alert episodes per 10,000
//! events. Also: alert transitions are deterministic across runs and partitionings, which is what
//! makes replay after a crash rewrite rather than duplicate them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the anomaly example job over `input`; returns the last transition of each alert.
fn replay_alerts(input: &Path, partitions: u32) -> BTreeMap<String, Value> {
    replay_with(
        &repo().join("examples/anomaly_defaults.yaml"),
        input,
        partitions,
    )
}

/// Runs the job of `config` over `input`; returns the last transition of each alert.
fn replay_with(config: &Path, input: &Path, partitions: u32) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.ndjson");
    let status = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["replay", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .args(["--output", &dir.path().join("r.csv").display().to_string()])
        .args(["--partitions", &partitions.to_string(), "--alerts"])
        .arg(&alerts)
        .status()
        .unwrap();
    assert!(status.success());
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    for line in std::fs::read_to_string(&alerts).unwrap().lines() {
        let alert: Value = serde_json::from_str(line).unwrap();
        for field in [
            "id",
            "metric_id",
            "detector",
            "state",
            "severity",
            "first_ts",
            "last_ts",
            "peak_score",
            "observed",
            "expected",
        ] {
            assert!(!alert[field].is_null(), "{field} missing in {line}");
        }
        assert!(
            alert["tags"]["host"].is_string(),
            "alerts carry the metric's tags: {line}"
        );
        let id = alert["id"].as_str().unwrap().to_string();
        if let Some(prev) = last.get(&id) {
            assert!(
                alert["sequence"].as_u64() > prev["sequence"].as_u64(),
                "transitions of one alert come in order"
            );
        }
        last.insert(id, alert);
    }
    last
}

fn public_events() -> PathBuf {
    repo().join("testdata/public.jsonl.gz")
}

/// Every event of `events` (JSON lines, gzipped when it ends in .gz) as (metric id, time).
fn event_times(events: &Path) -> Vec<(String, i64)> {
    let file = std::fs::File::open(events).unwrap();
    let reader: Box<dyn BufRead> = if events.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    reader
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
            (
                event["metric_id"].as_str().unwrap().to_string(),
                event["ts"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// Judges the alerts of a replay of `events` against the episodes the generator injected
/// (`stats`): each detector catches every episode with an event in it, and alert episodes
/// overlapping none are at most 0.1 per 10,000 events, all detectors together.
fn judge(name: &str, stats: &Path, events: &Path) {
    let stats: Value = serde_json::from_str(&std::fs::read_to_string(stats).unwrap()).unwrap();
    let episodes = stats["anomaly_episodes"].as_array().unwrap();
    let times = event_times(events);
    // A sparse metric may have no event in a 1-5 s spike: nothing to catch there.
    let live: Vec<&Value> = episodes
        .iter()
        .filter(|e| {
            times.iter().any(|(m, ts)| {
                e["metric_id"] == m.as_str()
                    && e["start_ms"].as_i64().unwrap() <= *ts
                    && *ts < e["end_ms"].as_i64().unwrap()
            })
        })
        .collect();
    let alerts = replay_alerts(events, 1);
    let events = stats["events"].as_u64().unwrap();
    let spike_events = stats["spike_events"].as_u64().unwrap();

    // An alert matches an episode of its metric when their event-time spans overlap.
    let overlaps = |a: &Value, e: &Value| {
        a["metric_id"] == e["metric_id"]
            && a["first_ts"].as_i64().unwrap() < e["end_ms"].as_i64().unwrap()
            && a["last_ts"].as_i64().unwrap() >= e["start_ms"].as_i64().unwrap()
    };
    for detector in ["raw_zscore", "raw_ewma", "raw_mad"] {
        for e in &live {
            assert!(
                alerts
                    .values()
                    .any(|a| a["detector"] == detector && overlaps(a, e)),
                "{name}: {detector} missed the episode {e}"
            );
        }
    }
    let false_episodes: Vec<&Value> = alerts
        .values()
        .filter(|a| !episodes.iter().any(|e| overlaps(a, e)))
        .collect();
    let per_10k = false_episodes.len() as f64 / ((events - spike_events) as f64 / 10_000.0);
    eprintln!(
        "{name}: {} of {} episodes have events; {} alert episodes, {} outside injected episodes ({per_10k:.2} per 10,000 events)",
        live.len(),
        episodes.len(),
        alerts.len(),
        false_episodes.len()
    );
    assert!(per_10k <= 0.1, "{name}: too noisy: {false_episodes:?}");
    // Every spike ends, so every alert resolves, unless its metric (a sparse one) stops
    // reporting first: resolve_after is 5 normal points, 10 events later leave room for disorder.
    for a in alerts.values().filter(|a| a["state"] != "resolved") {
        let last_ts = a["last_ts"].as_i64().unwrap();
        let after = times
            .iter()
            .filter(|(m, ts)| a["metric_id"] == m.as_str() && *ts > last_ts)
            .count();
        assert!(
            after < 10,
            "{name}: {after} events of its metric came after this alert, which never resolved: {a}"
        );
    }
}

#[test]
fn defaults_catch_every_injected_episode_and_stay_quiet_elsewhere() {
    judge(
        "testdata",
        &repo().join("testdata/public.stats.json"),
        &public_events(),
    );
}

/// Two datasets unlike the reference data: 500 metrics, 30 % of them sparse, 4 s of disorder; and
/// 100 metrics, 30 % of them going silent for 6-20 s, 1 s of disorder.
#[test]
fn defaults_catch_every_injected_episode_on_other_datasets() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        (
            "d2",
            "--events 200000 --metrics 500 --seed 7 --sparse-frac 0.3 --jitter-ms 4000 --anomalies 12",
        ),
        (
            "d3",
            "--events 300000 --metrics 100 --seed 99 --gappy-frac 0.3 --jitter-ms 1000 --anomalies 15",
        ),
    ] {
        let events = dir.path().join(format!("{name}.jsonl"));
        let stats = dir.path().join(format!("{name}.stats.json"));
        let status = Command::new("python3")
            .arg(repo().join("testdata/gen_events.py"))
            .args(args.split(' '))
            .arg("--out")
            .arg(&events)
            .arg("--stats")
            .arg(&stats)
            .status()
            .expect("python3 runs testdata/gen_events.py (standard library only)");
        assert!(status.success(), "gen_events.py {args}");
        judge(name, &stats, &events);
    }
}

#[test]
fn alerts_do_not_depend_on_partitioning() {
    // Detector state is per metric, and a metric lives in one partition: the same ids, states and
    // peak scores whatever the partition count.
    let key = |m: &BTreeMap<String, Value>| -> Vec<(String, String, String)> {
        m.values()
            .map(|a| {
                (
                    a["id"].to_string(),
                    a["state"].to_string(),
                    a["peak_score"].to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        key(&replay_alerts(&public_events(), 1)),
        key(&replay_alerts(&public_events(), 3))
    );
}

/// Per-metric rules through the binary: the first matching rule's detectors score a metric, a rule
/// with no detectors silences what it matches, and other metrics get the job's detectors.
#[test]
fn detector_rules_choose_the_detectors_of_each_metric() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rules.yaml");
    std::fs::write(
        &config,
        r#"
log: { partitions: 1 }
job:
  name: rules
  windows: [{ name: tumble_10s, type: tumbling, size: 10s }]
  detectors:
    - { name: raw_zscore, type: zscore }
  detector_rules:
    - match: { metric: "metric_001*", tags: { host: host-039 } }
      detectors: [{ name: host39_mad, type: mad }]
    - match: { metric: "metric_0015?" }
      detectors: []
"#,
    )
    .unwrap();
    let alerts = replay_with(&config, &public_events(), 1);
    let host39 = |a: &Value| {
        a["metric_id"].as_str().unwrap().starts_with("metric_001")
            && a["tags"]["host"] == "host-039"
    };
    for a in alerts.values() {
        let metric = a["metric_id"].as_str().unwrap();
        assert!(
            !metric.starts_with("metric_0015"),
            "silenced by a rule: {a}"
        );
        let expected = if host39(a) {
            "host39_mad"
        } else {
            "raw_zscore"
        };
        assert_eq!(a["detector"], expected, "{a}");
    }
    // The injected episodes of metric_00117 (host-039) and metric_00155 (silenced): the first
    // is caught by its rule's detector, the others by the default one.
    assert!(alerts
        .values()
        .any(|a| a["metric_id"] == "metric_00117" && a["detector"] == "host39_mad"));
    assert!(alerts
        .values()
        .any(|a| a["metric_id"] == "metric_00187" && a["detector"] == "raw_zscore"));
}
