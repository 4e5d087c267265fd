//! `POST /events` (ingest), `GET /events` (one metric's raw events, when the job keeps them) and
//! `GET /events/late` (the late output).
//!
//! The body is one JSON object, a JSON array of objects, or NDJSON. Each event is validated on its
//! own: valid ones are appended and acknowledged once durable; invalid ones are listed with their
//! position and reason. The status is 200 when every event was accepted and 400 when any was
//! rejected (the body says how many were accepted: those are stored). An `Idempotency-Key` header
//! makes a retried request a no-op once the first attempt was stored.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use streampulse_core::batch::{self, Framing};
use streampulse_store::{LateQuery, RawKey, RawQuery};

use super::blocking;
use crate::openapi::schemas::{
    EventDoc, IngestReportDoc, Instant, LatePage, RawEventRow, RawEventsPage,
};
use crate::params::Params;
use crate::{body, cursor, media};
use crate::{AppState, Problem};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Tags this endpoint's cursors, so another endpoint's cursor is refused.
const RAW_CURSOR_TAG: &str = "raw_events";

#[utoipa::path(post, path = "/events", tag = "ingest",
    request_body(content = Vec<EventDoc>, description = "One event object, an array of them (application/json), or one per line (application/x-ndjson)"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request a no-op once the first was stored")),
    responses(
        (status = 200, description = "Every event was stored", body = IngestReportDoc),
        (status = 400, description = "Some events were rejected (the rest are stored), or the body is unusable", content(
            (IngestReportDoc = "application/json"),
            (Problem = "application/problem+json"),
        )),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak (ingest needs write or admin)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job takes no HTTP events: it is stopped, or it reads a Kafka topic", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within server.body_read_timeout", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body exceeds server.max_body_bytes, or holds more than server.max_events_per_request events", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The server holds server.max_inflight_bytes of request bodies already, or the log is unavailable: retry with backoff", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    if !state.jobs.any_running() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "every job is stopped (DELETE /jobs/{id}); restart the process, or submit a job \
             (POST /jobs), to resume ingest",
        ));
    }
    let runtime = state.jobs.configured();
    if runtime.ingest_log().is_none() {
        // A job in a Kafka consumer group reads only its topic: an event accepted here would
        // reach no worker.
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "this job reads its events from a Kafka topic (kafka.topic), not over HTTP; produce \
             them to that topic, keyed by metric_id (e.g. `streampulse produce --kafka BROKERS`)",
        ));
    }
    let framing = match media::of(&headers)? {
        media::Media::Json => Framing::Json,
        media::Media::Ndjson => Framing::Ndjson,
    };
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if !k.is_empty() && k.len() <= 200 => Some(k.to_string()),
            _ => {
                return Err(Problem::bad_request(
                    "header 'Idempotency-Key' must be 1 to 200 visible ASCII characters",
                ))
            }
        },
    };
    let held = body::read(body, &state.ingest).await?;
    let format = runtime.job().event.clone();
    let max_events = state.max_events_per_request;
    let body = held.bytes.clone();
    let jobs = state.jobs.clone();
    // Parsing and encoding are CPU work proportional to the body: done in the blocking pool, in
    // one pass, the events borrowing from the body until their log records are written.
    let prepared = blocking(move || {
        let items = batch::parse_refs(&body, framing, &format, max_events)?;
        Ok(jobs.configured().prepare_ingest(items)?)
    })
    .await?;
    let report = runtime.ingest(prepared, key).await?;
    drop(held);
    let status = if report.rejected.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(report)).into_response())
}

#[utoipa::path(get, path = "/events/late", tag = "results",
    params(
        ("start" = Instant, Query, description = "Range start, inclusive: RFC 3339 or epoch ms"),
        ("end" = Instant, Query, description = "Range end, exclusive: RFC 3339 or epoch ms; not before start"),
        ("job" = Option<String>, Query, description = "Which job's results: a name from GET /jobs (default: the job of the config file)"),
        ("metric_id" = Option<String>, Query, description = "One metric's late events"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most rows (default and maximum: the server's max_query_rows)"),
    ),
    responses(
        (status = 200, description = "Late events by event time", body = LatePage),
        (status = 404, description = "No job of that name", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn late(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = Params::new(query, &["start", "end", "metric_id", "job", "limit"])?;
    let (start, end) = params.range(state.max_query_range)?;
    let limit = params.limit(state.max_query_rows)?;
    let q = LateQuery {
        job: state.job(&params)?.job().name.clone(),
        start,
        end,
        metric_id: params.string("metric_id"),
        limit,
    };
    let store = state.store.clone();
    let rows = blocking(move || store.query_late(&q).map_err(Problem::from)).await?;
    Ok(Json(LatePage {
        time_unit: "ms",
        start,
        end,
        count: rows.len(),
        late_events: rows,
    })
    .into_response())
}

#[utoipa::path(get, path = "/events", tag = "results",
    params(
        ("metric_id" = String, Query, description = "The metric (literal id): raw events are stored per metric"),
        ("job" = Option<String>, Query, description = "Which job's results: a name from GET /jobs (default: the job of the config file)"),
        ("start" = Instant, Query, description = "Range start (event time), inclusive: RFC 3339 or epoch ms"),
        ("end" = Instant, Query, description = "Range end (event time), exclusive: RFC 3339 or epoch ms; not before start"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most rows in the page (default and maximum: the server's max_query_rows)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of the metric's raw events, by (ts, partition, offset)", body = RawEventsPage),
        (status = 404, description = "No job of that name", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A parameter is wrong or missing (metric_id is required): `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job does not keep raw events (job.keep_raw_events is off)", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn raw(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = Params::new(
        query,
        &["metric_id", "start", "end", "job", "limit", "cursor"],
    )?;
    let metric_id = params.string("metric_id").ok_or_else(|| {
        // A scan of every metric's events would be the whole input: raw data is read per metric.
        Problem::bad_request(
            "parameter 'metric_id' is required: raw events are stored and read per metric \
             (a literal id, no glob)",
        )
    })?;
    let (start, end) = params.range(state.max_query_range)?;
    let limit = params.limit(state.max_query_rows)?;
    let after: Option<RawKey> = params.cursor(RAW_CURSOR_TAG)?;
    let entry = state.job(&params)?;
    let job = entry.job();
    if !job.keep_raw_events {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "job '{}' does not keep raw events; set job.keep_raw_events: true (it costs one \
                 store write per event) and restart: events processed from then on are kept",
                job.name
            ),
        ));
    }
    let q = RawQuery {
        job: job.name.clone(),
        metric_id,
        start,
        end,
        // One more than asked, to tell the caller the answer was cut.
        limit: limit + 1,
        after,
    };
    let store = state.store.clone();
    let mut rows = blocking(move || store.query_raw(&q).map_err(Problem::from)).await?;
    let next_cursor = cursor::cut(&mut rows, limit, RAW_CURSOR_TAG, RawKey::of)?;
    let truncated = next_cursor.is_some();
    let events: Vec<RawEventRow> = rows
        .into_iter()
        .map(|r| RawEventRow {
            metric_id: r.event.metric_id,
            ts: r.event.ts,
            value: r.event.value,
            tags: r.event.tags,
            partition: r.partition,
            offset: r.event.offset,
        })
        .collect();
    Ok(Json(RawEventsPage {
        job: job.name.clone(),
        time_unit: "ms",
        start,
        end,
        count: events.len(),
        truncated,
        next_cursor,
        events,
    })
    .into_response())
}
