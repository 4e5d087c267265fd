//! Writing one batch of outputs: every row with its TTL (from `store.retention`, by event time)
//! and its output-derived timestamp, at most `max_in_flight` requests at once (rows that share a
//! partition as unlogged batches); the batch of outputs succeeds
//! only when every write was acknowledged.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use scylla::serialize::row::SerializeRow;
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use streampulse_core::detect::{Alert, AlertState};
use streampulse_core::output::{Output, WindowResult};
use streampulse_core::time::Millis;
use streampulse_store::StoreError;
use tokio::task::JoinSet;

use crate::error::request;
use crate::store::Inner;

pub(crate) const DAY_MS: Millis = 86_400_000;

/// The timestamp of a retraction: above every revision of the row (revisions are `u32`).
const RETRACT_OFFSET: i64 = 1 << 32;
/// Cassandra's longest TTL (20 years), in seconds.
const MAX_TTL_SECS: i64 = 630_720_000;

/// The TTL in seconds of a row whose retention clock starts at `event_ms` (0: none), or `None`
/// when the row is already past its retention (strictly older than `now − ttl`) and must not be
/// written at all.
pub(crate) fn ttl_secs(event_ms: Millis, ttl: Option<Duration>, now: Millis) -> Option<i32> {
    let Some(ttl) = ttl else {
        return Some(0);
    };
    let ttl_ms = Millis::try_from(ttl.as_millis()).unwrap_or(Millis::MAX);
    let left_ms = event_ms.saturating_add(ttl_ms).saturating_sub(now);
    if left_ms < 0 {
        return None;
    }
    // Exactly at the cutoff the row is still kept (as by the embedded sweeper): the shortest TTL.
    if left_ms == 0 {
        return Some(1);
    }
    let secs = left_ms / 1000 + i64::from(left_ms % 1000 != 0);
    Some(secs.min(MAX_TTL_SECS) as i32)
}

/// The bucket of `ts` for buckets of `size` ms.
pub(crate) fn bucket(ts: Millis, size: Millis) -> i64 {
    ts.div_euclid(size)
}

pub(crate) fn encode<T: serde::Serialize>(
    what: &'static str,
    v: &T,
) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|source| StoreError::Encode { what, source })
}

/// The bucket-index key of one (metric, window) series.
pub(crate) fn series_key(metric_id: &str, window: &str) -> String {
    format!("{metric_id}\u{0}{window}")
}

/// An index entry outlives every row of its bucket: rows of one bucket differ in their retention
/// clock by at most `margin` seconds (a day for rows bucketed by their own day; for results, whose
/// clock is the window's end, the longest window, 366 days, plus a bucket). 0: no TTL.
fn index_ttl(ttl: i32, margin: i32) -> i32 {
    if ttl == 0 {
        0
    } else {
        ttl.saturating_add(margin).min(MAX_TTL_SECS as i32)
    }
}

const DAY_SECS: i32 = 86_400;
const RESULT_MARGIN_SECS: i32 = 368 * DAY_SECS;

/// A write timestamp in µs: `ms`·1000 + `add`, within the range Cassandra accepts (event times,
/// validated at ingest, are far inside it; out-of-range ones clamp rather than wrap).
pub(crate) fn micros(ms: Millis, add: i64) -> i64 {
    let v = i128::from(ms) * 1000 + i128::from(add);
    v.clamp(i128::from(i64::MIN) + 1, i128::from(i64::MAX)) as i64
}

/// A result's write timestamp (µs): later revisions of a window, and the longer ends of a growing
/// session, are always later.
pub(crate) fn result_timestamp(r: &WindowResult) -> i64 {
    micros(r.window_end, i64::from(r.revision))
}

fn bind(
    statement: &PreparedStatement,
    values: impl SerializeRow,
) -> Result<scylla::statement::bound::BoundStatement, StoreError> {
    statement
        .clone()
        .bind(&values)
        .map_err(|e| request("binding a write", e))
}

