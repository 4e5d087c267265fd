//! The tables of the embedded result store (`store.redb`) and their key layouts. All keys are
//! [`crate::keys`] encodings, so byte order is tuple order:
//! - `results_by_metric`: (job, metric_id, window, window_start) → result. Serves queries for one
//!   metric, like Cassandra's ((metric_id, window, day), window_start).
//! - `results_by_time`: (job, window_start, metric_id, window) → the same result, duplicated.
//!   Serves "all metrics between start and end", like ((window, hour), window_start, metric_id).
//!   It holds the whole value rather than nothing because the dashboard's time-range query would
//!   otherwise pay one random B-tree lookup into `results_by_metric` per row; results are small
//!   (about 100 bytes), so doubling them is cheaper than the lookups. `results_by_time` is
//!   written in the transaction of the outputs; `results_by_metric` rows are held back in memory
//!   and written in key order, many at once ([`crate::embedded::pending`]), always before a
//!   query reads that table, a flush makes the store durable or retention deletes: no reader
//!   sees the two disagree.
//! - `late_events`: (job, partition, window, offset) → late event: the late output's idempotency
//!   key, so a replayed late event overwrites itself.
//! - `late_by_ts`: (job, ts, partition, window, offset) → the same late event, for queries by event
//!   time. A metric filter on late events is applied while scanning this range (a rarely used
//!   diagnostic path, so it has no index of its own).
//! - `alerts`: (job, id) → alert: the alert's idempotency key. Holds the transition with the highest
//!   `sequence` seen; an older one arriving later (a replay after a crash) is ignored, an equal one
//!   is an identical rewrite.
//! - `alerts_by_time`: (job, first_ts, id) → the same alert, for time-range queries.
//! - `alerts_by_metric`: (job, metric_id, first_ts, id) → the same alert, for one metric's alerts.
//! - `alert_spans`: (job) → the longest episode (`last_ts − first_ts`, i64 big-endian) ever stored
//!   for the job. A query for episodes overlapping `[start, end)` scans the first_ts range
//!   `[start − longest, end)` of an index: nothing that starts earlier can reach `start`. The value
//!   only grows, so it stays a safe bound whatever is overwritten.
//!
//! - `metric_tags`: (job, metric_id) → the tags of the metric's first event: the metric catalog,
//!   written when a partition first sees a metric. Result queries with a tag filter read it once
//!   per query to find the matching metrics.
//!
//! - `raw_events`: (job, metric_id, ts, partition, offset) → value and tags, for jobs that keep
//!   raw events (`keep_raw_events`): DESIGN's ((metric_id, hour), ts, seq), with (partition,
//!   offset) as the sequence, which is also the event's idempotency key (a replay rewrites the
//!   same row). Serves one metric's events by time; the value holds only what the key does not.
//!
//! Retention ([`crate::retention`]) deletes from every table but `metric_tags` and `alert_spans`.
//!
//! The three alert tables are written in the same transaction (and the same one as the other
//! outputs of the batch), so they cannot disagree.
//!
//!
//! [`crate::embedded`] reads and writes them, [`crate::retention`] deletes from them. Changing a
//! name or layout here breaks existing store files: this module must never change an existing
//! table without a migration.

use redb::TableDefinition;

pub(crate) type Bytes = &'static [u8];

pub(crate) const RESULTS_BY_METRIC_NAME: &str = "results_by_metric";
pub(crate) const RESULTS_BY_TIME_NAME: &str = "results_by_time";
pub(crate) const LATE_EVENTS_NAME: &str = "late_events";
pub(crate) const LATE_BY_TS_NAME: &str = "late_by_ts";
pub(crate) const ALERTS_NAME: &str = "alerts";
pub(crate) const ALERTS_BY_TIME_NAME: &str = "alerts_by_time";
pub(crate) const ALERTS_BY_METRIC_NAME: &str = "alerts_by_metric";
pub(crate) const ALERT_SPANS_NAME: &str = "alert_spans";
pub(crate) const METRIC_TAGS_NAME: &str = "metric_tags";
pub(crate) const RAW_EVENTS_NAME: &str = "raw_events";

pub(crate) const RESULTS_BY_METRIC: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(RESULTS_BY_METRIC_NAME);
pub(crate) const RESULTS_BY_TIME: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(RESULTS_BY_TIME_NAME);
pub(crate) const LATE_EVENTS: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(LATE_EVENTS_NAME);
pub(crate) const LATE_BY_TS: TableDefinition<Bytes, Bytes> = TableDefinition::new(LATE_BY_TS_NAME);
pub(crate) const ALERTS: TableDefinition<Bytes, Bytes> = TableDefinition::new(ALERTS_NAME);
pub(crate) const ALERTS_BY_TIME: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(ALERTS_BY_TIME_NAME);
pub(crate) const ALERTS_BY_METRIC: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(ALERTS_BY_METRIC_NAME);
pub(crate) const ALERT_SPANS: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(ALERT_SPANS_NAME);
pub(crate) const METRIC_TAGS: TableDefinition<Bytes, Bytes> =
    TableDefinition::new(METRIC_TAGS_NAME);
pub(crate) const RAW_EVENTS: TableDefinition<Bytes, Bytes> = TableDefinition::new(RAW_EVENTS_NAME);
