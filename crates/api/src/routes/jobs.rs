//! Jobs: `GET /jobs`, `POST /jobs`, `GET /jobs/{id}`, `POST /jobs/{id}/savepoints`,
//! `DELETE /jobs/{id}[?savepoint=NAME]`.
//!
//! A process runs the job its config file defines and any number of jobs submitted with
//! `POST /jobs`, all over the same events (see `streampulse_engine::jobs`). Stopping a job takes
//! its final checkpoint and stops its workers; its results stay queryable. The configured job
//! resumes when the process restarts; a submitted one when it is submitted again.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use streampulse_core::job::JobSpec;
use streampulse_engine::jobs::{JobsError, Submission};
use streampulse_engine::{EngineError, InitialPosition};

use super::blocking;
use crate::openapi::schemas::{
    JobStatusDoc, JobSubmission, JobsDoc, SavepointDoc, SavepointRequest, StartPosition,
};
use crate::{AppState, Problem};

#[utoipa::path(get, path = "/jobs", tag = "jobs",
    responses(
        (status = 200, description = "Every job of this process: the configured one first, then the submitted ones by name", body = JobsDoc),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let jobs: Vec<_> = state.jobs.list().iter().map(|j| j.status()).collect();
    Json(serde_json::json!({ "jobs": jobs }))
}

#[utoipa::path(post, path = "/jobs", tag = "jobs",
    request_body(content = JobSubmission, description = "The job and where it starts"),
    responses(
        (status = 201, description = "The job runs (new, or resumed from its checkpoint or savepoint)", body = JobStatusDoc),
        (status = 400, description = "The job definition or a field is wrong: `detail` names the key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak (admin needed)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job of that name runs or is the configured job, its state does not fit the definition, 32 submitted jobs run already, or this deployment runs only its configured job", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The job could not be started or recorded: retry", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn submit(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    // Within the same size, time and byte budget as ingest: a slow body cannot hold a slot.
    let body = crate::body::read(body, &state.ingest).await?;
    let request: JobSubmission = serde_json::from_slice(&body.bytes).map_err(|e| {
        Problem::bad_request(format!(
            "body must be {{\"job\": {{\"name\": ..., \"windows\": [...]}}, \"start\": \
             \"earliest\"|\"latest\", \"from_savepoint\": \"NAME\"}}: {e}"
        ))
    })?;
    if !request.job.is_object() {
        return Err(Problem::bad_request(
            "'job' must be an object with the keys of the config file's job: section",
        ));
    }
    if request.job.get("name").is_none() {
        // The default name is the configured job's: a submitted job must say who it is.
        return Err(Problem::bad_request(
            "job.name is required: letters, digits, '_' or '-', unique in this process",
        ));
    }
    let mut spec: JobSpec = serde_path_to_error::deserialize(&request.job)
        .map_err(|e| Problem::bad_request(format!("job.{}: {}", e.path(), e.inner())))?;
    if request.job.get("event").is_none() {
        // Events are parsed at ingest with the configured job's mapping: that is what this job
        // reads, whatever the defaults would say.
        spec.event = state.jobs.configured().job().event.clone();
    }
    let submission = Submission {
        spec,
        position: match request.start.unwrap_or(StartPosition::Earliest) {
            StartPosition::Earliest => InitialPosition::Earliest,
            StartPosition::Latest => InitialPosition::Latest,
        },
        from_savepoint: request.from_savepoint,
    };
    let jobs = state.jobs.clone();
    let runtime = blocking(move || jobs.submit(submission).map_err(Problem::from)).await?;
    Ok((StatusCode::CREATED, Json(runtime.status())).into_response())
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
    let entry = state.jobs.get(Some(&id)).map_err(Problem::from)?;
    Ok(Json(entry.status()).into_response())
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
        (status = 409, description = "The job is stopped", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The request has no application/json content type (required even with an empty body)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The job cannot take a savepoint now: retry", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn savepoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let body = crate::body::read(body, &state.ingest).await?.bytes;
    let entry = state.jobs.get(Some(&id)).map_err(Problem::from)?;
    let request: SavepointRequest = if body.is_empty() {
        SavepointRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("body must be {{\"name\": \"...\"}}: {e}")))?
    };
    let name = request
        .name
        .unwrap_or_else(|| format!("savepoint-{}", streampulse_core::clock::now_ms()));
    let name_for_task = name.clone();
    let path = blocking(move || {
        let engine = |source| Problem::from(JobsError::engine(&id, source));
        let runtime = entry
            .runtime()
            .ok_or_else(|| engine(EngineError::Stopping))?;
        runtime.savepoint(&name_for_task).map_err(engine)
    })
    .await?;
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
    let params = crate::params::Params::new(query, &["savepoint"])?;
    let savepoint = params.string("savepoint");
    let jobs = state.jobs.clone();
    let entry =
        blocking(move || jobs.stop(&id, savepoint.as_deref()).map_err(Problem::from)).await?;
    Ok(Json(entry.status()).into_response())
}
