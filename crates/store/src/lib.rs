//! StreamPulse's result store: where window results and late events land, and where the API reads
//! them back.
//!
//! The engine writes through [`ResultStore::apply`], one call per batch of one partition, and calls
//! [`ResultStore::flush`] before it commits a checkpoint. Every write is an upsert or delete by the
//! output's own idempotency key, so replaying a log from a checkpoint rewrites the same rows and a
//! crash between `apply` and `flush` loses nothing the replay will not write again.
//!
//! Reads are range queries over two access paths, mirroring the Cassandra design: by metric
//! (metric, window, window_start) and by time (window_start, metric, window).
//!
//! Alerts are stored by their id, keeping the latest transition (highest `sequence`), and read back
//! by the overlap of their episode with a time range ([`AlertQuery`]) or by id.
//!
//! The metric catalog (every metric id a job has seen, with its first event's tags) is read in id
//! order ([`CatalogQuery`]).
//!
//! Raw events (for jobs that keep them) are stored by (metric, ts, partition, offset) and read back
//! per metric by time ([`RawQuery`]).
//!
//! Nothing is kept forever unless asked: [`ResultStore::expire`] deletes the rows older than their
//! table's TTL ([`RetentionPolicy`]), by event time (see the `retention` module).
//!
//! [`EmbeddedStore`] is the single-process implementation (redb). A store never interprets or
//! alters results: it must never merge, drop or reorder fields of what it is given.

mod catalog;
mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(test)]
mod crash_test;
mod embedded;
mod error;
mod keys;
mod retention;
mod schema;

pub use catalog::{CatalogEntry, CatalogPage, CatalogQuery, CatalogWalk};
pub use embedded::EmbeddedStore;
pub use error::StoreError;
pub use retention::{cutoff, ExpiryReport, ExpiryTotals, RetentionPolicy};
use streampulse_core::glob;

use std::collections::HashSet;

use streampulse_core::detect::{Alert, AlertState, Severity};
use streampulse_core::output::{LateEvent, Output, RawEvent, WindowResult};
use streampulse_core::time::Millis;

/// What a call of [`ResultStore::write_behind`] left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BehindOutcome {
    /// Nothing: what was put off is written, or is under way with nothing to wait for.
    Done,
    /// It wrote, and more is left than one call does: call again soon.
    More,
    /// It did not try: another caller or a durable flush is at it. Call again soon; nothing is
    /// known of the store's health from this call.
    Busy,
}

/// Durable storage of pipeline outputs. Implementations are shared by every partition thread.
pub trait ResultStore: Send + Sync {
    /// Applies outputs of one partition of one job in one transaction: all or none of them become
    /// visible. Not necessarily durable until [`ResultStore::flush`].
    fn apply(&self, job: &str, partition: u32, outputs: &[Output]) -> Result<(), StoreError>;

    /// Work that `apply` put off to return sooner (the embedded store's writes of the batches it
    /// took, and of held-back index rows), done a step at a time: the caller calls this after it
    /// published what it applied. It changes nothing a query sees (a query writes what waits
    /// first). An error is the store's: a write that failed and is retried by the next call, or
    /// its file failing, which [`ResultStore::generation`] tells.
    fn write_behind(&self) -> Result<BehindOutcome, StoreError> {
        Ok(BehindOutcome::Done)
    }

    /// Makes everything applied so far durable (called before a checkpoint is committed).
    fn flush(&self) -> Result<(), StoreError>;

    /// How many times the store lost writes that were applied but not yet flushed (its file
    /// failed, a full disk, and was reopened at its last flush). A caller that applied outputs
    /// since its last checkpoint must replay from that checkpoint when this changed; a store
    /// whose writes are durable when `apply` returns stays at 0.
    fn generation(&self) -> u64 {
        0
    }

    /// Window results of one job; see [`ResultQuery`] for filters, order and the scan budget.
    fn query_page(&self, q: &ResultQuery) -> Result<ResultPage, StoreError>;

