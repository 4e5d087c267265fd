//! The StreamPulse runtime: runs a job's pipelines over a partitioned log with exactly-once
//! results.
//!
//! - [`record`]: what the embedded log holds (events and idle-flush markers);
//! - [`emit`]: a partition's outputs into the store, the counters, the webhooks and the feed;
//! - [`partition`]: one worker per log partition, running the pure pipeline from
//!   `streampulse-core`;
//! - [`checkpoint`]: consistent snapshots and the storage they go to;
//! - [`source`]: the partitioned, replayable input the workers read;
//! - [`shared_log`]: one embedded log read by several jobs, retention kept behind the slowest;
//! - [`jobs`]: the jobs of a process: the configured one and those submitted over the API;
//! - [`runtime`]: starting from a checkpoint or savepoint, periodic checkpoints, clean shutdown;
//! - [`ingest`]: validated events into the log, acknowledged once durable;
//! - [`status`]: live counters for the API;
//! - [`telemetry`]: labelled counters and histograms for the Prometheus exposition;
//! - [`feed`]: results and alerts pushed to live subscribers (WebSocket);
//! - [`webhook`]: alert transitions POSTed to the configured URLs, at least once, in order per alert.
//!
//! The runtime depends on the log, the store and the checkpoint storage only through their
//! interfaces, so a Kafka source or a Cassandra store replaces the embedded ones without touching
//! the pipeline logic.

pub mod checkpoint;
pub mod emit;
pub mod feed;
pub mod ingest;
pub mod jobs;
pub mod partition;
pub mod record;
pub mod runtime;
pub mod shared_log;
pub mod source;
pub mod status;
pub mod task;

#[cfg(any(test, feature = "fakes"))]
pub mod fakes;
pub mod telemetry;
pub mod webhook;
pub mod write_behind;

pub use runtime::{
    start_webhooks, Control, EngineError, InitialPosition, LogEnd, Runtime, RuntimeConfig,
    RuntimeParts, StartFrom,
};
pub use webhook::{WebhookConfig, WebhookDispatcher};
