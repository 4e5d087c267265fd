//! Reading back: the same queries, orders and cursors as the embedded store
//! ([`streampulse_store::ResultQuery`] and the others), each walking only the partitions its range
//! and filters name: a metric's buckets, the non-empty time buckets of a range, the days of late
//! and raw events, the days an alert can have started in.
//!
//! Every read stops at its query's `limit` or scan budget; filters that the schema cannot express (a
//! glob without a literal prefix, a window or tags on a time query) are applied to pages of rows.

use std::collections::{BTreeMap, HashSet};

use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use streampulse_core::aggregate::ExtraValues;
use streampulse_core::detect::Alert;
use streampulse_core::output::{LateEvent, RawEvent, WindowResult};
use streampulse_core::time::Millis;
use streampulse_store::{
    AlertQuery, CatalogPage, CatalogQuery, CatalogWalk, LateQuery, MetricMatch, RawQuery, RawRow,
    ResultKey, ResultPage, ResultQuery, ScanBudget, StoreCounts, StoreError,
};

use crate::error::request;
use crate::store::Inner;
use crate::write::{bucket, series_key, DAY_MS};

/// Rows per page of a read that filters what it reads.
const PAGE: i32 = 1000;

/// A row of `results_by_time`: window_start, metric_id, window, then [`ResultCols`].
type TimeRow = (
    i64,
    String,
    String,
    i64,
    i64,
    f64,
    f64,
    f64,
    f64,
    Vec<u8>,
    i64,
);

/// The columns after the key columns of a result row.
type ResultCols = (i64, i64, f64, f64, f64, f64, Vec<u8>, i64);

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

fn result_of(
    metric_id: String,
    window: String,
    window_start: Millis,
    c: ResultCols,
) -> Result<WindowResult, StoreError> {
    let extra: ExtraValues = decode("results", &c.6)?;
    Ok(WindowResult {
        metric_id: metric_id.into(),
        window: window.into(),
        window_start,
        window_end: c.0,
        count: c.1.max(0) as u64,
        sum: c.2,
        min: c.3,
        max: c.4,
        mean: c.5,
        extra,
        revision: u32::try_from(c.7).unwrap_or(u32::MAX),
    })
}

/// One page of `statement` with `values`; rows as `R`, and where the next page starts.
async fn page<R>(
    inner: &Inner,
    statement: &PreparedStatement,
    values: impl SerializeRow,
    from: PagingState,
) -> Result<(Vec<R>, Option<PagingState>), StoreError>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
{
    let mut statement = statement.clone();
    statement.set_page_size(PAGE);
    let (result, next) = inner
        .session
        .execute_single_page(&statement, values, from)
        .await
        .map_err(|e| request("read", e))?;
    let rows = result.into_rows_result().map_err(|e| request("read", e))?;
    let rows = rows
        .rows::<R>()
        .map_err(|e| request("read", e))?
        .collect::<Result<Vec<R>, _>>()
        .map_err(|e| request("read", e))?;
    let next = match next {
        PagingStateResponse::HasMorePages { state } => Some(state),
        PagingStateResponse::NoMorePages => None,
    };
    Ok((rows, next))
}

/// Every row of `statement` with `values`, page by page, until `keep` says stop.
async fn each<R, V>(
    inner: &Inner,
    statement: &PreparedStatement,
    values: V,
    mut keep: impl FnMut(R) -> Result<bool, StoreError>,
) -> Result<bool, StoreError>
where
    R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    V: SerializeRow + Clone,
{
    let mut from = PagingState::start();
    loop {
        let (rows, next) = page::<R>(inner, statement, values.clone(), from).await?;
        for row in rows {
            if !keep(row)? {
                return Ok(false);
            }
        }
        match next {
            Some(n) => from = n,
            None => return Ok(true),
        }
    }
}

