//! Exactly-once across crashes, with real processes: `streampulse run` is fed over HTTP and
//! SIGKILLed at random moments 100 times (and stopped with Ctrl-C 10 times), then restarted.
//! At the end the stored window results must equal a brute-force batch computation over every
//! acknowledged event (nothing lost, nothing counted twice), and the z-score alerts must equal a
//! brute-force detector written from the README's definition, not from the pipeline's code.
//!
//! Requests cut off by a kill are retried after the restart with the same `Idempotency-Key`, as a
//! well-behaved producer would; the server must store each batch exactly once.
//!
//! The same test runs with the Cassandra store (30 kills, 3 clean stops, against the real node):
//! replayed writes must converge there too, including the session windows a merge retracted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use support::{cassandra_node, cassandra_store_yaml, free_port, ndjson, Platform};

const CONFIG: &str = r#"
log:
  partitions: 3
checkpoint:
  interval: 300ms
job:
  name: default
  max_out_of_orderness: 1s
  idle_timeout: 4s
  windows:
    - { name: tumble_1s, type: tumbling, size: 1s }
    - { name: hop_3s_1s, type: sliding, size: 3s, slide: 1s }
    - { name: session_400ms, type: session, gap: 400ms }
  detectors:
    - { name: z, type: zscore, series: raw, n: 50, min_points: 20, cooldown: 1s }
    - { name: e, type: ewma, series: raw, alpha: 0.2, warmup: 20, cooldown: 1s }
"#;

const METRICS: usize = 9;
const BASE_TS: i64 = 1_700_000_000_000;

use streampulse_testkit::oracle::{Event, Key, Row};
/// An idempotency key and the events of one request.
type Batch = (String, Vec<Event>);

/// The windows of CONFIG, computed in batch over all events.
fn batch(events: &[Event]) -> BTreeMap<Key, Row> {
    support::oracle_rows(CONFIG, events)
}

/// One request's worth of events, in arrival order, slightly out of order (< 1 s, the bound),
/// with a pause in event time now and then so that sessions close.
struct Producer {
    rng: SmallRng,
    next_ts: i64,
    batch_no: u64,
}

impl Producer {
    fn next_batch(&mut self) -> Batch {
        self.batch_no += 1;
        if self.batch_no.is_multiple_of(7) {
            self.next_ts += 1_500;
        }
        // Now and then one metric spikes for the length of a batch: alerts open and resolve.
        let spiking = self
            .batch_no
            .is_multiple_of(11)
            .then(|| self.rng.random_range(0..METRICS));
        let mut events = Vec::new();
        for _ in 0..150 {
            self.next_ts += 3;
            let m = self.rng.random_range(0..METRICS);
            let ts = self.next_ts - self.rng.random_range(0..800);
            let mut value = (self.rng.random_range(-1000..1000) as f64) / 8.0;
            if spiking == Some(m) {
                value += 5_000.0;
            }
            events.push((format!("metric_{m}"), ts, value));
        }
        (format!("batch-{}", self.batch_no), events)
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    crash_and_check(CONFIG, 110);
}

#[test]
fn sigkill_at_random_moments_with_the_cassandra_store() {
    let Some(node) = cassandra_node() else { return };
    let config = format!("{}{CONFIG}", cassandra_store_yaml(&node, "crash"));
    crash_and_check(&config, 33);
}

/// `rounds` starts of a platform with `config`: every 11th ends with Ctrl-C, the others with
/// SIGKILL; then the checks.
fn crash_and_check(config: &str, rounds: usize) {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| streampulse_core::clock::since_epoch().as_nanos() as u64);
    eprintln!("crash test seed {seed} (rerun with CRASH_SEED={seed})");
    let mut rng = SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut producer = Producer {
        rng: SmallRng::seed_from_u64(seed ^ 0x5eed),
        next_ts: BASE_TS,
        batch_no: 0,
    };

