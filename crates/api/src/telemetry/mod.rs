//! Prometheus metrics: the text exposition at `GET /metrics` on a port of its own
//! (`metrics.listen`, default `0.0.0.0:9249`), and the middleware that times API requests.
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
use std::time::SystemTime;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use streampulse_engine::Runtime;

pub use http::{instrument, HttpMetrics};
pub use trace::traced;

#[derive(Clone)]
struct Exposition {
    runtime: Runtime,
    http: Arc<HttpMetrics>,
    started: SystemTime,
}

/// The router of the metrics port: `GET /metrics` renders `runtime`'s counters and `http`'s
/// request timings (fill these with [`instrument`] on the API's router).
pub fn metrics_router(runtime: Runtime, http: Arc<HttpMetrics>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Exposition {
            runtime,
            http,
            started: SystemTime::now(),
        })
}

async fn scrape(State(x): State<Exposition>) -> impl IntoResponse {
    let body = collect::render(&x.runtime, &x.http, x.started);
    ([(header::CONTENT_TYPE, text::CONTENT_TYPE)], body)
}
