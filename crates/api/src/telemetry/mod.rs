//! Prometheus metrics: the text exposition at `GET /metrics` on a port of its own
//! (`metrics.listen`, default `0.0.0.0:9249`), and the middleware that times API requests.
//!
//! One exposition covers every job of the process (the configured one and those submitted with
//! `POST /jobs`): per-job families carry a `job_name` label, so a second job is one more sample set
//! under the same families rather than another endpoint to scrape.
//!
//! There is no metrics registry between the engine and the exposition: the engine keeps its
//! counters in preallocated atomics (`streampulse_engine::status`, `::telemetry`), which `GET
//! /jobs/{id}` also reads, and [`collect`] turns them into metric families on each scrape. Gauges
//! such as watermark lag and checkpoint age are therefore computed at scrape time, and the hot
//! path pays nothing but the atomic adds it already did. Names, units and labels follow
//! `docs/instrumentation.md`.

mod collect;
pub mod http;
pub mod text;
pub mod trace;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use streampulse_engine::jobs::JobManager;
use streampulse_store::ExpiryTotals;

pub use http::{instrument, HttpMetrics};
pub use trace::traced;

#[derive(Clone)]
struct Exposition {
    jobs: Arc<JobManager>,
    http: Arc<HttpMetrics>,
    expiry: Arc<ExpiryTotals>,
    /// When this process started, since the epoch.
    started: Duration,
}

/// The router of the metrics port: `GET /metrics` renders the counters of every job in `jobs`
/// (read at each scrape, so a job submitted later appears without a restart) and `http`'s request
/// timings (fill these with [`instrument`] on the API's router), and what store retention has
/// deleted (`expiry`, added to by the sweeper).
pub fn metrics_router(
    jobs: Arc<JobManager>,
    http: Arc<HttpMetrics>,
    expiry: Arc<ExpiryTotals>,
) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Exposition {
            jobs,
            http,
            expiry,
            started: streampulse_core::clock::since_epoch(),
        })
}

async fn scrape(State(x): State<Exposition>) -> impl IntoResponse {
    let body = collect::render(&x.jobs, &x.http, &x.expiry, x.started);
    ([(header::CONTENT_TYPE, text::CONTENT_TYPE)], body)
}