    let mut acknowledged: Vec<(String, i64, f64)> = Vec::new();
    let mut pending: Option<Batch> = None;
    let mut kills = 0;
    let mut clean_stops = 0;
    for round in 0..=rounds {
        let platform = Platform::start(dir.path(), config, port);
        let last_round = round == rounds;
        let run_for = Duration::from_millis(rng.random_range(50..700));
        let started = Instant::now();
        loop {
            let (key, events) = pending.take().unwrap_or_else(|| producer.next_batch());
            match platform.post(&ndjson(&events), "application/x-ndjson", Some(&key)) {
                Ok((200, _)) => acknowledged.extend(events),
                Ok((status, body)) => panic!("unexpected {status}: {body}"),
                Err(_) => {
                    pending = Some((key, events));
                    break;
                }
            }
            if !last_round && started.elapsed() >= run_for {
                break;
            }
            if last_round && started.elapsed() >= Duration::from_millis(500) {
                break;
            }
        }
        if last_round {
            if let Some((key, events)) = pending.take() {
                let (status, _) = platform
                    .post(&ndjson(&events), "application/x-ndjson", Some(&key))
                    .expect("retry");
                assert_eq!(status, 200);
                acknowledged.extend(events);
            }
            // The stream stops: the idle flush must close every remaining window.
            platform.wait_drained(Duration::from_secs(60));
            assert_eq!((kills + clean_stops, clean_stops), (rounds, rounds / 11));
            check(&platform, &acknowledged, kills, clean_stops);
            check_alerts(&platform, &acknowledged, dir.path());
            check_z_alerts(&platform, &acknowledged);
            return;
        }
        if round % 11 == 10 {
            let status = platform.interrupt();
            assert!(status.success(), "Ctrl-C must exit cleanly, got {status}");
            clean_stops += 1;
        } else {
            // Kill while a request may be in flight: a thread keeps sending during the kill.
            let base = platform.base.clone();
            let (key, events) = producer.next_batch();
            let text = ndjson(&events);
            let k = key.clone();
            let sender = std::thread::spawn(move || {
                support::agent()
                    .post(&format!("{base}/events"))
                    .header("content-type", "application/x-ndjson")
                    .header("idempotency-key", &k)
                    .send(&text)
                    .map(|r| r.status().as_u16())
            });
            std::thread::sleep(Duration::from_millis(rng.random_range(0..5)));
            platform.kill();
            kills += 1;
            match sender.join().unwrap() {
                Ok(200) => acknowledged.extend(events),
                _ => pending = Some((key, events)),
            }
        }
    }
}

fn check(
    platform: &Platform,
    acknowledged: &[(String, i64, f64)],
    kills: usize,
    clean_stops: usize,
) {
    let expected = batch(acknowledged);
    let min_ts = acknowledged.iter().map(|e| e.1).min().unwrap();
    let max_ts = acknowledged.iter().map(|e| e.1).max().unwrap();
    let mut stored: BTreeMap<Key, Row> = BTreeMap::new();
    let metrics = (0..METRICS).map(|i| format!("metric_{i}"));
    let rows: Vec<serde_json::Value> = metrics
        .flat_map(|m| platform.results(min_ts - 10_000, max_ts + 10_000, Some(&m)))
        .collect();
    for r in rows {
        let key = (
            r["metric_id"].as_str().unwrap().to_string(),
            r["window"].as_str().unwrap().to_string(),
            r["window_start"].as_i64().unwrap(),
        );
        let row = (
            r["window_end"].as_i64().unwrap(),
            r["count"].as_u64().unwrap(),
            r["sum"].as_f64().unwrap(),
            r["min"].as_f64().unwrap(),
            r["max"].as_f64().unwrap(),
        );
        assert!(stored.insert(key, row).is_none());
    }
    let status = platform.status();
    eprintln!(
        "{} acknowledged events, {kills} kills, {clean_stops} clean stops, {} rows; status {status}",
        acknowledged.len(),
        expected.len()
    );
    let late: u64 = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["late_events"].as_u64().unwrap())
        .sum();
    assert_eq!(late, 0, "events within the bound must never be late");
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !stored.contains_key(*k))
        .take(5)
        .collect();
    let extra: Vec<_> = stored
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?} extra {extra:?}"
    );
    for (key, want) in &expected {
        let got = stored[key];
        assert_eq!(
            (got.0, got.1, got.3, got.4),
            (want.0, want.1, want.3, want.4),
            "{key:?}"
        );
        assert!(
            (got.2 - want.2).abs() <= 1e-6 * want.2.abs().max(1.0),
            "{key:?} sum {} vs {}",
            got.2,
            want.2
        );
    }
}

