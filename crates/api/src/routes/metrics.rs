//! `GET /metrics?start&end[&metric_id][&window][&limit]`: window results by window start.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use streampulse_store::ResultQuery;

use super::blocking;
use crate::params::Params;
use crate::{AppState, Problem};

pub async fn query(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let params = Params::new(query, &["start", "end", "metric_id", "window", "limit"])?;
    let (start, end) = params.range()?;
    let limit = params.limit(state.max_query_rows)?;
    let window = params.string("window");
    if let Some(w) = &window {
        if !state.runtime.job().windows.iter().any(|d| &d.name == w) {
            let names: Vec<&str> = state
                .runtime
                .job()
                .windows
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            return Err(Problem::bad_request(format!(
                "unknown window '{w}'; this job has: {}",
                names.join(", ")
            )));
        }
    }
    let q = ResultQuery {
        job: state.runtime.job().name.clone(),
        start,
        end,
        metric_id: params.string("metric_id"),
        window,
        // One more than asked, to tell the caller the answer was cut.
        limit: limit + 1,
    };
    let store = state.store.clone();
    let mut rows = blocking(move || {
        store
            .query_results(&q)
            .map_err(|e| Problem::internal(e.to_string()))
    })
    .await?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    let results: Vec<Value> = rows.iter().map(|r| r.to_json()).collect();
    Ok(Json(json!({
        "job": state.runtime.job().name,
        "time_unit": "ms",
        "start": start,
        "end": end,
        "count": results.len(),
        "truncated": truncated,
        "results": results,
    }))
    .into_response())
}
