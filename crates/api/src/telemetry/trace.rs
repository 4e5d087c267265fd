//! One `tracing` span per API request, continuing the caller's W3C trace: the `traceparent` (and
//! `tracestate`) headers are extracted with the globally installed propagator and become the
//! span's parent, so an exporter (`tracing-opentelemetry`) reports the request under the caller's
//! trace id. Spans opened while the handler runs (`ingest`) are children of the request span.
//!
//! Applied only when traces are exported: with tracing off, requests pay nothing.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use opentelemetry::propagation::Extractor;
use tracing::field::Empty;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::http::UNMATCHED;

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Wraps every request of `router` in an `http_request` span.
pub fn traced(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(trace_request))
}

async fn trace_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str())
        .to_string();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "http_request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        http.route = %route,
        http.request.method = %method,
        http.response.status_code = Empty,
    );
    if request.headers().contains_key("traceparent") {
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&Headers(request.headers()))
        });
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(parent);
    }
    let response = next.run(request).instrument(span.clone()).await;
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    response
}
