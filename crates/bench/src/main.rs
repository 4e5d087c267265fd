//! `streampulse-bench`: prints events/s per core and peak memory for
//! (a) the engine alone over events already in the embedded log (also with churning metric ids
//!     and a state TTL, `--churn-secs` and `--state-ttl-secs`: BENCHMARKS.md (i)), and
//! (b) the whole platform through HTTP ingest (a child `streampulse run`, fsync on; `--metrics
//!     on|off` sets the child's `metrics.enabled`, to measure what the Prometheus metrics cost), and
//! (c) end-to-end alert latency through that platform ([`alert_latency`]), and
//! (e) the serving API under load: `wrk` against `GET /metrics` while ingest runs, and WebSocket
//!     delivery latency to many clients ([`serving`]), and
//! (g) a job on Kafka: consuming throughput, end-to-end latency and failover time of real
//!     `streampulse run` workers in one consumer group ([`kafka`]), and
//! (k) the result stores side by side, embedded and Cassandra: writes per second and per
//!     CPU-second, and query latency ([`store`]; the engine mode takes `--store cassandra` too).
//!
//! Inputs are the reference events (testdata/public.jsonl.gz) repeated with event time shifted by
//! the file's span per copy, so every copy has the same disorder and lateness as the original.
//! Numbers go to stdout as one line per run; BENCHMARKS.md records them with the command.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use streampulse_core::event::{Event, EventFormat};
use streampulse_core::job::{Job, JobSpec};
use streampulse_core::window::{WindowSpec, WindowType};
use streampulse_engine::jobs::{EmbeddedLauncher, JobLauncher};
use streampulse_engine::shared_log::SharedLog;
use streampulse_engine::{record, InitialPosition, Runtime, StartFrom};
use streampulse_log::{EmbeddedLog, FsyncPolicy, LogConfig};

mod alert_latency;
mod kafka;
mod serving;
mod store;

