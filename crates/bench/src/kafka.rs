//! (g) A job on Kafka: real `streampulse run` workers (the release binary next to this one), each
//! with its own data directory and one shared checkpoint storage, in one consumer group on fresh
//! topics of the broker `--brokers`:
//!
//! - [`throughput`]: `--events` events are produced to the topic first (keyed by metric id), then
//!   `--workers` workers start; timed from their start until together they have processed every
//!   event. Events/s wall clock and per CPU second of the workers, and their peak memory;
//! - [`latency`]: a 1 s tumbling window (out-of-orderness 0) over a steady stream whose events
//!   carry the wall clock as their time; for every window result read back from the results topic,
//!   the time from the window's end to its receipt;
//! - [`failover`]: 2 workers under a steady stream; one is SIGKILLed; the time until the other
//!   owns every partition and processes the moved ones.
//!
//! It must never reuse a topic: each run creates its own, named after its pid and the clock, so no
//! earlier run's records, offsets or checkpoints can leak into a measurement. It never deletes or
//! writes to a topic it did not create, and never stops a process it did not start (the broker
//! included).

use std::collections::HashMap;
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use streampulse_kafka::admin::{create_topics, TopicOutcome};
use streampulse_kafka::producer::EventProducer;
use streampulse_kafka::KafkaConfig;

use crate::serving::cpu_seconds;
use crate::{
    http_agent, job_spec, launch_platform, load_events, peak_rss_kib, stop_platform, wait_ready,
    Args,
};
use streampulse_core::clock::now_ms;

const JOB: &str = "bench";
/// How long the group may take to assign, or the workers to process what was produced, before
/// the run fails instead of hanging.
const WAIT_LIMIT: Duration = Duration::from_secs(120);
/// How often the workers' status is read while timing: fine enough for runs of seconds, rare
/// enough not to take CPU from the workers on 2 cores.
const POLL: Duration = Duration::from_millis(25);
/// Given to the workers: how long the group waits for a silent worker before moving its
/// partitions. The failover time is mostly this.
const SESSION_TIMEOUT_MS: &str = "6000";
/// The workers' `checkpoint.interval` (the default): how much a moved partition replays.
const CHECKPOINT_INTERVAL: &str = "5s";
/// Metrics of the steady stream (latency, failover).
const STREAM_METRICS: u64 = 50;
/// Failover: how long both workers run (and checkpoint) under the stream before the kill.
const BEFORE_KILL: Duration = Duration::from_secs(8);
/// Latency: how long the reader keeps reading after the stream stops, for the last results.
const DRAIN: Duration = Duration::from_secs(2);

/// A topic name no earlier run used: the broker outlives bench runs.
fn fresh(kind: &str) -> String {
    let nanos = streampulse_core::clock::since_epoch().as_nanos();
    format!("bench-{kind}-{}-{nanos}", std::process::id())
}

fn client(brokers: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_string(),
        ..Default::default()
    }
}

/// The fresh topics of one run, all with the same partition count (outputs are keyed by metric,
/// like the input).
struct Topics {
    events: String,
    dead_letter: String,
    results: String,
}

impl Topics {
    fn create(brokers: &str, kind: &str, partitions: i32) -> anyhow::Result<Self> {
        let events = fresh(kind);
        let topics = Topics {
            dead_letter: format!("{events}.dlq"),
            results: format!("{events}.results"),
            events,
        };
        let wanted: Vec<(String, i32)> = [&topics.events, &topics.dead_letter, &topics.results]
            .into_iter()
            .map(|t| (t.clone(), partitions))
            .collect();
        for (name, outcome) in create_topics(&client(brokers), &wanted, 1)? {
            // Anything but a new topic would mean records this run did not produce.
            anyhow::ensure!(
                outcome == TopicOutcome::Created,
                "topic {name}: {outcome:?}"
            );
        }
        Ok(topics)
    }
}

/// The configuration every worker of a run gets: the same topics, group and checkpoint storage.
fn worker_config(
    args: &Args,
    topics: &Topics,
    checkpoints: &Path,
    job: Value,
) -> anyhow::Result<Value> {
    let mut properties = json!({ "session.timeout.ms": SESSION_TIMEOUT_MS });
    for kv in &args.worker_properties {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--worker-property {kv}: expected KEY=VALUE"))?;
        properties[k] = v.into();
    }
    Ok(json!({
        "kafka": {
            "brokers": args.brokers,
            "topic": topics.events,
            "dead_letter_topic": topics.dead_letter,
            "results_topic": topics.results,
            "exactly_once": args.exactly_once,
            "properties": properties,
        },
        "checkpoint": {
            "interval": CHECKPOINT_INTERVAL,
            "storage": format!("file://{}", checkpoints.display()),
        },
        // Off: every worker would bind the same default metrics port.
        "metrics": { "enabled": false },
        "job": job,
    }))
}