/// The alerts stored after all the crashes equal those of one uninterrupted `replay` over the
/// acknowledged events (in the order the log holds them: a retried batch is sent before any new
/// one, so acknowledgement order is log order): same ids, final states, peak scores, sequences.
fn check_alerts(platform: &Platform, acknowledged: &[Event], dir: &std::path::Path) {
    let input = dir.join("acknowledged.jsonl");
    std::fs::write(&input, ndjson(acknowledged)).unwrap();
    let config = dir.join("replay.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    let alerts_file = dir.join("alerts.ndjson");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["replay", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&input)
        .args([
            "--output",
            &dir.join("replay.csv").display().to_string(),
            "--alerts",
        ])
        .arg(&alerts_file)
        .status()
        .unwrap();
    assert!(status.success());
    let mut expected: BTreeMap<String, (String, String, u64)> = BTreeMap::new();
    for line in std::fs::read_to_string(&alerts_file).unwrap().lines() {
        let a: serde_json::Value = serde_json::from_str(line).unwrap();
        let summary = (
            a["state"].to_string(),
            a["peak_score"].to_string(),
            a["sequence"].as_u64().unwrap(),
        );
        expected.insert(a["id"].as_str().unwrap().to_string(), summary);
    }
    let body = stored_alerts(platform, acknowledged);
    let stored: BTreeMap<String, (String, String, u64)> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let summary = (
                a["state"].to_string(),
                a["peak_score"].to_string(),
                a["sequence"].as_u64().unwrap(),
            );
            (a["id"].as_str().unwrap().to_string(), summary)
        })
        .collect();
    eprintln!("{} alerts, as in an uninterrupted run", expected.len());
    assert!(
        expected.len() >= 5,
        "the spikes must raise alerts: {expected:?}"
    );
    assert_eq!(stored, expected);
}

/// Every stored alert whose episode overlaps the acknowledged events' time span (one page).
fn stored_alerts(platform: &Platform, acknowledged: &[Event]) -> serde_json::Value {
    let min_ts = acknowledged.iter().map(|e| e.1).min().unwrap();
    let max_ts = acknowledged.iter().map(|e| e.1).max().unwrap();
    let (code, body) = platform.get(&format!(
        "/alerts?start={}&end={}&limit=10000",
        min_ts - 60_000,
        max_ts + 60_000
    ));
    assert_eq!(code, 200, "{body}");
    body
}

/// One alert episode of the `z` detector, as the brute-force oracle sees it.
#[derive(Debug, Clone, PartialEq)]
struct Episode {
    metric: String,
    first_ts: i64,
    last_ts: i64,
    resolved_ts: Option<i64>,
    severity: &'static str,
    sequence: u64,
    peak: f64,
}

