//! The Flink oracle: `streampulse replay` over the reference events must produce exactly the rows
//! Apache Flink 2.3 produced (testdata/README.md): same windows, same count/min/max, sum and mean
//! within 1e-9 relative.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod flink_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use flink_support::{assert_same, read_flink, repo, Key, Row, WINDOWS};

/// Ours: metric_id,window,window_start,window_end,count,sum,min,max,mean,...,revision
fn read_ours(path: &Path) -> BTreeMap<String, BTreeMap<Key, Row>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("metric_id,window,window_start,window_end,count,sum,min,max,mean"));
    assert!(header.ends_with(",revision"));
    let mut by_window: BTreeMap<String, BTreeMap<Key, Row>> = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(
            *f.last().unwrap(),
            "0",
            "no allowed lateness: every row is a first emission: {line}"
        );
        let key = (
            f[0].to_string(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        let row = Row {
            count: f[4].parse().unwrap(),
            sum: f[5].parse().unwrap(),
            min: f[6].parse().unwrap(),
            max: f[7].parse().unwrap(),
            mean: Some(f[8].parse().unwrap()),
        };
        let window = by_window.entry(f[1].to_string()).or_default();
        assert!(
            window.insert(key, row).is_none(),
            "window emitted twice: {line}"
        );
    }
    by_window
}

fn replay(input: &Path, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .arg("replay")
        .arg("--config")
        .arg(repo().join("examples/flink_parity.yaml"))
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(out)
        .status()
        .expect("run streampulse replay");
    assert!(status.success());
}

fn check(input: &Path, flink_dir: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results.csv");
    replay(input, &out);
    let ours = read_ours(&out);
    for (window, file) in WINDOWS {
        let flink = read_flink(&flink_dir.join(file));
        assert!(!flink.is_empty());
        assert_same(window, ours.get(window).unwrap_or(&BTreeMap::new()), &flink);
    }
}

#[test]
fn public_events_give_flinks_rows() {
    check(
        &repo().join("testdata/public.jsonl.gz"),
        &repo().join("testdata/flink"),
    );
}

#[test]
fn edge_cases_give_flinks_per_record_watermark_rows() {
    check(
        &repo().join("testdata/edge.jsonl"),
        &repo().join("testdata/flink/edge"),
    );
}
