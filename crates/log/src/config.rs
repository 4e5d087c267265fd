//! Configuration of the embedded log: partition count, fsync policy, retention limits and the
//! group-commit cap.
//!
//! This module only describes settings and checks them; it must never touch the disk.

use std::time::Duration;
use streampulse_core::config::ConfigError;

use serde::{Deserialize, Serialize};

use crate::error::LogError;

/// How hard each group commit is pushed to disk before appends are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Every group commit uses redb `Durability::Immediate` (fsync) before any append in it is
    /// acknowledged. An acknowledged append survives a crash or power loss.
    #[default]
    Always,
    /// Group commits use redb `Durability::None`: nothing is fsynced until the log is closed.
    /// For benchmarks only: a crash loses the tail of acknowledged appends (the log reopens at
    /// the last durable commit, which may be the one made when it was last opened or closed).
    Never,
}

/// Settings of an [`crate::EmbeddedLog`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Number of partitions, at least 1. Fixed for the life of the log file, because keys are
    /// routed by `hash % partitions`.
    pub partitions: u32,
    /// Durability of each group commit.
    pub fsync: FsyncPolicy,
    /// Total payload bytes to keep across partitions; older checkpointed data beyond it is
    /// deleted by [`crate::EmbeddedLog::apply_retention`].
    pub retention_bytes: Option<u64>,
    /// Age after which checkpointed data is deleted, measured from its append time. Also the
    /// lifetime of idempotency keys (24h when `None`).
    pub retention_age: Option<Duration>,
    /// Maximum number of records written in one group commit (a single larger request is still
    /// written whole, never split).
    pub max_batch_records: usize,
    /// Bytes of the database's page cache (redb's read and write cache). Readers follow the tail
    /// of each partition, so a small cache serves them; the OS page cache holds the rest.
    pub cache_bytes: usize,
}

/// Default of [`LogConfig::cache_bytes`]. Readers stay within a few batches of the tail: at 32
/// MiB the cache was a tenth of a server's resident memory under load and saved no measurable
/// CPU over 8 MiB (BENCHMARKS (l)).
pub const DEFAULT_LOG_CACHE_BYTES: usize = 8 * 1024 * 1024;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            partitions: 4,
            fsync: FsyncPolicy::Always,
            retention_bytes: None,
            retention_age: Some(Duration::from_secs(24 * 60 * 60)),
            max_batch_records: 100_000,
            cache_bytes: DEFAULT_LOG_CACHE_BYTES,
        }
    }
}

/// How long idempotency keys are remembered when no `retention_age` is configured.
pub(crate) const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

impl LogConfig {
    /// Rejects settings that would make the log unusable, before any file is created.
    pub(crate) fn validate(&self) -> Result<(), LogError> {
        if self.partitions == 0 {
            return Err(ConfigError::new("partitions", "must be at least 1").into());
        }
        if self.max_batch_records == 0 {
            return Err(ConfigError::new("max_batch_records", "must be at least 1").into());
        }
        Ok(())
    }

    /// Lifetime of idempotency keys: they must outlive any retry a client may still send, and
    /// a retry of data already deleted by age retention is meaningless, so the two coincide.
    pub(crate) fn idempotency_ttl(&self) -> Duration {
        self.retention_age.unwrap_or(DEFAULT_IDEMPOTENCY_TTL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let c = LogConfig::default();
        assert_eq!(c.partitions, 4);
        assert_eq!(c.fsync, FsyncPolicy::Always);
        assert_eq!(c.retention_bytes, None);
        assert_eq!(c.retention_age, Some(Duration::from_secs(86_400)));
        assert_eq!(c.max_batch_records, 100_000);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn fsync_policy_is_snake_case_in_serde() {
        assert_eq!(
            serde_json::to_string(&FsyncPolicy::Always).ok().as_deref(),
            Some("\"always\"")
        );
        let never: FsyncPolicy = serde_json::from_str("\"never\"").unwrap_or(FsyncPolicy::Always);
        assert_eq!(never, FsyncPolicy::Never);
    }

    #[test]
    fn zero_partitions_or_batch_cap_is_rejected() {
        let zero_p = LogConfig {
            partitions: 0,
            ..LogConfig::default()
        };
        assert!(matches!(zero_p.validate(), Err(LogError::InvalidConfig(_))));
        let zero_b = LogConfig {
            max_batch_records: 0,
            ..LogConfig::default()
        };
        assert!(matches!(zero_b.validate(), Err(LogError::InvalidConfig(_))));
    }

    #[test]
    fn idempotency_ttl_follows_retention_age() {
        let c = LogConfig {
            retention_age: None,
            ..LogConfig::default()
        };
        assert_eq!(c.idempotency_ttl(), DEFAULT_IDEMPOTENCY_TTL);
        let c = LogConfig {
            retention_age: Some(Duration::from_secs(5)),
            ..LogConfig::default()
        };
        assert_eq!(c.idempotency_ttl(), Duration::from_secs(5));
    }
}