/// The allocator the `streampulse` binary ships with, so the engine mode measures what runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Args {
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Engine)]
    mode: Mode,
    /// Window job: tumbling (10 s) or sliding (30 s every 10 s).
    #[arg(long, value_enum, default_value_t = JobKind::Tumbling)]
    job: JobKind,
    /// Events to process (the input is repeated as needed); default 2,000,000, and 1,000,000
    /// for kafka-throughput (each run leaves its topic in the broker).
    #[arg(long)]
    events: Option<usize>,
    #[arg(long, default_value = "testdata/public.jsonl.gz")]
    input: PathBuf,
    /// HTTP mode: concurrent client connections and events per request.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 2_000)]
    batch: usize,
    /// HTTP mode: log partitions of the platform.
    #[arg(long, default_value_t = 2)]
    partitions: u32,
    /// Alert-latency mode: anomalous events sent (one fresh metric each).
    #[arg(long, default_value_t = 100)]
    spikes: usize,
    /// HTTP mode: the child's `metrics.enabled`. `on` serves the exposition on a free loopback
    /// port and the bench scrapes it every second during the run, as a (busy) Prometheus would.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    metrics: Switch,
    /// api-load mode: `wrk` connections (2 threads).
    #[arg(long, default_value_t = 32)]
    wrk_connections: usize,
    /// api-load mode: seconds of each `wrk` run (default 15); kafka-latency: seconds of the
    /// steady stream (default 30).
    #[arg(long)]
    duration: Option<u64>,
    /// api-load mode: events/s of the background ingest stream.
    #[arg(long, default_value_t = 20_000)]
    ingest_rate: usize,
    /// ws-latency mode: connected WebSocket clients, and windows fired.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// ws-latency mode: events/s of other metrics ingested meanwhile (default 0: none). With a
    /// background, the job is the default job (its windows and detectors) plus the probe's 1 s
    /// window, rounds start every 100 ms, and each round first posts its share of background
    /// events, all inside the window the round fires: so a round's POST fires that window for
    /// every background metric of its partition, as a steady stream below capacity would.
    #[arg(long, default_value_t = 0)]
    background_rate: u64,
    /// ws-latency mode: the distinct metrics of the background.
    #[arg(long, default_value_t = 10_000)]
    background_metrics: usize,
    /// ws-latency mode: the server's `checkpoint.interval` in milliseconds (default: its own).
    #[arg(long)]
    checkpoint_interval_ms: Option<u64>,
    /// ws-latency mode: writes every round as a CSV line
    /// (`round,started_unix_ms,latency_ms,ingest_ack_ms`: the window's second, when the round
    /// started, the slowest client's latency, the answer time of the POST that fired it) to this
    /// file, to line rounds up with the server's log.
    #[arg(long)]
    rounds_out: Option<std::path::PathBuf>,
    /// Engine mode: jobs reading the same log, each at its own offsets (as jobs submitted with
    /// POST /jobs do), each with its own store rows and checkpoints.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Engine mode: the job's `state_ttl`, in seconds (default: off).
    #[arg(long)]
    state_ttl_secs: Option<u64>,
    /// Engine mode: metric ids churn: each id of the input lives this many seconds of event time
    /// (`<id>~<ts / churn>`), as short-lived containers or per-request ids do (default: off).
    #[arg(long)]
    churn_secs: Option<u64>,
    /// Kafka modes: bootstrap servers of the broker (`deploy/local/services.sh start kafka`
    /// starts one on this address).
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Kafka modes: partitions of the fresh events topic (and of its output topics).
    #[arg(long, default_value_t = 12)]
    topic_partitions: i32,
    /// kafka-throughput and kafka-latency: `streampulse run` workers in the consumer group
    /// (kafka-failover always runs 2).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// kafka-latency and kafka-failover: events/s of the steady stream (ts = wall clock).
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Kafka modes: an extra librdkafka property for the workers (`kafka.properties`), as
    /// KEY=VALUE; repeatable.
    #[arg(long = "worker-property")]
    worker_properties: Vec<String>,
    /// Kafka modes: the workers run with `kafka.exactly_once: true`, and kafka-latency's reader
    /// of the results topic is read_committed.
    #[arg(long)]
    exactly_once: bool,
    /// Engine and store modes: the result store written.
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    store: StoreKind,
    /// `--store cassandra`: a contact point (`deploy/local/services.sh start cassandra` starts a
    /// node here); each run writes a fresh keyspace.
    #[arg(long, default_value = "127.0.0.1:9042")]
    cassandra: String,
    /// Store mode: metrics written, each with one day of 10 s windows (8,640 rows).
    #[arg(long, default_value_t = 100)]
    store_metrics: usize,
    /// HTTP and api-load modes: the server's `log.cache_bytes`, in MiB (default: the server's).
    #[arg(long)]
    log_cache_mib: Option<usize>,
    /// HTTP and api-load modes: the server's `store.cache_bytes`, in MiB (default: the
    /// server's).
    #[arg(long)]
    store_cache_mib: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum StoreKind {
    Embedded,
    Cassandra,
}

