//! The Flink reference rows (`testdata/flink`, see testdata/README.md) and the comparison every
//! parity test makes: same windows, count/min/max exact, sum and mean within 1e-9 relative.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The windows of the parity job and the Flink file holding each.
pub const WINDOWS: [(&str, &str); 3] = [
    ("tumble_10s", "q1.csv"),
    ("hop_30s_10s", "q2.csv"),
    ("session_5s", "q3.csv"),
];

pub type Key = (String, i64, i64);

#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub mean: Option<f64>,
}

/// Flink's CSV: metric_id,window_start,window_end,count,sum,min,max[,avg]
pub fn read_flink(path: &Path) -> BTreeMap<Key, Row> {
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

/// Stored window results (JSON rows of `GET /metrics` by (metric, window, window start)) in the
/// shape of Flink's, per window name.
pub fn rows_by_window(
    rows: &BTreeMap<(String, String, i64), serde_json::Value>,
) -> BTreeMap<String, BTreeMap<Key, Row>> {
    let mut out: BTreeMap<String, BTreeMap<Key, Row>> = BTreeMap::new();
    for ((metric, window, start), r) in rows {
        let key = (metric.clone(), *start, r["window_end"].as_i64().unwrap());
        let row = Row {
            count: r["count"].as_u64().unwrap(),
            sum: r["sum"].as_f64().unwrap(),
            min: r["min"].as_f64().unwrap(),
            max: r["max"].as_f64().unwrap(),
            mean: r["mean"].as_f64(),
        };
        out.entry(window.clone()).or_default().insert(key, row);
    }
    out
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-300)
}

pub fn assert_same(window: &str, ours: &BTreeMap<Key, Row>, flink: &BTreeMap<Key, Row>) {
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
