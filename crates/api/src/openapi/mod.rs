//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the [`schemas`] (never written by hand). The WebSocket `/ws` is described in
//! docs/api.md only: OpenAPI has no way to state its messages.

pub mod schemas;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;
use crate::Problem;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StreamPulse API",
        description = "Ingest events, query results, raw and late events and alerts, and manage \
                       the job. Times are RFC 3339 or epoch milliseconds; answers use epoch ms. \
                       Errors are RFC 9457 problem documents. With server.auth configured, send \
                       'Authorization: Bearer <token>': queries need any token, ingest a write \
                       token, job changes an admin token."
    ),
    paths(
        routes::events::ingest,
        routes::events::raw,
        routes::events::late,
        routes::metrics::query,
        routes::metrics::one,
        routes::catalog::query,
        routes::alerts::query,
        routes::alerts::show,
        routes::jobs::list,
        routes::jobs::submit,
        routes::jobs::show,
        routes::jobs::savepoint,
        routes::jobs::stop,
        routes::health::healthz,
        routes::health::readyz,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    tags(
        (name = "ingest", description = "Events in"),
        (name = "results", description = "Window results, raw events and late events"),
        (name = "alerts", description = "Anomaly alerts"),
        (name = "jobs", description = "Jobs: submit, status, savepoints, stop"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document, built once per request (it is small and rarely fetched).
pub async fn document() -> Result<impl IntoResponse, crate::Problem> {
    let body = ApiDoc::openapi().to_pretty_json().map_err(|e| {
        crate::Problem::internal(format!("cannot encode the OpenAPI document: {e}"))
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body))
}
