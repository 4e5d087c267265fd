//! The HTTP API of a running job: ingest, window results, late events, alerts, job status and
//! savepoints.
//!
//! Handlers are thin: they parse and check the request, call the engine or the store, and shape
//! the answer. Every error is an RFC 9457 `application/problem+json` document whose `detail` tells
//! the caller what to change. Blocking work (store queries, savepoints) runs on tokio's blocking
//! pool so that the async workers only ever wait on I/O.
//!
//! [`telemetry`] serves the Prometheus exposition on a port of its own and times the requests of
//! this router.

mod params;
mod problem;
mod routes;
mod subscription;
pub mod telemetry;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use streampulse_engine::Runtime;
use streampulse_store::ResultStore;

pub use problem::Problem;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub store: Arc<dyn ResultStore>,
    /// Most rows one query returns.
    pub max_query_rows: usize,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Ingest requests in flight at once; beyond it clients get 503 and retry. With the body
    /// limit, this bounds the memory that ingest can hold.
    pub ingest_permits: Arc<tokio::sync::Semaphore>,
}

/// Default for [`AppState::ingest_permits`].
pub const MAX_INGEST_IN_FLIGHT: usize = 256;

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    // Ingest enforces its own limit (to answer with a problem document); this one guards the rest.
    let body_limit = state.max_body_bytes;
    Router::new()
        .route("/events", post(routes::events::ingest))
        .route("/events/late", get(routes::events::late))
        .route("/metrics", get(routes::metrics::query))
        .route("/alerts", get(routes::alerts::query))
        .route("/alerts/{id}", get(routes::alerts::show))
        .route("/jobs", get(routes::jobs::list))
        .route("/jobs/{id}", get(routes::jobs::show))
        .route("/jobs/{id}/savepoints", post(routes::jobs::savepoint))
        .route("/ws", get(routes::ws::upgrade))
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
