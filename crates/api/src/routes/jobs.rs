//! Job status and savepoints: `GET /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/savepoints`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::blocking;
use crate::{AppState, Problem};

pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "jobs": [state.runtime.status()] }))
}

fn check_job(state: &AppState, id: &str) -> Result<(), Problem> {
    if id == state.runtime.job().name {
        Ok(())
    } else {
        Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!(
                "no job '{id}'; this process runs '{}'",
                state.runtime.job().name
            ),
        ))
    }
}

pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    check_job(&state, &id)?;
    Ok(Json(state.runtime.status()).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SavepointRequest {
    name: Option<String>,
}

pub async fn savepoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    check_job(&state, &id)?;
    let request: SavepointRequest = if body.is_empty() {
        SavepointRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("body must be {{\"name\": \"...\"}}: {e}")))?
    };
    let name = request
        .name
        .unwrap_or_else(|| format!("savepoint-{}", now_ms()));
    let runtime = state.runtime.clone();
    let name_for_task = name.clone();
    let path = blocking(move || {
        runtime.savepoint(&name_for_task).map_err(|e| match e {
            streampulse_engine::EngineError::Checkpoint(inner) => {
                Problem::bad_request(inner.to_string())
            }
            other => Problem::unavailable(other.to_string()),
        })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "path": path })),
    )
        .into_response())
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