/// The `z` detector of CONFIG by brute force, from the README's definition: each point of a
/// metric (in log order) scores |x - mean| / σ over the last n = 50 points before it (population
/// σ, both recomputed from scratch), once 20 points are there, and before that, from 5 points on,
/// the robust warm-up score; a score of 10 opens (or, within
/// the 1 s cooldown after a resolution, re-opens) an alert, 30 makes it critical, 5 normal points
/// in a row resolve it. Every transition adds one to the sequence.
fn brute_force_z(acknowledged: &[Event]) -> Vec<Episode> {
    let (warning, critical, resolve_after, cooldown) = (10.0, 30.0, 5, 1_000);
    let mut metrics: Vec<&str> = acknowledged.iter().map(|e| e.0.as_str()).collect();
    metrics.sort();
    metrics.dedup();
    let mut episodes = Vec::new();
    for metric in metrics {
        let mut history: Vec<f64> = Vec::new();
        let mut current: Option<Episode> = None;
        let mut normal_run = 0;
        for (_, ts, x) in acknowledged.iter().filter(|e| e.0 == metric) {
            let (ts, x) = (*ts, *x);
            if history.len() >= 5 {
                let standard = |deviation: f64, sigma: f64| {
                    if sigma > 0.0 {
                        deviation / sigma
                    } else if deviation == 0.0 {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                };
                let score = if history.len() >= 20 {
                    let last = &history[history.len().saturating_sub(50)..];
                    let mean = last.iter().sum::<f64>() / last.len() as f64;
                    let var =
                        last.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / last.len() as f64;
                    standard((x - mean).abs(), var.sqrt())
                } else {
                    // The robust warm-up: median and MAD of the points so far, the score divided
                    // by a factor falling from 8 (after 5 points) to 1 (at min_points 20).
                    let median = |v: &mut Vec<f64>| {
                        v.sort_by(f64::total_cmp);
                        let n = v.len();
                        if n % 2 == 1 {
                            v[n / 2]
                        } else {
                            (v[n / 2 - 1] + v[n / 2]) / 2.0
                        }
                    };
                    let center = median(&mut history.clone());
                    let mut deviations: Vec<f64> =
                        history.iter().map(|v| (v - center).abs()).collect();
                    let mad = median(&mut deviations);
                    let sigma = if mad > 0.0 {
                        1.4826 * mad
                    } else {
                        1.2533 * deviations.iter().sum::<f64>() / deviations.len() as f64
                    };
                    let factor = 1.0 + 7.0 * (20 - history.len()) as f64 / 15.0;
                    standard((x - center).abs(), sigma) / factor
                };
                let severity = if score >= critical {
                    Some("critical")
                } else if score >= warning {
                    Some("warning")
                } else {
                    None
                };
                let firing = current.as_ref().is_some_and(|e| e.resolved_ts.is_none());
                match (severity, current.as_mut()) {
                    (Some(sev), Some(e))
                        if firing || ts < e.resolved_ts.unwrap_or(i64::MIN) + cooldown =>
                    {
                        normal_run = 0;
                        e.last_ts = e.last_ts.max(ts);
                        e.peak = e.peak.max(score);
                        let escalates = sev == "critical" && e.severity == "warning";
                        if escalates {
                            e.severity = sev;
                        }
                        if escalates || !firing {
                            e.resolved_ts = None;
                            e.sequence += 1;
                        }
                    }
                    (Some(sev), _) => {
                        normal_run = 0;
                        episodes.extend(current.take());
                        current = Some(Episode {
                            metric: metric.to_string(),
                            first_ts: ts,
                            last_ts: ts,
                            resolved_ts: None,
                            severity: sev,
                            sequence: 0,
                            peak: score,
                        });
                    }
                    (None, Some(e)) if firing => {
                        normal_run += 1;
                        if normal_run >= resolve_after {
                            // Never before the episode's last anomalous point.
                            e.resolved_ts = Some(ts.max(e.last_ts));
                            e.sequence += 1;
                        }
                    }
                    (None, _) => {}
                }
            }
            history.push(x);
        }
        episodes.extend(current);
    }
    episodes
}

/// The stored alerts of the `z` detector equal the brute-force detector's episodes.
fn check_z_alerts(platform: &Platform, acknowledged: &[Event]) {
    let mut expected = brute_force_z(acknowledged);
    let body = stored_alerts(platform, acknowledged);
    let mut stored: Vec<Episode> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["detector"] == "z")
        .map(|a| Episode {
            metric: a["metric_id"].as_str().unwrap().to_string(),
            first_ts: a["first_ts"].as_i64().unwrap(),
            last_ts: a["last_ts"].as_i64().unwrap(),
            resolved_ts: a["resolved_ts"].as_i64(),
            severity: if a["severity"] == "critical" {
                "critical"
            } else {
                "warning"
            },
            sequence: a["sequence"].as_u64().unwrap(),
            peak: a["peak_score"].as_f64().unwrap(),
        })
        .collect();
    let order = |e: &Episode| (e.metric.clone(), e.first_ts);
    expected.sort_by_key(order);
    stored.sort_by_key(order);
    assert!(
        expected.len() >= 3,
        "the spikes must raise z alerts: {expected:?}"
    );
    assert_eq!(
        stored.len(),
        expected.len(),
        "stored {stored:#?}\nexpected {expected:#?}"
    );
    for (got, want) in stored.iter().zip(&expected) {
        // Scores are compared with a tolerance: the detector keeps running sums, the oracle
        // recomputes every point from scratch.
        assert!(
            (got.peak - want.peak).abs() <= 1e-6 * want.peak.abs().max(1.0),
            "peak {got:?} vs {want:?}"
        );
        assert_eq!(
            Episode {
                peak: 0.0,
                ..got.clone()
            },
            Episode {
                peak: 0.0,
                ..want.clone()
            }
        );
    }
    eprintln!(
        "{} z alerts, as the brute-force detector finds",
        expected.len()
    );
}
