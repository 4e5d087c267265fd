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

/// Ready once the job runs (state restored, workers started): this server only listens after that.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The job runs", body = HealthDoc),
        (status = 503, description = "The job is not running (yet)", body = HealthDoc),
    ))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let status = state.runtime.status();
    let code = if status.state == "running" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "status": status.state })))
}
