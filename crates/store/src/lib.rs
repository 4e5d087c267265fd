//! StreamPulse's result store: where window results and late events land, and where the API reads
//! them back.
//!
//! The engine writes through [`ResultStore::apply`], one call per batch of one partition, and calls
//! [`ResultStore::flush`] before it commits a checkpoint. Every write is an upsert or delete by the
//! output's own idempotency key, so replaying a log from a checkpoint rewrites the same rows and a
//! crash between `apply` and `flush` loses nothing the replay will not write again.
//!
//! Reads are range queries over two access paths, mirroring the Cassandra design: by metric
//! (metric, window, window_start) and by time (window_start, metric, window).
//!
//! Alerts are stored by their id, keeping the latest transition (highest `sequence`), and read back
//! by the overlap of their episode with a time range ([`AlertQuery`]) or by id.
//!
//! [`EmbeddedStore`] is the single-process implementation (redb). A store never interprets or
//! alters results: it must never merge, drop or reorder fields of what it is given.

mod codec;
mod embedded;
mod error;
mod keys;

pub use embedded::EmbeddedStore;
pub use error::StoreError;

use streampulse_core::detect::{Alert, AlertState, Severity};
use streampulse_core::output::{LateEvent, Output, WindowResult};
use streampulse_core::time::Millis;

/// Durable storage of pipeline outputs. Implementations are shared by every partition thread.
pub trait ResultStore: Send + Sync {
    /// Applies outputs of one partition of one job in one transaction: all or none of them become
    /// visible. Not necessarily durable until [`ResultStore::flush`].
    fn apply(&self, job: &str, partition: u32, outputs: &[Output]) -> Result<(), StoreError>;

    /// Makes everything applied so far durable (called before a checkpoint is committed).
    fn flush(&self) -> Result<(), StoreError>;

    /// Window results of one job; see [`ResultQuery`] for filters and order.
    fn query_results(&self, q: &ResultQuery) -> Result<Vec<WindowResult>, StoreError>;

    /// Late events of one job; see [`LateQuery`] for filters and order.
    fn query_late(&self, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError>;

    /// Alerts of one job; see [`AlertQuery`] for filters and order.
    fn query_alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError>;

    /// The latest stored transition of one alert of `job`, if any.
    fn get_alert(&self, job: &str, id: &str) -> Result<Option<Alert>, StoreError>;

    /// Number of result rows, late rows and alerts, over all jobs.
    fn counts(&self) -> Result<StoreCounts, StoreError>;
}

/// Window results of `job` whose `window_start` is in `[start, end)` (epoch ms).
///
/// Sorted by (metric_id, window, window_start) when `metric_id` is given, otherwise by
/// (window_start, metric_id, window). At most `limit` rows (so `limit == 0` returns none); an
/// empty range (`start >= end`) returns none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultQuery {
    pub job: String,
    pub start: Millis,
    pub end: Millis,
    pub metric_id: Option<String>,
    pub window: Option<String>,
    pub limit: usize,
}

/// Late events of `job` whose event time `ts` is in `[start, end)` (epoch ms), optionally of one
/// metric.
///
/// Sorted by (ts, partition, window, offset). At most `limit` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateQuery {
    pub job: String,
    pub start: Millis,
    pub end: Millis,
    pub metric_id: Option<String>,
    pub limit: usize,
}

/// Alerts of `job` whose episode `[first_ts, last_ts]` overlaps `[start, end)` (epoch ms), i.e.
/// `first_ts < end && last_ts >= start`, optionally of one metric, state and severity.
///
/// Each alert appears once, as its latest stored transition. Sorted newest first: by
/// (first_ts, id) descending. At most `limit` rows (so `limit == 0` returns none); an empty range
/// (`start >= end`) returns none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    pub job: String,
    pub start: Millis,
    pub end: Millis,
    pub metric_id: Option<String>,
    pub state: Option<AlertState>,
    pub severity: Option<Severity>,
    pub limit: usize,
}

/// Row counts of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    /// Window results (one per (job, metric, window, window_start)).
    pub results: u64,
    /// Late events (one per (job, partition, window, offset)).
    pub late: u64,
    /// Alerts (one per (job, alert id), whatever its number of transitions).
    pub alerts: u64,
}
