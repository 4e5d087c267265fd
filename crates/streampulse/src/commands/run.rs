//! `streampulse run`: the platform in one process — HTTP ingest and queries, the embedded log, the
//! engine, the embedded store and checkpoints under the data directory, and the Prometheus
//! exposition on its own port (served by the same tokio runtime as the API).
//!
//! The process runs the job of its config file and, on the embedded log, the jobs submitted with
//! `POST /jobs` (restarted from the job catalog on the next start).
//!
//! Start-up order matters: the configuration is validated and both ports bound before anything is
//! written, so a bad config or a busy port leaves nothing behind. Stopping (Ctrl-C or SIGTERM)
//! first stops accepting requests, then takes a final checkpoint, then gives alert webhook
//! deliveries still queued at most 2 s, then exits; the next start resumes from that checkpoint.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use streampulse_core::job::Job;
use streampulse_engine::checkpoint::{open_storage_with, PartitionCheckpointStore};
use streampulse_engine::jobs::{EmbeddedLauncher, JobCatalog, JobLauncher, JobManager};
use streampulse_engine::shared_log::SharedLog;
use streampulse_engine::{InitialPosition, RuntimeConfig, StartFrom};
use streampulse_log::{EmbeddedLog, LogConfig};
use streampulse_store::ResultStore;

use crate::config::AppConfig;

/// Most rows a single query returns.
const MAX_QUERY_ROWS: usize = 10_000;

#[derive(clap::Args)]
pub struct RunArgs {
    /// Configuration file; every key is optional (see config/application.yaml).
    #[arg(long, env = "STREAMPULSE_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long, env = "STREAMPULSE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Overrides `server.listen`, e.g. 127.0.0.1:8080.
    #[arg(long, env = "STREAMPULSE_LISTEN")]
    listen: Option<String>,
    /// Overrides `metrics.listen` (the Prometheus port), e.g. 127.0.0.1:9249.
    #[arg(long, env = "STREAMPULSE_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Start from this savepoint instead of the latest checkpoint.
    #[arg(long)]
    from_savepoint: Option<String>,
}

/// `json_logs`: the `--log-format` flag, which wins over `logging.format`.
pub fn run(args: RunArgs, json_logs: Option<bool>) -> anyhow::Result<()> {
    let validated = AppConfig::load(args.config.as_deref())?;
    let mut config = validated.config;
    let job = validated.job;
    // Dropped last: flushes the spans of the final checkpoint to the OTLP receiver.
    let _tracing = init_logging(&config, json_logs)?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    // Both ports before anything is written: a busy port leaves nothing behind.
    let Listening {
        tokio,
        listen,
        listener,
        metrics: metrics_listener,
    } = Listening::bind(
        &mut config,
        args.listen.as_deref(),
        args.metrics_listen.as_deref(),
    )?;

    let data_dir = config.data_dir.clone();
    let store: Arc<dyn ResultStore> = crate::result_store::open(&config, &data_dir)?;
    let storage_url = if config.checkpoint.storage.is_empty() {
        data_dir.join("checkpoints").display().to_string()
    } else {
        config.checkpoint.storage.clone()
    };
    let jobs = Arc::new(if config.kafka.enabled() {
        start_kafka_worker(&config, job, &store, &storage_url, args.from_savepoint)?
    } else {
        start_embedded(&config, job, &store, &storage_url, args.from_savepoint)?
    });
    let runtime = jobs.configured().clone();

    let expiry = Arc::new(streampulse_store::ExpiryTotals::default());
    if config.store.backend == crate::config::StoreBackend::Embedded {
        // Cassandra rows carry their TTL from the moment they are written: nothing to sweep.
        crate::store_retention::spawn(
            tokio.handle(),
            store.clone(),
            config.store.retention.policy(),
            config.store.retention.check_interval,
            expiry.clone(),
        );
    }

    let app = api_app(
        &tokio,
        &config,
        &jobs,
        store,
        (listen, metrics_listener),
        expiry,
    )?;
    tracing::info!(%listen, data_dir = %data_dir.display(), checkpoints = %storage_url, job = %runtime.job().name, submitted_jobs = jobs.list().len() - 1, kafka = %config.kafka.brokers, webhooks = config.alerts.webhooks.len(), "streampulse is running");
    let served = serve_api(&tokio, &config, listener, app, &jobs);
    tracing::info!("stopping: taking a final checkpoint");
    if let Some(reason) = jobs.failure() {
        anyhow::bail!("{reason}; the next start resumes from the last checkpoint");
    }
    jobs.shutdown_all()
        .context("final checkpoint failed; the next start replays from the previous one")?;
    let status = runtime.status();
    let id = status.last_checkpoint.map(|c| c.id).unwrap_or(0);
    tracing::info!(checkpoint = id, "stopped cleanly");
    served.context("http server failed")
}