/// The buckets of index `kind`/`key` of `job` in `[first, last]` that hold rows, ascending (or
/// descending).
async fn buckets(
    inner: &Inner,
    job: &str,
    kind: &str,
    key: &str,
    (first, last): (i64, i64),
    descending: bool,
) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::new();
    let statement = if descending {
        &inner.st.sel_buckets_desc
    } else {
        &inner.st.sel_buckets
    };
    each::<(i64,), _>(inner, statement, (job, kind, key, first, last), |(b,)| {
        out.push(b);
        Ok(true)
    })
    .await?;
    Ok(out)
}

/// A page of the catalog: the clustering order is the id order, read from the walk's bound on.
pub(crate) async fn catalog(inner: &Inner, q: &CatalogQuery) -> Result<CatalogPage, StoreError> {
    let mut walk = CatalogWalk::new(q);
    if walk.done_before_start() {
        return Ok(walk.finish());
    }
    let from = walk.lower_bound().to_string();
    each::<(String, Option<BTreeMap<String, String>>), _>(
        inner,
        &inner.st.sel_catalog_from,
        (q.job.as_str(), from.as_str()),
        |(metric, tags)| Ok(walk.offer(metric, tags.unwrap_or_default())),
    )
    .await?;
    Ok(walk.finish())
}

/// The catalog's metrics of `job` carrying every pair of `tags`.
pub(crate) async fn metrics_tagged(
    inner: &Inner,
    job: &str,
    tags: &[(String, String)],
) -> Result<HashSet<String>, StoreError> {
    let mut wanted = HashSet::new();
    each::<(String, Option<BTreeMap<String, String>>), _>(
        inner,
        &inner.st.sel_catalog,
        (job,),
        |(metric, have)| {
            let have = have.unwrap_or_default();
            if tags.iter().all(|(k, v)| have.get(k) == Some(v)) {
                wanted.insert(metric);
            }
            Ok(true)
        },
    )
    .await?;
    Ok(wanted)
}

/// A result query without tags (the store walks tagged ones over these pages).
pub(crate) async fn results(inner: &Inner, q: &ResultQuery) -> Result<ResultPage, StoreError> {
    let mut out = Vec::new();
    let mut budget = ScanBudget::new(q);
    if q.start >= q.end || q.limit == 0 {
        return Ok(budget.page(out));
    }
    match (&q.metric_id, &q.metric_match) {
        (Some(m), f) if f.as_ref().is_none_or(|f| f.matches(m)) => {
            by_metric(inner, q, m, &mut out, &mut budget).await?
        }
        (Some(_), _) => {}
        (None, Some(f)) if !f.literal_prefix().is_empty() => {
            by_prefix(inner, q, f, &mut out, &mut budget).await?
        }
        (None, _) => by_time(inner, q, &mut out, &mut budget).await?,
    }
    Ok(budget.page(out))
}

/// One metric, by (window, window_start).
async fn by_metric(
    inner: &Inner,
    q: &ResultQuery,
    metric_id: &str,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    if q.after
        .as_ref()
        .is_some_and(|a| a.metric_id.as_str() > metric_id)
    {
        return Ok(());
    }
    let windows = match &q.window {
        Some(w) => vec![w.clone()],
        None => {
            let mut windows = Vec::new();
            each::<(String,), _>(
                inner,
                &inner.st.sel_series_of,
                (q.job.as_str(), metric_id),
                |(w,)| {
                    windows.push(w);
                    Ok(true)
                },
            )
            .await?;
            windows
        }
    };
    for window in windows {
        if out.len() >= q.limit || budget.exhausted() {
            break;
        }
        series(inner, q, metric_id, &window, out, budget).await?;
    }
    Ok(())
}

