//! What the engine counts for the Prometheus exposition, beyond the per-partition counters of
//! [`crate::status`]: events rejected by reason, window results and late events per window, the
//! delay from a window's end to its emission, alert transitions, checkpoint durations.
//!
//! Label sets are fixed when the job starts (windows and detectors come from its config, reasons
//! are a closed list), so every series is a preallocated atomic and the cardinality is bounded by
//! construction. Nothing is added per event: workers tally a batch's outputs locally
//! ([`OutputTally`]) and publish them with one atomic add per touched series. The API renders
//! these atomics on scrape (see `streampulse_api::telemetry`); names and units are specified in
//! `docs/instrumentation.md`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use streampulse_core::detect::{AlertState, Severity};
use streampulse_core::event::EventError;
use streampulse_core::job::Job;
use streampulse_core::output::{Output, WindowResult};
use streampulse_core::time::Millis;

/// Buckets of `streampulse_window_emit_delay_seconds`: a window fires once the watermark (max
/// event time − `max_out_of_orderness`) passes its end, so a few seconds is normal; minutes mean
/// a slow or idle partition.
pub const EMIT_DELAY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets of `streampulse_result_publish_seconds`: from a batch's start to its results being in
/// the store and on the live feed; milliseconds are normal, tens of them mean a slow store.
pub const RESULT_PUBLISH_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];
/// Buckets of `streampulse_checkpoint_duration_seconds`.
pub const CHECKPOINT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of `streampulse_http_request_duration_seconds` (an fsynced ingest is milliseconds).
pub const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram with fixed upper bounds (`le`, in seconds): one atomic per bucket, so observing is
/// two relaxed adds and memory never grows.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Non-cumulative; the last one counts observations above every bound.
    counts: Box<[AtomicU64]>,
    sum_micros: AtomicU64,
}

/// A consistent-enough read of a [`Histogram`] for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(le, cumulative count)` for every finite bound, in order.
    pub buckets: Vec<(f64, u64)>,
    /// Every observation (the `+Inf` bucket).
    pub count: u64,
    pub sum_seconds: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn bucket(bounds: &[f64], seconds: f64) -> usize {
        bounds.partition_point(|&le| le < seconds)
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        self.counts[Self::bucket(self.bounds, secs)].fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }

    /// Adds the observations of a batch gathered locally.
    pub fn add(&self, local: &mut LocalHistogram) {
        for (total, n) in self.counts.iter().zip(local.counts.iter_mut()) {
            if *n > 0 {
                total.fetch_add(std::mem::take(n), Relaxed);
            }
        }
        self.sum_micros
            .fetch_add(std::mem::take(&mut local.sum_micros), Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (le, n) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += n.load(Relaxed);
            buckets.push((*le, cumulative));
        }
        let count = cumulative + self.counts[self.bounds.len()].load(Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_micros.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// Observations of one batch, before they are added to a shared [`Histogram`].
#[derive(Debug, Clone)]
pub struct LocalHistogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum_micros: u64,
}

impl LocalHistogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum_micros: 0,
        }
    }

    /// Observes a delay in milliseconds; negative ones count as zero.
    pub fn observe_ms(&mut self, ms: Millis) {
        let ms = ms.max(0) as u64;
        self.counts[Histogram::bucket(self.bounds, ms as f64 / 1000.0)] += 1;
        self.sum_micros += ms * 1000;
    }
}

/// Why an input line was rejected: a closed set, the `reason` label of
/// `streampulse_events_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    InvalidJson,
    MissingField,
    WrongType,
    NotFinite,
    BadTimestamp,
    NotObject,
    /// Past a size limit of `job.event` (event bytes, metric id, tags).
    TooLarge,
    /// Further ahead than `job.max_future`.
    Future,
    Other,
}