/// Installs the log (and trace) subscriber `config` asks for; `json_logs` (the `--log-format`
/// flag) wins over `logging.format`. The guard flushes pending spans when dropped.
pub(crate) fn init_logging(
    config: &AppConfig,
    json_logs: Option<bool>,
) -> anyhow::Result<crate::otel::TracingGuard> {
    let json_logs =
        json_logs.unwrap_or(config.logging.format == crate::config::LogFormatName::Json);
    let guard = crate::otel::init(
        json_logs,
        &config.logging.level,
        crate::otel::provider(&config.tracing)?,
    );
    if let Some(endpoint) = config.tracing.endpoint() {
        tracing::info!(%endpoint, service = %config.tracing.service_name, sample_ratio = config.tracing.sample_ratio, "exporting traces over OTLP/HTTP");
    }
    Ok(guard)
}

/// The API's runtime and bound ports.
pub(crate) struct Listening {
    pub tokio: tokio::runtime::Runtime,
    pub listen: std::net::SocketAddr,
    pub listener: tokio::net::TcpListener,
    /// The Prometheus port, when `metrics.enabled`.
    pub metrics: Option<tokio::net::TcpListener>,
}

impl Listening {
    /// Applies the command line's port overrides to `config`, starts the API's runtime and binds
    /// both ports (naming the key of a port that is busy); warns when the API is reachable from
    /// other hosts without tokens.
    pub(crate) fn bind(
        config: &mut AppConfig,
        listen: Option<&str>,
        metrics_listen: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (listen, metrics_listen) = apply_overrides(config, listen, metrics_listen)?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("api")
            .build()?;
        let bind = |addr: std::net::SocketAddr, key: &str| {
            tokio
                .block_on(tokio::net::TcpListener::bind(addr))
                .with_context(|| format!("cannot listen on {addr} ({key})"))
        };
        let listener = bind(listen, "server.listen")?;
        let metrics = metrics_listen
            .map(|addr| bind(addr, "metrics.listen"))
            .transpose()?;
        warn_if_exposed(config, listen, metrics_listen);
        Ok(Self {
            tokio,
            listen,
            listener,
            metrics,
        })
    }
}

/// The API's router over `jobs` and `store`, traced when traces are exported, and timed with its
/// exposition served on `metrics` when that port is on.
pub(crate) fn api_app(
    tokio: &tokio::runtime::Runtime,
    config: &AppConfig,
    jobs: &Arc<JobManager>,
    store: Arc<dyn ResultStore>,
    (listen, metrics): (std::net::SocketAddr, Option<tokio::net::TcpListener>),
    expiry: Arc<streampulse_store::ExpiryTotals>,
) -> anyhow::Result<axum::Router> {
    let mut app = streampulse_api::router(app_state(config, jobs, store, listen));
    if config.tracing.endpoint().is_some() {
        app = streampulse_api::telemetry::traced(app);
    }
    if let Some(listener) = metrics {
        let http = Arc::new(streampulse_api::telemetry::HttpMetrics::default());
        app = streampulse_api::telemetry::instrument(app, http.clone());
        let exposition = streampulse_api::telemetry::metrics_router(jobs.clone(), http, expiry);
        serve_metrics(tokio, listener, exposition, config.server.write_timeout)?;
    }
    Ok(app)
}

/// Serves `app` on `listener` within the server's connection limits until Ctrl-C, SIGTERM or a
/// job's failure; the error is logged here as well.
pub(crate) fn serve_api(
    tokio: &tokio::runtime::Runtime,
    config: &AppConfig,
    listener: tokio::net::TcpListener,
    app: axum::Router,
    jobs: &Arc<JobManager>,
) -> std::io::Result<()> {
    let limits = streampulse_api::serve::ConnLimits {
        max_connections: config.server.max_connections,
        header_read_timeout: config.server.header_read_timeout,
        write_timeout: config.server.write_timeout,
    };
    let served = tokio.block_on(streampulse_api::serve::serve(
        listener,
        app,
        limits,
        shutdown_signal(jobs.clone()),
    ));
    if let Err(err) = &served {
        tracing::error!(error = %err, "http server failed");
    }
    served
}

