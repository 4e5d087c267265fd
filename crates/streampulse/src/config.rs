//! The platform's configuration file: every key, its default, and the errors that name the key.
//!
//! One file format serves `run` and `replay`. Every key has a default (see the shipped
//! `config/application.yaml`), so an empty file, or none, is a working configuration. Unknown keys
//! are errors: a typo must not silently fall back to a default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use streampulse_core::job::{Job, JobSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Where the embedded log, store and (by default) checkpoints live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub log: LogSection,
    pub checkpoint: CheckpointSection,
    pub job: JobSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API (ingest and queries).
    pub listen: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            max_body_bytes: 16 * 1024 * 1024,
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
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            partitions: 4,
            fsync: streampulse_log::FsyncPolicy::Always,
            retention_bytes: None,
            retention_age: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckpointSection {
    /// Time between checkpoints (another is always taken at shutdown).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Checkpoint storage URL; `file://` URLs and plain paths are supported. Empty:
    /// `<data_dir>/checkpoints`.
    pub storage: String,
    /// Completed checkpoints kept (savepoints are never deleted automatically).
    pub retain: usize,
}

impl Default for CheckpointSection {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            storage: String::new(),
            retain: 3,
        }
    }
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
        let fail = |key: &str, reason: &str| Err(anyhow::anyhow!("{key}: {reason}"));
        if self.log.partitions == 0 || self.log.partitions > 1024 {
            return fail("log.partitions", "must be between 1 and 1024");
        }
        if self.checkpoint.interval < Duration::from_millis(100) {
            return fail("checkpoint.interval", "must be at least 100ms");
        }
        if self.checkpoint.retain == 0 {
            return fail("checkpoint.retain", "must keep at least 1 checkpoint");
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return fail("server.listen", "must be an address like 0.0.0.0:8080");
        }
        if self.server.max_body_bytes < 1024 {
            return fail("server.max_body_bytes", "must be at least 1024");
        }
        let job = self
            .job
            .validate()
            .map_err(|e| anyhow::anyhow!("job.{e}"))?;
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
    fn errors_name_the_key() {
        let e = error_of("log:\n  partitons: 2\n");
        assert!(
            e.starts_with("log.partitons:") && e.contains("unknown field `partitons`"),
            "{e}"
        );
        assert!(error_of("log:\n  partitions: 0\n").starts_with("log.partitions:"));
        let e = error_of("job:\n  windows:\n    - name: w\n      type: sliding\n      size: 30s\n");
        assert_eq!(e, "job.windows[0].slide: required for a sliding window");
        let e =
            error_of("job:\n  windows:\n    - name: w\n      type: tumbling\n      size: ten\n");
        assert!(e.starts_with("job.windows[0].size:"), "{e}");
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
