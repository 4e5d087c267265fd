//! `streampulse check-config`: validates a configuration file as `run` would, and starts nothing.
//!
//! For a container's init step, a CI job or a Kubernetes ConfigMap: the file is loaded with
//! [`AppConfig::load`], the very function `run` starts with, so a file this command accepts is
//! one `run` accepts, and an error names the key as `run`'s would. It also checks the
//! `kafka.properties` librdkafka would refuse when `run` creates its consumer. Nothing else is
//! opened: no data directory, log, store, checkpoint storage, broker or port.

use std::path::PathBuf;

use crate::config::AppConfig;

#[derive(clap::Args)]
pub struct CheckConfigArgs {
    /// Configuration file to check.
    #[arg(long, env = "STREAMPULSE_CONFIG")]
    config: PathBuf,
}

pub fn run(args: CheckConfigArgs) -> anyhow::Result<()> {
    let validated = AppConfig::load(Some(&args.config))?;
    let config = &validated.config;
    let job = &validated.job;
    let kafka = &config.kafka;
    if kafka.enabled() {
        // Each property on its own, so the error names it; librdkafka checks names and values
        // when they are set, without connecting to anything.
        for (key, value) in &kafka.properties {
            let single = streampulse_kafka::KafkaConfig {
                properties: [(key.clone(), value.clone())].into(),
                ..kafka.clone()
            };
            if let Err(e) = single.client_config().create_native_config() {
                anyhow::bail!(
                    "invalid config {}: kafka.properties.{key}: {e}",
                    args.config.display()
                );
            }
        }
    }

    let kafka_summary = if kafka.enabled() {
        format!(
            "kafka on (brokers {}, topic {}, group {}, outputs {})",
            kafka.brokers.trim(),
            kafka.topic,
            kafka.group_for(&job.name),
            if kafka.exactly_once {
                "exactly once, in transactions"
            } else {
                "at least once"
            }
        )
    } else {
        "kafka off (HTTP ingest into the embedded log)".to_string()
    };
    let checkpoints = if config.checkpoint.storage.is_empty() {
        config.data_dir.join("checkpoints").display().to_string()
    } else {
        config.checkpoint.storage.clone()
    };
    let auth = &config.server.auth;
    let tokens = auth.read_tokens.len() + auth.write_tokens.len() + auth.admin_tokens.len();
    let auth_summary = if tokens == 0 {
        "auth off".to_string()
    } else {
        format!(
            "auth on ({} read, {} write, {} admin tokens)",
            auth.read_tokens.len(),
            auth.write_tokens.len(),
            auth.admin_tokens.len()
        )
    };
    let metrics = if config.metrics.enabled {
        config.metrics.listen.as_str()
    } else {
        "off"
    };
    let store = match config.store.backend {
        crate::config::StoreBackend::Embedded => "store embedded".to_string(),
        crate::config::StoreBackend::Cassandra => format!(
            "store cassandra (keyspace {} on {})",
            config.store.cassandra.keyspace,
            config.store.cassandra.contact_points.join(",")
        ),
    };
    println!(
        "ok: {}: job {} ({} windows, {} detectors, {} detector rules), {kafka_summary}, {store}, checkpoints \
         {checkpoints}, data_dir {}, api {}, metrics {metrics}, {auth_summary}",
        args.config.display(),
        job.name,
        job.windows.len(),
        job.detectors.len(),
        job.rules.len(),
        config.data_dir.display(),
        config.server.listen,
    );
    Ok(())
}