impl RejectReason {
    pub const ALL: [Self; 9] = [
        Self::InvalidJson,
        Self::MissingField,
        Self::WrongType,
        Self::NotFinite,
        Self::BadTimestamp,
        Self::NotObject,
        Self::TooLarge,
        Self::Future,
        Self::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::NotFinite => "not_finite",
            Self::BadTimestamp => "bad_timestamp",
            Self::NotObject => "not_object",
            Self::TooLarge => "too_large",
            Self::Future => "future",
            Self::Other => "other",
        }
    }

    pub fn of(err: &EventError) -> Self {
        match err {
            EventError::Json(_) => Self::InvalidJson,
            EventError::NotAnObject(_) => Self::NotObject,
            EventError::Missing(_) => Self::MissingField,
            EventError::WrongType { .. } => Self::WrongType,
            EventError::NotFinite(_) => Self::NotFinite,
            EventError::Time { .. } => Self::BadTimestamp,
            EventError::TooLarge { .. } | EventError::TooManyTags { .. } => Self::TooLarge,
            EventError::Future { .. } => Self::Future,
            EventError::Empty(_) => Self::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of one named window of the job.
#[derive(Debug)]
pub struct WindowCounters {
    pub name: String,
    /// First emissions (revision 0).
    pub results_final: AtomicU64,
    /// Re-emissions caused by late events within `allowed_lateness` (revision > 0).
    pub results_update: AtomicU64,
    /// Early-firing results of windows not fired yet, pushed to live subscribers only.
    pub results_partial: AtomicU64,
    /// Events that arrived after this window's time had expired (the late output).
    pub late: AtomicU64,
    /// Wall-clock time of a first emission minus the window's end.
    pub emit_delay: Histogram,
}

/// `streampulse_alert_transitions_total` of one detector, by severity and state.
#[derive(Debug)]
pub struct AlertCounters {
    pub detector: String,
    transitions: [AtomicU64; 4],
}

impl AlertCounters {
    pub const SEVERITIES: [Severity; 2] = [Severity::Warning, Severity::Critical];
    pub const STATES: [AlertState; 2] = [AlertState::Firing, AlertState::Resolved];

    fn index(severity: Severity, state: AlertState) -> usize {
        let s = match severity {
            Severity::Warning => 0,
            Severity::Critical => 1,
        };
        s * 2 + usize::from(state == AlertState::Resolved)
    }

    pub fn get(&self, severity: Severity, state: AlertState) -> u64 {
        self.transitions[Self::index(severity, state)].load(Relaxed)
    }
}

/// The engine's labelled counters (see the module docs).
#[derive(Debug)]
pub struct EngineMetrics {
    /// Indexed by [`RejectReason`] (in the order of [`RejectReason::ALL`]).
    rejected: [AtomicU64; RejectReason::ALL.len()],
    pub windows: Vec<WindowCounters>,
    pub alerts: Vec<AlertCounters>,
    /// Completed checkpoints and savepoints, from the request to durability.
    pub checkpoint_duration: Histogram,
    /// Batches that fired windows: from the start of the batch to its results being stored and
    /// on the live feed (an upper bound of the delay after the watermark passed a window's end).
    pub result_publish: Histogram,
}

impl EngineMetrics {
    pub fn new(job: &Job) -> Self {
        Self {
            rejected: Default::default(),
            windows: job
                .windows
                .iter()
                .map(|w| WindowCounters {
                    name: w.name.to_string(),
                    results_final: AtomicU64::new(0),
                    results_update: AtomicU64::new(0),
                    results_partial: AtomicU64::new(0),
                    late: AtomicU64::new(0),
                    emit_delay: Histogram::new(EMIT_DELAY_BUCKETS),
                })
                .collect(),
            alerts: job
                .detectors
                .iter()
                .map(|d| AlertCounters {
                    detector: d.name.clone(),
                    transitions: Default::default(),
                })
                .collect(),
            checkpoint_duration: Histogram::new(CHECKPOINT_BUCKETS),
            result_publish: Histogram::new(RESULT_PUBLISH_BUCKETS),
        }
    }

    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()].load(Relaxed)
    }

    /// Adds one request's rejections, counted per reason.
    pub fn add_rejected(&self, per_reason: &[u64; RejectReason::ALL.len()]) {
        for (total, &n) in self.rejected.iter().zip(per_reason) {
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
struct WindowTally {
    finals: u64,
    updates: u64,
    late: u64,
    delay: Option<LocalHistogram>,
}

/// Counts early-firing partial results by window (one add per window touched).
pub fn count_partials(metrics: &EngineMetrics, results: &[WindowResult]) {
    for w in &metrics.windows {
        let n = results.iter().filter(|r| *r.window == *w.name).count() as u64;
        if n > 0 {
            w.results_partial
                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A worker's per-batch tally of its outputs, published with one add per touched series.
#[derive(Debug, Clone)]
pub struct OutputTally {
    windows: Vec<WindowTally>,
    alerts: Vec<[u64; 4]>,
}

impl OutputTally {
    pub fn new(metrics: &EngineMetrics) -> Self {
        Self {
            windows: metrics
                .windows
                .iter()
                .map(|_| WindowTally {
                    delay: Some(LocalHistogram::new(EMIT_DELAY_BUCKETS)),
                    ..Default::default()
                })
                .collect(),
            alerts: vec![[0; 4]; metrics.alerts.len()],
        }
    }

    /// Counts `outputs` emitted at wall-clock time `now` and adds them to `metrics`.
    pub fn record(&mut self, metrics: &EngineMetrics, outputs: &[Output], now: Millis) {
        let window = |name: &str| metrics.windows.iter().position(|w| w.name == name);
        for output in outputs {
            match output {
                Output::Result(r) => {
                    let Some(i) = window(&r.window) else { continue };
                    let t = &mut self.windows[i];
                    if r.revision == 0 {
                        t.finals += 1;
                        if let Some(h) = &mut t.delay {
                            h.observe_ms(now.saturating_sub(r.window_end));
                        }
                    } else {
                        t.updates += 1;
                    }
                }
                Output::Late(l) => {
                    if let Some(i) = window(&l.window) {
                        self.windows[i].late += 1;
                    }
                }
                Output::Alert(a) => {
                    if let Some(i) = metrics.alerts.iter().position(|d| d.detector == a.detector) {
                        self.alerts[i][AlertCounters::index(a.severity, a.state)] += 1;
                    }
                }
                Output::Retract { .. } | Output::Metric { .. } | Output::Raw(_) => {}
            }
        }
        for (t, w) in self.windows.iter_mut().zip(&metrics.windows) {
            for (n, total) in [
                (&mut t.finals, &w.results_final),
                (&mut t.updates, &w.results_update),
                (&mut t.late, &w.late),
            ] {
                if *n > 0 {
                    total.fetch_add(std::mem::take(n), Relaxed);
                }
            }
            if let Some(h) = &mut t.delay {
                w.emit_delay.add(h);
            }
        }
        for (t, a) in self.alerts.iter_mut().zip(&metrics.alerts) {
            for (n, total) in t.iter_mut().zip(&a.transitions) {
                if *n > 0 {
                    total.fetch_add(std::mem::take(n), Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_inclusive_and_cumulative() {
        static BOUNDS: &[f64] = &[0.1, 1.0];
        let h = Histogram::new(BOUNDS);
        for ms in [0, 100, 101, 1000, 5000] {
            h.observe(Duration::from_millis(ms));
        }
        let mut local = LocalHistogram::new(BOUNDS);
        local.observe_ms(-5);
        local.observe_ms(2000);
        h.add(&mut local);
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(0.1, 3), (1.0, 5)]);
        assert_eq!(s.count, 7);
        assert!((s.sum_seconds - 8.201).abs() < 1e-9, "{}", s.sum_seconds);
        // Adding drained the local histogram.
        h.add(&mut local);
        assert_eq!(h.snapshot().count, 7);
    }

    #[test]
    fn every_event_error_has_a_reason() {
        use streampulse_core::event::EventFormat;
        let format = EventFormat::default();
        let reason = |text: &str| RejectReason::of(&format.parse_str(text).unwrap_err()).name();
        assert_eq!(reason("{"), "invalid_json");
        assert_eq!(reason("[1]"), "not_object");
        assert_eq!(reason(r#"{"metric_id":"m","value":1}"#), "missing_field");
        assert_eq!(reason(r#"{"metric_id":1,"ts":1,"value":1}"#), "wrong_type");
        assert_eq!(
            reason(r#"{"metric_id":"m","ts":"yesterday","value":1}"#),
            "bad_timestamp"
        );
        assert_eq!(reason(r#"{"metric_id":"","ts":1,"value":1}"#), "other");
        assert_eq!(
            RejectReason::of(&EventError::NotFinite("value".into())).name(),
            "not_finite"
        );
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