    /// The rows of [`ResultStore::query_page`] alone: for callers whose query has no scan budget
    /// (`scan_limit: usize::MAX`), where no page stops early.
    fn query_results(&self, q: &ResultQuery) -> Result<Vec<WindowResult>, StoreError> {
        Ok(self.query_page(q)?.rows)
    }

    /// The metric catalog of one job: its metric ids with the tags of their first event; see
    /// [`CatalogQuery`] for filters, order and the scan budget.
    fn query_catalog(&self, q: &CatalogQuery) -> Result<CatalogPage, StoreError>;

    /// Late events of one job; see [`LateQuery`] for filters and order.
    fn query_late(&self, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError>;

    /// Raw events of one metric of one job (kept when the job sets `keep_raw_events`); see
    /// [`RawQuery`] for the order.
    fn query_raw(&self, q: &RawQuery) -> Result<Vec<RawRow>, StoreError>;

    /// Alerts of one job; see [`AlertQuery`] for filters and order.
    fn query_alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError>;

    /// The latest stored transition of one alert of `job`, if any.
    fn get_alert(&self, job: &str, id: &str) -> Result<Option<Alert>, StoreError>;

    /// Number of result rows, late rows, alerts and raw events, over all jobs.
    fn counts(&self) -> Result<StoreCounts, StoreError>;

    /// Deletes, over all jobs, the rows whose event time is strictly before `now − ttl` of their
    /// table in `policy` (a row exactly at that cutoff is kept; a table without a TTL is left
    /// alone): results by `window_end`, late events by `ts`, resolved alerts by their resolution's
    /// event time (firing alerts are kept), raw events by `ts`. Never touches the metric catalog.
    /// Runs in bounded write transactions, so concurrent `apply` calls wait for one batch at most.
    /// `now` is epoch ms (the wall clock, for the caller to choose).
    fn expire(&self, policy: &RetentionPolicy, now: Millis) -> Result<ExpiryReport, StoreError>;
}

/// Window results of `job` whose `window_start` is in `[start, end)` (epoch ms).
///
/// `metric_id` keeps one metric; `metric_match` keeps the metrics a glob or prefix matches (both
/// may be given: a row must pass both).
///
/// Sorted by (metric_id, window, window_start) when `metric_id` is given or `metric_match` has a
/// non-empty literal prefix (the metrics under it are scanned one by one), otherwise by
/// (window_start, metric_id, window). At most `limit` rows (so `limit == 0` returns none); an
/// empty range (`start >= end`) returns none.
///
/// `after` resumes a walk: only rows strictly after that key, in the query's order, are returned.
/// Rows are unique by their key, so pages that each resume after the last row of the one before
/// neither skip nor repeat a row (rows written meanwhile appear if they sort after the cursor).
///
/// `scan_limit` bounds the cost of one call whatever the filters: once that many stored entries
/// (rows, or metrics and series skipped over) have been examined, the query answers with what it
/// found and [`ResultPage::resume_after`], so a filter that matches nothing cannot read a month of
/// rows for one page. `usize::MAX`: no budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultQuery {
    pub job: String,
    pub start: Millis,
    pub end: Millis,
    pub metric_id: Option<String>,
    pub metric_match: Option<MetricMatch>,
    pub window: Option<String>,
    /// Every (key, value) must be among the metric's tags (those of its first event, from the
    /// metric catalog); empty: no tag filter.
    pub tags: Vec<(String, String)>,
    pub limit: usize,
    pub after: Option<ResultKey>,
    pub scan_limit: usize,
}

/// What a [`ResultQuery`] found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultPage {
    /// At most `limit` rows, in the query's order.
    pub rows: Vec<WindowResult>,
    /// Set when the scan budget ran out first: every row up to this key (in the query's order) was
    /// examined, so the walk goes on with `after` set to it. Never before the last row of `rows`.
    pub resume_after: Option<ResultKey>,
}

