//! `streampulse_http_request_duration_seconds{route, method, status}`: an axum middleware timing
//! every API request, labelled by the *matched route* (`/alerts/{id}`, never the raw URI, so one
//! series per route whatever the ids and query strings). Requests that match no route are
//! `route="unmatched"`; methods outside the standard ones are `method="other"`. Cardinality is
//! thus bounded by routes × methods × statuses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use streampulse_engine::telemetry::{Histogram, HistogramSnapshot, HTTP_BUCKETS};

/// The `route` label of requests that matched no route (answered 404 by the fallback).
pub const UNMATCHED: &str = "unmatched";

type Key = (String, &'static str, u16);

/// Request durations of the API, per route, method and status.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<Key, Arc<Histogram>>>,
}

/// One series of [`HttpMetrics::snapshot`].
#[derive(Debug, Clone)]
pub struct HttpSeries {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
    pub duration: HistogramSnapshot,
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

impl HttpMetrics {
    pub fn observe(&self, route: &str, method: &Method, status: u16, elapsed: std::time::Duration) {
        let key = (route.to_string(), method_label(method), status);
        let histogram = match self.series.lock() {
            Ok(mut series) => series
                .entry(key)
                .or_insert_with(|| Arc::new(Histogram::new(HTTP_BUCKETS)))
                .clone(),
            Err(_) => return,
        };
        histogram.observe(elapsed);
    }

    /// Every series seen so far, ordered by route, method and status.
    pub fn snapshot(&self) -> Vec<HttpSeries> {
        let Ok(series) = self.series.lock() else {
            return Vec::new();
        };
        series
            .iter()
            .map(|((route, method, status), h)| HttpSeries {
                route: route.clone(),
                method,
                status: *status,
                duration: h.snapshot(),
            })
            .collect()
    }
}

/// Times every request of `router` into `metrics`.
pub fn instrument(router: Router, metrics: Arc<HttpMetrics>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(metrics, track))
}

async fn track(State(metrics): State<Arc<HttpMetrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_string(), |p| p.as_str().to_string());
    let method = request.method().clone();
    let response = next.run(request).await;
    metrics.observe(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::routing::get;

    use super::*;

    fn request(addr: std::net::SocketAddr, line: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "{line} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn labels_are_the_matched_route_not_the_uri() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let metrics = Arc::new(HttpMetrics::default());
        let app = instrument(
            Router::new().route("/items/{id}", get(|| async { "ok" })),
            metrics.clone(),
        );
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        assert!(request(addr, "GET /items/1?x=2").starts_with("HTTP/1.1 200"));
        request(addr, "GET /items/2");
        request(addr, "POST /items/3");
        request(addr, "GET /nowhere/4");
        let seen: Vec<_> = metrics
            .snapshot()
            .into_iter()
            .map(|s| (s.route, s.method, s.status, s.duration.count))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("/items/{id}".to_string(), "GET", 200, 2),
                ("/items/{id}".to_string(), "POST", 405, 1),
                (UNMATCHED.to_string(), "GET", 404, 1),
            ]
        );
    }
}