/// Applies the command-line overrides of the ports; returns the API's address and the metrics
/// port's (if on).
fn apply_overrides(
    config: &mut AppConfig,
    listen: Option<&str>,
    metrics_listen: Option<&str>,
) -> anyhow::Result<(std::net::SocketAddr, Option<std::net::SocketAddr>)> {
    if let Some(listen) = listen {
        config.server.listen = listen.to_string();
    }
    if let Some(listen) = metrics_listen {
        config.metrics.listen = listen.to_string();
    }
    let listen = config.server.listen.parse().with_context(|| {
        format!(
            "--listen: '{}' is not an address like 0.0.0.0:8080",
            config.server.listen
        )
    })?;
    let metrics = match config.metrics.enabled {
        false => None,
        true => Some(config.metrics.listen.parse().with_context(|| {
            format!(
                "--metrics-listen: '{}' is not an address like 0.0.0.0:9249",
                config.metrics.listen
            )
        })?),
    };
    Ok((listen, metrics))
}

/// The cluster topology: this process is one worker of a Kafka consumer group and runs only the
/// job of its config file, each partition checkpointed on its own.
fn start_kafka_worker(
    config: &AppConfig,
    job: Job,
    store: &Arc<dyn ResultStore>,
    storage_url: &str,
    from_savepoint: Option<String>,
) -> anyhow::Result<JobManager> {
    let checkpoints = PartitionCheckpointStore::new(
        open_storage_with(storage_url, &config.checkpoint.storage_options)?,
        &job.name,
        config.checkpoint.retain,
    );
    if let Some(name) = from_savepoint {
        let partitions = streampulse_kafka::topic_partitions(&config.kafka, &config.kafka.topic)
            .context("cannot read the topic's partitions")?;
        let imported = checkpoints
            .import_savepoint(&name, partitions)
            .with_context(|| format!("cannot start the group from savepoint '{name}'"))?;
        if imported {
            tracing::info!(savepoint = %name, partitions, "the group starts from the savepoint: every partition resumes from it");
        } else {
            tracing::info!(savepoint = %name, "the group was started from this savepoint before: its partitions resume from their own checkpoints since");
        }
    }
    let runtime_config = RuntimeConfig {
        checkpoint_interval: config.checkpoint.interval,
        webhooks: config.alerts.webhook_configs(),
        initial_position: InitialPosition::Earliest,
    };
    let runtime = streampulse_kafka::KafkaDriver::start(
        job,
        &config.kafka,
        runtime_config,
        store.clone(),
        checkpoints,
    )
    .context("cannot start the Kafka consumer")?;
    Ok(JobManager::single(
        runtime,
        "this process is a worker of a Kafka consumer group and runs only the job of its \
         config file; run another job as another consumer group (its own config file and \
         kafka.group_id)",
    ))
}

/// The single-process topology: the embedded log under the data directory, the config file's
/// job, and the jobs of the catalog (submitted with `POST /jobs`) resumed over the same log.
fn start_embedded(
    config: &AppConfig,
    job: Job,
    store: &Arc<dyn ResultStore>,
    storage_url: &str,
    from_savepoint: Option<String>,
) -> anyhow::Result<JobManager> {
    let data_dir = &config.data_dir;
    let log = EmbeddedLog::open(
        &data_dir.join("log"),
        LogConfig {
            partitions: config.log.partitions,
            fsync: config.log.fsync,
            retention_bytes: config.log.retention_bytes,
            retention_age: config.log.retention_age,
            cache_bytes: config.log.cache_bytes,
            ..LogConfig::default()
        },
    )
    .with_context(|| format!("cannot open the log under {}", data_dir.display()))?;
    let shared = SharedLog::new(log);
    // Until every job is attached, the first to checkpoint must not let retention delete what
    // the others still need.
    let starting = shared.hold("startup.hold");
    let launcher = Arc::new(EmbeddedLauncher {
        log: shared,
        store: store.clone(),
        storage_url: storage_url.to_string(),
        storage_options: config.checkpoint.storage_options.clone(),
        retain: config.checkpoint.retain,
        checkpoint_interval: config.checkpoint.interval,
        webhooks: config.alerts.webhook_configs(),
    });
    let start_from = match from_savepoint {
        Some(name) => StartFrom::Savepoint(name),
        None => StartFrom::LatestCheckpoint,
    };
    let runtime = launcher.launch(job, start_from, InitialPosition::Earliest)?;
    let catalog = JobCatalog::new(open_storage_with(
        storage_url,
        &config.checkpoint.storage_options,
    )?);
    let jobs = JobManager::new(runtime, launcher, catalog);
    if let Err(err) = jobs.resume() {
        let _ = jobs.shutdown_all();
        return Err(err)
            .context("cannot read the job catalog (jobs.catalog/ in the checkpoint storage)");
    }
    drop(starting);
    Ok(jobs)
}