/// The metrics under the filter's literal prefix that match it, by (metric, window,
/// window_start).
async fn by_prefix(
    inner: &Inner,
    q: &ResultQuery,
    filter: &MetricMatch,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    let prefix = filter.literal_prefix();
    let from = match &q.after {
        Some(a) if a.metric_id.as_str() > prefix => a.metric_id.clone(),
        _ => prefix.to_string(),
    };
    let mut series_list: Vec<(String, String)> = Vec::new();
    let mut from_state = PagingState::start();
    loop {
        let (rows, next) = page::<(String, String)>(
            inner,
            &inner.st.sel_series_from,
            (q.job.as_str(), from.as_str()),
            from_state,
        )
        .await?;
        let mut past_prefix = false;
        for (metric, window) in rows {
            if !metric.starts_with(prefix) {
                past_prefix = true;
                break;
            }
            series_list.push((metric, window));
        }
        for (metric, window) in series_list.drain(..) {
            let done = q.after.as_ref().is_some_and(|a| {
                (a.metric_id.as_str(), a.window.as_str()) > (metric.as_str(), window.as_str())
            });
            if done {
                // A series the walk already passed (of the cursor's metric): costs nothing new.
                continue;
            }
            if filter.matches(&metric) && q.window.as_ref().is_none_or(|w| *w == window) {
                series(inner, q, &metric, &window, out, budget).await?;
                if out.len() >= q.limit || budget.exhausted() {
                    return Ok(());
                }
            }
            // One catalog entry passed over: what a filter matching nothing costs.
            if !budget.examined(|| ResultKey::past_series(&metric, &window)) {
                return Ok(());
            }
        }
        match next {
            Some(n) if !past_prefix => from_state = n,
            _ => return Ok(()),
        }
    }
}

/// One (metric, window) series: its rows in `[start, end)` after the cursor, bucket by bucket.
async fn series(
    inner: &Inner,
    q: &ResultQuery,
    metric_id: &str,
    window: &str,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    // Where the cursor leaves this series: everything, nothing, or after one start.
    let mut after: Option<Millis> = None;
    if let Some(a) = &q.after {
        match (a.metric_id.as_str(), a.window.as_str()).cmp(&(metric_id, window)) {
            std::cmp::Ordering::Greater => return Ok(()),
            std::cmp::Ordering::Equal => after = Some(a.window_start),
            std::cmp::Ordering::Less => {}
        }
    }
    let size = inner.config.metric_bucket_ms();
    let first = bucket(after.map_or(q.start, |a| a.max(q.start)), size);
    let range = (first, bucket(q.end - 1, size));
    let key = series_key(metric_id, window);
    for b in buckets(inner, &q.job, "series", &key, range, false).await? {
        let left = q.limit - out.len();
        if left == 0 || budget.exhausted() {
            break;
        }
        let limit = i32::try_from(left).unwrap_or(i32::MAX);
        let key = (q.job.as_str(), metric_id, window, b);
        // Every page of the bucket (a bucket can hold more rows than one page), up to the limit.
        let keep = |r: (i64, i64, i64, f64, f64, f64, f64, Vec<u8>, i64)| {
            let cols = (r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8);
            let row = result_of(metric_id.to_string(), window.to_string(), r.0, cols)?;
            let more = out.len() + 1 < q.limit && budget.examined(|| ResultKey::of(&row));
            out.push(row);
            Ok(more)
        };
        match after {
            Some(a) if a >= q.start => {
                let values = (key.0, key.1, key.2, key.3, a, q.end, limit);
                each(inner, &inner.st.sel_metric_results_after, values, keep).await?;
            }
            _ => {
                let values = (key.0, key.1, key.2, key.3, q.start, q.end, limit);
                each(inner, &inner.st.sel_metric_results, values, keep).await?;
            }
        }
    }
    Ok(())
}

