//! The JSON shapes of the API's answers, as OpenAPI schemas.
//!
//! The page envelopes are the types the handlers serialize. Rows whose types live in crates
//! without OpenAPI support (window results, alerts, late events, job status, ingest reports) have
//! a mirror here with the same field names; `tests/api_schemathesis.rs` checks every answer
//! against these schemas, so a mirror that drifts from what is served fails CI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use streampulse_core::detect::Alert;
use streampulse_core::output::LateEvent;
use utoipa::ToSchema;

/// A page of `GET /metrics` or `GET /metrics/{metric_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultsPage {
    pub job: String,
    /// Unit of every time in the answer: `ms` (epoch milliseconds).
    pub time_unit: &'static str,
    pub start: i64,
    pub end: i64,
    /// Rows in this page.
    pub count: usize,
    /// More rows may follow: pass `next_cursor` as `cursor` to get them. Also set when the query
    /// spent its scan budget (`server.max_query_scan`), possibly with no rows in this page.
    pub truncated: bool,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
    #[schema(value_type = Vec<WindowResultRow>)]
    pub results: Vec<Value>,
}

/// A page of `GET /catalog`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogPageDoc {
    pub job: String,
    /// Metrics in this page.
    pub count: usize,
    /// More may follow: pass `next_cursor` as `cursor` to get them. Also set when the query spent
    /// its scan budget (`server.max_query_scan`), possibly with no metric in this page.
    pub truncated: bool,
    /// Opaque; `null` on the last page.
    pub next_cursor: Option<String>,
    pub metrics: Vec<CatalogMetric>,
}

/// One metric of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogMetric {
    pub metric_id: String,
    /// The tags of the metric's first event.
    pub tags: std::collections::BTreeMap<String, String>,
}

/// A page of `GET /alerts`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AlertsPage {
    pub job: String,
    pub time_unit: &'static str,
    pub start: i64,
    pub end: i64,
    pub count: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
    #[schema(value_type = Vec<AlertRow>)]
    pub alerts: Vec<Alert>,
}

/// The answer of `GET /events/late`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatePage {
    pub time_unit: &'static str,
    pub start: i64,
    pub end: i64,
    pub count: usize,
    #[schema(value_type = Vec<LateEventRow>)]
    pub late_events: Vec<LateEvent>,
}

/// A page of `GET /events` (raw events of one metric).
#[derive(Debug, Serialize, ToSchema)]
pub struct RawEventsPage {
    pub job: String,
    pub time_unit: &'static str,
    pub start: i64,
    pub end: i64,
    pub count: usize,
    pub truncated: bool,
    pub next_cursor: Option<String>,
    pub events: Vec<RawEventRow>,
}

/// One event as the engine processed it, by (ts, partition, offset).
#[derive(Debug, Serialize, ToSchema)]
pub struct RawEventRow {
    pub metric_id: String,
    /// Event time, epoch ms.
    pub ts: i64,
    pub value: f64,
    pub tags: BTreeMap<String, String>,
    /// The partition that processed it.
    pub partition: u32,
    /// Its position in that partition.
    pub offset: u64,
}

/// One window result. Aggregates beyond count, sum, min, max and mean (e.g. `p99`, `stddev`)
/// appear as extra number fields named after the aggregate; `null` when undefined.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WindowResultRow {
    metric_id: String,
    window: String,
    /// Inclusive start, epoch ms.
    window_start: i64,
    /// Exclusive end, epoch ms.
    window_end: i64,
    count: u64,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    mean: Option<f64>,
    /// Increases with every re-emission of the window (late data, session merges).
    revision: u32,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AlertStateName {
    Firing,
    Resolved,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum SeverityName {
    Warning,
    Critical,
}

/// An alert, as its latest transition.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AlertRow {
    /// 16 hex digits, stable across restarts.
    id: String,
    metric_id: String,
    detector: String,
    /// `raw` or `<window>.<aggregate>`.
    series: String,
    state: AlertStateName,
    severity: SeverityName,
    observed: f64,
    expected: f64,
    score: f64,
    peak_score: f64,
    threshold: f64,
    /// Event time of the first anomalous point of the episode.
    first_ts: i64,
    /// Event time of the latest anomalous point (never before `first_ts`).
    last_ts: i64,
    /// Once resolved: the later of the resolving point's event time and `last_ts` (never before
    /// either).
    resolved_ts: Option<i64>,
    sequence: u32,
    tags: BTreeMap<String, String>,
}

/// An event that arrived after every window it belongs to had closed.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LateEventRow {
    window: String,
    metric_id: String,
    ts: i64,
    value: f64,
    watermark: i64,
    offset: u64,
}

