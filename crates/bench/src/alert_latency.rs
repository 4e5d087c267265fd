//! (c) End-to-end alert latency: from sending an anomalous event to a child `streampulse run`
//! until (a) its alert is visible through `GET /alerts` and (b) its webhook delivery reaches a
//! receiver run by this process.
//!
//! Each spike goes to a metric of its own, warmed up beforehand with a steady noisy series, so no
//! metric is already firing (or in cooldown) when its spike arrives. Spikes are sent one at a time:
//! the next one waits until both detectors' firing transitions of the previous one were received,
//! so what is measured is the latency of one alert, not the queueing behind earlier ones.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streampulse_core::clock::now_ms;

use serde_json::{json, Value};
use streampulse_core::detect::{DetectorSpec, DetectorType};
use streampulse_core::job::JobSpec;
use streampulse_core::window::{WindowSpec, WindowType};

use crate::{spawn_platform, stop_platform, Args};

/// Points per metric before its spike: above the detectors' min_points / warmup (20).
const WARMUP_ROUNDS: usize = 30;
/// Time between two warm-up rounds (one point per metric each).
const WARMUP_PERIOD: Duration = Duration::from_millis(100);
const SPIKE_VALUE: f64 = 10_000.0;
/// Both detectors fire on every spike.
const DETECTORS: usize = 2;
const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// One alert transition as received by the webhook receiver.
struct Received {
    at: Instant,
    id: String,
    state: String,
    sequence: u64,
}

impl Received {
    /// The transition that opened the alert (the first one, firing).
    fn opens(&self) -> bool {
        self.state == "firing" && self.sequence == 0
    }
}

type Hooks = Arc<Mutex<HashMap<String, Vec<Received>>>>;

/// A minimal HTTP/1.1 receiver on 127.0.0.1: answers 200 to every request (keep-alive), and records
/// each alert transition with the instant its body was fully read.
fn start_receiver() -> anyhow::Result<(u16, Hooks)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let hooks: Hooks = Arc::default();
    let seen = hooks.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &seen);
            });
        }
    });
    Ok((port, hooks))
}

fn serve(stream: TcpStream, seen: &Hooks) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        // Request line, then headers up to the blank line.
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let at = Instant::now();
        if let Ok(v) = serde_json::from_slice::<Value>(&body) {
            let received = Received {
                at,
                state: v["state"].as_str().unwrap_or_default().to_string(),
                id: v["id"].as_str().unwrap_or_default().to_string(),
                sequence: v["sequence"].as_u64().unwrap_or(u64::MAX),
            };
            let metric = v["metric_id"].as_str().unwrap_or_default().to_string();
            if let Ok(mut seen) = seen.lock() {
                seen.entry(metric).or_default().push(received);
            }
        }
        writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
    }
}

fn job() -> JobSpec {
    let z = DetectorSpec {
        n: Some(50),
        min_points: Some(20),
        cooldown: Some(Duration::ZERO),
        ..DetectorSpec::raw("z", DetectorType::Zscore)
    };
    let e = DetectorSpec {
        warmup: Some(20),
        cooldown: Some(Duration::ZERO),
        ..DetectorSpec::raw("e", DetectorType::Ewma)
    };
    JobSpec {
        name: "bench".into(),
        windows: vec![WindowSpec {
            name: "tumble_10s".into(),
            window_type: WindowType::Tumbling,
            size: Some(Duration::from_secs(10)),
            slide: None,
            gap: None,
            offset: None,
            aggregates: vec![],
        }],
        detectors: vec![z, e],
        ..JobSpec::default()
    }
}

fn post(agent: &ureq::Agent, base: &str, body: &str) -> anyhow::Result<()> {
    let status = agent
        .post(&format!("{base}/events"))
        .header("content-type", "application/x-ndjson")
        .send(body)?
        .status();
    anyhow::ensure!(status == 200, "ingest answered {status}");
    Ok(())
}

