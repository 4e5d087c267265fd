//! The shipped detector defaults, judged on the reference data: every injected spike episode
//! (testdata/public.stats.json) raises an alert, and outside them there are at most 0.5 alert
//! episodes per 10,000 events. Also: alert transitions are deterministic across runs and
//! partitionings, which is what makes replay after a crash rewrite rather than duplicate them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the anomaly example job over the public events; returns the last transition of each alert.
fn replay_alerts(partitions: u32) -> BTreeMap<String, Value> {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts.ndjson");
    let status = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["replay", "--config"])
        .arg(repo().join("examples/anomaly_defaults.yaml"))
        .arg("--input")
        .arg(repo().join("testdata/public.jsonl.gz"))
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

#[test]
fn defaults_catch_every_injected_episode_and_stay_quiet_elsewhere() {
    let stats: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("testdata/public.stats.json")).unwrap(),
    )
    .unwrap();
    let episodes = stats["anomaly_episodes"].as_array().unwrap();
    let events = stats["events"].as_u64().unwrap();
    let spike_events = stats["spike_events"].as_u64().unwrap();
    let alerts = replay_alerts(1);

    // An alert matches an episode of its metric when their event-time spans overlap.
    let overlaps = |a: &Value, e: &Value| {
        a["metric_id"] == e["metric_id"]
            && a["first_ts"].as_i64().unwrap() < e["end_ms"].as_i64().unwrap()
            && a["last_ts"].as_i64().unwrap() >= e["start_ms"].as_i64().unwrap()
    };
    for detector in ["raw_zscore", "raw_ewma", "raw_mad"] {
        for e in episodes {
            assert!(
                alerts
                    .values()
                    .any(|a| a["detector"] == detector && overlaps(a, e)),
                "{detector} missed the episode {e}"
            );
        }
    }
    let false_episodes: Vec<&Value> = alerts
        .values()
        .filter(|a| !episodes.iter().any(|e| overlaps(a, e)))
        .collect();
    let per_10k = false_episodes.len() as f64 / ((events - spike_events) as f64 / 10_000.0);
    eprintln!(
        "{} alert episodes, {} outside injected episodes ({per_10k:.2} per 10,000 events)",
        alerts.len(),
        false_episodes.len()
    );
    assert!(per_10k <= 0.5, "too noisy: {false_episodes:?}");
    assert!(
        alerts.values().all(|a| a["state"] == "resolved"),
        "every spike ends, so every alert resolves"
    );
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
    assert_eq!(key(&replay_alerts(1)), key(&replay_alerts(3)));
}
