//! (e) The serving API of a child `streampulse run`:
//!
//! - [`api_load`]: `wrk` against two `GET /metrics` queries over one hour of 10 s windows for
//!   1,000 metrics, while a background thread keeps ingesting at a fixed rate;
//! - [`ws_latency`]: `--clients` WebSocket clients subscribed to one window of one metric; windows
//!   fire at known moments (out-of-orderness 0, so the POST of the event that moves the watermark
//!   past a window's end fires it) and each client's receipt of each result is timed from just
//!   before that POST. With `--background-rate`, other metrics stream in meanwhile at a steady
//!   rate, so each POST also fires their windows: the latency of a platform below capacity.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use streampulse_core::clock::now_ms;

use serde_json::{json, Value};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

use crate::{job_spec, server_caches, spawn_platform, stop_platform, Args, JobKind};

const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// api-load: metrics and the history filled before the queries.
const METRICS: usize = 1_000;
const HISTORY_MS: i64 = 3_600_000;
const WINDOW_MS: i64 = 10_000;
/// Events per metric per 10 s window in the history.
const EVENTS_PER_WINDOW: i64 = 2;

fn metric(i: usize) -> String {
    format!("load-{i:04}")
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

fn get_json(agent: &ureq::Agent, url: &str) -> anyhow::Result<Value> {
    Ok(agent.get(url).call()?.body_mut().read_json()?)
}

/// Waits until the engine has read everything in the log.
fn wait_processed(agent: &ureq::Agent, base: &str, job: &str) -> anyhow::Result<()> {
    let waited = Instant::now();
    loop {
        let status = get_json(agent, &format!("{base}/jobs/{job}"))?;
        if status["partitions"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["next_offset"] == p["log_end_offset"]))
        {
            return Ok(());
        }
        anyhow::ensure!(waited.elapsed() < WAIT_LIMIT, "ingest not processed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `wrk --latency` printed, reduced to the numbers the bench reports.
struct WrkResult {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
    socket_errors: String,
}

/// `1.23ms`, `456.00us`, `1.02s`, `2.00m` -> milliseconds.
fn wrk_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse_wrk(out: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult {
        requests_per_sec: f64::NAN,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        non_2xx: 0,
        socket_errors: "none".into(),
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.requests_per_sec = v.parse()?,
            ["50%", v] => r.p50_ms = wrk_ms(v).unwrap_or(f64::NAN),
            ["99%", v] => r.p99_ms = wrk_ms(v).unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => r.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse()?,
            ["Socket", "errors:", rest @ ..] => r.socket_errors = rest.join(" "),
            _ => {}
        }
    }
    anyhow::ensure!(
        r.requests_per_sec.is_finite() && r.p99_ms.is_finite(),
        "could not parse wrk output:\n{out}"
    );
    Ok(r)
}

fn run_wrk(
    url: &str,
    threads: usize,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<WrkResult> {
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("running wrk ({e}): install it with `apt-get install -y wrk`")
        })?;
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// CPU time (user + system) a process has used so far, from /proc (Linux; 100 ticks/s).
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of the line: indexes 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// (e1) Query throughput and latency while ingest runs.
pub fn api_load(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = job_spec(JobKind::Tumbling);
    let mut config = json!({
        "log": { "partitions": args.partitions },
        "metrics": { "enabled": false },
        "job": serde_json::to_value(&spec)?,
    });
    server_caches(args, &mut config);
    let (mut child, base, agent) = spawn_platform(dir.path(), &config)?;
    let pid = child.id();
    let result = api_load_measure(args, &base, &agent, &spec.name, pid);
    stop_platform(&mut child);
    result
}

fn api_load_measure(
    args: &Args,
    base: &str,
    agent: &ureq::Agent,
    job: &str,
    server_pid: u32,
) -> anyhow::Result<()> {
    // One hour of history, in event-time order, ending a window before now (so it all closes
    // once live ingest starts at now).
    let now = now_ms();
    let end = now - now % WINDOW_MS;
    let start = end - HISTORY_MS;
    let step = WINDOW_MS / EVENTS_PER_WINDOW;
    let mut body = String::new();
    let mut filled = 0usize;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut value = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 10_000) as f64 / 100.0
    };
    let fill_started = Instant::now();
    let mut ts = start;
    while ts < end {
        for i in 0..METRICS {
            body += &json!({ "metric_id": metric(i), "ts": ts, "value": value() }).to_string();
            body.push('\n');
            filled += 1;
        }
        if body.len() > 400_000 {
            post(agent, base, &body)?;
            body.clear();
        }
        ts += step;
    }
    if !body.is_empty() {
        post(agent, base, &body)?;
    }
    wait_processed(agent, base, job)?;
    let fill_seconds = fill_started.elapsed().as_secs_f64();

    // Live ingest at `--ingest-rate` events/s (ts = wall clock, every metric in turn), one
    // request every 100 ms, until the queries are done.
    let running = Arc::new(AtomicBool::new(true));
    let ingested = Arc::new(AtomicU64::new(0));
    let ingest = {
        let (running, ingested, agent, base) = (
            running.clone(),
            ingested.clone(),
            agent.clone(),
            base.to_string(),
        );
        let per_tick = args.ingest_rate / 10;
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut next_metric = 0usize;
            let mut tick = Instant::now();
            while running.load(Ordering::Relaxed) {
                if per_tick == 0 {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let ts = now_ms();
                let mut body = String::with_capacity(per_tick * 64);
                for k in 0..per_tick {
                    let v = (k % 100) as f64;
                    body += &json!({ "metric_id": metric(next_metric), "ts": ts, "value": v })
                        .to_string();
                    body.push('\n');
                    next_metric = (next_metric + 1) % METRICS;
                }
                post(&agent, &base, &body)?;
                ingested.fetch_add(per_tick as u64, Ordering::Relaxed);
                tick += Duration::from_millis(100);
                if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                } else {
                    tick = Instant::now();
                }
            }
            Ok(())
        })
    };
    // Let the live stream reach the watermark past the history (every window in it closes).
    std::thread::sleep(Duration::from_secs(2));

    let one = metric(7);
    let window_start = start + HISTORY_MS / 2 - (HISTORY_MS / 2) % WINDOW_MS;
    let cases = [
        (
            "one_metric_1h",
            format!("{base}/metrics/{one}?start={start}&end={end}"),
        ),
        (
            "all_metrics_10s",
            format!(
                "{base}/metrics?start={window_start}&end={}&limit={METRICS}",
                window_start + WINDOW_MS
            ),
        ),
    ];
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let duration = args.duration.unwrap_or(15);
    let mut lines = Vec::new();
    for (name, url) in &cases {
        let answer = get_json(agent, url)?;
        let rows = answer["count"].as_u64().unwrap_or(0);
        let bytes = answer.to_string().len();
        let before = ingested.load(Ordering::Relaxed);
        let cpu_before = cpu_seconds(server_pid);
        let t = Instant::now();
        let threads = args.wrk_connections.clamp(1, 2);
        let w = run_wrk(url, threads, args.wrk_connections, duration)?;
        let ingest_rate =
            (ingested.load(Ordering::Relaxed) - before) as f64 / t.elapsed().as_secs_f64();
        let server_cores = (cpu_seconds(server_pid) - cpu_before) / t.elapsed().as_secs_f64();
        lines.push(format!(
            "mode=api_load case={name} rows={rows} body_bytes~{bytes} wrk_threads={threads} connections={} seconds={} requests={} requests_per_sec={:.0} p50_ms={:.2} p99_ms={:.2} non_2xx={} socket_errors=[{}] ingest_events_per_sec_during={ingest_rate:.0} (target {}) server_cpu_cores_used={server_cores:.2} history_events={filled} history_fill_seconds={fill_seconds:.1} partitions={} (cores={cores}, shared by wrk, the ingest client and the server)",
            args.wrk_connections,
            duration,
            w.requests,
            w.requests_per_sec,
            w.p50_ms,
            w.p99_ms,
            w.non_2xx,
            w.socket_errors,
            args.ingest_rate,
            args.partitions,
        ));
    }
    running.store(false, Ordering::Relaxed);
    ingest
        .join()
        .map_err(|_| anyhow::anyhow!("ingest thread panicked"))??;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

