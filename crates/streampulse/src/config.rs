//! The platform's configuration file: every key, its default, and the errors that name the key.
//!
//! One file format serves `run` and `replay`. Every key has a default (see the shipped
//! `config/application.yaml`), so an empty file, or none, is a working configuration. Unknown keys
//! are errors: a typo must not silently fall back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use streampulse_core::config::ConfigError;
use streampulse_core::job::{Job, JobSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Where the embedded log, store and (by default) checkpoints live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub log: LogSection,
    pub checkpoint: CheckpointSection,
    pub store: StoreSection,
    pub alerts: AlertsSection,
    pub metrics: MetricsSection,
    pub logging: LoggingSection,
    pub tracing: TracingSection,
    /// Events from a Kafka topic in a consumer group instead of HTTP (off while `brokers` is
    /// empty), results and alerts to Kafka topics.
    pub kafka: streampulse_kafka::KafkaConfig,
    pub job: JobSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API (ingest and queries). Loopback by default: another host reaches
    /// the API only when this names an address of a shared network (and then tokens should be
    /// set; a start without them warns).
    pub listen: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Most events in one ingest request (a larger one is refused whole, 413).
    pub max_events_per_request: usize,
    /// Request-body bytes that all ingest requests together may hold at once; a request that
    /// would exceed it gets 503 (retry with backoff). Bounds the memory ingest can take.
    pub max_inflight_bytes: usize,
    /// A request body that has not fully arrived after this gets 408.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// A connection whose request headers have not fully arrived after this is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection whose client reads nothing of a response for this long is closed.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Most open HTTP connections (WebSocket sessions count separately); further ones wait to be
    /// accepted.
    pub max_connections: usize,
    /// Most WebSocket sessions (`/ws`) at once; one more is closed at once with code 1013.
    pub max_ws_clients: usize,
    /// Bearer tokens by role; all empty: auth off.
    pub auth: AuthSection,
    /// Origins allowed to call the API from a browser (`*`: any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// `Host` names the API answers for, besides loopback names when it listens on loopback
    /// (a guard against DNS rebinding); `*`: any. Empty on another address: any.
    pub allowed_hosts: Vec<String>,
    /// Longest `end - start` a ranged query (`/metrics`, `/alerts`, `/events/late`) may ask
    /// for; a longer one is a 400, so one request cannot scan the whole store.
    #[serde(with = "humantime_serde")]
    pub max_query_range: Duration,
    /// Most stored entries one result query examines (rows, and metrics or series passed over by
    /// a filter). A page that reaches it answers with the rows found and a `next_cursor` to go on
    /// from, so a filter matching nothing costs one bounded step per request.
    pub max_query_scan: usize,
    /// Serve the web console at `/` (its pages hold no data: every figure comes from the API
    /// under the same tokens).
    pub console: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 16 * 1024 * 1024,
            max_events_per_request: 100_000,
            max_inflight_bytes: 64 * 1024 * 1024,
            body_read_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_ws_clients: 256,
            auth: AuthSection::default(),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_query_range: Duration::from_secs(31 * 24 * 3600),
            max_query_scan: 100_000,
            console: true,
        }
    }
}

/// Environment variables that set `server.auth`'s token lists (comma-separated), so that tokens
/// can come from a secret store instead of the config file. A set, non-empty variable replaces
/// the file's list.
pub const TOKEN_ENV: [(&str, &str); 3] = [
    ("STREAMPULSE_READ_TOKENS", "read_tokens"),
    ("STREAMPULSE_WRITE_TOKENS", "write_tokens"),
    ("STREAMPULSE_ADMIN_TOKENS", "admin_tokens"),
];

/// What the example secrets hold until someone replaces it.
const PLACEHOLDER: &str = "CHANGE_ME";

/// `server.auth`: queries need any token, ingest a write or admin token, job changes an admin one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub read_tokens: Vec<String>,
    pub write_tokens: Vec<String>,
    pub admin_tokens: Vec<String>,
}