/// What every API route shares: the jobs, the store, and the server's limits.
fn app_state(
    config: &AppConfig,
    jobs: &Arc<JobManager>,
    store: Arc<dyn ResultStore>,
    listen: std::net::SocketAddr,
) -> streampulse_api::AppState {
    let server = &config.server;
    streampulse_api::AppState {
        jobs: jobs.clone(),
        store,
        max_query_rows: MAX_QUERY_ROWS,
        max_query_range: server.max_query_range,
        max_query_scan: server.max_query_scan,
        max_body_bytes: server.max_body_bytes,
        ingest: streampulse_api::body::BodyLimits {
            max_bytes: server.max_body_bytes,
            read_timeout: server.body_read_timeout,
            budget: Arc::new(tokio::sync::Semaphore::new(server.max_inflight_bytes)),
        },
        max_events_per_request: server.max_events_per_request,
        ws_clients: Arc::new(tokio::sync::Semaphore::new(server.max_ws_clients)),
        tokens: Arc::new(streampulse_api::auth::Tokens::new(
            &server.auth.read_tokens,
            &server.auth.write_tokens,
            &server.auth.admin_tokens,
        )),
        cors_origins: server.cors_origins.clone(),
        console: server.console,
        hosts: Arc::new(streampulse_api::host::Hosts::for_listen(
            listen,
            &server.allowed_hosts,
        )),
    }
}

/// Serves the Prometheus exposition on its own port; keeps serving through the final checkpoint
/// and ends when the process does.
fn serve_metrics(
    tokio: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    exposition: axum::Router,
    write_timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "prometheus metrics at http://{addr}/metrics");
    tokio.spawn(async move {
        let limits = streampulse_api::serve::ConnLimits {
            max_connections: 64,
            header_read_timeout: std::time::Duration::from_secs(10),
            write_timeout,
        };
        let never = std::future::pending::<()>();
        if let Err(err) = streampulse_api::serve::serve(listener, exposition, limits, never).await {
            tracing::error!(error = %err, "metrics server failed");
        }
    });
    Ok(())
}

/// A port on an address other hosts can reach, with no tokens, lets anyone on that network send
/// events, submit jobs and read every result: say so at start, naming the address.
fn warn_if_exposed(
    config: &crate::config::AppConfig,
    listen: std::net::SocketAddr,
    metrics: Option<std::net::SocketAddr>,
) {
    let auth = &config.server.auth;
    let no_tokens =
        auth.read_tokens.is_empty() && auth.write_tokens.is_empty() && auth.admin_tokens.is_empty();
    if no_tokens && !listen.ip().is_loopback() {
        tracing::warn!(%listen, "the API listens on a non-loopback address with no tokens (server.auth): anyone who can reach it may send events, submit and stop jobs, and read every result; set STREAMPULSE_ADMIN_TOKENS (and read/write tokens) or listen on 127.0.0.1");
    }
    if let Some(addr) = metrics.filter(|a| !a.ip().is_loopback()) {
        tracing::info!(%addr, "the Prometheus metrics port is reachable from other hosts (it serves counters only, no tokens)");
    }
}

/// Ctrl-C, SIGTERM, or a job failing on its own (its driver stopped on an error).
async fn shutdown_signal(jobs: Arc<JobManager>) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let failure = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            if let Some(reason) = jobs.failure() {
                tracing::error!(%reason, "the job failed; exiting");
                return;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
        _ = failure => {},
    }
}
