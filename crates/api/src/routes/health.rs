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
/// that, and stopping every job with `DELETE /jobs/{id}` makes it unready. Unready, naming the
/// component, while the log's file or the result store fails (a full disk; for `serve`, a read
/// of the shared store): both recover by themselves once the cause is gone.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "A job runs", body = HealthDoc),
        (status = 503, description = "No job is running (`stopped`), or the log or the store fails (`log_unavailable`, `store_unavailable`, with `failing`: component and error)", body = HealthDoc),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // The embedded log (shared by every job of the process): its file failed, e.g. the disk is
    // full, and ingest answers 503 until it is reopened.
    let log_error = state
        .jobs
        .list()
        .iter()
        .filter_map(|entry| entry.runtime())
        .find_map(|runtime| runtime.ingest_log().and_then(|log| log.failure()));
    if let Some(error) = log_error {
        let failing = json!([{ "component": "log", "error": error }]);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "log_unavailable", "failing": failing })),
        );
    }
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