impl AuthSection {
    /// Replaces each token list whose variable of [`TOKEN_ENV`] is set and not empty, as `get`
    /// reads them.
    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        for (var, key) in TOKEN_ENV {
            let Some(value) = get(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let tokens: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect();
            match key {
                "read_tokens" => self.read_tokens = tokens,
                "write_tokens" => self.write_tokens = tokens,
                _ => self.admin_tokens = tokens,
            }
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (key, list) in [
            ("read_tokens", &self.read_tokens),
            ("write_tokens", &self.write_tokens),
            ("admin_tokens", &self.admin_tokens),
        ] {
            let var = TOKEN_ENV
                .iter()
                .find(|(_, k)| *k == key)
                .map_or("", |(v, _)| *v);
            for t in list {
                // A token copied unchanged from an example (`CHANGE_ME...`): a token anyone can
                // read must never open the API.
                if t.contains(PLACEHOLDER) {
                    anyhow::bail!(
                        "server.auth.{key} (or {var}): replace the placeholder token \
                         ({PLACEHOLDER}...) with a secret one, e.g. from `openssl rand -hex 32`"
                    );
                }
                if t.len() < 8 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                    anyhow::bail!(
                        "server.auth.{key} (or {var}): a token must be at least 8 visible ASCII \
                         characters (no spaces)"
                    );
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Serve the Prometheus exposition.
    pub enabled: bool,
    /// Address of the metrics port (`GET /metrics`), separate from the API.
    pub listen: String,
}

/// OpenTelemetry traces, exported over OTLP/HTTP (protobuf). Off unless an endpoint is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingSection {
    /// Base URL of an OTLP/HTTP receiver, e.g. `http://localhost:4318` (`/v1/traces` is added
    /// unless the URL has a path). Empty: `OTEL_EXPORTER_OTLP_ENDPOINT`, else no exporter at all.
    pub otlp_endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// Fraction of new traces sampled (0.0..=1.0); a propagated `traceparent` decides for its trace.
    pub sample_ratio: f64,
    /// How often buffered spans are exported (default 5s, or `OTEL_BSP_SCHEDULE_DELAY` in ms).
    #[serde(with = "humantime_serde")]
    pub export_interval: Option<Duration>,
}

impl Default for TracingSection {
    fn default() -> Self {
        Self {
            otlp_endpoint: String::new(),
            service_name: "streampulse".into(),
            sample_ratio: 1.0,
            export_interval: None,
        }
    }
}

impl TracingSection {
    /// The endpoint in effect: the config's, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else none.
    pub fn endpoint(&self) -> Option<String> {
        if !self.otlp_endpoint.is_empty() {
            return Some(self.otlp_endpoint.clone());
        }
        std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
    }
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:9249".into(),
        }
    }
}

/// `logging`: the process's own log lines (not to be confused with `log`, the event log).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// A `tracing` filter: a level (`info`) or per-target directives (`info,streampulse_kafka=debug`).
    /// The `RUST_LOG` environment variable, when set, wins.
    pub level: String,
    /// `text` or `json` (one object per line); `--log-format` wins.
    pub format: LogFormatName,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatName {
    #[default]
    Text,
    Json,
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormatName::Text,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Partitions of the embedded log: the unit of parallelism; one watermark each.
    pub partitions: u32,
    /// `always`: acknowledge an append only after fsync. `never`: leave flushing to the OS.
    pub fsync: streampulse_log::FsyncPolicy,
    /// Delete checkpointed events beyond this many bytes (oldest first).
    pub retention_bytes: Option<u64>,
    /// Delete checkpointed events older than this.
    #[serde(with = "humantime_serde")]
    pub retention_age: Option<Duration>,
    /// Bytes of the log database's page cache (part of the memory budget).
    pub cache_bytes: usize,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            partitions: 4,
            fsync: streampulse_log::FsyncPolicy::Always,
            retention_bytes: None,
            retention_age: Some(Duration::from_secs(24 * 3600)),
            cache_bytes: streampulse_log::DEFAULT_LOG_CACHE_BYTES,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Time between checkpoints (another is always taken at shutdown).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Checkpoint storage URL: a `file://` URL or a plain path (fsync and rename), or an object
    /// store URL: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`. Empty:
    /// `<data_dir>/checkpoints`.
    pub storage: String,
    /// Settings of an object store, passed to it as they are (`object_store` keys such as
    /// `aws_endpoint`, `aws_region`, `aws_allow_http`, `aws_access_key_id`); they override the
    /// standard environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`). None for files.
    pub storage_options: BTreeMap<String, String>,
    /// Completed checkpoints kept (savepoints are never deleted automatically).
    pub retain: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            storage: String::new(),
            storage_options: BTreeMap::new(),
            retain: 3,
        }
    }
}