/// (e2) WebSocket delivery latency with `--clients` connected clients.
pub fn ws_latency(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let probe_window = json!({ "name": "tumble_1s", "type": "tumbling", "size": "1s" });
    let job = if args.background_rate > 0 {
        let mut job = serde_json::to_value(job_spec(JobKind::Default))?;
        job["max_out_of_orderness"] = json!("0s");
        job["idle_timeout"] = json!("1h");
        if let Some(windows) = job["windows"].as_array_mut() {
            windows.push(probe_window);
        }
        job
    } else {
        json!({
            "name": "bench",
            "max_out_of_orderness": "0s",
            "idle_timeout": "1h",
            "windows": [probe_window],
            "detectors": [],
        })
    };
    let mut config = json!({
        "log": { "partitions": args.partitions },
        // Read once, at the end: the server's own time from batch start to stored and pushed.
        "metrics": { "enabled": true, "listen": format!("127.0.0.1:{metrics_port}") },
        "job": job,
    });
    if let Some(ms) = args.checkpoint_interval_ms {
        config["checkpoint"] = json!({ "interval": format!("{ms}ms") });
    }
    let (mut child, base, agent) = spawn_platform(dir.path(), &config)?;
    let result = ws_measure(args, &base, &agent, &metrics, child.id());
    stop_platform(&mut child);
    result
}