/// Whether `GET /alerts` lists a firing alert of `metric` that started at `ts`.
fn alert_visible(agent: &ureq::Agent, base: &str, metric: &str, ts: i64) -> anyhow::Result<bool> {
    let answer: Value = agent
        .get(&format!(
            "{base}/alerts?start={ts}&end={}&metric_id={metric}&state=firing",
            ts + 1
        ))
        .call()?
        .body_mut()
        .read_json()?;
    Ok(answer["alerts"]
        .as_array()
        .is_some_and(|a| a.iter().any(|a| a["first_ts"] == ts)))
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let spikes = args.spikes;
    anyhow::ensure!(spikes > 0, "--spikes must be at least 1");
    let (hook_port, hooks) = start_receiver()?;
    let dir = tempfile::tempdir()?;
    let config = json!({
        "log": { "partitions": args.partitions },
        "checkpoint": { "interval": "5s" },
        "alerts": { "webhooks": [{ "url": format!("http://127.0.0.1:{hook_port}/hook") }] },
        "job": serde_json::to_value(job())?,
    });
    let (mut child, base, agent) = spawn_platform(dir.path(), &config)?;
    let result = measure(spikes, &agent, &base, &hooks);
    stop_platform(&mut child);
    let m = result?;
    let pct = |v: &[Duration], q: f64| {
        let mut v = v.to_vec();
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
    };
    println!(
        "mode=alert_latency spikes={spikes} partitions={} store_p50_ms={:.2} store_p99_ms={:.2} store_max_ms={:.2} store_first_poll_hits={} webhook_p50_ms={:.2} webhook_p99_ms={:.2} webhook_max_ms={:.2} ingest_ack_p50_ms={:.2} ingest_ack_p99_ms={:.2} warmup_false_alerts={} (from just before the spike's POST; store: answer of the first GET /alerts listing it, polled every 1 ms after the ingest answer; webhook: body received; both include the HTTP ingest with fsync and the partition worker's wake-up and batch)",
        args.partitions,
        pct(&m.store, 0.5),
        pct(&m.store, 0.99),
        pct(&m.store, 1.0),
        m.first_poll_hits,
        pct(&m.webhook, 0.5),
        pct(&m.webhook, 0.99),
        pct(&m.webhook, 1.0),
        pct(&m.ack, 0.5),
        pct(&m.ack, 0.99),
        m.false_alerts,
    );
    Ok(())
}

struct Measured {
    store: Vec<Duration>,
    webhook: Vec<Duration>,
    ack: Vec<Duration>,
    false_alerts: usize,
    /// Spikes whose alert was already listed by the first poll after the ingest answer.
    first_poll_hits: usize,
}

fn measure(
    spikes: usize,
    agent: &ureq::Agent,
    base: &str,
    hooks: &Hooks,
) -> anyhow::Result<Measured> {
    let metrics: Vec<String> = (0..spikes).map(|i| format!("alert-bench-{i:04}")).collect();
    // Warm-up: one point per metric per round, ~100 ± 1 (deterministic xorshift noise).
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut last_ts = 0i64;
    for _ in 0..WARMUP_ROUNDS {
        let ts = now_ms().max(last_ts + 1);
        last_ts = ts;
        let body: String = metrics
            .iter()
            .map(|m| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let value = 99.0 + (rng % 2001) as f64 / 1000.0;
                json!({ "metric_id": m, "ts": ts, "value": value }).to_string() + "\n"
            })
            .collect();
        post(agent, base, &body)?;
        std::thread::sleep(WARMUP_PERIOD);
    }
    // Wait until the engine has processed the warm-up.
    let waited = Instant::now();
    loop {
        let status: Value = agent
            .get(&format!("{base}/jobs/bench"))
            .call()?
            .body_mut()
            .read_json()?;
        let done = status["partitions"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["next_offset"] == p["log_end_offset"]))
            && status["ingest_accepted"] == spikes * WARMUP_ROUNDS;
        if done {
            break;
        }
        anyhow::ensure!(waited.elapsed() < WAIT_LIMIT, "warm-up not processed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let false_alerts = hooks.lock().map_or(0, |h| h.len());

    let mut out = Measured {
        store: Vec::with_capacity(spikes),
        webhook: Vec::with_capacity(spikes),
        ack: Vec::with_capacity(spikes),
        false_alerts,
        first_poll_hits: 0,
    };
    for m in &metrics {
        let ts = now_ms().max(last_ts + 1);
        last_ts = ts;
        let body = json!({ "metric_id": m, "ts": ts, "value": SPIKE_VALUE }).to_string() + "\n";
        let sent = Instant::now();
        post(agent, base, &body)?;
        out.ack.push(sent.elapsed());
        // (a) Poll the API until the alert is listed; the instant is when that answer arrived.
        for poll in 0.. {
            if alert_visible(agent, base, m, ts)? {
                out.store.push(sent.elapsed());
                out.first_poll_hits += (poll == 0) as usize;
                break;
            }
            anyhow::ensure!(
                sent.elapsed() < WAIT_LIMIT,
                "no alert for {m} at {ts} after {WAIT_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // (b) The receiver's record of the first firing transition for this metric (of either
        // detector); wait for both, so the next spike does not queue behind this one's.
        loop {
            // Alert id -> first receipt of its opening transition (a redelivery is not counted).
            let mut firing: HashMap<String, Instant> = HashMap::new();
            if let Ok(h) = hooks.lock() {
                for r in h.get(m).into_iter().flatten().filter(|r| r.opens()) {
                    let at = firing.entry(r.id.clone()).or_insert(r.at);
                    *at = (*at).min(r.at);
                }
            }
            if firing.len() >= DETECTORS {
                let first = firing.into_values().min().unwrap_or(sent);
                out.webhook.push(first.saturating_duration_since(sent));
                break;
            }
            anyhow::ensure!(
                sent.elapsed() < WAIT_LIMIT,
                "{} of {DETECTORS} webhook deliveries for {m} after {WAIT_LIMIT:?}",
                firing.len()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(out)
}