impl CheckpointSection {
    /// The storage URL's scheme and the option keys (an empty `storage` is the data dir).
    fn validate(&self) -> anyhow::Result<()> {
        use streampulse_engine::checkpoint::{check_storage, CheckpointError};
        let url = if self.storage.is_empty() {
            "checkpoints"
        } else {
            &self.storage
        };
        match check_storage(url, &self.storage_options) {
            Ok(()) => Ok(()),
            Err(CheckpointError::InvalidOption { key, reason, .. }) => {
                anyhow::bail!("checkpoint.storage_options.{key}: {reason}")
            }
            Err(e) => anyhow::bail!("checkpoint.storage: {e}"),
        }
    }
}

/// Which result store a process writes and reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// redb under `<data_dir>/store`: one process.
    #[default]
    Embedded,
    /// A Cassandra (or ScyllaDB) cluster shared by every worker and API process.
    Cassandra,
}

/// `store`: where results, alerts, late and raw events are kept, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub backend: StoreBackend,
    /// Bytes of the embedded store's page cache (part of the memory budget; unused with
    /// Cassandra).
    pub cache_bytes: usize,
    pub retention: StoreRetentionSection,
    /// Used when `backend` is `cassandra`.
    pub cassandra: streampulse_cassandra::CassandraConfig,
}

impl Default for StoreSection {
    fn default() -> Self {
        Self {
            backend: StoreBackend::default(),
            cache_bytes: streampulse_store::EmbeddedStore::DEFAULT_CACHE_BYTES,
            retention: StoreRetentionSection::default(),
            cassandra: streampulse_cassandra::CassandraConfig::default(),
        }
    }
}

/// `store.retention`: how long each kind of row is kept, by event time (not write time); `None`
/// (`null`) keeps it forever.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreRetentionSection {
    /// Window results, by the end of their window.
    #[serde(with = "humantime_serde")]
    pub results: Option<Duration>,
    /// Late events, by their event time.
    #[serde(with = "humantime_serde")]
    pub late_events: Option<Duration>,
    /// Resolved alerts, by the event time of their resolution (firing alerts are always kept).
    #[serde(with = "humantime_serde")]
    pub alerts: Option<Duration>,
    /// Raw events (`job.keep_raw_events`), by their event time.
    #[serde(with = "humantime_serde")]
    pub raw_events: Option<Duration>,
    /// Time between two sweeps.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for StoreRetentionSection {
    fn default() -> Self {
        Self {
            results: None,
            late_events: None,
            alerts: None,
            raw_events: Some(Duration::from_secs(7 * 24 * 3600)),
            check_interval: Duration::from_secs(60),
        }
    }
}