/// The upper bounds (ms) of the buckets holding the 50th and 99th percentile of the histogram
/// `name` in a Prometheus text exposition, and its count.
pub(crate) fn histogram_quantiles(text: &str, name: &str) -> Option<(f64, f64, u64)> {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, u64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let count = l.rsplit(' ').next()?.parse().ok()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    let at = |q: f64| {
        let rank = (total as f64 * q).ceil() as u64;
        buckets
            .iter()
            .find(|(_, c)| *c >= rank)
            .map_or(f64::INFINITY, |(b, _)| b * 1000.0)
    };
    (total > 0).then(|| (at(0.5), at(0.99), total))
}

/// (window_start, instant of receipt) per client.
type Receipts = Arc<Mutex<Vec<(i64, Instant)>>>;

/// Background rounds start this often.
const ROUND: Duration = Duration::from_millis(100);

/// The background stream of ws-latency: `metrics` metrics taking turns, each round's events
/// spread over the first 900 ms of the one second window the round fires.
struct Background {
    metrics: usize,
    next: usize,
    sent: u64,
}

impl Background {
    fn new(metrics: usize) -> Self {
        Self {
            metrics: metrics.max(1),
            next: 0,
            sent: 0,
        }
    }

    /// `n` events in the window starting at `window_start`, as NDJSON bodies of up to 5,000.
    fn bodies(&mut self, window_start: i64, n: usize) -> Vec<String> {
        let mut bodies = Vec::new();
        let mut body = String::new();
        for i in 0..n {
            let metric = self.next % self.metrics;
            self.next += 1;
            // Within the first 900 ms: an event at the window's last millisecond would fire the
            // probe's window itself (the watermark is the newest event time, out-of-orderness 0),
            // before the probe's POST that the round times.
            let ts = window_start + (i as i64 * 900) / n as i64;
            // A value that varies with the metric and the turn, never an anomaly.
            let value = 100.0 + ((self.next * 7919) % 1000) as f64 / 100.0;
            body.push_str(
                &json!({ "metric_id": format!("bg-{metric:05}"), "ts": ts, "value": value })
                    .to_string(),
            );
            body.push('\n');
            if (i + 1) % 5_000 == 0 {
                bodies.push(std::mem::take(&mut body));
            }
        }
        if !body.is_empty() {
            bodies.push(body);
        }
        self.sent += n as u64;
        bodies
    }
}

