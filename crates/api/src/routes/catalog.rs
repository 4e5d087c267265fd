//! The metric catalog: `GET /catalog[?metric_id|&prefix][&tag=k:v...][&limit][&cursor]`: every
//! metric id the job has seen, in id order, with the tags of its first event. What a client
//! (the web console's metric picker, a dashboard's variable) lists to find a metric without
//! knowing its exact id; no time range, as the catalog is kept whatever the retention.
//!
//! `metric_id` is a literal id or a glob, `prefix` keeps the ids starting with it, `tag` (repeats)
//! keeps the metrics carrying every pair. Pages are cut by `limit` and by
//! `server.max_query_scan` catalog entries examined, with a `next_cursor` either way.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use streampulse_store::{CatalogQuery, MetricMatch};

use super::blocking;
use crate::cursor;
use crate::openapi::schemas::{CatalogMetric, CatalogPageDoc};
use crate::params::{MetricFilter, Params};
use crate::{AppState, Problem};

const CURSOR_TAG: &str = "catalog";

#[utoipa::path(get, path = "/catalog", tag = "results",
    params(
        ("metric_id" = Option<String>, Query, description = "A metric id, or a glob (`*` any run, `?` one character)"),
        ("prefix" = Option<String>, Query, description = "Metric ids starting with this (not with metric_id)"),
        ("job" = Option<String>, Query, description = "Which job's catalog: a name from GET /jobs (default: the job of the config file)"),
        ("tag" = Option<Vec<String>>, Query, style = Form, explode, description = "`key:value`, repeatable: only metrics whose first event carried every given tag"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "Most metrics in the page (default and maximum: the server's max_query_rows)"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of the metric catalog, in id order", body = CatalogPageDoc),
        (status = 400, description = "A parameter is wrong: `detail` says which and why", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No job of that name", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Auth is on and no known token was sent", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token's role is too weak", body = Problem, content_type = "application/problem+json"),
    ),
    security((), ("bearer" = []))
)]
pub async fn query(
    State(state): State<AppState>,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let params = Params::new(
        query,
        &["metric_id", "prefix", "job", "tag", "limit", "cursor"],
    )?;
    let metric_match = match params.metric_filter()? {
        // A literal id is a glob without wildcards: it matches itself alone.
        MetricFilter::Id(g) => Some(MetricMatch::Glob(g)),
        MetricFilter::Prefix(p) => Some(MetricMatch::Prefix(p)),
        MetricFilter::Any => None,
    };
    let limit = params.limit(state.max_query_rows)?;
    let entry = state.job(&params)?;
    let job = entry.job().name.clone();
    let q = CatalogQuery {
        job: job.clone(),
        metric_match,
        tags: params.tags()?,
        after: params.cursor(CURSOR_TAG)?,
        // One more than asked, to tell the caller the answer was cut.
        limit: limit + 1,
        scan_limit: state.max_query_scan,
    };
    let store = state.store.clone();
    let page = blocking(move || store.query_catalog(&q).map_err(Problem::from)).await?;
    let mut entries = page.entries;
    let next_cursor = match cursor::cut(&mut entries, limit, CURSOR_TAG, |e| e.metric_id.clone())? {
        Some(after_last) => Some(after_last),
        None => page
            .resume_after
            .map(|id| cursor::encode(CURSOR_TAG, &id))
            .transpose()?,
    };
    Ok(Json(CatalogPageDoc {
        job,
        count: entries.len(),
        truncated: next_cursor.is_some(),
        next_cursor,
        metrics: entries
            .into_iter()
            .map(|e| CatalogMetric {
                metric_id: e.metric_id,
                tags: e.tags,
            })
            .collect(),
    })
    .into_response())
}
