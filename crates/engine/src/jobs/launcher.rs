//! Starting a job over the embedded log: a reader of the [`SharedLog`], checkpoints in the
//! process's checkpoint storage, results in its store.
//!
//! The configured job and every submitted job start here, so they differ only in their
//! definitions: each reads at its own offsets and holds back retention only for itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use streampulse_core::job::Job;
use streampulse_store::ResultStore;

use super::JobLauncher;
use crate::checkpoint::{open_storage_with, CheckpointStore};
use crate::runtime::{EngineError, InitialPosition, Runtime, RuntimeConfig, StartFrom};
use crate::shared_log::SharedLog;
use crate::webhook::WebhookConfig;

/// What every job of an embedded process shares.
pub struct EmbeddedLauncher {
    pub log: Arc<SharedLog>,
    pub store: Arc<dyn ResultStore>,
    /// Checkpoint storage URL (a path, file://, s3://, gs://, az://) and its options.
    pub storage_url: String,
    pub storage_options: BTreeMap<String, String>,
    /// Checkpoints kept per job.
    pub retain: usize,
    pub checkpoint_interval: Duration,
    pub webhooks: Vec<WebhookConfig>,
}

impl JobLauncher for EmbeddedLauncher {
    fn launch(
        &self,
        job: Job,
        from: StartFrom,
        position: InitialPosition,
    ) -> Result<Runtime, EngineError> {
        let checkpoints = CheckpointStore::new(
            open_storage_with(&self.storage_url, &self.storage_options)?,
            &job.name,
            self.retain,
        );
        let reader_name = job.name.clone();
        let reader = self.log.reader(&reader_name);
        let config = RuntimeConfig {
            checkpoint_interval: self.checkpoint_interval,
            webhooks: self.webhooks.clone(),
            initial_position: position,
        };
        let started = Runtime::start(
            job,
            config,
            reader.clone(),
            Some(self.log.log().clone()),
            self.store.clone(),
            checkpoints,
            from,
        );
        if started.is_err() {
            // It never ran: it must not hold retention back.
            self.log.detach(&reader_name);
        }
        started
    }

    fn detach(&self, job: &str) {
        self.log.detach(job);
    }

    fn keep(&self, job: &str) {
        self.log.keep(job);
    }

    fn end_offsets(&self) -> Vec<u64> {
        let log = self.log.log();
        (0..log.partitions()).map(|p| log.end_offset(p)).collect()
    }
}