/// Counts the stored entries a result query examines against its `scan_limit`, and remembers
/// where it stopped: the one bookkeeping of the budget for every store implementation.
#[derive(Debug)]
pub struct ScanBudget {
    left: usize,
    /// Where the query started: never a place to stop, or a walk would get its own cursor back.
    after: Option<ResultKey>,
    stopped_after: Option<ResultKey>,
}

impl ScanBudget {
    pub fn new(q: &ResultQuery) -> Self {
        Self {
            left: q.scan_limit,
            after: q.after.clone(),
            stopped_after: None,
        }
    }

    /// Counts one examined entry at `key` (already handled by the caller); false once the budget
    /// is spent, and the caller must stop: the walk resumes after `key`.
    pub fn examined(&mut self, key: impl FnOnce() -> ResultKey) -> bool {
        if self.left > 1 {
            self.left -= 1;
            return true;
        }
        let key = key();
        if self.after.as_ref() == Some(&key) {
            return true;
        }
        self.left = 0;
        self.stopped_after = Some(key);
        false
    }

    /// Entries that may still be examined.
    pub fn left(&self) -> usize {
        self.left
    }

    /// Ends the scan at `key`, as when a nested walk ran out of its own budget there.
    pub fn stop_at(&mut self, key: ResultKey) {
        self.left = 0;
        self.stopped_after = Some(key);
    }

    pub fn exhausted(&self) -> bool {
        self.stopped_after.is_some()
    }

    pub fn page(self, rows: Vec<WindowResult>) -> ResultPage {
        ResultPage {
            rows,
            resume_after: self.stopped_after,
        }
    }
}

/// A result query with a tag filter, for every store: the pages of the same query without it,
/// keeping the rows of the `wanted` metrics (those the metric catalog says carry the tags), so the
/// order and the cursor are those of the unfiltered query. Rows passed over count against the
/// query's scan budget, and so do the entries each unfiltered page examines.
pub fn tag_walk(
    q: &ResultQuery,
    wanted: &HashSet<String>,
    mut unfiltered: impl FnMut(&ResultQuery) -> Result<ResultPage, StoreError>,
) -> Result<ResultPage, StoreError> {
    let mut budget = ScanBudget::new(q);
    let mut out = Vec::new();
    let mut page = ResultQuery {
        tags: Vec::new(),
        limit: q.limit.max(256),
        ..q.clone()
    };
    if wanted.is_empty() || q.limit == 0 {
        return Ok(budget.page(out));
    }
    loop {
        page.scan_limit = budget.left();
        let found = unfiltered(&page)?;
        let full = found.rows.len() >= page.limit;
        let last = found.rows.last().map(ResultKey::of);
        for r in found.rows {
            let keep = wanted.contains(&*r.metric_id);
            if keep && out.len() + 1 >= q.limit {
                out.push(r);
                return Ok(budget.page(out));
            }
            let more = budget.examined(|| ResultKey::of(&r));
            if keep {
                out.push(r);
            }
            if !more {
                return Ok(budget.page(out));
            }
        }
        match (last, found.resume_after) {
            (Some(key), _) if full => page.after = Some(key),
            (_, Some(stopped)) => {
                budget.stop_at(stopped);
                return Ok(budget.page(out));
            }
            _ => return Ok(budget.page(out)),
        }
    }
}

/// A set of metric ids, by pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricMatch {
    /// `*` any run of characters, `?` one ([`glob::glob_match`]).
    Glob(String),
    /// Every id that starts with this string.
    Prefix(String),
}

impl MetricMatch {
    pub fn matches(&self, metric_id: &str) -> bool {
        match self {
            MetricMatch::Glob(g) => glob::glob_match(g, metric_id),
            MetricMatch::Prefix(p) => metric_id.starts_with(p.as_str()),
        }
    }

    /// What every matching id starts with.
    pub fn literal_prefix(&self) -> &str {
        match self {
            MetricMatch::Glob(g) => glob::literal_prefix(g),
            MetricMatch::Prefix(p) => p,
        }
    }
}

/// The unique key of a window result within a job: where a paged result query resumes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResultKey {
    pub metric_id: String,
    pub window: String,
    pub window_start: Millis,
}

