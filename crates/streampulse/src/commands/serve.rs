//! `streampulse serve`: the API alone, over the shared Cassandra store, with no job running here.
//!
//! In the cluster deployment the workers of a consumer group run the job and write every
//! partition's results to one Cassandra keyspace; any number of `serve` processes answer the
//! queries (`/metrics`, `/alerts`, `/events`, ...) for all of them, so queries scale apart from
//! processing. Its WebSocket follows the job's results and alerts topics (when `kafka:` names
//! them), so a client sees every partition live. It never writes: no ingest (events go to the
//! Kafka topic), no checkpoints, no retention sweeps (Cassandra's TTLs expire rows), and stopping
//! or savepointing the job is refused (that is the workers' business).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use streampulse_engine::feed::{LiveFeed, LIVE_FEED_CAPACITY};
use streampulse_engine::jobs::JobManager;
use streampulse_engine::Runtime;

use crate::commands::run::{api_app, init_logging, serve_api, Listening};
use crate::config::{AppConfig, StoreBackend};

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Configuration file: the workers' own (its `store:`, `kafka:` and `job:` sections say what
    /// is served; the job's name keys the rows).
    #[arg(long, env = "STREAMPULSE_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `server.listen`, e.g. 127.0.0.1:8080.
    #[arg(long, env = "STREAMPULSE_LISTEN")]
    listen: Option<String>,
    /// Overrides `metrics.listen` (the Prometheus port), e.g. 127.0.0.1:9249.
    #[arg(long, env = "STREAMPULSE_METRICS_LISTEN")]
    metrics_listen: Option<String>,
}

pub fn run(args: ServeArgs, json_logs: Option<bool>) -> anyhow::Result<()> {
    let validated = AppConfig::load(args.config.as_deref())?;
    let mut config = validated.config;
    let _tracing = init_logging(&config, json_logs)?;
    if config.store.backend != StoreBackend::Cassandra {
        anyhow::bail!(
            "serve answers from the shared store, and store.backend is embedded: the embedded \
             store belongs to the one `streampulse run` process that writes it (query that \
             process); set store.backend: cassandra, as the workers do"
        );
    }
    let net = Listening::bind(
        &mut config,
        args.listen.as_deref(),
        args.metrics_listen.as_deref(),
    )?;
    let store = crate::result_store::open(&config, &config.data_dir)?;

    let (feed, follower) = if config.kafka.enabled() {
        let feed = streampulse_kafka::follow::cluster_feed(&config.kafka);
        let follower = streampulse_kafka::follow::OutputFollower::start(&config.kafka, feed.clone())
            .context("cannot follow the job's output topics (kafka.results_topic, kafka.alerts_topic) for the WebSocket")?;
        (feed, follower)
    } else {
        (LiveFeed::new(LIVE_FEED_CAPACITY), None)
    };
    if follower.is_none() {
        tracing::warn!("no output topic to follow (kafka.results_topic, kafka.alerts_topic): WebSocket clients of this process receive nothing; queries answer as usual");
    }
    let job = validated.job;
    let name = job.name.clone();
    let runtime = Runtime::remote(job, feed, store.clone())?;
    let jobs = Arc::new(JobManager::single(
        runtime,
        "this process only serves results (streampulse serve); submit jobs to a `streampulse \
         run` process",
    ));
    let expiry = Arc::new(streampulse_store::ExpiryTotals::default());
    // Kept here, so that the store (which owns a runtime of its own) is dropped last and outside
    // the server's async context, not with the router's last request.
    let app = api_app(
        &net.tokio,
        &config,
        &jobs,
        store.clone(),
        (net.listen, net.metrics),
        expiry,
    )?;
    tracing::info!(listen = %net.listen, job = %name, keyspace = %config.store.cassandra.keyspace, live = follower.is_some(), "streampulse serves the job's results");
    let served = serve_api(&net.tokio, &config, net.listener, app, &jobs);
    drop(follower);
    jobs.shutdown_all()?;
    drop(net.tokio);
    drop(store);
    served.context("http server failed")
}
