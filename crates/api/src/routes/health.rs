//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready once the job runs (state restored, workers started): this server only listens after that.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let status = state.runtime.status();
    let code = if status.state == "running" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "status": status.state })))
}
