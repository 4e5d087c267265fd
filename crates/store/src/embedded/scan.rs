//! Range scans of `results_by_metric`: one metric (a skip-scan over its windows) and the metrics
//! under a literal prefix (a skip-scan over metrics), each resuming strictly after the query's
//! `after` key and stopping at its limit or when its scan budget is spent.

use streampulse_core::output::WindowResult;

use super::{ReadTable, RESULTS_BY_METRIC_NAME};
use crate::codec::decode_result;
use crate::error::StoreError;
use crate::keys::{self, prefix_end, KeyBuf, KeyReader};
use crate::{MetricMatch, ResultKey, ResultQuery, ScanBudget};

/// The smallest key greater than `key`: a scan from it resumes strictly after `key`.
pub(super) fn just_after(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// Where a `results_by_metric` scan resumes, if the query continues a walk.
fn resume_from(q: &ResultQuery) -> Option<Vec<u8>> {
    q.after.as_ref().map(|a| {
        just_after(keys::result_by_metric(
            &q.job,
            &a.metric_id,
            &a.window,
            a.window_start,
        ))
    })
}

/// The rows of one metric, by (window, window_start). A cursor of another metric bounds nothing
/// when it sorts before this metric and everything when after.
pub(super) fn metric(
    table: &ReadTable,
    q: &ResultQuery,
    metric_id: &str,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    let from = resume_from(q);
    let metric_prefix = KeyBuf::new().str(&q.job).str(metric_id);
    if let Some(window) = &q.window {
        return scan_window(
            table,
            metric_prefix.str(window),
            q,
            from.as_deref(),
            out,
            budget,
        );
    }
    // No window given: skip-scan. Find the next window of this metric, read its slice
    // [start, end), then jump past all of its keys; rows outside the time range are never read
    // beyond the one entry that names the next window.
    let metric_prefix = metric_prefix.into_bytes();
    let Some(metric_end) = prefix_end(&metric_prefix) else {
        return Ok(());
    };
    let mut lower = match from.clone() {
        Some(f) if f > metric_prefix => f,
        _ => metric_prefix,
    };
    while out.len() < q.limit && lower < metric_end && !budget.exhausted() {
        let mut range = table.range(lower.as_slice()..metric_end.as_slice())?;
        let Some(entry) = range.next() else { break };
        let (key, _) = entry?;
        let mut r = KeyReader::new(key.value());
        let window = r
            .str()
            .and_then(|_job| r.str())
            .and_then(|_metric| r.str())
            .map_err(|e| StoreError::corrupt_key(RESULTS_BY_METRIC_NAME, e))?;
        let window_prefix = KeyBuf::new().str(&q.job).str(metric_id).str(&window);
        scan_window(
            table,
            window_prefix.clone(),
            q,
            from.as_deref(),
            out,
            budget,
        )?;
        match prefix_end(&window_prefix.into_bytes()) {
            Some(next) => lower = next,
            None => break,
        }
    }
    Ok(())
}

/// The rows of every metric that starts with `filter`'s literal prefix and matches it, by
/// (metric, window, window_start): one seek per metric under the prefix, then [`metric`].
pub(super) fn metrics_under(
    table: &ReadTable,
    q: &ResultQuery,
    filter: &MetricMatch,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    let prefix = KeyBuf::new()
        .str(&q.job)
        .str_prefix(filter.literal_prefix())
        .into_bytes();
    let Some(end) = prefix_end(&prefix) else {
        return Ok(());
    };
    let mut lower = prefix;
    if let Some(a) = &q.after {
        // Metrics before the cursor's are done; the cursor's own rows are bounded by `metric`.
        lower = lower.max(KeyBuf::new().str(&q.job).str(&a.metric_id).into_bytes());
    }
    while out.len() < q.limit && lower < end {
        let mut range = table.range(lower.as_slice()..end.as_slice())?;
        let Some(entry) = range.next() else { break };
        let (key, _) = entry?;
        let mut r = KeyReader::new(key.value());
        let metric_id = r
            .str()
            .and_then(|_job| r.str())
            .map_err(|e| StoreError::corrupt_key(RESULTS_BY_METRIC_NAME, e))?;
        drop(range);
        if filter.matches(&metric_id) {
            metric(table, q, &metric_id, out, budget)?;
            if budget.exhausted() || out.len() >= q.limit {
                break;
            }
        }
        // The seek itself is what a filter matching nothing costs: one per metric passed over.
        if !budget.examined(|| ResultKey::past_metric(&metric_id)) {
            break;
        }
        match prefix_end(&KeyBuf::new().str(&q.job).str(&metric_id).into_bytes()) {
            Some(next) => lower = next,
            None => break,
        }
    }
    Ok(())
}

/// One window of one metric: the slice `[start, end)` past `from`.
fn scan_window(
    table: &ReadTable,
    window_prefix: KeyBuf,
    q: &ResultQuery,
    from: Option<&[u8]>,
    out: &mut Vec<WindowResult>,
    budget: &mut ScanBudget,
) -> Result<(), StoreError> {
    let mut lo = window_prefix.clone().i64(q.start).into_bytes();
    let hi = window_prefix.i64(q.end).into_bytes();
    if let Some(from) = from.filter(|f| *f > lo.as_slice()) {
        lo = from.to_vec();
    }
    if lo >= hi {
        return Ok(());
    }
    if out.len() >= q.limit {
        return Ok(());
    }
    for entry in table.range(lo.as_slice()..hi.as_slice())? {
        let (_, value) = entry?;
        let row = decode_result(RESULTS_BY_METRIC_NAME, value.value())?;
        // A full page needs no resume key: the caller's cursor is its last row.
        let more = out.len() + 1 < q.limit && budget.examined(|| ResultKey::of(&row));
        out.push(row);
        if !more {
            break;
        }
    }
    Ok(())
}
