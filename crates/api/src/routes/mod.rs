//! One module per resource of the API.

pub mod alerts;
pub mod catalog;
pub mod events;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod ws;

use axum::http::{StatusCode, Uri};

use crate::Problem;

pub async fn not_found(uri: Uri) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {}; see /jobs, /metrics, /catalog, /events, /alerts, /healthz",
            uri.path()
        ),
    )
}

/// Runs blocking store work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem::internal(format!("worker failed: {e}")))?
}
