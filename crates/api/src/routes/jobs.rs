//! Job status, savepoints and stopping: `GET /jobs`, `GET /jobs/{id}`,
//! `POST /jobs/{id}/savepoints`, `DELETE /jobs/{id}[?savepoint=NAME]`.
//!
//! Stopping a job takes its final checkpoint and stops its workers; the process keeps serving
//! queries over what was stored, and its next start resumes from that checkpoint (or, with
//! `--from-savepoint`, from the savepoint taken on the way).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::blocking;
use crate::openapi::schemas::{JobStatusDoc, JobsDoc, SavepointDoc, SavepointRequest};
use crate::{AppState, Problem};

#[utoipa::path(get, path = "/jobs", tag = "jobs",
    responses(
        (status = 200, description = "The job this process runs", body = JobsDoc),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "jobs": [state.runtime.status()] }))
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

#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, example = "default", description = "The job name")),
    responses(
        (status = 200, description = "State, watermarks, counters and last checkpoint", body = JobStatusDoc),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    check_job(&state, &id)?;
    Ok(Json(state.runtime.status()).into_response())
}

#[utoipa::path(post, path = "/jobs/{id}/savepoints", tag = "jobs",
    params(("id" = String, Path, example = "default", description = "The job name")),
    request_body(content = Option<SavepointRequest>, description = "Optional; an empty body takes a savepoint with a generated name"),
    responses(
        (status = 201, description = "The savepoint was written", body = SavepointDoc),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The job cannot take a savepoint now: retry", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
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
    let path =
        blocking(move || runtime.savepoint(&name_for_task).map_err(savepoint_problem)).await?;
    Ok((StatusCode::CREATED, Json(SavepointDoc { name, path })).into_response())
}

#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs",
    params(
        ("id" = String, Path, example = "default", description = "The job name"),
        ("savepoint" = Option<String>, Query, description = "Also keep the final state as this savepoint (letters, digits, '_', '-', '.')"),
    ),
    responses(
        (status = 200, description = "The job is stopped (already, or now, after its final checkpoint); queries keep working", body = JobStatusDoc),
        (status = 404, description = "No such job", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A savepoint was asked of a job already stopped", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The final checkpoint failed: the job stopped, and its next start replays from the previous one", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn stop(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    check_job(&state, &id)?;
    let params = crate::params::Params::new(query, &["savepoint"])?;
    let savepoint = params.string("savepoint");
    let runtime = state.runtime.clone();
    blocking(move || {
        if let Some(name) = savepoint {
            if !runtime.is_running() {
                return Err(Problem::new(
                    StatusCode::CONFLICT,
                    "the job is already stopped: its final checkpoint is the latest; restart the \
                     process to resume, then take a savepoint",
                ));
            }
            runtime.savepoint(&name).map_err(savepoint_problem)?;
        }
        runtime
            .shutdown()
            .map_err(|e| Problem::unavailable(format!("the job stopped, but: {e}")))
    })
    .await?;
    Ok(Json(state.runtime.status()).into_response())
}

/// A bad savepoint name is the caller's to fix (400); anything else may pass (503).
fn savepoint_problem(e: streampulse_engine::EngineError) -> Problem {
    match e {
        streampulse_engine::EngineError::Checkpoint(inner) => {
            Problem::bad_request(inner.to_string())
        }
        other => Problem::unavailable(other.to_string()),
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
