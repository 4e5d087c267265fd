//! Opening the result store a config names: the embedded one under the data directory, or the
//! Cassandra cluster of `store.cassandra` (connecting, and creating or checking its schema).
//!
//! The one place `run` (and every other command that needs the store) turns `store.backend` into
//! a `ResultStore`; it never writes anything itself.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use streampulse_store::{EmbeddedStore, ResultStore};

use crate::config::{AppConfig, StoreBackend};

/// The configured store; `data_dir` holds the embedded one.
pub fn open(config: &AppConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn ResultStore>> {
    Ok(match config.store.backend {
        StoreBackend::Embedded => Arc::new(
            EmbeddedStore::open_with_cache(&data_dir.join("store"), config.store.cache_bytes)
                .with_context(|| format!("cannot open the store under {}", data_dir.display()))?,
        ),
        StoreBackend::Cassandra => {
            let c = &config.store.cassandra;
            let store =
                streampulse_cassandra::CassandraStore::connect(c, config.store.retention.policy())?;
            tracing::info!(contact_points = %c.contact_points.join(","), keyspace = %c.keyspace, write_consistency = ?c.write_consistency, read_consistency = ?c.read_consistency, "result store: cassandra");
            Arc::new(store)
        }
    })
}
