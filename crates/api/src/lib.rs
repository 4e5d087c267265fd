//! The HTTP API of a running job: ingest, window results, raw and late events, alerts, job status
//! and savepoints.
//!
//! Handlers are thin: they parse and check the request, call the engine or the store, and shape
//! the answer. Every error is an RFC 9457 `application/problem+json` document whose `detail` tells
//! the caller what to change. Blocking work (store queries, savepoints) runs on tokio's blocking
//! pool so that the async workers only ever wait on I/O.
//!
//! [`auth`] checks optional bearer tokens per route; [`media`] accepts only JSON bodies on every
//! POST (so browsers cannot forge one across origins); CORS headers are added for the configured
//! origins only. [`body`] reads request bodies within a size, a time and a server-wide budget of
//! bytes in flight.
//!
//! [`console`] serves the web console's pages at `/` (`server.console`).
//!
//! [`telemetry`] serves the Prometheus exposition on a port of its own and times the requests of
//! this router.

pub mod auth;
pub mod body;
mod console;
pub mod cursor;
pub mod host;
mod media;
pub mod openapi;
pub mod params;
mod problem;
mod routes;
pub mod serve;
mod subscription;
pub mod telemetry;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;
use streampulse_engine::jobs::{JobEntry, JobManager};
use streampulse_store::ResultStore;
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use auth::Role;
pub use problem::Problem;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The jobs of this process: the configured one and those submitted with `POST /jobs`.
    pub jobs: Arc<JobManager>,
    pub store: Arc<dyn ResultStore>,
    /// Most rows one query returns.
    pub max_query_rows: usize,
    /// Longest `end - start` a ranged query may ask for (`server.max_query_range`).
    pub max_query_range: std::time::Duration,
    /// Most stored entries one result query examines (`server.max_query_scan`).
    pub max_query_scan: usize,
    /// Largest accepted request body (of any route).
    pub max_body_bytes: usize,
    /// How ingest bodies are read: size, time, and the budget of bytes all of them may hold at
    /// once (beyond it clients get 503 and retry), which bounds the memory ingest can take.
    pub ingest: body::BodyLimits,
    /// Most events in one ingest request.
    pub max_events_per_request: usize,
    /// Seats for WebSocket sessions (`server.max_ws_clients`).
    pub ws_clients: Arc<tokio::sync::Semaphore>,
    /// Bearer tokens by role; empty: auth off.
    pub tokens: Arc<auth::Tokens>,
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// The `Host` names answered for (`server.allowed_hosts`, and loopback names on loopback).
    pub hosts: Arc<host::Hosts>,
    /// Whether `/` serves the web console (`server.console`).
    pub console: bool,
}

impl AppState {
    /// The job a query names with `?job=`, or the configured job; 404 naming the jobs there are.
    fn job(&self, params: &params::Params) -> Result<JobEntry, Problem> {
        self.jobs
            .get(params.string("job").as_deref())
            .map_err(Problem::from)
    }
}

/// The API's routes over `state`.
pub fn router(state: AppState) -> Router {
    // Ingest enforces its own limit (to answer with a problem document); this one guards the rest.
    let body_limit = state.max_body_bytes;
    let guard = |role| middleware::from_fn_with_state((state.tokens.clone(), role), auth::require);
    // Browsers cannot set headers on a WebSocket, so /ws alone also takes `?access_token=`.
    let ws = Router::new()
        .route("/ws", get(routes::ws::upgrade))
        .route_layer(middleware::from_fn_with_state(
            (state.tokens.clone(), Role::Read),
            auth::require_ws,
        ));
    let read = Router::new()
        .route("/events/late", get(routes::events::late))
        // The same path as ingest (POST, below): axum merges the two methods into one route,
        // each keeping its own guard.
        .route("/events", get(routes::events::raw))
        .route("/metrics", get(routes::metrics::query))
        .route("/metrics/{metric_id}", get(routes::metrics::one))
        .route("/catalog", get(routes::catalog::query))
        .route("/alerts", get(routes::alerts::query))
        .route("/alerts/{id}", get(routes::alerts::show))
        .route("/jobs", get(routes::jobs::list))
        .route("/jobs/{id}", get(routes::jobs::show))
        .route_layer(guard(Role::Read));
    let write = Router::new()
        .route("/events", post(routes::events::ingest))
        .route_layer(middleware::from_fn(media::require_json))
        .route_layer(guard(Role::Write));
    let admin = Router::new()
        .route("/jobs", post(routes::jobs::submit))
        .route("/jobs/{id}/savepoints", post(routes::jobs::savepoint))
        .route("/jobs/{id}", delete(routes::jobs::stop))
        .route_layer(middleware::from_fn(media::require_json))
        .route_layer(guard(Role::Admin));
    let open = Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/readyz", get(routes::health::readyz))
        .route("/openapi.json", get(openapi::document));
    let open = if state.console {
        open.route("/", get(console::index))
            .route("/console/{file}", get(console::asset))
    } else {
        open
    };
    let cors = cors_layer(&state.cors_origins);
    let hosts = state.hosts.clone();
    let app = Router::new()
        .merge(read)
        .merge(ws)
        .merge(write)
        .merge(admin)
        .merge(open)
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(hosts, host::require))
        .with_state(state);
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// CORS for `origins` (`*`: any origin); `None` when the list is empty. Origins are checked by
/// the config, so one that does not parse as a header value is skipped.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
            ]),
    )
}
