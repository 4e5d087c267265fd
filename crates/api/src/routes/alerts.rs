//! `GET /alerts?start&end[&metric_id][&state][&severity][&tag=key:value...][&limit][&cursor]`:
//! alerts whose episode `[first_ts, last_ts]` overlaps `[start, end)`, newest `first_ts` first
//! (then id descending); a cut page carries `next_cursor`, passed back as `cursor` for the next
//! one; `GET /alerts/{id}`: one alert. Each alert is its latest transition, in the JSON form of
//! `core::detect::Alert`.
//!
//! `tag` repeats: an alert is kept when every given tag is among its tags (the tags of its metric,
//! as alerts carry them).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use streampulse_core::detect::{AlertState, Severity};
use streampulse_store::{AlertKey, AlertQuery};

use super::blocking;
use crate::cursor;
use crate::openapi::schemas::{AlertRow, AlertStateName, AlertsPage, Instant, SeverityName};
use crate::params::Params;
use crate::{AppState, Problem};

const STATES: &[AlertState] = &[AlertState::Firing, AlertState::Resolved];
const SEVERITIES: &[Severity] = &[Severity::Warning, Severity::Critical];

/// Tags this endpoint's cursors, so another endpoint's cursor is refused.
const CURSOR_TAG: &str = "alerts";

#[utoipa::path(get, path = "/alerts", tag = "alerts",
    params(
        ("start" = Instant, Query, description = "Range start, inclusive: RFC 3339 or epoch ms"),
        ("end" = Instant, Query, description = "Range end, exclusive: RFC 3339 or epoch ms; not before start"),
        ("job" = Option<String>, Query, description = "Which job's results: a name from GET /jobs (default: the job of the config file)"),
        ("metric_id" = Option<String>, Query, description = "One metric's alerts"),
        ("state" = Option<AlertStateName>, Query, description = "firing or resolved"),
        ("severity" = Option<SeverityName>, Query, description = "warning or critical"),
        ("tag" = Option<Vec<String>>, Query, style = Form, explode, description = "`key:value`, repeatable (`tag=host:h1&tag=dc:eu`): only alerts whose metric has every given tag"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most rows in the page (default and maximum: the server's max_query_rows)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of alerts, newest first", body = AlertsPage),
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
            "state",
            "severity",
            "job",
            "tag",
            "limit",
            "cursor",
        ],
    )?;
    let (start, end) = params.range(state.max_query_range)?;
    let limit = params.limit(state.max_query_rows)?;
    let job = state.job(&params)?.job().name.clone();
    let q = AlertQuery {
        job: job.clone(),
        start,
        end,
        metric_id: params.string("metric_id"),
        state: params.choice("state", STATES, |s| s.name())?,
        severity: params.choice("severity", SEVERITIES, |s| s.name())?,
        tags: params.tags()?,
        // One more than asked, to tell the caller the answer was cut.
        limit: limit + 1,
        after: params.cursor(CURSOR_TAG)?,
    };
    let store = state.store.clone();
    let mut rows = blocking(move || store.query_alerts(&q).map_err(Problem::from)).await?;
    let next_cursor = cursor::cut(&mut rows, limit, CURSOR_TAG, AlertKey::of)?;
    let truncated = next_cursor.is_some();
    Ok(Json(AlertsPage {
        job,
        time_unit: "ms",
        start,
        end,
        count: rows.len(),
        truncated,
        next_cursor,
        alerts: rows,
    })
    .into_response())
}

#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts",
    params(
        ("id" = String, Path, description = "The alert id"),
        ("job" = Option<String>, Query, description = "Which job's results: a name from GET /jobs (default: the job of the config file)"),
    ),
    responses(
        (status = 200, description = "The alert's latest transition", body = AlertRow),
        (status = 404, description = "No such alert", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = Params::new(query, &["job"])?;
    let job = state.job(&params)?.job().name.clone();
    let store = state.store.clone();
    let (job_for_task, id_for_task) = (job.clone(), id.clone());
    let alert = blocking(move || {
        store
            .get_alert(&job_for_task, &id_for_task)
            .map_err(Problem::from)
    })
    .await?;
    match alert {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("no alert '{id}' in job '{job}'; list them with GET /alerts?start&end"),
        )),
    }
}
