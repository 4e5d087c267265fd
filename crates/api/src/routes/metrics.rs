//! Window results: `GET /metrics?start&end[&metric_id|&prefix][&window][&tag=k:v...][&limit]
//! [&cursor]` and `GET /metrics/{metric_id}?start&end[&window][&limit][&cursor]`, both in one
//! answer shape.
//!
//! `metric_id` is a literal id or a glob (`*` any run, `?` one character); `prefix` keeps the ids
//! that start with it; `tag` (repeatable) keeps the metrics whose first event carried every given
//! tag (the metric catalog the engine writes). Rows come by (metric, window, window start) when the filter pins a metric or
//! a literal prefix (`cpu.*`), otherwise by (window start, metric, window).
//!
//! `job` picks one of the process's jobs (`GET /jobs`); without it, the configured job answers.
//!
//! A page that was cut carries `next_cursor`; passing it back as `cursor` returns the next page,
//! resuming strictly after the last row, so a walk neither skips nor repeats a row. A page is also
//! cut when the query examined `server.max_query_scan` stored entries: then it may hold fewer rows
//! than asked, even none, and the walk goes on from where the scan stopped.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use streampulse_core::glob::is_glob;
use streampulse_core::job::Job;
use streampulse_store::{MetricMatch, ResultKey, ResultQuery};

use super::blocking;
use crate::cursor;
use crate::openapi::schemas::{Instant, ResultsPage};
use crate::params::{MetricFilter, Params};
use crate::{AppState, Problem};

/// Tags this endpoint's cursors, so another endpoint's cursor is refused.
const CURSOR_TAG: &str = "results";

#[utoipa::path(get, path = "/metrics", tag = "results",
    params(
        ("start" = Instant, Query, description = "Range start, inclusive: RFC 3339 or epoch ms"),
        ("end" = Instant, Query, description = "Range end, exclusive: RFC 3339 or epoch ms; not before start"),
        ("metric_id" = Option<String>, Query, description = "A metric id, or a glob (`*` any run, `?` one character)"),
        ("prefix" = Option<String>, Query, description = "Metric ids starting with this (not with metric_id)"),
        ("job" = Option<String>, Query, description = "Which job's results: a name from GET /jobs (default: the job of the config file)"),
        ("window" = Option<String>, Query, description = "A window name of the job"),
        ("tag" = Option<Vec<String>>, Query, style = Form, explode, description = "`key:value`, repeatable (`tag=host:h1&tag=dc:eu`): only metrics whose first event carried every given tag"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most rows in the page (default and maximum: the server's max_query_rows)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of window results", body = ResultsPage),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job of that name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn query(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = Params::new(
        query,
        &[
            "start",
            "end",
            "metric_id",
            "prefix",
            "window",
            "job",
            "tag",
            "limit",
            "cursor",
        ],
    )?;
    let (metric_id, metric_match) = match params.metric_filter()? {
        MetricFilter::Id(g) if is_glob(&g) => (None, Some(MetricMatch::Glob(g))),
        MetricFilter::Id(id) => (Some(id), None),
        MetricFilter::Prefix(p) => (None, Some(MetricMatch::Prefix(p))),
        MetricFilter::Any => (None, None),
    };
    answer(state, &params, metric_id, metric_match).await
}

#[utoipa::path(get, path = "/metrics/{metric_id}", tag = "results",
    params(
        ("metric_id" = String, Path, description = "The metric id (literal)"),
        ("start" = Instant, Query, description = "Range start, inclusive: RFC 3339 or epoch ms"),
        ("end" = Instant, Query, description = "Range end, exclusive: RFC 3339 or epoch ms; not before start"),
        ("job" = Option<String>, Query, description = "Which job's results: a name from GET /jobs (default: the job of the config file)"),
        ("window" = Option<String>, Query, description = "A window name of the job"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most rows in the page (default and maximum: the server's max_query_rows)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of the metric's window results", body = ResultsPage),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job of that name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn one(
    State(state): State<AppState>,
    Path(metric_id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = Params::new(query, &["start", "end", "window", "job", "limit", "cursor"])?;
    answer(state, &params, Some(metric_id), None).await
}

async fn answer(
    state: AppState,
    params: &Params,
    metric_id: Option<String>,
    metric_match: Option<MetricMatch>,
) -> Result<Response, Problem> {
    let (start, end) = params.range(state.max_query_range)?;
    let limit = params.limit(state.max_query_rows)?;
    let entry = state.job(params)?;
    let job = entry.job();
    let window = params.string("window");
    if let Some(w) = &window {
        check_window(job, w)?;
    }
    let q = ResultQuery {
        job: job.name.clone(),
        start,
        end,
        metric_id,
        metric_match,
        window,
        tags: params.tags()?,
        // One more than asked, to tell the caller the answer was cut.
        limit: limit + 1,
        after: params.cursor(CURSOR_TAG)?,
        scan_limit: state.max_query_scan,
    };
    let store = state.store.clone();
    let page = blocking(move || store.query_page(&q).map_err(Problem::from)).await?;
    let mut rows = page.rows;
    // Cut by the row limit: go on after the last row shown. Cut by the scan budget: after the
    // last entry examined, which may lie past the last row (or there may be no row at all).
    let next_cursor = match cursor::cut(&mut rows, limit, CURSOR_TAG, ResultKey::of)? {
        Some(after_last_row) => Some(after_last_row),
        None => page
            .resume_after
            .map(|key| cursor::encode(CURSOR_TAG, &key))
            .transpose()?,
    };
    let truncated = next_cursor.is_some();
    let results: Vec<Value> = rows.iter().map(|r| r.to_json()).collect();
    Ok(Json(ResultsPage {
        job: entry.job().name.clone(),
        time_unit: "ms",
        start,
        end,
        count: results.len(),
        truncated,
        next_cursor,
        results,
    })
    .into_response())
}

fn check_window(job: &Job, w: &str) -> Result<(), Problem> {
    let windows = &job.windows;
    if windows.iter().any(|d| *d.name == *w) {
        return Ok(());
    }
    let names: Vec<&str> = windows.iter().map(|d| &*d.name).collect();
    Err(Problem::bad_request(format!(
        "unknown window '{w}'; job '{}' has: {}",
        job.name,
        names.join(", ")
    )))
}