impl StoreRetentionSection {
    /// The store's form of the TTLs.
    pub fn policy(&self) -> streampulse_store::RetentionPolicy {
        streampulse_store::RetentionPolicy {
            results: self.results,
            late_events: self.late_events,
            alerts: self.alerts,
            raw_events: self.raw_events,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (key, ttl) in [
            ("results", self.results),
            ("late_events", self.late_events),
            ("alerts", self.alerts),
            ("raw_events", self.raw_events),
        ] {
            if ttl.is_some_and(|t| t < Duration::from_secs(1)) {
                anyhow::bail!(
                    "store.retention.{key}: must be at least 1s (a duration like 7d or 12h), or \
                     null to keep every row"
                );
            }
        }
        if self.check_interval < Duration::from_millis(100)
            || self.check_interval > Duration::from_secs(24 * 3600)
        {
            anyhow::bail!("store.retention.check_interval: must be between 100ms and 24h");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSection {
    /// Every alert transition is POSTed to each of these.
    pub webhooks: Vec<WebhookSection>,
    /// Transitions waiting for one webhook beyond which new ones are dropped for it.
    pub webhook_queue: usize,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            webhook_queue: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    /// `http://host[:port][/path]`; https is not supported (no TLS in this build).
    pub url: String,
    /// Limit on one attempt: connect, send, and receive the response.
    #[serde(default = "default_webhook_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts in all, the first included.
    #[serde(default = "default_webhook_max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failed attempt (with jitter); doubles after each further one.
    #[serde(default = "default_webhook_initial_backoff", with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest wait between two attempts.
    #[serde(default = "default_webhook_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_webhook_max_attempts() -> u32 {
    8
}
fn default_webhook_initial_backoff() -> Duration {
    Duration::from_millis(200)
}
fn default_webhook_max_backoff() -> Duration {
    Duration::from_secs(30)
}

impl AlertsSection {
    /// The engine's form of each webhook.
    pub fn webhook_configs(&self) -> Vec<streampulse_engine::WebhookConfig> {
        self.webhooks
            .iter()
            .map(|w| streampulse_engine::WebhookConfig {
                url: w.url.clone(),
                timeout: w.timeout,
                max_attempts: w.max_attempts,
                initial_backoff: w.initial_backoff,
                max_backoff: w.max_backoff,
                queue_capacity: self.webhook_queue,
            })
            .collect()
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=10_000_000).contains(&self.webhook_queue) {
            anyhow::bail!("alerts.webhook_queue: must be between 1 and 10000000");
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let key = |field: &str| format!("alerts.webhooks[{i}].{field}");
            check_webhook_url(&w.url)
                .map_err(|reason| anyhow::anyhow!("{}: {reason}", key("url")))?;
            if w.timeout < Duration::from_millis(1) {
                anyhow::bail!("{}: must be at least 1ms", key("timeout"));
            }
            if !(1..=1000).contains(&w.max_attempts) {
                anyhow::bail!("{}: must be between 1 and 1000", key("max_attempts"));
            }
            if w.initial_backoff < Duration::from_millis(1) {
                anyhow::bail!("{}: must be at least 1ms", key("initial_backoff"));
            }
            if w.max_backoff < w.initial_backoff {
                anyhow::bail!("{}: must be at least initial_backoff", key("max_backoff"));
            }
        }
        Ok(())
    }
}

fn check_webhook_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "'{url}': https is not supported (this build has no TLS); use an http:// URL, e.g. a local TLS-terminating proxy"
        ));
    }
    if !lower.starts_with("http://") {
        return Err(format!("'{url}' must be an http:// URL"));
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| format!("'{url}' is not a valid URL: {e}"))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("'{url}' has no host"));
    }
    Ok(())
}

/// A configuration that passed validation.
pub struct Validated {
    pub config: AppConfig,
    pub job: Job,
}

