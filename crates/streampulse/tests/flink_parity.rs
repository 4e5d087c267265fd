//! The Flink oracle: `streampulse replay` over the reference events must produce exactly the rows
//! Apache Flink 2.3 produced (testdata/README.md): same windows, same count/min/max, sum and mean
//! within 1e-9 relative.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

type Key = (String, i64, i64);

#[derive(Debug, Clone, Copy)]
struct Row {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    mean: Option<f64>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Flink's CSV: metric_id,window_start,window_end,count,sum,min,max[,avg]
fn read_flink(path: &Path) -> BTreeMap<Key, Row> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = BTreeMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let key = (
            f[0].to_string(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        let row = Row {
            count: f[3].parse().unwrap(),
            sum: f[4].parse().unwrap(),
            min: f[5].parse().unwrap(),
            max: f[6].parse().unwrap(),
            mean: f.get(7).map(|v| v.parse().unwrap()),
        };
        assert!(
            rows.insert(key, row).is_none(),
            "duplicate row in {}",
            path.display()
        );
    }
    rows
}

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

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

fn assert_same(window: &str, ours: &BTreeMap<Key, Row>, flink: &BTreeMap<Key, Row>) {
    let missing: Vec<_> = flink
        .keys()
        .filter(|k| !ours.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = ours
        .keys()
        .filter(|k| !flink.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{window}: missing {missing:?}, extra {extra:?}"
    );
    for (key, f) in flink {
        let o = &ours[key];
        assert_eq!(o.count, f.count, "{window} {key:?} count");
        assert_eq!(o.min, f.min, "{window} {key:?} min");
        assert_eq!(o.max, f.max, "{window} {key:?} max");
        assert!(
            close(o.sum, f.sum),
            "{window} {key:?} sum {} vs {}",
            o.sum,
            f.sum
        );
        if let (Some(a), Some(b)) = (o.mean, f.mean) {
            assert!(close(a, b), "{window} {key:?} mean {a} vs {b}");
        }
    }
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
    for (window, file) in [
        ("tumble_10s", "q1.csv"),
        ("hop_30s_10s", "q2.csv"),
        ("session_5s", "q3.csv"),
    ] {
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