/// Latency and failover: windows close as soon as an event passes their end, and only then (no
/// idle flush during the run), so a result's time after its window's end is the pipeline's delay.
fn stream_job() -> Value {
    json!({
        "name": JOB,
        "max_out_of_orderness": "0s",
        "allowed_lateness": "0s",
        "idle_timeout": "1h",
        "windows": [{ "name": "tumble_1s", "type": "tumbling", "size": "1s" }],
        "detectors": [],
    })
}

/// A child `streampulse run` in the group.
struct Worker {
    child: Child,
    base: String,
    agent: ureq::Agent,
    /// False once SIGKILLed and reaped: its pid may name another process by then.
    running: bool,
}

impl Worker {
    fn status(&self) -> anyhow::Result<Value> {
        Ok(self
            .agent
            .get(&format!("{}/jobs/{JOB}", self.base))
            .call()?
            .body_mut()
            .read_json()?)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no final checkpoint, no leaving the group; the session has to expire.
    fn kill(&mut self) -> anyhow::Result<()> {
        self.running = false;
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.running {
            stop_platform(&mut self.child);
        }
    }
}

/// Starts `n` workers at once (each in its own directory under `dir`, so each has its own data
/// directory), then waits until all answer `/readyz`.
fn start_workers(dir: &Path, config: &Value, n: usize) -> anyhow::Result<Vec<Worker>> {
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let own = dir.join(format!("worker-{i}"));
        std::fs::create_dir_all(&own)?;
        let (child, base) = launch_platform(&own, config)?;
        workers.push(Worker {
            child,
            base,
            agent: http_agent(),
            running: true,
        });
    }
    for w in &mut workers {
        wait_ready(&mut w.child, &w.base, &w.agent)?;
    }
    Ok(workers)
}

/// One partition a worker owns now, as `GET /jobs/<job>` shows it.
struct Owned {
    partition: u32,
    events: u64,
    watermark: Option<i64>,
}