/// Every metric's rows of `[start, end)` by (window_start, metric_id, window): the non-empty time
/// buckets of the range, in order, each read from the cursor on.
async fn by_time(
    inner: &Inner,
    q: &ResultQuery,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    let size = inner.config.time_bucket_ms();
    let from = q
        .after
        .as_ref()
        .map_or(q.start, |a| a.window_start.max(q.start));
    let range = (bucket(from, size), bucket(q.end - 1, size));
    for b in buckets(inner, &q.job, "time", "", range, false).await? {
        let keep = |row: TimeRow| {
            let wanted = q.metric_id.as_ref().is_none_or(|m| *m == row.1)
                && q.metric_match.as_ref().is_none_or(|f| f.matches(&row.1))
                && q.window.as_ref().is_none_or(|w| *w == row.2);
            let cols = (row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10);
            let r = result_of(row.1, row.2, row.0, cols)?;
            let more =
                !(wanted && out.len() + 1 >= q.limit) && budget.examined(|| ResultKey::of(&r));
            if wanted {
                out.push(r);
            }
            Ok(more)
        };
        let more = match &q.after {
            Some(a) if a.window_start >= q.start => {
                let values = (
                    q.job.as_str(),
                    b,
                    a.window_start,
                    a.metric_id.as_str(),
                    a.window.as_str(),
                    q.end,
                );
                each(inner, &inner.st.sel_time_results_after, values, keep).await?
            }
            _ => {
                let values = (q.job.as_str(), b, q.start, "", "", q.end);
                each(inner, &inner.st.sel_time_results, values, keep).await?
            }
        };
        if !more {
            return Ok(());
        }
    }
    Ok(())
}

