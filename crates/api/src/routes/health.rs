//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::openapi::schemas::HealthDoc;
use crate::AppState;

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = HealthDoc)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready while some job runs (state restored, workers started): this server only listens after
/// that, and stopping every job with `DELETE /jobs/{id}` makes it unready.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "A job runs", body = HealthDoc),
        (status = 503, description = "No job is running", body = HealthDoc),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let failing: Vec<Value> = state
        .jobs
        .list()
        .iter()
        .filter_map(|entry| entry.runtime())
        .filter_map(|runtime| {
            let status = runtime.status();
            status
                .store_error
                .map(|error| json!({ "job": status.job, "component": "store", "error": error }))
        })
        .collect();
    if !failing.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "store_unavailable", "failing": failing })),
        )
    } else if state.jobs.any_running() {
        (StatusCode::OK, Json(json!({ "status": "running" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "stopped" })),
        )
    }
}
