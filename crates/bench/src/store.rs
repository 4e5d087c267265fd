//! (k) The result stores side by side: window results written per second and per CPU-second
//! into the embedded store or a Cassandra keyspace, then the API's three typical queries timed
//! against what was written (one metric over 1 h and over 24 h, every metric over 1 min).
//!
//! Writes go through `ResultStore::apply` in the engine's batch shape (one partition's outputs at
//! a time, from `--partitions` threads at once, as partition workers call it); a batch returns
//! only when durable (Cassandra: acknowledged at the write consistency). The Cassandra node's own
//! CPU is read from /proc with the pid that `deploy/local/services.sh` records.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use streampulse_core::output::{Output, WindowResult};
use streampulse_store::{EmbeddedStore, ResultQuery, ResultStore};

use crate::serving::cpu_seconds;
use crate::{Args, StoreKind};

const JOB: &str = "bench";
const WINDOW_MS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;
const BASE: i64 = 1_700_000_000_000;
/// Outputs per `apply` call: about what a partition worker hands over per batch.
const BATCH: usize = 1_000;

/// Opens the store `args` names; the Cassandra one in a fresh keyspace.
pub(crate) fn open(
    args: &Args,
    dir: &std::path::Path,
) -> anyhow::Result<(Arc<dyn ResultStore>, String)> {
    Ok(match args.store {
        StoreKind::Embedded => (
            Arc::new(EmbeddedStore::open(&dir.join("store"))?),
            "embedded".into(),
        ),
        StoreKind::Cassandra => {
            let nanos = streampulse_core::clock::since_epoch().subsec_nanos();
            let config = streampulse_cassandra::CassandraConfig {
                contact_points: vec![args.cassandra.clone()],
                keyspace: format!("bench_{:x}{nanos:x}", std::process::id()),
                request_timeout: Duration::from_secs(30),
                ..Default::default()
            };
            let store = streampulse_cassandra::CassandraStore::connect(
                &config,
                streampulse_store::RetentionPolicy::default(),
            )
            .with_context(|| format!("connect to Cassandra at {}", args.cassandra))?;
            let what = format!(
                "cassandra (keyspace {}, {:?} writes and reads, replication 1)",
                config.keyspace, config.write_consistency
            );
            (Arc::new(store), what)
        }
    })
}

/// The Cassandra node's pid, from the state directory of `deploy/local/services.sh`.
pub(crate) fn cassandra_pid() -> Option<u32> {
    let root = std::env::var_os("STREAMPULSE_SERVICES_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(cache.join("streampulse/run"))
        })?;
    std::fs::read_to_string(root.join("cassandra/cassandra.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn result(metric: usize, start: i64) -> WindowResult {
    let v = (metric as f64) + (start / WINDOW_MS % 100) as f64;
    WindowResult {
        metric_id: format!("bench.metric.{metric:05}").into(),
        window: "tumble_10s".into(),
        window_start: start,
        window_end: start + WINDOW_MS,
        count: 10,
        sum: v * 10.0,
        min: v - 1.0,
        max: v + 1.0,
        mean: v,
        extra: Default::default(),
        revision: 0,
    }
}

/// p50 and p99 of `samples`, in ms.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let metrics = args.store_metrics;
    let dir = tempfile::tempdir()?;
    let (store, what) = open(args, dir.path())?;
    // One day of 10 s windows for every metric: partition p writes the metrics m with
    // m % partitions == p, window after window, as a partition worker would.
    let windows = (DAY_MS / WINDOW_MS) as usize;
    let partitions = args.partitions.max(1) as usize;
    let rows = metrics * windows;
    let node = cassandra_pid();
    let (self_cpu, node_cpu) = (
        cpu_seconds(std::process::id()),
        node.map_or(0.0, cpu_seconds),
    );
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = (0..partitions)
            .map(|p| {
                let store = store.clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    let mut batch = Vec::with_capacity(BATCH);
                    for w in 0..windows {
                        let start = BASE + w as i64 * WINDOW_MS;
                        for m in (p..metrics).step_by(partitions) {
                            batch.push(Output::Result(result(m, start)));
                            if batch.len() == BATCH {
                                store.apply(JOB, p as u32, &batch)?;
                                // As a partition does once it published the batch.
                                store.write_behind()?;
                                batch.clear();
                            }
                        }
                    }
                    store.apply(JOB, p as u32, &batch)?;
                    store.write_behind()?;
                    store.flush()?;
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        }
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let self_cpu = cpu_seconds(std::process::id()) - self_cpu;
    let node_cpu = node.map_or(0.0, cpu_seconds) - node_cpu;
    println!(
        "mode=store-write store={what} metrics={metrics} rows={rows} writers={partitions} seconds={seconds:.2} rows_per_sec={:.0} rows_per_writer_cpu_sec={:.0} writer_cpu_sec={self_cpu:.1}{}",
        rows as f64 / seconds,
        rows as f64 / self_cpu.max(1e-9),
        match node {
            Some(_) if args.store == StoreKind::Cassandra => format!(
                " node_cpu_sec={node_cpu:.1} rows_per_total_cpu_sec={:.0}",
                rows as f64 / (self_cpu + node_cpu).max(1e-9)
            ),
            _ => String::new(),
        }
    );

    // The API's typical reads, each from a different place of the day.
    let queries = args.rounds.max(10);
    let query = |metric: Option<String>, start: i64, span: i64| ResultQuery {
        job: JOB.into(),
        start,
        end: start + span,
        metric_id: metric,
        metric_match: None,
        window: None,
        tags: vec![],
        limit: 10_000,
        after: None,
        scan_limit: 1_000_000,
    };
    let hour = 3_600_000;
    for (name, span, one_metric, expect) in [
        ("one_metric_1h", hour, true, (hour / WINDOW_MS) as usize),
        ("one_metric_24h", DAY_MS, true, windows),
        ("all_metrics_1min", 60_000, false, metrics * 6),
    ] {
        let mut samples = Vec::with_capacity(queries);
        for i in 0..queries {
            let metric = one_metric.then(|| result(i * 7919 % metrics, BASE).metric_id.to_string());
            let latest = (DAY_MS - span).max(0);
            let start = BASE + (i as i64 * 7_919_000) % (latest + 1) / WINDOW_MS * WINDOW_MS;
            let q = query(metric, start, span);
            let t = Instant::now();
            let page = store.query_page(&q)?;
            samples.push(t.elapsed());
            anyhow::ensure!(
                page.rows.len() == expect,
                "{name}: {} rows, {expect} expected",
                page.rows.len()
            );
        }
        let (p50, p99) = percentiles(samples);
        println!(
            "mode=store-query store={what} query={name} rows={expect} queries={queries} p50_ms={p50:.2} p99_ms={p99:.2}"
        );
    }
    Ok(())
}