/// What happened to the events of one `POST /events`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct IngestReportDoc {
    /// Events stored (durably) by this request.
    accepted: u64,
    /// Events refused, each with its 1-based position and the reason.
    #[schema(value_type = Vec<Object>)]
    rejected: Vec<Value>,
    /// The `Idempotency-Key` was seen before: nothing was appended.
    duplicate: bool,
}

/// One event of `POST /events` (a JSON object, an array of them, or NDJSON lines).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct EventDoc {
    metric_id: String,
    /// Event time: epoch ms or RFC 3339.
    #[schema(value_type = Instant)]
    ts: Value,
    value: f64,
    tags: Option<BTreeMap<String, String>>,
}

/// A job's state, watermarks, counters and last checkpoint.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobStatusDoc {
    job: String,
    /// `running`, `stopped`, or `failed` (a submitted job this process could not start again;
    /// `error` says why).
    state: String,
    /// The names of the job's windows, in the order of its definition.
    windows: Vec<String>,
    /// Whether `GET /events` has this job's raw events (`job.keep_raw_events`).
    keep_raw_events: bool,
    partitions: Vec<PartitionStatusDoc>,
    ingest_accepted: u64,
    ingest_rejected: u64,
    checkpoints_completed: u64,
    checkpoints_failed: u64,
    #[schema(value_type = Option<Object>)]
    last_checkpoint: Option<Value>,
    /// Failed attempts to write to the result store since the start (each is retried).
    store_errors: u64,
    /// Present while writes to the result store keep failing: the latest error.
    store_error: Option<String>,
    #[schema(value_type = Vec<Object>)]
    webhooks: Vec<Value>,
    /// Only for a `failed` job: why it could not start.
    error: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PartitionStatusDoc {
    partition: u32,
    /// `null` until the partition has seen an event.
    watermark: Option<i64>,
    next_offset: u64,
    log_end_offset: u64,
    events: u64,
    results: u64,
    late_events: u64,
    open_windows: u64,
    idle_flushes: u64,
    /// Log records that could not be decoded and were stepped over (a damaged or foreign record;
    /// also counted by `streampulse_skipped_records_total`).
    skipped_records: u64,
    /// Records the source no longer held when the partition resumed from its checkpoint, skipped
    /// under `kafka.on_data_loss: skip` (also `streampulse_lost_records_total`).
    lost_records: u64,
    /// Bytes of the partition's operator state (windows, detectors, watermark) as of its last
    /// snapshot; 0 before the first.
    state_bytes: u64,
}

/// `GET /jobs`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct JobsDoc {
    jobs: Vec<JobStatusDoc>,
}

/// Body of `POST /jobs`: a job to run next to the configured one, over the same events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSubmission {
    /// The job, with the keys of the config file's `job:` section (name, event, windows,
    /// detectors, max_out_of_orderness, idle_timeout, allowed_lateness, early_firing,
    /// keep_raw_events, state_ttl); omitted keys take their defaults. `name` is required.
    #[schema(value_type = Object, example = json!({"name": "per_minute", "windows": [{"name": "tumble_1m", "type": "tumbling", "size": "1m", "aggregates": ["count", "mean", "max"]}], "detectors": []}))]
    pub job: Value,
    /// Where a job without a checkpoint starts reading: `earliest` (the oldest retained event,
    /// default) or `latest` (events ingested from now on). A job resumed from its checkpoint or
    /// a savepoint ignores it.
    pub start: Option<StartPosition>,
    /// Restore this savepoint of the job (taken with `POST /jobs/{id}/savepoints` or
    /// `DELETE /jobs/{id}?savepoint=NAME`) instead of its latest checkpoint.
    pub from_savepoint: Option<String>,
}

/// Where a new job starts reading.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    Earliest,
    Latest,
}

/// Body of `POST /jobs/{id}/savepoints` (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SavepointRequest {
    /// Name of the savepoint; default `savepoint-<epoch ms>`.
    pub name: Option<String>,
}

/// A savepoint taken.
#[derive(Serialize, ToSchema)]
pub struct SavepointDoc {
    pub name: String,
    /// Where it was written.
    pub path: String,
}

/// `GET /healthz`, `GET /readyz`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HealthDoc {
    /// `ok` for liveness; the job's state for readiness.
    status: String,
}

/// An instant in a request: epoch milliseconds or an RFC 3339 date-time.
pub struct Instant;

impl utoipa::PartialSchema for Instant {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, SchemaType, Type,
        };
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Integer))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::String))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .description(Some("Epoch milliseconds or RFC 3339"))
            .into()
    }
}

impl ToSchema for Instant {}