fn owned(status: &Value) -> Vec<Owned> {
    status["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    Some(Owned {
                        partition: p["partition"].as_u64()? as u32,
                        events: p["events"].as_u64().unwrap_or(0),
                        watermark: p["watermark"].as_i64(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until the group has given every partition to a worker and every worker some: from then
/// on the assignment stays put while no worker joins or leaves.
fn wait_assigned(workers: &[Worker], partitions: i32) -> anyhow::Result<()> {
    let waited = Instant::now();
    loop {
        let mut all = std::collections::BTreeSet::new();
        let mut everyone = true;
        for w in workers {
            let mine = owned(&w.status()?);
            everyone &= !mine.is_empty();
            all.extend(mine.into_iter().map(|o| o.partition));
        }
        if all.len() == partitions as usize && (everyone || workers.len() > partitions as usize) {
            return Ok(());
        }
        anyhow::ensure!(
            waited.elapsed() < WAIT_LIMIT,
            "the group did not assign every partition"
        );
        std::thread::sleep(POLL);
    }
}

/// A consumer outside the job's group, reading from the start (the topics are fresh).
fn reader(brokers: &str) -> anyhow::Result<BaseConsumer> {
    reader_isolated(brokers, "read_uncommitted")
}

/// [`reader`] with an `isolation.level`: read_committed sees a transaction's records once it
/// commits.
fn reader_isolated(brokers: &str, isolation: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", isolation)
        .set("group.id", fresh("reader"))
        .set("enable.auto.commit", "false")
        // The reader should add as little as it can to the latency it measures; the workers keep
        // librdkafka's defaults, which are part of what is measured.
        .set("fetch.wait.max.ms", "10")
        .create()?)
}

/// Each partition's high watermark: the count of records produced to it.
fn end_offsets(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<Vec<i64>> {
    let c = reader(brokers)?;
    (0..partitions)
        .map(|p| Ok(c.fetch_watermarks(topic, p, Duration::from_secs(10))?.1))
        .collect()
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted
        .get(((sorted.len().saturating_sub(1)) as f64 * q) as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// (g1) Draining a topic filled beforehand.
pub fn throughput(args: &Args) -> anyhow::Result<()> {
    let n = args.events_or(1_000_000);
    let events = load_events(&args.input, n)?;
    let partitions = args.topic_partitions;
    let topics = Topics::create(&args.brokers, "throughput", partitions)?;
    let produce_started = Instant::now();
    let producer = EventProducer::new(&client(&args.brokers), &topics.events)?;
    for e in &events {
        producer.send(&e.metric_id, &serde_json::to_vec(e)?)?;
    }
    producer.flush(WAIT_LIMIT)?;
    let produce_seconds = produce_started.elapsed().as_secs_f64();
    drop(events);
    let produced: i64 = end_offsets(&args.brokers, &topics.events, partitions)?
        .iter()
        .sum();
    anyhow::ensure!(
        produced == n as i64,
        "{produced} of {n} events in the topic"
    );

    let dir = tempfile::tempdir()?;
    let config = worker_config(
        args,
        &topics,
        &dir.path().join("checkpoints"),
        serde_json::to_value(job_spec(args.job))?,
    )?;
    let started = Instant::now();
    let workers = start_workers(dir.path(), &config, args.workers)?;
    let mut first_event: Option<Duration> = None;
    // At the first poll that saw events: the events processed so far and the workers' CPU time,
    // so that the steady state can be told apart from process start and the group join.
    let mut at_first: Option<(u64, f64)> = None;
    // `ingest_accepted` counts every event a worker processed since it started. The per-partition
    // `events` lists only the partitions a worker owns now: those of a partition handed over in
    // the group's first rebalance would drop out of that sum, so it is only printed, not waited on.
    let (elapsed, per_worker, owned_sum) = loop {
        let statuses = workers
            .iter()
            .map(Worker::status)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let per_worker: Vec<u64> = statuses
            .iter()
            .map(|s| s["ingest_accepted"].as_u64().unwrap_or(0))
            .collect();
        let total: u64 = per_worker.iter().sum();
        if total > 0 && first_event.is_none() {
            first_event = Some(started.elapsed());
            let cpu: f64 = workers.iter().map(|w| cpu_seconds(w.pid())).sum();
            at_first = Some((total, cpu));
        }
        if total >= n as u64 {
            let owned_sum: u64 = statuses.iter().flat_map(owned).map(|o| o.events).sum();
            break (started.elapsed(), per_worker, owned_sum);
        }
        anyhow::ensure!(
            started.elapsed() < WAIT_LIMIT,
            "the workers processed {total} of {n} events"
        );
        std::thread::sleep(POLL);
    };
    let cpu: f64 = workers.iter().map(|w| cpu_seconds(w.pid())).sum();
    let rss: Vec<String> = workers
        .iter()
        .map(|w| {
            format!(
                "{:.1}",
                peak_rss_kib(&w.pid().to_string()).unwrap_or(0) as f64 / 1024.0
            )
        })
        .collect();
    drop(workers);
    let secs = elapsed.as_secs_f64();
    let from_first = (elapsed - first_event.unwrap_or_default()).as_secs_f64();
    let (done_at_first, cpu_at_first) = at_first.unwrap_or_default();
    let steady_cpu = cpu - cpu_at_first;
    let props = &args.worker_properties;
    println!(
        "mode=kafka_throughput exactly_once={} worker_properties={props:?} job={} events={n} workers={} partitions={partitions} seconds={secs:.3} events_per_sec={:.0} first_event_after_seconds={:.3} events_per_sec_from_first_event={:.0} worker_cpu_seconds={cpu:.2} events_per_cpu_second={:.0} steady_events={} steady_cpu_seconds={steady_cpu:.2} steady_events_per_cpu_second={:.0} per_worker_events={per_worker:?} owned_partition_events_sum={owned_sum} worker_peak_rss_mib=[{}] produce_seconds={produce_seconds:.2} (from starting the workers: includes process start and the group join; steady_*: from the first poll that saw an event on; cores={}, shared by the workers and the bench)",
        args.exactly_once,
        args.job.name(),
        args.workers,
        n as f64 / secs,
        first_event.unwrap_or_default().as_secs_f64(),
        n as f64 / from_first,
        n as f64 / cpu,
        n as u64 - done_at_first,
        (n as u64 - done_at_first) as f64 / steady_cpu,
        rss.join(","),
        cores(),
    );
    Ok(())
}

/// A producer thread sending `rate` events/s round-robin over [`STREAM_METRICS`] metrics, each
/// stamped with the wall clock as it is sent, until stopped.
struct Stream {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<anyhow::Result<u64>>,
}

impl Stream {
    fn start(brokers: &str, topic: &str, rate: u64) -> anyhow::Result<Self> {
        let producer = EventProducer::new(&client(brokers), topic)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || -> anyhow::Result<u64> {
            let started = Instant::now();
            let mut sent = 0u64;
            while !flag.load(Ordering::Relaxed) {
                // Catch up to the schedule, then sleep: a steady rate without a timer per event.
                let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
                while sent < due {
                    let metric = format!("stream-{:02}", sent % STREAM_METRICS);
                    let line = json!({ "metric_id": metric, "ts": now_ms(), "value": sent % 100 })
                        .to_string();
                    producer.send(&metric, line.as_bytes())?;
                    sent += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            producer.flush(WAIT_LIMIT)?;
            Ok(sent)
        });
        Ok(Self { stop, handle })
    }

    /// Stops it; the count of events sent.
    fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the stream's thread panicked"))?
    }
}

/// One record read back: the instant it refers to (a result's window end, an event's time), and
/// when it was created by its producer and received here (ms since the epoch; received with
/// sub-millisecond precision).
struct Receipt {
    at: i64,
    created_ms: Option<i64>,
    received_ms: f64,
}

impl Receipt {
    fn received_after(&self) -> f64 {
        self.received_ms - self.at as f64
    }
}

fn wall_ms() -> f64 {
    streampulse_core::clock::since_epoch().as_secs_f64() * 1000.0
}

/// Reads `topic` from its start on its own thread until stopped; `field` of each JSON record is
/// the instant the receipt is timed from.
fn read_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    field: &'static str,
    isolation: &str,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<Vec<Receipt>>>> {
    let consumer = reader_isolated(brokers, isolation)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(std::thread::spawn(move || {
        let mut got = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(msg) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            let received_ms = wall_ms();
            let msg = msg?;
            let value: Value = serde_json::from_slice(msg.payload().unwrap_or_default())?;
            if let Some(at) = value[field].as_i64() {
                got.push(Receipt {
                    at,
                    created_ms: msg.timestamp().to_millis(),
                    received_ms,
                });
            }
        }
        Ok(got)
    }))
}

/// (g2) From a window's end to its result on the results topic.
pub fn latency(args: &Args) -> anyhow::Result<()> {
    let partitions = args.topic_partitions;
    let topics = Topics::create(&args.brokers, "latency", partitions)?;
    let dir = tempfile::tempdir()?;
    let config = worker_config(args, &topics, &dir.path().join("checkpoints"), stream_job())?;
    let workers = start_workers(dir.path(), &config, args.workers)?;
    wait_assigned(&workers, partitions)?;
    let stop_reading = Arc::new(AtomicBool::new(false));
    let reading = read_topic(
        &args.brokers,
        &topics.results,
        partitions,
        "window_end",
        if args.exactly_once {
            "read_committed"
        } else {
            "read_uncommitted"
        },
        stop_reading.clone(),
    )?;
    // The events themselves, read as the worker reads them: how much of the latency is the
    // transport of the event that closes a window (producer, broker, fetch), not the worker.
    let reading_events = read_topic(
        &args.brokers,
        &topics.events,
        partitions,
        "ts",
        "read_uncommitted",
        stop_reading.clone(),
    )?;
    let duration = Duration::from_secs(args.duration.unwrap_or(30));
    let stream = Stream::start(&args.brokers, &topics.events, args.rate)?;
    std::thread::sleep(duration);
    let sent = stream.stop()?;
    std::thread::sleep(DRAIN);
    stop_reading.store(true, Ordering::Relaxed);
    let joined = |h: JoinHandle<anyhow::Result<Vec<Receipt>>>| {
        h.join()
            .map_err(|_| anyhow::anyhow!("a reader's thread panicked"))?
    };
    let receipts = joined(reading)?;
    let event_receipts = joined(reading_events)?;
    drop(workers);
    anyhow::ensure!(!receipts.is_empty(), "no window result was read back");

    let sorted = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v
    };
    let total = sorted(receipts.iter().map(Receipt::received_after).collect());
    let emitted = sorted(
        receipts
            .iter()
            .filter_map(|r| Some((r.created_ms? - r.at) as f64))
            .collect(),
    );
    let transport = sorted(event_receipts.iter().map(Receipt::received_after).collect());
    let windows: std::collections::BTreeSet<i64> = receipts.iter().map(|r| r.at).collect();
    let props = &args.worker_properties;
    println!(
        "mode=kafka_latency exactly_once={} worker_properties={props:?} workers={} partitions={partitions} rate={} metrics={STREAM_METRICS} seconds={} sent={sent} results={} windows={} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} record_created_p50_ms={:.0} record_created_p99_ms={:.0} event_transport_p50_ms={:.1} event_transport_p99_ms={:.1} (from the window's end to the result's receipt by a reader of the results topic; record_created: to the result record's CreateTime, set by the worker's producer; event_transport: from an event's send to its receipt by a reader of the events topic; cores={}, shared by the broker, the workers and the bench)",
        args.exactly_once,
        args.workers,
        args.rate,
        duration.as_secs(),
        receipts.len(),
        windows.len(),
        pct(&total, 0.5),
        pct(&total, 0.9),
        pct(&total, 0.99),
        pct(&total, 1.0),
        pct(&emitted, 0.5),
        pct(&emitted, 0.99),
        pct(&transport, 0.5),
        pct(&transport, 0.99),
        cores(),
    );
    Ok(())
}

/// (g3) From SIGKILLing one of 2 workers until the other runs the moved partitions.
pub fn failover(args: &Args) -> anyhow::Result<()> {
    let partitions = args.topic_partitions;
    let topics = Topics::create(&args.brokers, "failover", partitions)?;
    let dir = tempfile::tempdir()?;
    let config = worker_config(args, &topics, &dir.path().join("checkpoints"), stream_job())?;
    let mut workers = start_workers(dir.path(), &config, 2)?;
    wait_assigned(&workers, partitions)?;
    let stream = Stream::start(&args.brokers, &topics.events, args.rate)?;
    std::thread::sleep(BEFORE_KILL);
    let moved: Vec<u32> = match workers.get(1) {
        Some(w) => owned(&w.status()?).iter().map(|o| o.partition).collect(),
        None => anyhow::bail!("no second worker"),
    };
    anyhow::ensure!(!moved.is_empty(), "the worker to kill owns no partition");
    let killed_at_ms = now_ms();
    let killed = Instant::now();
    if let Some(w) = workers.get_mut(1) {
        w.kill()?;
    }
    let Some(survivor) = workers.first() else {
        anyhow::bail!("no surviving worker")
    };

    // A moved partition's `events` when the survivor was first seen owning it: it may hold counts
    // from an earlier ownership (the group's first assignment), so growth is measured from there.
    let mut first_seen: HashMap<u32, u64> = HashMap::new();
    let (mut owns_all, mut processing, mut caught_up) = (None, None, None);
    while processing.is_none() || caught_up.is_none() {
        let parts = owned(&survivor.status()?);
        let t = killed.elapsed();
        if owns_all.is_none() && parts.len() == partitions as usize {
            owns_all = Some(t);
        }
        for o in parts.iter().filter(|o| moved.contains(&o.partition)) {
            first_seen.entry(o.partition).or_insert(o.events);
        }
        let every_moved = |ok: &dyn Fn(&Owned) -> bool| {
            moved
                .iter()
                .all(|p| parts.iter().any(|o| o.partition == *p && ok(o)))
        };
        if processing.is_none()
            && owns_all.is_some()
            && every_moved(&|o| first_seen.get(&o.partition).is_some_and(|f| o.events > *f))
        {
            processing = Some(t);
        }
        // The watermark moves when a window closes (every second here): it passes the kill once
        // the partition has processed events produced after it, i.e. has replayed the backlog.
        if caught_up.is_none() && every_moved(&|o| o.watermark.is_some_and(|w| w >= killed_at_ms)) {
            caught_up = Some(t);
        }
        anyhow::ensure!(
            t < WAIT_LIMIT,
            "the survivor did not take over within {WAIT_LIMIT:?}"
        );
        std::thread::sleep(POLL);
    }
    let sent = stream.stop()?;
    drop(workers);
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    let props = &args.worker_properties;
    println!(
        "mode=kafka_failover worker_properties={props:?} workers=2 partitions={partitions} moved_partitions={} rate={} sent={sent} owns_all_seconds={:.2} processing_moved_seconds={:.2} caught_up_seconds={:.2} session_timeout_ms={SESSION_TIMEOUT_MS} checkpoint_interval={CHECKPOINT_INTERVAL} (from the SIGKILL; owns_all: the survivor lists every partition; processing_moved: and every moved partition's events count has grown; caught_up: every moved partition's watermark has passed the kill; status polled every {} ms)",
        moved.len(),
        args.rate,
        secs(owns_all),
        secs(processing),
        secs(caught_up),
        POLL.as_millis(),
    );
    Ok(())
}