impl Args {
    fn events_or(&self, default: usize) -> usize {
        self.events.unwrap_or(default)
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Switch {
    On,
    Off,
}

impl Switch {
    fn name(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Engine,
    Http,
    /// Cost per point of each detector, in isolation.
    Detectors,
    /// Time from an anomalous event to its alert in the store and at a webhook.
    AlertLatency,
    /// `wrk` against `GET /metrics` (one metric over an hour; all metrics over 10 s) while
    /// ingest runs.
    ApiLoad,
    /// Time from the POST that fires a window to its result at each of `--clients` WebSocket
    /// clients.
    WsLatency,
    /// Events/s of `--workers` workers draining a topic filled beforehand.
    KafkaThroughput,
    /// Time from a window's end to its result on the results topic, under a steady stream.
    KafkaLatency,
    /// Time until the survivor of 2 workers runs the partitions of one that was SIGKILLed.
    KafkaFailover,
    /// Rows written per second into `--store`, then query latency against them.
    Store,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum JobKind {
    Tumbling,
    Sliding,
    /// The tumbling job plus the default raw-value detectors (z-score and EWMA).
    TumblingDetectors,
    /// The job `streampulse run` runs without a config: tumble_10s and tumble_1m with stddev,
    /// first, last and percentiles, and the raw z-score and EWMA detectors.
    Default,
}

impl JobKind {
    fn name(self) -> &'static str {
        match self {
            Self::Tumbling => "tumbling_10s",
            Self::Sliding => "sliding_30s_10s",
            Self::TumblingDetectors => "tumbling_10s+raw_zscore+raw_ewma",
            Self::Default => "default",
        }
    }
}

fn job_spec(kind: JobKind) -> JobSpec {
    if kind == JobKind::Default {
        return JobSpec {
            name: "bench".into(),
            ..JobSpec::default()
        };
    }
    let window = match kind {
        JobKind::Default => unreachable!("returned above"),
        JobKind::Tumbling | JobKind::TumblingDetectors => WindowSpec {
            name: "tumble_10s".into(),
            window_type: WindowType::Tumbling,
            size: Some(Duration::from_secs(10)),
            slide: None,
            gap: None,
            offset: None,
            aggregates: vec![],
        },
        JobKind::Sliding => WindowSpec {
            name: "hop_30s_10s".into(),
            window_type: WindowType::Sliding,
            size: Some(Duration::from_secs(30)),
            slide: Some(Duration::from_secs(10)),
            gap: None,
            offset: None,
            aggregates: vec![],
        },
    };
    let defaults = JobSpec::default();
    let detectors = match kind {
        JobKind::TumblingDetectors => defaults.detectors.clone(),
        _ => vec![],
    };
    JobSpec {
        name: "bench".into(),
        windows: vec![window],
        detectors,
        ..defaults
    }
}

fn load_events(path: &Path, n: usize) -> anyhow::Result<Vec<Event>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let format = EventFormat::default();
    let base: Vec<Event> = reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| format.parse_str(&l).ok())
        .collect();
    anyhow::ensure!(!base.is_empty(), "no events in {}", path.display());
    let span = base.iter().map(|e| e.ts).max().unwrap_or(0)
        - base.iter().map(|e| e.ts).min().unwrap_or(0)
        + 1;
    Ok((0..n)
        .map(|i| {
            let mut e = base[i % base.len()].clone();
            e.ts += span * (i / base.len()) as i64;
            e
        })
        .collect())
}

/// Peak resident memory of a process, from /proc (Linux).
/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat` (in clock
/// ticks, which Linux always reports at 100 per second to user space).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn peak_rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.mode {
        Mode::Detectors => {
            bench_detectors(args.events_or(2_000_000));
            return Ok(());
        }
        Mode::AlertLatency => return alert_latency::run(&args),
        Mode::ApiLoad => return serving::api_load(&args),
        Mode::WsLatency => return serving::ws_latency(&args),
        Mode::KafkaThroughput => return kafka::throughput(&args),
        Mode::KafkaLatency => return kafka::latency(&args),
        Mode::KafkaFailover => return kafka::failover(&args),
        Mode::Store => return store::run(&args),
        Mode::Engine | Mode::Http => {}
    }
    let mut events = load_events(&args.input, args.events_or(2_000_000))?;
    if let Some(churn) = args.churn_secs {
        let churn_ms = (churn.max(1) * 1_000) as i64;
        for e in &mut events {
            e.metric_id = format!("{}~{}", e.metric_id, e.ts.div_euclid(churn_ms));
        }
    }
    match args.mode {
        Mode::Engine => bench_engine(&args, &events),
        Mode::Http => bench_http(&args, &events),
        _ => Ok(()),
    }
}

/// Scores `points` points of one noisy series with each detector at its default parameters.
fn bench_detectors(points: usize) {
    use streampulse_core::detect::ewma::{Ewma, EwmaParams};
    use streampulse_core::detect::mad::{Mad, MadParams};
    use streampulse_core::detect::zscore::{ZScore, ZScoreParams};
    // A deterministic noisy series (xorshift), so runs are comparable.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let series: Vec<f64> = (0..points)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            100.0 + (state % 1000) as f64 / 100.0
        })
        .collect();
    let zp = ZScoreParams {
        n: 120,
        min_points: 30,
        min_std: 0.0,
    };
    let mut z = ZScore::default();
    let started = Instant::now();
    let mut anomalies = 0usize;
    for &x in &series {
        anomalies += z.observe(&zp, x).is_some_and(|(s, _)| s >= 10.0) as usize;
    }
    let zscore_ns = started.elapsed().as_nanos() as f64 / points as f64;
    let ep = EwmaParams {
        alpha: 0.1,
        warmup: 30,
    };
    let mut e = Ewma::default();
    let started = Instant::now();
    for &x in &series {
        anomalies += e.observe(&ep, x).is_some_and(|(s, _)| s >= 10.0) as usize;
    }
    let ewma_ns = started.elapsed().as_nanos() as f64 / points as f64;
    let mp = MadParams {
        n: 60,
        min_points: 10,
        min_std: 0.0,
    };
    let mut m = Mad::default();
    let started = Instant::now();
    for &x in &series {
        anomalies += m.observe(&mp, x).is_some_and(|(s, _)| s >= 10.0) as usize;
    }
    let mad_ns = started.elapsed().as_nanos() as f64 / points as f64;
    println!("mode=detectors points={points} zscore_n120_ns_per_point={zscore_ns:.1} ewma_ns_per_point={ewma_ns:.1} mad_n60_ns_per_point={mad_ns:.1} anomalies={anomalies}");
}

/// (a) One partition, one worker thread per job: events are appended first (not timed), then
/// the real runtimes read, decode, aggregate and upsert results until each has drained the log.
/// With `--jobs N`, N jobs read the one log through `SharedLog`, as submitted jobs do.
fn bench_engine(args: &Args, events: &[Event]) -> anyhow::Result<()> {
    let spec = JobSpec {
        state_ttl: args.state_ttl_secs.map(Duration::from_secs),
        ..job_spec(args.job)
    };
    let dir = tempfile::tempdir()?;
    let log = EmbeddedLog::open(
        &dir.path().join("log"),
        LogConfig {
            partitions: 1,
            fsync: FsyncPolicy::Never,
            retention_age: None,
            ..LogConfig::default()
        },
    )?;
    for chunk in events.chunks(50_000) {
        let records = chunk
            .iter()
            .map(|e| Ok((0, record::encode_event(e)?)))
            .collect::<Result<Vec<_>, record::RecordError>>()?;
        log.append_blocking(records, None)?;
    }
    let (store, store_name) = store::open(args, dir.path())?;
    let node = store::cassandra_pid().filter(|_| args.store == StoreKind::Cassandra);
    let node_cpu = node.map_or(0.0, serving::cpu_seconds);
    let self_cpu = serving::cpu_seconds(std::process::id());
    // Started as `streampulse run` starts every job of an embedded process.
    let launcher = EmbeddedLauncher {
        log: SharedLog::new(log),
        store,
        storage_url: dir.path().join("chk").display().to_string(),
        storage_options: Default::default(),
        retain: 3,
        checkpoint_interval: Duration::from_secs(5),
        webhooks: Vec::new(),
    };
    let jobs = args.jobs.max(1);
    let started = Instant::now();
    let mut runtimes = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let mut spec = spec.clone();
        if jobs > 1 {
            spec.name = format!("{}_{i}", spec.name);
        }
        let job: Job = spec.validate()?;
        runtimes.push(launcher.launch(
            job,
            StartFrom::LatestCheckpoint,
            InitialPosition::Earliest,
        )?);
    }
    let total = events.len() as u64;
    let drained = |r: &Runtime| {
        r.counters().partitions[0]
            .next_offset
            .load(std::sync::atomic::Ordering::Relaxed)
            >= total
    };
    while !runtimes.iter().all(drained) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    // Every thread of the runs (partitions, write-behind, checkpoints, the log) until drained:
    // the partition thread is not the only one working, so wall time per job is not per core.
    let run_cpu = serving::cpu_seconds(std::process::id()) - self_cpu;
    for runtime in &runtimes {
        runtime.shutdown()?;
    }
    let status = runtimes[0].status();
    let state_bytes = status.last_checkpoint.as_ref().map_or(0, |c| c.bytes);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "mode=engine store={store_name} job={} state_ttl_secs={} churn_secs={} jobs={jobs} events={} seconds={:.3} events_per_sec_per_job={:.0} events_per_sec_per_core={:.0} events_per_cpu_sec={:.0} results_per_job={} late={} checkpoint_state_bytes={state_bytes} bench_process_cpu_sec={:.1} store_node_cpu_sec={:.1} bench_process_peak_rss_mib={:.1} (includes the input held in memory)",
        args.job.name(),
        args.state_ttl_secs
            .map_or("off".to_string(), |s| s.to_string()),
        args.churn_secs.map_or("off".to_string(), |s| s.to_string()),
        total,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        (total * jobs as u64) as f64 / elapsed.as_secs_f64() / jobs.min(cores) as f64,
        (total * jobs as u64) as f64 / run_cpu.max(1e-9),
        status.partitions[0].results,
        status.partitions[0].late_events,
        serving::cpu_seconds(std::process::id()) - self_cpu,
        node.map_or(0.0, serving::cpu_seconds) - node_cpu,
        peak_rss_kib("self").unwrap_or(0) as f64 / 1024.0,
    );
    Ok(())
}

/// Starts a child `streampulse run` (the binary next to this one) with `config` (JSON, which is
/// YAML) and its data under `dir`; returns once `/readyz` answers 200.
fn spawn_platform(
    dir: &Path,
    config: &Value,
) -> anyhow::Result<(std::process::Child, String, ureq::Agent)> {
    let (mut child, base) = launch_platform(dir, config)?;
    let agent = http_agent();
    if let Err(e) = wait_ready(&mut child, &base, &agent) {
        stop_platform(&mut child);
        return Err(e);
    }
    Ok((child, base, agent))
}

/// An HTTP client that returns error statuses as answers (the bench checks them itself).
fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Starts a child `streampulse run` like [`spawn_platform`] without waiting for it, so that
/// several can start at once; returns it and its API's base URL.
fn launch_platform(dir: &Path, config: &Value) -> anyhow::Result<(std::process::Child, String)> {
    let exe = std::env::current_exe()?.with_file_name("streampulse");
    anyhow::ensure!(
        exe.exists(),
        "{} not found: build it with `cargo build --release`",
        exe.display()
    );
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, serde_json::to_string(config)?)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let child = Command::new(&exe)
        .args(["run", "--config"])
        .arg(&config_path)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.join("data"))
        // `STREAMPULSE_BENCH_SERVER_LOG` (a `RUST_LOG` filter) shows more of the server's log.
        .env(
            "RUST_LOG",
            std::env::var("STREAMPULSE_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()?;
    Ok((child, base))
}

/// Waits until the child's `/readyz` answers 200; fails (leaving the child to the caller) if it
/// exits or is not ready within 30 s.
fn wait_ready(
    child: &mut std::process::Child,
    base: &str,
    agent: &ureq::Agent,
) -> anyhow::Result<()> {
    let ready = Instant::now();
    while agent
        .get(&format!("{base}/readyz"))
        .call()
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(30) && child.try_wait()?.is_none(),
            "platform did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Stops the child with SIGINT (a clean shutdown: final checkpoint) and waits for it.
fn stop_platform(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}

/// Sets the child server's page caches that `args` names (`--log-cache-mib`,
/// `--store-cache-mib`).
fn server_caches(args: &Args, config: &mut Value) {
    if let Some(mib) = args.log_cache_mib {
        config["log"]["cache_bytes"] = json!(mib << 20);
    }
    if let Some(mib) = args.store_cache_mib {
        config["store"] = json!({ "cache_bytes": mib << 20 });
    }
}

/// (b) A child `streampulse run` (fsync always) fed by concurrent HTTP clients; timed from the
/// first request until every event has been processed by the engine.
fn bench_http(args: &Args, events: &[Event]) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let spec = job_spec(args.job);
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut config = json!({
        "log": { "partitions": args.partitions },
        "metrics": {
            "enabled": args.metrics == Switch::On,
            "listen": format!("127.0.0.1:{metrics_port}"),
        },
        "job": serde_json::to_value(&spec)?,
    });
    server_caches(args, &mut config);
    let (mut child, base, agent) = spawn_platform(dir.path(), &config)?;
    // With metrics on, a scraper polls the exposition every second until the run ends.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let scraper = (args.metrics == Switch::On).then(|| {
        let (running, agent) = (running.clone(), agent.clone());
        let url = format!("http://127.0.0.1:{metrics_port}/metrics");
        std::thread::spawn(move || {
            let mut scrapes = 0u64;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let ok = agent
                    .get(&url)
                    .call()
                    .ok()
                    .and_then(|mut r| (r.status() == 200).then(|| r.body_mut().read_to_string()))
                    .is_some_and(|body| {
                        body.is_ok_and(|b| b.contains("streampulse_events_accepted_total"))
                    });
                scrapes += u64::from(ok);
                std::thread::sleep(Duration::from_secs(1));
            }
            scrapes
        })
    });
    let bodies = events
        .chunks(args.batch)
        .map(|c| {
            c.iter()
                .map(|e| Ok(serde_json::to_string(e)? + "\n"))
                .collect::<Result<String, serde_json::Error>>()
        })
        .collect::<Result<Vec<String>, _>>()?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_at_start = cpu_seconds(&child.id().to_string()).unwrap_or(f64::NAN);
    let started = Instant::now();
    let mut latencies = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.connections)
            .map(|_| {
                let (bodies, next, agent, base) =
                    (bodies.clone(), next.clone(), agent.clone(), base.clone());
                s.spawn(move || {
                    let mut lat = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(body) = bodies.get(i) else { break };
                        let t = Instant::now();
                        let ok = agent
                            .post(&format!("{base}/events"))
                            .header("content-type", "application/x-ndjson")
                            .send(body.as_str())
                            .map(|r| r.status() == 200)
                            .unwrap_or(false);
                        assert!(ok, "ingest failed");
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        for h in handles {
            latencies.extend(h.join().unwrap_or_default());
        }
    });
    let acked = started.elapsed();
    let checkpoints_at_drain = loop {
        let status: Value = agent
            .get(&format!("{base}/jobs/bench"))
            .call()?
            .body_mut()
            .read_json()?;
        let done = status["partitions"].as_array().is_some_and(|ps| {
            ps.iter().all(|p| p["next_offset"] == p["log_end_offset"])
                && status["ingest_accepted"] == events.len()
        });
        if done {
            break status["checkpoints_completed"].as_u64().unwrap_or(0);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    // The store may still hold results it has not written (it writes behind, up to a cap): the
    // next checkpoint's flush writes them all. The CPU and memory are read after it, so that a
    // build leaving more of that work pending at the drain does not look cheaper.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let status: Value = agent
            .get(&format!("{base}/jobs/bench"))
            .call()?
            .body_mut()
            .read_json()?;
        if status["checkpoints_completed"].as_u64().unwrap_or(0) > checkpoints_at_drain {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rss = peak_rss_kib(&child.id().to_string()).unwrap_or(0);
    let server_cpu = cpu_seconds(&child.id().to_string()).unwrap_or(f64::NAN) - cpu_at_start;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let scrapes = scraper.map_or(0, |h| h.join().unwrap_or(0));
    // With metrics on: the server's time from the start of a batch that fired windows to its
    // results stored and on the live feed, under this load.
    let publish = (args.metrics == Switch::On)
        .then(|| {
            let url = format!("http://127.0.0.1:{metrics_port}/metrics");
            let text = agent.get(&url).call().ok()?.body_mut().read_to_string().ok()?;
            serving::histogram_quantiles(&text, "streampulse_result_publish_seconds")
        })
        .flatten()
        .map_or(String::new(), |(p50, p99, n)| {
            format!(" server_publish_batches={n} server_publish_p50_le_ms={p50} server_publish_p99_le_ms={p99}")
        });
    stop_platform(&mut child);
    latencies.sort();
    let pct =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "mode=http job={} metrics={} scrapes={scrapes} events={} connections={} batch={} partitions={} seconds={:.3} events_per_sec={:.0} events_per_sec_per_core={:.0} (cores={cores}, shared with the client) server_cpu_seconds={server_cpu:.2} events_per_server_cpu_sec={:.0} ack_seconds={:.3} request_p50_ms={:.2} request_p99_ms={:.2} server_peak_rss_mib={:.1}{publish}",
        args.job.name(),
        args.metrics.name(),
        events.len(),
        args.connections,
        args.batch,
        args.partitions,
        elapsed.as_secs_f64(),
        events.len() as f64 / elapsed.as_secs_f64(),
        events.len() as f64 / elapsed.as_secs_f64() / cores as f64,
        events.len() as f64 / server_cpu,
        acked.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        rss as f64 / 1024.0,
    );
    Ok(())
}