fn ws_measure(
    args: &Args,
    base: &str,
    agent: &ureq::Agent,
    metrics: &str,
    server_pid: u32,
) -> anyhow::Result<()> {
    const METRIC: &str = "ws-bench";
    let url = format!(
        "{}/ws?metrics={METRIC}&windows=tumble_1s&alerts=false",
        base.replace("http://", "ws://")
    );
    let running = Arc::new(AtomicBool::new(true));
    let mut receipts: Vec<Receipts> = Vec::new();
    let mut threads = Vec::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<()>>();
    for _ in 0..args.clients {
        let got: Receipts = Arc::default();
        receipts.push(got.clone());
        let (url, running, ready) = (url.clone(), running.clone(), ready_tx.clone());
        threads.push(std::thread::spawn(move || -> anyhow::Result<u64> {
            let (mut ws, _) = match tungstenite::connect(&url) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready.send(Err(anyhow::anyhow!("connect: {e}")));
                    return Err(e.into());
                }
            };
            if let MaybeTlsStream::Plain(s) = ws.get_mut() {
                s.set_read_timeout(Some(Duration::from_millis(200)))?;
                s.set_nodelay(true)?;
            }
            let mut lagged = 0u64;
            let mut subscribed = false;
            while running.load(Ordering::Relaxed) {
                let msg = match ws.read() {
                    Ok(m) => m,
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue
                    }
                    Err(e) => return Err(e.into()),
                };
                let at = Instant::now();
                let Message::Text(t) = msg else { continue };
                let v: Value = serde_json::from_str(&t)?;
                match v["type"].as_str() {
                    Some("subscribed") if !subscribed => {
                        subscribed = true;
                        let _ = ready.send(Ok(()));
                    }
                    Some("result") => {
                        if let (Some(ws_start), Ok(mut g)) =
                            (v["window_start"].as_i64(), got.lock())
                        {
                            g.push((ws_start, at));
                        }
                    }
                    Some("lagged") => lagged += v["skipped"].as_u64().unwrap_or(1),
                    _ => {}
                }
            }
            let _ = ws.close(None);
            Ok(lagged)
        }));
    }
    drop(ready_tx);
    for _ in 0..args.clients {
        ready_rx
            .recv_timeout(WAIT_LIMIT)
            .map_err(|_| anyhow::anyhow!("clients did not subscribe"))??;
    }

    // Window k is [t0 + k s, t0 + (k+1) s); its event at +500 ms opens it, and the event of
    // window k+1 moves the watermark past its end (out-of-orderness 0), firing it.
    let now = now_ms();
    let t0 = now - now % 1000;
    let event = |k: i64| {
        json!({ "metric_id": METRIC, "ts": t0 + k * 1000 + 500, "value": k }).to_string() + "\n"
    };
    post(agent, base, &event(0))?;
    std::thread::sleep(Duration::from_millis(50));
    let mut sent: HashMap<i64, Instant> = HashMap::new();
    // When the POST that fires a round's window was answered: its event is in the log then.
    let mut acked: HashMap<i64, Instant> = HashMap::new();
    let mut round_starts: Vec<(i64, i64)> = Vec::new();
    let mut ack = Vec::new();
    let mut incomplete = 0usize;
    let per_round = (args.background_rate / 10) as usize;
    let mut background = Background::new(args.background_metrics);
    let cpu_at_start = cpu_seconds(server_pid);
    let started = Instant::now();
    for k in 1..=args.rounds as i64 {
        let fired = t0 + (k - 1) * 1000;
        let round_started = Instant::now();
        round_starts.push((fired, now_ms()));
        if per_round > 0 {
            for body in background.bodies(fired, per_round) {
                post(agent, base, &body)?;
            }
        }
        let t = Instant::now();
        post(agent, base, &event(k))?;
        ack.push(t.elapsed());
        sent.insert(fired, t);
        acked.insert(fired, Instant::now());
        // Wait until every client has it (so rounds do not queue behind each other).
        let waited = Instant::now();
        loop {
            let have = receipts
                .iter()
                .filter(|r| r.lock().is_ok_and(|g| g.iter().any(|(s, _)| *s == fired)))
                .count();
            if have == args.clients {
                break;
            }
            if waited.elapsed() > Duration::from_secs(5) {
                incomplete += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if per_round > 0 {
            // Rounds start every 100 ms, so the background keeps its rate.
            std::thread::sleep(ROUND.saturating_sub(round_started.elapsed()));
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let elapsed = started.elapsed();
    let background_note = if per_round > 0 {
        let server_cpu = cpu_seconds(server_pid) - cpu_at_start;
        format!(
            " background_events_per_sec={:.0} background_metrics={} server_cpu_cores_used={:.2}",
            background.sent as f64 / elapsed.as_secs_f64(),
            args.background_metrics,
            server_cpu / elapsed.as_secs_f64(),
        )
    } else {
        String::new()
    };
    running.store(false, Ordering::Relaxed);
    let mut lagged = 0u64;
    for t in threads {
        lagged += t
            .join()
            .map_err(|_| anyhow::anyhow!("client thread panicked"))??;
    }
    let mut lat: Vec<Duration> = Vec::new();
    let mut after_ack: Vec<Duration> = Vec::new();
    let mut first_per_round: HashMap<i64, Duration> = HashMap::new();
    let mut last_per_round: HashMap<i64, Duration> = HashMap::new();
    for r in &receipts {
        for (s, at) in r.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter() {
            if let Some(t) = sent.get(s) {
                let d = at.saturating_duration_since(*t);
                lat.push(d);
                if let Some(a) = acked.get(s) {
                    after_ack.push(at.saturating_duration_since(*a));
                }
                let f = first_per_round.entry(*s).or_insert(d);
                *f = (*f).min(d);
                let l = last_per_round.entry(*s).or_insert(d);
                *l = (*l).max(d);
            }
        }
    }
    anyhow::ensure!(!lat.is_empty(), "no results received");
    let pct = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
    };
    // The slowest rounds by when they started (seconds into the run) and their latency: pauses
    // that recur with the checkpoint interval, or with the default job's 10 s windows, show here.
    let mut slowest: Vec<(Duration, i64)> = last_per_round.iter().map(|(s, d)| (*d, *s)).collect();
    slowest.sort_by(|a, b| b.cmp(a));
    let slowest = slowest
        .iter()
        .take(5)
        .map(|(d, s)| format!("{}:{:.0}", (s - t0) / 1000, d.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(",");
    if let Some(path) = &args.rounds_out {
        let mut csv = String::from("round,started_unix_ms,latency_ms,ingest_ack_ms\n");
        for (i, (s, at)) in round_starts.iter().enumerate() {
            let latency = last_per_round
                .get(s)
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
            let acked = ack.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
            csv.push_str(&format!(
                "{},{at},{latency:.2},{acked:.2}\n",
                (s - t0) / 1000
            ));
        }
        std::fs::write(path, csv)?;
    }
    let mut first: Vec<Duration> = first_per_round.into_values().collect();
    let mut last: Vec<Duration> = last_per_round.into_values().collect();
    let expected = args.clients * args.rounds;
    let exposition = agent.get(metrics).call()?.body_mut().read_to_string()?;
    let (publish_p50, publish_p99, publish_batches) =
        histogram_quantiles(&exposition, "streampulse_result_publish_seconds")
            .ok_or_else(|| anyhow::anyhow!("no streampulse_result_publish_seconds in {metrics}"))?;
    let checkpoints = histogram_quantiles(&exposition, "streampulse_checkpoint_duration_seconds")
        .map_or(String::new(), |(p50, p99, n)| {
            format!(" checkpoints={n} checkpoint_p50_le_ms={p50} checkpoint_p99_le_ms={p99}")
        });
    println!(
        "mode=ws_latency clients={} windows={} deliveries={}/{expected} incomplete_rounds={incomplete} lagged_skipped={lagged} partitions={} p50_ms={:.2} p90_ms={:.2} p99_ms={:.2} max_ms={:.2} first_client_p50_ms={:.2} last_client_p50_ms={:.2} last_client_p99_ms={:.2} ingest_ack_p50_ms={:.2} ingest_ack_p99_ms={:.2} after_ack_p50_ms={:.2} after_ack_p99_ms={:.2} server_publish_batches={publish_batches} server_publish_p50_le_ms={publish_p50} server_publish_p99_le_ms={publish_p99}{background_note}{checkpoints} slowest_rounds=[{slowest}] (p50/p99: from just before the POST of the event that fires the window to each client's read of the result, including the HTTP ingest with fsync; after_ack: from the POST's answer, when the event is in the log, to each client's read, so the partition's read, the firing, the store and the push, 0 where the push came first; slowest_rounds: round:ms; server_publish: the server's own histogram from the start of the batch that fired the window to the result stored and on the feed, as the bucket bound holding the percentile; clients, server and bench share {} cores)",
        args.clients,
        args.rounds,
        lat.len(),
        args.partitions,
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.9),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        pct(&mut first, 0.5),
        pct(&mut last, 0.5),
        pct(&mut last, 0.99),
        pct(&mut ack, 0.5),
        pct(&mut ack, 0.99),
        pct(&mut after_ack, 0.5),
        pct(&mut after_ack, 0.99),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    Ok(())
}