impl ResultKey {
    pub fn of(r: &WindowResult) -> Self {
        Self {
            metric_id: r.metric_id.to_string(),
            window: r.window.to_string(),
            window_start: r.window_start,
        }
    }

    /// A key after every row of `metric_id` and before every row of a greater metric: where a
    /// walk by metric resumes once it has passed the whole metric. Window names are short ASCII
    /// names, which all sort before U+10FFFF.
    pub fn past_metric(metric_id: &str) -> Self {
        Self {
            metric_id: metric_id.to_string(),
            window: char::MAX.to_string(),
            window_start: Millis::MAX,
        }
    }

    /// A key after every row of one series (`metric_id`, `window`).
    pub fn past_series(metric_id: &str, window: &str) -> Self {
        Self {
            metric_id: metric_id.to_string(),
            window: window.to_string(),
            window_start: Millis::MAX,
        }
    }
}

/// Late events of `job` whose event time `ts` is in `[start, end)` (epoch ms), optionally of one
/// metric.
///
/// Sorted by (ts, partition, window, offset). At most `limit` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateQuery {
    pub job: String,
    pub start: Millis,
    pub end: Millis,
    pub metric_id: Option<String>,
    pub limit: usize,
}

/// Raw events of `metric_id` in `job` whose event time `ts` is in `[start, end)` (epoch ms).
///
/// Sorted by (ts, partition, offset): event time, then the order of the source. At most `limit`
/// rows (so `limit == 0` returns none); an empty range (`start >= end`) returns none. `after`
/// resumes a walk strictly after that key, so pages neither skip nor repeat a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawQuery {
    pub job: String,
    pub metric_id: String,
    pub start: Millis,
    pub end: Millis,
    pub limit: usize,
    pub after: Option<RawKey>,
}

/// A stored raw event and the partition it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    pub partition: u32,
    pub event: RawEvent,
}

/// The sort key of a raw event within one metric: where a paged raw query resumes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawKey {
    pub ts: Millis,
    pub partition: u32,
    pub offset: u64,
}

impl RawKey {
    pub fn of(r: &RawRow) -> Self {
        Self {
            ts: r.event.ts,
            partition: r.partition,
            offset: r.event.offset,
        }
    }
}

/// Alerts of `job` whose episode `[first_ts, last_ts]` overlaps `[start, end)` (epoch ms), i.e.
/// `first_ts < end && last_ts >= start`, optionally of one metric, state and severity, and
/// carrying every one of `tags` (each key present with exactly that value; an empty list keeps
/// all). Tags have no index: they are checked on the rows the time (or metric) scan reads.
///
/// Each alert appears once, as its latest stored transition. Sorted newest first: by
/// (first_ts, id) descending. At most `limit` rows (so `limit == 0` returns none); an empty range
/// (`start >= end`) returns none.
///
/// `after` resumes a walk: only alerts strictly after that key in this order (older, or as old
/// with a smaller id) are returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertQuery {
    pub job: String,
    pub start: Millis,
    pub end: Millis,
    pub metric_id: Option<String>,
    pub state: Option<AlertState>,
    pub severity: Option<Severity>,
    pub tags: Vec<(String, String)>,
    pub limit: usize,
    pub after: Option<AlertKey>,
}

/// The sort key of an alert in [`AlertQuery`] order: where a paged alert query resumes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlertKey {
    pub first_ts: Millis,
    pub id: String,
}

impl AlertKey {
    pub fn of(a: &Alert) -> Self {
        Self {
            first_ts: a.first_ts,
            id: a.id.clone(),
        }
    }
}

/// Row counts of a store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreCounts {
    /// Window results (one per (job, metric, window, window_start)).
    pub results: u64,
    /// Late events (one per (job, partition, window, offset)).
    pub late: u64,
    /// Alerts (one per (job, alert id), whatever its number of transitions).
    pub alerts: u64,
    /// Raw events (one per (job, metric, ts, partition, offset)).
    pub raw: u64,
}
