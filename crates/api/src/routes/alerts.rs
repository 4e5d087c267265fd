//! `GET /alerts?start&end[&metric_id][&state][&severity][&limit]`: alerts whose episode
//! `[first_ts, last_ts]` overlaps `[start, end)`, newest `first_ts` first; `GET /alerts/{id}`: one
//! alert. Each alert is its latest transition, in the JSON form of `core::detect::Alert`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use streampulse_core::detect::{AlertState, Severity};
use streampulse_store::AlertQuery;

use super::blocking;
use crate::params::Params;
use crate::{AppState, Problem};

const STATES: &[AlertState] = &[AlertState::Firing, AlertState::Resolved];
const SEVERITIES: &[Severity] = &[Severity::Warning, Severity::Critical];

pub async fn query(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let params = Params::new(
        query,
        &["start", "end", "metric_id", "state", "severity", "limit"],
    )?;
    let (start, end) = params.range()?;
    let limit = params.limit(state.max_query_rows)?;
    let q = AlertQuery {
        job: state.runtime.job().name.clone(),
        start,
        end,
        metric_id: params.string("metric_id"),
        state: params.choice("state", STATES, |s| s.name())?,
        severity: params.choice("severity", SEVERITIES, |s| s.name())?,
        // One more than asked, to tell the caller the answer was cut.
        limit: limit + 1,
    };
    let store = state.store.clone();
    let mut rows = blocking(move || {
        store
            .query_alerts(&q)
            .map_err(|e| Problem::internal(e.to_string()))
    })
    .await?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    Ok(Json(json!({
        "job": state.runtime.job().name,
        "time_unit": "ms",
        "start": start,
        "end": end,
        "count": rows.len(),
        "truncated": truncated,
        "alerts": rows,
    }))
    .into_response())
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let job = state.runtime.job().name.clone();
    let store = state.store.clone();
    let (job_for_task, id_for_task) = (job.clone(), id.clone());
    let alert = blocking(move || {
        store
            .get_alert(&job_for_task, &id_for_task)
            .map_err(|e| Problem::internal(e.to_string()))
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