pub(crate) async fn late(inner: &Inner, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError> {
    let mut out = Vec::new();
    if q.start >= q.end || q.limit == 0 {
        return Ok(out);
    }
    let range = (bucket(q.start, DAY_MS), bucket(q.end - 1, DAY_MS));
    for day in buckets(inner, &q.job, "late", "", range, false).await? {
        let more = each::<(i64, i32, String, i64, String, f64, i64), _>(
            inner,
            &inner.st.sel_late,
            (q.job.as_str(), day, q.start, q.end),
            |(ts, _partition, window, offset, metric_id, value, watermark)| {
                if q.metric_id.as_ref().is_none_or(|m| *m == metric_id) {
                    out.push(LateEvent {
                        window,
                        metric_id,
                        ts,
                        value,
                        watermark,
                        offset: offset.max(0) as u64,
                    });
                }
                Ok(out.len() < q.limit)
            },
        )
        .await?;
        if !more {
            break;
        }
    }
    Ok(out)
}

pub(crate) async fn raw(inner: &Inner, q: &RawQuery) -> Result<Vec<RawRow>, StoreError> {
    let mut out = Vec::new();
    if q.start >= q.end || q.limit == 0 {
        return Ok(out);
    }
    // Strictly after the cursor, or from `start` (no row sorts after (start-1, MAX, MAX) but
    // before (start, ..)).
    let (from_ts, from_p, from_o) = match &q.after {
        Some(a) if a.ts >= q.start => (a.ts, a.partition as i32, a.offset as i64),
        _ => match q.start.checked_sub(1) {
            Some(before) => (before, i32::MAX, i64::MAX),
            None => (i64::MIN, i32::MIN, i64::MIN),
        },
    };
    let range = (
        bucket(from_ts.max(q.start), DAY_MS),
        bucket(q.end - 1, DAY_MS),
    );
    for day in buckets(inner, &q.job, "raw", &q.metric_id, range, false).await? {
        let left = q.limit - out.len();
        if left == 0 {
            break;
        }
        let limit = i32::try_from(left).unwrap_or(i32::MAX);
        let values = (
            q.job.as_str(),
            q.metric_id.as_str(),
            day,
            from_ts,
            from_p,
            from_o,
            q.end,
            limit,
        );
        each::<(i64, i32, i64, f64, Option<BTreeMap<String, String>>), _>(
            inner,
            &inner.st.sel_raw,
            values,
            |(ts, partition, offset, value, tags)| {
                out.push(RawRow {
                    partition: partition.max(0) as u32,
                    event: RawEvent {
                        metric_id: q.metric_id.clone(),
                        ts,
                        value,
                        tags: tags.unwrap_or_default(),
                        offset: offset.max(0) as u64,
                    },
                });
                Ok(out.len() < q.limit)
            },
        )
        .await?;
    }
    Ok(out)
}

pub(crate) async fn alert(inner: &Inner, job: &str, id: &str) -> Result<Option<Alert>, StoreError> {
    let (rows, _) =
        page::<(Vec<u8>,)>(inner, &inner.st.sel_alert, (job, id), PagingState::start()).await?;
    rows.into_iter()
        .next()
        .map(|(body,)| decode("alerts", &body))
        .transpose()
}

pub(crate) async fn alerts(inner: &Inner, q: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
    let mut out = Vec::new();
    if q.start >= q.end || q.limit == 0 {
        return Ok(out);
    }
    // An alert overlapping the range started at most the longest episode before it.
    let (spans, _) = page::<(i64,)>(
        inner,
        &inner.st.sel_span,
        (q.job.as_str(),),
        PagingState::start(),
    )
    .await?;
    let longest = spans.first().map_or(0, |s| s.0.max(0));
    // A saturated span (an episode from the far past to the far future) bounds nothing.
    let lowest = q
        .start
        .checked_sub(longest)
        .filter(|_| longest < i64::MAX)
        .unwrap_or(i64::MIN);
    let (hi_ts, hi_id) = match &q.after {
        Some(a) => (a.first_ts, a.id.clone()),
        None => (q.end, String::new()),
    };
    // (first_ts, id) < (end, "") is first_ts < end; a cursor at or past `end` bounds nothing more.
    let (hi_ts, hi_id) = if hi_ts >= q.end {
        (q.end, String::new())
    } else {
        (hi_ts, hi_id)
    };
    let mut keep = |(body,): (Vec<u8>,)| {
        let a: Alert = decode("alerts", &body)?;
        let wanted = a.last_ts >= q.start
            && q.state.is_none_or(|s| s == a.state)
            && q.severity.is_none_or(|s| s == a.severity)
            && q.tags.iter().all(|(k, v)| a.tags.get(k) == Some(v));
        if wanted {
            out.push(a);
        }
        Ok(out.len() < q.limit)
    };
    if let Some(metric) = &q.metric_id {
        let values = (
            q.job.as_str(),
            metric.as_str(),
            hi_ts,
            hi_id.as_str(),
            lowest,
        );
        each(inner, &inner.st.sel_alerts_metric, values, &mut keep).await?;
        return Ok(out);
    }
    let range = (bucket(lowest, DAY_MS), bucket(hi_ts, DAY_MS));
    for day in buckets(inner, &q.job, "alerts", "", range, true).await? {
        let values = (q.job.as_str(), day, hi_ts, hi_id.as_str(), lowest);
        if !each(inner, &inner.st.sel_alerts_time, values, &mut keep).await? {
            break;
        }
    }
    Ok(out)
}

/// Row counts by full scans: a diagnostic for tests and small keyspaces, never on a request path.
pub(crate) async fn counts(inner: &Inner) -> Result<StoreCounts, StoreError> {
    let ks = &inner.config.keyspace;
    let count = |table: &'static str| {
        let cql = format!("SELECT COUNT(*) FROM {ks}.{table}");
        async move {
            let rows = inner
                .session
                .query_unpaged(cql, ())
                .await
                .map_err(|e| request(format!("counting {table}"), e))?
                .into_rows_result()
                .map_err(|e| request(format!("counting {table}"), e))?;
            let (n,): (i64,) = rows
                .single_row()
                .map_err(|e| request(format!("counting {table}"), e))?;
            Ok::<u64, StoreError>(n.max(0) as u64)
        }
    };
    Ok(StoreCounts {
        results: count("results_by_metric").await?,
        late: count("late_events").await?,
        alerts: count("alerts").await?,
        raw: count("raw_events").await?,
    })
}