impl AppConfig {
    /// Reads `path`, or returns the defaults when there is none.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Validated> {
        let mut config = match path {
            None => AppConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))?
            }
        };
        if config.data_dir.as_os_str().is_empty() {
            config.data_dir = PathBuf::from("./data");
        }
        config.server.auth.apply_env(|var| std::env::var(var).ok());
        config.validate()
    }

    pub fn parse(text: &str) -> anyhow::Result<AppConfig> {
        if text.trim().is_empty() {
            return Ok(AppConfig::default());
        }
        let de = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            anyhow::anyhow!(
                "{}: {}",
                if path == "." {
                    "(top level)".into()
                } else {
                    path
                },
                err.inner()
            )
        })
    }

    fn validate(self) -> anyhow::Result<Validated> {
        let fail = |key: &str, reason: &str| Err(ConfigError::new(key, reason).into());
        if self.log.partitions == 0 || self.log.partitions > 1024 {
            return fail("log.partitions", "must be between 1 and 1024");
        }
        if self.checkpoint.interval < Duration::from_millis(100)
            || self.checkpoint.interval > Duration::from_secs(24 * 3600)
        {
            return fail("checkpoint.interval", "must be between 100ms and 24h");
        }
        if self.checkpoint.retain == 0 {
            return fail("checkpoint.retain", "must keep at least 1 checkpoint");
        }
        self.checkpoint.validate()?;
        self.store.retention.validate()?;
        if self.store.backend == StoreBackend::Cassandra {
            self.store.cassandra.validate()?;
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return fail("server.listen", "must be an address like 0.0.0.0:8080");
        }
        if self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return fail("metrics.listen", "must be an address like 0.0.0.0:9249");
        }
        if self.metrics.enabled && self.metrics.listen == self.server.listen {
            return fail("metrics.listen", "must differ from server.listen");
        }
        if !(0.0..=1.0).contains(&self.tracing.sample_ratio) {
            return fail("tracing.sample_ratio", "must be between 0.0 and 1.0");
        }
        if let Some(endpoint) = self.tracing.endpoint() {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return fail(
                    "tracing.otlp_endpoint",
                    "must be an http:// URL like http://localhost:4318",
                );
            }
        }
        if !(1024..=256 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return fail(
                "server.max_body_bytes",
                "must be between 1024 and 268435456 (256 MiB)",
            );
        }
        if !(1..=10_000_000).contains(&self.server.max_events_per_request) {
            return fail(
                "server.max_events_per_request",
                "must be between 1 and 10000000",
            );
        }
        if self.server.max_inflight_bytes < self.server.max_body_bytes
            || self.server.max_inflight_bytes > 64 * 1024 * 1024 * 1024
        {
            return fail(
                "server.max_inflight_bytes",
                "must be at least server.max_body_bytes (one body must fit) and at most 64 GiB",
            );
        }
        for (key, d) in [
            ("server.body_read_timeout", self.server.body_read_timeout),
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.write_timeout", self.server.write_timeout),
        ] {
            if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
                return fail(key, "must be between 100ms and 1h");
            }
        }
        if !(1..=1_000_000).contains(&self.server.max_connections) {
            return fail("server.max_connections", "must be between 1 and 1000000");
        }
        if !(1..=100_000).contains(&self.server.max_ws_clients) {
            return fail("server.max_ws_clients", "must be between 1 and 100000");
        }
        if self.server.max_query_range < Duration::from_secs(1) {
            return fail(
                "server.max_query_range",
                "must be at least 1s (a duration like 31d or 12h)",
            );
        }
        for (key, bytes) in [
            ("log.cache_bytes", self.log.cache_bytes),
            ("store.cache_bytes", self.store.cache_bytes),
        ] {
            if !(1024 * 1024..=64 * 1024 * 1024 * 1024).contains(&bytes) {
                return fail(
                    key,
                    "must be between 1048576 (1 MiB) and 68719476736 (64 GiB)",
                );
            }
        }
        if !(1_000..=100_000_000).contains(&self.server.max_query_scan) {
            return fail(
                "server.max_query_scan",
                "must be between 1000 and 100000000 (entries one result query may examine)",
            );
        }
        for host in &self.server.allowed_hosts {
            let ok = host == "*"
                || (!host.is_empty()
                    && host.len() <= 253
                    && !host.contains(['/', ':', ' '])
                    && host.bytes().all(|b| b.is_ascii_graphic()));
            if !ok {
                return fail(
                    "server.allowed_hosts",
                    "each entry must be a host name without scheme or port (dash.example.com), \
                     or '*'",
                );
            }
        }
        self.server.auth.validate()?;
        for origin in &self.server.cors_origins {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let ok = origin == "*"
                || host.is_some_and(|h| {
                    !h.is_empty() && !h.contains('/') && h.bytes().all(|b| b.is_ascii_graphic())
                });
            if !ok {
                return fail(
                    "server.cors_origins",
                    "each origin must be '*' or like https://dash.example.com (scheme, host, \
                     optional port; no path)",
                );
            }
        }
        self.alerts.validate()?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.logging.level) {
            return fail(
                "logging.level",
                &format!(
                    "not a level or filter like 'info' or 'info,streampulse_kafka=debug': {e}"
                ),
            );
        }
        self.kafka.validate().map_err(|e| e.within("kafka"))?;
        if self.kafka.enabled()
            && self.kafka.exactly_once
            && self.checkpoint.interval > Duration::from_secs(5 * 60)
        {
            return fail(
                "checkpoint.interval",
                "at most 5m with kafka.exactly_once: each transaction stays open one interval, \
                 and brokers abort transactions older than transaction.max.timeout.ms (15m by \
                 default)",
            );
        }
        let job = self.job.validate().map_err(|e| e.within("job"))?;
        Ok(Validated { config: self, job })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(yaml: &str) -> String {
        match AppConfig::parse(yaml).and_then(AppConfig::validate) {
            Ok(_) => panic!("expected an error for {yaml}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_config_is_the_default_job() {
        let v = AppConfig::parse("").unwrap().validate().unwrap();
        assert_eq!(v.job.windows.len(), 2);
        assert_eq!(v.config.log.partitions, 4);
    }

    #[test]
    fn exactly_once_on_kafka_bounds_the_checkpoint_interval() {
        let kafka = "kafka:\n  brokers: 127.0.0.1:9092\n  exactly_once: true\n";
        let v = AppConfig::parse(kafka).unwrap().validate().unwrap();
        assert!(v.config.kafka.exactly_once);
        let e = error_of(&format!("{kafka}checkpoint:\n  interval: 10m\n"));
        assert!(e.starts_with("checkpoint.interval:"), "{e}");
        let e = error_of("kafka:\n  brokers: 127.0.0.1:9092\n  transactional_id: 'a b'\n");
        assert!(e.starts_with("kafka.transactional_id:"), "{e}");
    }

    #[test]
    fn checkpoint_storage_errors_name_the_key() {
        let v = AppConfig::parse(
            "checkpoint:\n  storage: s3://bucket/ckpt\n  storage_options:\n    aws_endpoint: http://127.0.0.1:9000\n    aws_allow_http: \"true\"\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.config.checkpoint.storage_options.len(), 2);
        let e = error_of("checkpoint:\n  storage: ftp://host/ckpt\n");
        assert!(e.starts_with("checkpoint.storage: unsupported"), "{e}");
        let e = error_of(
            "checkpoint:\n  storage: s3://bucket/ckpt\n  storage_options: {aws_endpont: http://h}\n",
        );
        assert!(
            e.starts_with("checkpoint.storage_options.aws_endpont: not an option"),
            "{e}"
        );
        let e = error_of("checkpoint:\n  storage_options: {aws_region: us-east-1}\n");
        assert!(
            e.starts_with("checkpoint.storage_options.aws_region: options apply to object store"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = error_of("log:\n  partitons: 2\n");
        assert!(
            e.starts_with("log.partitons:") && e.contains("unknown field `partitons`"),
            "{e}"
        );
        assert!(error_of("log:\n  partitions: 0\n").starts_with("log.partitions:"));
        assert!(error_of("metrics:\n  listen: nine\n").starts_with("metrics.listen:"));
        let e = error_of("server:\n  listen: 0.0.0.0:9\nmetrics:\n  listen: 0.0.0.0:9\n");
        assert!(e.starts_with("metrics.listen: must differ"), "{e}");
        let e = error_of("job:\n  windows:\n    - name: w\n      type: sliding\n      size: 30s\n");
        assert_eq!(e, "job.windows[0].slide: required for a sliding window");
        let e =
            error_of("job:\n  windows:\n    - name: w\n      type: tumbling\n      size: ten\n");
        assert!(e.starts_with("job.windows[0].size:"), "{e}");
    }

    #[test]
    fn store_retention_has_defaults_and_errors_name_the_key() {
        let day = Duration::from_secs(24 * 3600);
        let v = AppConfig::parse("").unwrap().validate().unwrap();
        let r = &v.config.store.retention;
        assert_eq!(
            (r.results, r.late_events, r.alerts, r.raw_events),
            (None, None, None, Some(7 * day))
        );
        assert_eq!(r.check_interval, Duration::from_secs(60));
        assert_eq!(
            r.policy(),
            streampulse_store::RetentionPolicy {
                raw_events: Some(7 * day),
                ..Default::default()
            }
        );

        let v = AppConfig::parse(
            "store:\n  retention:\n    results: 30d\n    late_events: 12h\n    alerts: 90m\n    raw_events: null\n    check_interval: 200ms\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(
            v.config.store.retention.policy(),
            streampulse_store::RetentionPolicy {
                results: Some(30 * day),
                late_events: Some(Duration::from_secs(12 * 3600)),
                alerts: Some(Duration::from_secs(90 * 60)),
                raw_events: None,
            }
        );
        assert_eq!(
            v.config.store.retention.check_interval,
            Duration::from_millis(200)
        );
        // Only raw events kept forever as well: nothing has a TTL.
        let v = AppConfig::parse("store:\n  retention: {raw_events: null}\n")
            .unwrap()
            .validate()
            .unwrap();
        assert!(v.config.store.retention.policy().keeps_everything());

        let e = error_of("store:\n  retention:\n    raw_events: 0s\n");
        assert!(
            e.starts_with("store.retention.raw_events: must be at least 1s"),
            "{e}"
        );
        let e = error_of("store:\n  retention:\n    alerts: 500ms\n");
        assert!(e.starts_with("store.retention.alerts:"), "{e}");
        let e = error_of("store:\n  retention:\n    results: a week\n");
        assert!(e.starts_with("store.retention.results:"), "{e}");
        let e = error_of("store:\n  retention:\n    check_interval: 10ms\n");
        assert!(e.starts_with("store.retention.check_interval:"), "{e}");
        let e = error_of("store:\n  retention:\n    check_interval: null\n");
        assert!(e.starts_with("store.retention.check_interval:"), "{e}");
        let e = error_of("store:\n  retention:\n    raw: 1d\n");
        assert!(
            e.starts_with("store.retention.raw:") && e.contains("unknown field `raw`"),
            "{e}"
        );
        let e = error_of("store:\n  ttl: 1d\n");
        assert!(e.starts_with("store.ttl:"), "{e}");
    }

    #[test]
    fn webhooks_have_defaults_and_errors_name_the_key() {
        let v = AppConfig::parse("alerts:\n  webhooks:\n    - url: http://127.0.0.1:9000/hook\n")
            .unwrap()
            .validate()
            .unwrap();
        let w = v.config.alerts.webhook_configs();
        assert_eq!(
            w,
            vec![streampulse_engine::WebhookConfig::new(
                "http://127.0.0.1:9000/hook"
            )]
        );
        let v = AppConfig::parse(
            "alerts:\n  webhook_queue: 5\n  webhooks:\n    - {url: 'http://h/x', timeout: 1s, max_attempts: 2, initial_backoff: 10ms, max_backoff: 1s}\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        let w = &v.config.alerts.webhook_configs()[0];
        assert_eq!(
            (
                w.timeout,
                w.max_attempts,
                w.initial_backoff,
                w.max_backoff,
                w.queue_capacity
            ),
            (
                Duration::from_secs(1),
                2,
                Duration::from_millis(10),
                Duration::from_secs(1),
                5
            )
        );

        let e = error_of("alerts:\n  webhooks:\n    - url: https://example.com/hook\n");
        assert!(
            e.starts_with("alerts.webhooks[0].url:") && e.contains("https is not supported"),
            "{e}"
        );
        let e = error_of("alerts:\n  webhooks:\n    - url: ftp://example.com/\n");
        assert!(e.starts_with("alerts.webhooks[0].url:"), "{e}");
        let e = error_of("alerts:\n  webhooks:\n    - url: 'http://'\n");
        assert!(e.starts_with("alerts.webhooks[0].url:"), "{e}");
        let e = error_of("alerts:\n  webhooks:\n    - {url: 'http://h/', max_attempts: 0}\n");
        assert!(e.starts_with("alerts.webhooks[0].max_attempts:"), "{e}");
        let e = error_of("alerts:\n  webhooks:\n    - {url: 'http://h/', initial_backoff: 2s, max_backoff: 1s}\n");
        assert!(e.starts_with("alerts.webhooks[0].max_backoff:"), "{e}");
        let e = error_of("alerts:\n  webhooks:\n    - {url: 'http://h/', timeout: 0s}\n");
        assert!(e.starts_with("alerts.webhooks[0].timeout:"), "{e}");
        let e = error_of("alerts:\n  webhook_queue: 0\n");
        assert!(e.starts_with("alerts.webhook_queue:"), "{e}");
        let e = error_of("alerts:\n  webhooks:\n    - {url: 'http://h/', retries: 3}\n");
        assert!(
            e.starts_with("alerts.webhooks[0]") && e.contains("unknown field `retries`"),
            "{e}"
        );
        let e = error_of("alerts:\n  webhooks:\n    - {timeout: 1s}\n");
        assert!(e.contains("missing field `url`"), "{e}");
    }

    #[test]
    fn auth_tokens_and_cors_origins_are_checked() {
        let v = AppConfig::parse(
            "server:\n  auth:\n    read_tokens: [abcdefgh]\n  cors_origins: ['*', 'https://a.example:8443']\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(v.config.server.auth.read_tokens, vec!["abcdefgh"]);
        assert!(error_of("server:\n  auth:\n    admin_tokens: [short]\n")
            .starts_with("server.auth.admin_tokens (or STREAMPULSE_ADMIN_TOKENS):"));
        assert!(
            error_of("server:\n  auth:\n    write_tokens: ['has space']\n")
                .starts_with("server.auth.write_tokens (or STREAMPULSE_WRITE_TOKENS):")
        );
        assert!(error_of("server:\n  auth:\n    tokens: [abcdefgh]\n").contains("tokens"));
        for bad in [
            "a.example",
            "https://a.example/",
            "https://a.example/x",
            "https://",
        ] {
            assert!(
                error_of(&format!("server:\n  cors_origins: ['{bad}']\n"))
                    .starts_with("server.cors_origins:"),
                "{bad}"
            );
        }
    }

    #[test]
    fn token_variables_replace_the_files_lists() {
        let mut auth = AppConfig::parse("server:\n  auth:\n    read_tokens: [from-file-1]\n")
            .unwrap()
            .server
            .auth;
        auth.apply_env(|var| match var {
            "STREAMPULSE_ADMIN_TOKENS" => Some(" admin-token-1, admin-token-2 ,".into()),
            // Set but empty: the file's list stays.
            "STREAMPULSE_READ_TOKENS" => Some("".into()),
            _ => None,
        });
        assert_eq!(auth.read_tokens, ["from-file-1"]);
        assert!(auth.write_tokens.is_empty());
        assert_eq!(auth.admin_tokens, ["admin-token-1", "admin-token-2"]);
        auth.apply_env(|var| (var == "STREAMPULSE_READ_TOKENS").then(|| "short".into()));
        let err = auth.validate().unwrap_err().to_string();
        assert!(err.contains("STREAMPULSE_READ_TOKENS"), "{err}");
        auth.apply_env(|var| (var == "STREAMPULSE_READ_TOKENS").then(|| "CHANGE_ME-read".into()));
        let err = auth.validate().unwrap_err().to_string();
        assert!(err.contains("replace the placeholder"), "{err}");
    }

    #[test]
    fn shipped_config_files_are_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for file in ["config/application.yaml", "examples/flink_parity.yaml"] {
            let path = root.join(file);
            if let Err(e) = AppConfig::load(Some(&path)) {
                panic!("{file}: {e:#}");
            }
        }
    }
}