/// Writes `outputs` of `partition` of `job`; returns when every write is acknowledged.
pub(crate) async fn apply(
    inner: Arc<Inner>,
    job: String,
    partition: u32,
    outputs: Vec<Output>,
    now: Millis,
) -> Result<(), StoreError> {
    let st = &inner.st;
    let ret = &inner.retention;
    let metric_bucket = inner.config.metric_bucket_ms();
    let time_bucket = inner.config.time_bucket_ms();
    let mut writes: Vec<scylla::statement::bound::BoundStatement> = Vec::new();
    // Result rows by their partition in each table: sent as one batch per partition.
    let mut by_metric: BTreeMap<(String, String, i64), Vec<MetricRow>> = BTreeMap::new();
    let mut by_time: BTreeMap<i64, Vec<TimeRow>> = BTreeMap::new();
    let mut late: BTreeMap<i64, Vec<LateRow>> = BTreeMap::new();
    let mut raw: BTreeMap<(String, i64), Vec<RawEventRow>> = BTreeMap::new();
    // (kind, key, bucket, ttl) of the bucket index.
    let mut new_buckets: Vec<(&'static str, String, i64, i32)> = Vec::new();
    let mut new_series: Vec<(String, String)> = Vec::new();
    let mut new_span: Option<i64> = None;
    let j = job.as_str();
    for output in &outputs {
        match output {
            Output::Result(r) => {
                let Some(ttl) = ttl_secs(r.window_end, ret.results, now) else {
                    continue;
                };
                let ts = result_timestamp(r);
                let extra = encode("result aggregates", &r.extra)?;
                let row = (
                    r.window_end,
                    r.count as i64,
                    r.sum,
                    r.min,
                    r.max,
                    r.mean,
                    extra,
                    i64::from(r.revision),
                );
                let mb = bucket(r.window_start, metric_bucket);
                by_metric
                    .entry((r.metric_id.to_string(), r.window.to_string(), mb))
                    .or_default()
                    .push((
                        job.clone(),
                        r.metric_id.to_string(),
                        r.window.to_string(),
                        mb,
                        r.window_start,
                        row.0,
                        row.1,
                        row.2,
                        row.3,
                        row.4,
                        row.5,
                        row.6.clone(),
                        row.7,
                        ttl,
                        ts,
                    ));
                let tb = bucket(r.window_start, time_bucket);
                by_time.entry(tb).or_default().push((
                    job.clone(),
                    tb,
                    r.window_start,
                    r.metric_id.to_string(),
                    r.window.to_string(),
                    row.0,
                    row.1,
                    row.2,
                    row.3,
                    row.4,
                    row.5,
                    row.6,
                    row.7,
                    ttl,
                    ts,
                ));
                let ittl = index_ttl(ttl, RESULT_MARGIN_SECS);
                new_buckets.push(("time", String::new(), tb, ittl));
                new_buckets.push(("series", series_key(&r.metric_id, &r.window), mb, ittl));
                new_series.push((r.metric_id.to_string(), r.window.to_string()));
            }
            Output::Retract {
                metric_id,
                window,
                window_start,
                window_end,
            } => {
                let ts = micros(*window_end, RETRACT_OFFSET);
                writes.push(bind(
                    &st.del_result_metric,
                    (
                        ts,
                        j,
                        metric_id,
                        window,
                        bucket(*window_start, metric_bucket),
                        *window_start,
                    ),
                )?);
                writes.push(bind(
                    &st.del_result_time,
                    (
                        ts,
                        j,
                        bucket(*window_start, time_bucket),
                        *window_start,
                        metric_id,
                        window,
                    ),
                )?);
            }
            Output::Late(e) => {
                let Some(ttl) = ttl_secs(e.ts, ret.late_events, now) else {
                    continue;
                };
                new_buckets.push((
                    "late",
                    String::new(),
                    bucket(e.ts, DAY_MS),
                    index_ttl(ttl, DAY_SECS),
                ));
                let day = bucket(e.ts, DAY_MS);
                late.entry(day).or_default().push((
                    job.clone(),
                    day,
                    e.ts,
                    partition as i32,
                    e.window.clone(),
                    e.offset as i64,
                    e.metric_id.clone(),
                    e.value,
                    e.watermark,
                    ttl,
                    micros(e.ts, 0),
                ));
            }
            Output::Alert(a) => {
                let retained_from = match a.state {
                    AlertState::Firing => None,
                    AlertState::Resolved => Some(a.resolved_ts.unwrap_or(a.last_ts).max(a.last_ts)),
                };
                // A resolution already past retention is still written (with the shortest TTL):
                // skipping it would leave the earlier firing transition, which has no TTL, as
                // the alert's state for good.
                let ttl = match retained_from {
                    None => 0,
                    Some(t) => ttl_secs(t, ret.alerts, now).unwrap_or(1),
                };
                push_alert(&inner, &mut writes, j, a, ttl)?;
                // Firing alerts have no TTL, so neither has their day.
                new_buckets.push(("alerts", String::new(), bucket(a.first_ts, DAY_MS), 0));
                let span = a.last_ts.saturating_sub(a.first_ts).max(0);
                new_span = Some(new_span.map_or(span, |s| s.max(span)));
            }
            Output::Metric { metric_id, tags } => {
                writes.push(bind(&st.ins_metric, (j, metric_id, tags))?);
            }
            Output::Raw(e) => {
                let Some(ttl) = ttl_secs(e.ts, ret.raw_events, now) else {
                    continue;
                };
                new_buckets.push((
                    "raw",
                    e.metric_id.clone(),
                    bucket(e.ts, DAY_MS),
                    index_ttl(ttl, DAY_SECS),
                ));
                let day = bucket(e.ts, DAY_MS);
                raw.entry((e.metric_id.clone(), day)).or_default().push((
                    job.clone(),
                    e.metric_id.clone(),
                    day,
                    e.ts,
                    partition as i32,
                    e.offset as i64,
                    e.value,
                    e.tags.clone(),
                    ttl,
                    micros(e.ts, 0),
                ));
            }
        }
    }
    let new = index_rows(&inner, &mut writes, j, new_buckets, new_series, new_span)?;
    let mut all: Vec<Write> = writes.into_iter().map(Write::One).collect();
    all.extend(batches(
        &inner,
        &inner.st.ins_result_metric,
        by_metric,
        Write::ByMetric,
    ));
    all.extend(batches(
        &inner,
        &inner.st.ins_result_time,
        by_time,
        Write::ByTime,
    ));
    all.extend(batches(&inner, &inner.st.ins_late, late, Write::Late));
    all.extend(batches(&inner, &inner.st.ins_raw, raw, Write::Raw));
    run_all(&inner, all).await?;
    remember(&inner, new);
    Ok(())
}

fn push_alert(
    inner: &Inner,
    writes: &mut Vec<scylla::statement::bound::BoundStatement>,
    job: &str,
    a: &Alert,
    ttl: i32,
) -> Result<(), StoreError> {
    let st = &inner.st;
    let body = encode("alert", a)?;
    let ts = micros(a.first_ts, i64::from(a.sequence));
    writes.push(bind(&st.ins_alert, (job, &a.id, &body, ttl, ts))?);
    writes.push(bind(
        &st.ins_alert_time,
        (
            job,
            bucket(a.first_ts, DAY_MS),
            a.first_ts,
            &a.id,
            a.last_ts,
            &body,
            ttl,
            ts,
        ),
    )?);
    writes.push(bind(
        &st.ins_alert_metric,
        (
            job,
            &a.metric_id,
            a.first_ts,
            &a.id,
            a.last_ts,
            &body,
            ttl,
            ts,
        ),
    )?);
    Ok(())
}

/// Index rows this batch wrote, remembered once the batch succeeded (a failed batch is retried
/// whole, its index rows with it).
#[derive(Default)]
struct NewIndex {
    buckets: HashSet<(String, &'static str, String, i64)>,
    series: HashSet<(String, String, String)>,
    span: Option<(String, i64)>,
}

/// The index rows this batch needs that this process has not written yet.
fn index_rows(
    inner: &Inner,
    writes: &mut Vec<scylla::statement::bound::BoundStatement>,
    job: &str,
    buckets: Vec<(&'static str, String, i64, i32)>,
    series: Vec<(String, String)>,
    span: Option<i64>,
) -> Result<NewIndex, StoreError> {
    let st = &inner.st;
    let written = inner.written.lock().unwrap_or_else(|e| e.into_inner());
    let mut new = NewIndex::default();
    for (kind, key, b, ttl) in buckets {
        // Once per process: a later process writes it again, refreshing its TTL.
        let k = (job.to_string(), kind, key, b);
        if !written.buckets.contains(&k) && !new.buckets.contains(&k) {
            writes.push(bind(&st.ins_bucket, (job, kind, &k.2, b, ttl))?);
            new.buckets.insert(k);
        }
    }
    for (metric, window) in series {
        let k = (job.to_string(), metric, window);
        if !written.series.contains(&k) && !new.series.contains(&k) {
            writes.push(bind(&st.ins_series, (job, &k.1, &k.2))?);
            new.series.insert(k);
        }
    }
    if let Some(span) = span {
        if written.spans.get(job).is_none_or(|k| span > *k) {
            writes.push(bind(&st.ins_alert_span, (job, span))?);
            new.span = Some((job.to_string(), span));
        }
    }
    Ok(new)
}

fn remember(inner: &Inner, new: NewIndex) {
    let mut written = inner.written.lock().unwrap_or_else(|e| e.into_inner());
    if written.buckets.len() > 100_000 {
        written.buckets.clear();
    }
    if written.series.len() > 1_000_000 {
        written.series.clear();
    }
    written.buckets.extend(new.buckets);
    written.series.extend(new.series);
    if let Some((job, span)) = new.span {
        let known = written.spans.entry(job).or_insert(span);
        *known = (*known).max(span);
    }
}

/// The values of one `results_by_metric` row, owned (a batch outlives the outputs it came from).
type MetricRow = (
    String,
    String,
    String,
    i64,
    Millis,
    Millis,
    i64,
    f64,
    f64,
    f64,
    f64,
    Vec<u8>,
    i64,
    i32,
    i64,
);
/// The values of one `results_by_time` row, owned.
type TimeRow = (
    String,
    i64,
    Millis,
    String,
    String,
    Millis,
    i64,
    f64,
    f64,
    f64,
    f64,
    Vec<u8>,
    i64,
    i32,
    i64,
);

/// The values of one `late_events` row, owned.
type LateRow = (
    String,
    i64,
    Millis,
    i32,
    String,
    i64,
    String,
    f64,
    Millis,
    i32,
    i64,
);
/// The values of one `raw_events` row, owned.
type RawEventRow = (
    String,
    String,
    i64,
    Millis,
    i32,
    i64,
    f64,
    BTreeMap<String, String>,
    i32,
    i64,
);

/// Rows per batch.
const PARTITION_BATCH: usize = 32;
/// Bytes per batch, about (a batch closes before a row takes it past this). The node's batch size
/// thresholds apply only to batches of several partitions, which these are not; the bound that
/// counts is the largest mutation the commit log takes (half a segment, 16 MiB by default), which
/// 32 raw events of 1 MiB of tags each would pass.
const PARTITION_BATCH_BYTES: usize = 256 * 1024;

/// Bytes of the values of a row of each kind, about: its text and blobs, plus its numbers.
trait RowBytes {
    fn bytes(&self) -> usize;
}

impl RowBytes for MetricRow {
    fn bytes(&self) -> usize {
        self.0.len() + self.1.len() + self.2.len() + self.11.len() + 96
    }
}

impl RowBytes for TimeRow {
    fn bytes(&self) -> usize {
        self.0.len() + self.3.len() + self.4.len() + self.11.len() + 96
    }
}

impl RowBytes for LateRow {
    fn bytes(&self) -> usize {
        self.0.len() + self.4.len() + self.6.len() + 64
    }
}

impl RowBytes for RawEventRow {
    fn bytes(&self) -> usize {
        let tags: usize = self.7.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        self.0.len() + self.1.len() + tags + 64
    }
}

/// One request: a single statement, or rows of one partition as an unlogged batch.
enum Write {
    One(scylla::statement::bound::BoundStatement),
    ByMetric(Batch, Vec<MetricRow>),
    ByTime(Batch, Vec<TimeRow>),
    Late(Batch, Vec<LateRow>),
    Raw(Batch, Vec<RawEventRow>),
}

/// Rows that share a partition go out as unlogged batches of `statement`: one mutation of one
/// partition for the node instead of a request per row. That is every metric's results of one
/// time bucket in `results_by_time` (the engine emits them together when the watermark passes),
/// a metric's consecutive windows in `results_by_metric` (a replay, a catch-up), the late events
/// of a day, and a metric's raw events of a day.
/// Each row keeps its own TTL and timestamp, so rows converge as single writes do.
fn batches<K, R: RowBytes>(
    inner: &Inner,
    statement: &PreparedStatement,
    by_partition: BTreeMap<K, Vec<R>>,
    wrap: fn(Batch, Vec<R>) -> Write,
) -> Vec<Write> {
    let mut out = Vec::new();
    for rows in by_partition.into_values() {
        for chunk in chunks(rows) {
            let mut batch = Batch::new(BatchType::Unlogged);
            for _ in &chunk {
                batch.append_statement(statement.clone());
            }
            batch.set_consistency(inner.config.write_consistency.to_driver());
            batch.set_request_timeout(Some(inner.config.request_timeout));
            batch.set_is_idempotent(true);
            out.push(wrap(batch, chunk));
        }
    }
    out
}

/// `rows` cut into chunks of at most [`PARTITION_BATCH`] rows and, but for a row larger than
/// that alone, [`PARTITION_BATCH_BYTES`].
fn chunks<R: RowBytes>(rows: Vec<R>) -> Vec<Vec<R>> {
    let mut out: Vec<Vec<R>> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let size = row.bytes();
        let full = out.last().is_none_or(|last| {
            last.len() >= PARTITION_BATCH || bytes + size > PARTITION_BATCH_BYTES
        });
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        if let Some(last) = out.last_mut() {
            last.push(row);
        }
    }
    out
}

/// Runs every write, at most `max_in_flight` at once; the first failure is returned once all
/// have finished (none is left running behind the caller's back).
async fn run_all(inner: &Arc<Inner>, writes: Vec<Write>) -> Result<(), StoreError> {
    let mut tasks = JoinSet::new();
    for bound in writes {
        let permit = inner
            .in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| request("waiting for a write slot", e))?;
        let inner = inner.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match bound {
                Write::One(one) => inner.session.execute_bound_unpaged(&one).await.map(drop),
                Write::ByMetric(batch, rows) => inner.session.batch(&batch, &rows).await.map(drop),
                Write::ByTime(batch, rows) => inner.session.batch(&batch, &rows).await.map(drop),
                Write::Late(batch, rows) => inner.session.batch(&batch, &rows).await.map(drop),
                Write::Raw(batch, rows) => inner.session.batch(&batch, &rows).await.map(drop),
            }
        });
    }
    let mut first = None;
    while let Some(done) = tasks.join_next().await {
        let failed = match done {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(request("write", e)),
            Err(e) => Some(request("write task", e)),
        };
        if let Some(e) = failed {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_row(tag_bytes: usize) -> RawEventRow {
        let tags = BTreeMap::from([("k".to_string(), "v".repeat(tag_bytes))]);
        ("job".into(), "m".into(), 0, 0, 0, 0, 0.0, tags, 0, 0)
    }

    #[test]
    fn batches_are_bounded_in_rows_and_in_bytes() {
        let sizes =
            |rows: Vec<RawEventRow>| -> Vec<usize> { chunks(rows).iter().map(Vec::len).collect() };
        assert_eq!(sizes((0..70).map(|_| raw_row(10)).collect()), [32, 32, 6]);
        // 100 KiB rows: two fit under the byte bound, the third starts a new batch.
        assert_eq!(
            sizes((0..5).map(|_| raw_row(100 * 1024)).collect()),
            [2, 2, 1]
        );
        // A row larger than the bound goes alone, never in an empty batch before it.
        assert_eq!(
            sizes(vec![raw_row(10), raw_row(1 << 20), raw_row(10)]),
            [1, 1, 1]
        );
        assert!(chunks(Vec::<RawEventRow>::new()).is_empty());
    }

    #[test]
    fn ttls_follow_event_time_and_past_rows_are_not_written() {
        let day = Duration::from_secs(86_400);
        assert_eq!(
            ttl_secs(0, None, 1_000_000),
            Some(0),
            "no TTL: kept forever"
        );
        assert_eq!(ttl_secs(1_000, Some(day), 1_000), Some(86_400));
        assert_eq!(
            ttl_secs(1_000, Some(day), 1_001),
            Some(86_400),
            "rounded up"
        );
        assert_eq!(
            ttl_secs(0, Some(day), 86_400_000),
            Some(1),
            "exactly at the cutoff: kept"
        );
        assert_eq!(ttl_secs(0, Some(day), 86_400_001), None, "past the cutoff");
        assert_eq!(
            ttl_secs(0, Some(Duration::from_secs(u64::MAX)), 0),
            Some(MAX_TTL_SECS as i32)
        );
    }

    #[test]
    fn a_later_revision_and_a_retraction_always_carry_later_timestamps() {
        let r = |end, revision| WindowResult {
            metric_id: "m".into(),
            window: "w".into(),
            window_start: 0,
            window_end: end,
            count: 1,
            sum: 1.0,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            extra: Default::default(),
            revision,
        };
        assert!(result_timestamp(&r(10, 1)) > result_timestamp(&r(10, 0)));
        assert!(result_timestamp(&r(11, 0)) > result_timestamp(&r(10, 5)));
        assert!(10 * 1000 + RETRACT_OFFSET > result_timestamp(&r(10, u32::MAX)));
        assert_eq!(bucket(-1, 10), -1);
    }
}
