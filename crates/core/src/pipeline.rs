//! The processing of one source partition: watermark plus every window of a job.
//!
//! A [`PartitionPipeline`] owns all the state of one partition, so partitions never share
//! anything: they can run on separate threads, be checkpointed one by one and, later, move between
//! workers. Its whole state is one serde value, [`PipelineState`], that a checkpoint stores and a
//! restore reads back; processing the same input after a restore yields the same outputs.
//!
//! Per event the order is Flink's: the event is judged against the watermark in force before it,
//! then the watermark advances, then every window the new watermark has passed fires.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::detect::{DetectorOperator, Series};
use crate::job::Job;
use crate::output::{Output, RawEvent, WindowResult};
use crate::time::Millis;
use crate::watermark::{WatermarkTracker, WATERMARK_MAX};
use crate::window::{Arrival, WindowOperator};

/// Bumped whenever the serialized layout of [`PipelineState`] changes.
pub const STATE_FORMAT_VERSION: u32 = 2;

/// Everything a partition must remember across a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineState {
    pub format_version: u32,
    pub watermark: WatermarkTracker,
    /// Key id → metric id.
    pub names: Vec<String>,
    /// Key id → the tags of the metric's first event (alerts carry them).
    pub tags: Vec<BTreeMap<String, String>>,
    pub operators: Vec<WindowOperator>,
    pub detectors: Vec<DetectorOperator>,
}

/// Why a saved state cannot be restored into a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("state format version {found} is not supported (expected {STATE_FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("window '{0}' changed shape or aggregates since the state was saved; rename it or start from empty state")]
    WindowChanged(String),
    #[error("allowed_lateness changed from {saved} ms to {configured} ms since the state was saved; restore with the old value, or start from empty state")]
    LatenessChanged { saved: Millis, configured: Millis },
    #[error(
        "detector '{0}' changed since the state was saved; rename it or start from empty state"
    )]
    DetectorChanged(String),
}

pub struct PartitionPipeline {
    job: Job,
    state: PipelineState,
    index: HashMap<String, u32>,
    /// Whether any detector reads a window series (skips a scan of outputs when none does).
    has_window_detectors: bool,
}

fn has_window_detectors(job: &Job) -> bool {
    job.detectors.iter().any(|d| d.series != Series::Raw)
}

impl PartitionPipeline {
    pub fn new(job: &Job) -> Self {
        let operators = job
            .windows
            .iter()
            .map(|w| WindowOperator::new(w, job.allowed_lateness))
            .collect();
        let state = PipelineState {
            format_version: STATE_FORMAT_VERSION,
            watermark: WatermarkTracker::new(job.max_out_of_orderness),
            names: Vec::new(),
            tags: Vec::new(),
            operators,
            detectors: job.detectors.iter().map(DetectorOperator::new).collect(),
        };
        Self {
            job: job.clone(),
            state,
            index: HashMap::new(),
            has_window_detectors: has_window_detectors(job),
        }
    }

    /// Rebuilds a pipeline from saved state. Windows new to the job start empty; windows no
    /// longer in the job are dropped; a window whose definition changed is an error.
    pub fn restore(job: &Job, mut state: PipelineState) -> Result<Self, RestoreError> {
        if state.format_version != STATE_FORMAT_VERSION {
            return Err(RestoreError::Version {
                found: state.format_version,
            });
        }
        let mut saved: HashMap<String, WindowOperator> = state
            .operators
            .drain(..)
            .map(|op| (op.def().name.clone(), op))
            .collect();
        for def in &job.windows {
            let op = match saved.remove(&def.name) {
                Some(op) if op.def() != def => {
                    return Err(RestoreError::WindowChanged(def.name.clone()))
                }
                // Its timers were scheduled with the old lateness.
                Some(op) if op.lateness() != job.allowed_lateness => {
                    return Err(RestoreError::LatenessChanged {
                        saved: op.lateness(),
                        configured: job.allowed_lateness,
                    })
                }
                Some(op) => op,
                None => WindowOperator::new(def, job.allowed_lateness),
            };
            state.operators.push(op);
        }
        let mut saved: HashMap<String, DetectorOperator> = state
            .detectors
            .drain(..)
            .map(|d| (d.def().name.clone(), d))
            .collect();
        for def in &job.detectors {
            let op = match saved.remove(&def.name) {
                Some(op) if op.def() != def => {
                    return Err(RestoreError::DetectorChanged(def.name.clone()))
                }
                Some(op) => op,
                None => DetectorOperator::new(def),
            };
            state.detectors.push(op);
        }
        state.watermark = WatermarkTracker::restored(&state.watermark, job.max_out_of_orderness);
        state.tags.resize_with(state.names.len(), BTreeMap::new);
        let index = state
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i as u32))
            .collect();
        Ok(Self {
            job: job.clone(),
            state,
            index,
            has_window_detectors: has_window_detectors(job),
        })
    }

    pub fn state(&self) -> &PipelineState {
        &self.state
    }

    pub fn job(&self) -> &Job {
        &self.job
    }

    pub fn watermark(&self) -> Millis {
        self.state.watermark.current()
    }

    /// Windows and sessions currently holding state, over all window definitions.
    pub fn open_windows(&self) -> usize {
        self.state
            .operators
            .iter()
            .map(WindowOperator::open_windows)
            .sum()
    }

    fn key_id(&mut self, metric_id: &str, tags: impl FnOnce() -> BTreeMap<String, String>) -> u32 {
        if let Some(&id) = self.index.get(metric_id) {
            return id;
        }
        let id = self.state.names.len() as u32;
        self.state.names.push(metric_id.to_string());
        self.state.tags.push(tags());
        self.index.insert(metric_id.to_string(), id);
        id
    }

    /// Processes one event at `offset` of the partition, appending what it causes to `out`.
    pub fn process(
        &mut self,
        metric_id: &str,
        ts: Millis,
        value: f64,
        offset: u64,
        out: &mut Vec<Output>,
    ) {
        self.process_tagged(metric_id, BTreeMap::new, ts, value, offset, out);
    }

    /// [`Self::process`] with the event's tags. `tags` is called at most once: for every event
    /// when the job keeps raw events (each raw event carries its own tags), otherwise only for a
    /// metric's first event (the catalog and alerts carry those), so a job without raw events
    /// never decodes the tags of the rest.
    pub fn process_tagged(
        &mut self,
        metric_id: &str,
        tags: impl FnOnce() -> BTreeMap<String, String>,
        ts: Millis,
        value: f64,
        offset: u64,
        out: &mut Vec<Output>,
    ) {
        let known = self.state.names.len();
        let (key, raw_tags) = if self.job.keep_raw_events {
            let tags = tags();
            (self.key_id(metric_id, || tags.clone()), Some(tags))
        } else {
            (self.key_id(metric_id, tags), None)
        };
        if key as usize == known {
            out.push(Output::Metric {
                metric_id: metric_id.to_string(),
                tags: self.state.tags[known].clone(),
            });
        }
        if let Some(tags) = raw_tags {
            // Before what the event causes, and for late events too: it is the input as seen.
            out.push(Output::Raw(RawEvent {
                metric_id: metric_id.to_string(),
                ts,
                value,
                tags,
                offset,
            }));
        }
        let first_new = out.len();
        let watermark = self.state.watermark.current();
        let arrival = Arrival {
            key,
            metric_id,
            ts,
            value,
            offset,
        };
        for op in &mut self.state.operators {
            op.process(&arrival, watermark, out);
        }
        // Events behind the watermark are not scored: the recent points they would be compared
        // with are from a later time, so a late value reads as an anomaly it is not.
        let in_order = ts > watermark;
        for detector in &mut self.state.detectors {
            if in_order && detector.def().series == Series::Raw {
                let tags = &self.state.tags[key as usize];
                detector.observe(&self.job.name, key, metric_id, tags, ts, value, out);
            }
        }
        if self.state.watermark.observe(ts) {
            self.fire(out);
        }
        // First emissions may come from the event itself (a late update of a window never
        // emitted before) or from the watermark it moved: both feed window detectors.
        if self.has_window_detectors {
            self.detect_on_windows(out, first_new);
        }
    }

    /// Moves the watermark forward to `watermark` (if it is ahead) and fires what it passes.
    pub fn advance_watermark(&mut self, watermark: Millis, out: &mut Vec<Output>) {
        let first_new = out.len();
        if self.state.watermark.advance_to(watermark) {
            self.fire(out);
        }
        if self.has_window_detectors {
            self.detect_on_windows(out, first_new);
        }
    }

    /// The watermark an idle flush would move to, when that is ahead of the current one.
    fn idle_flush_target(&self) -> Option<Millis> {
        let max_ts = self.state.watermark.max_event_time()?;
        let target = max_ts.saturating_add(self.job.max_extent() - 1);
        (target > self.watermark() && self.open_windows() > 0).then_some(target)
    }

    /// Early firing: the current aggregates of the windows that have not fired yet, appended to
    /// `out`. Changes nothing: partial results are a view for live subscribers, and the final
    /// result of each window is emitted as usual.
    pub fn partial_results(&self, out: &mut Vec<WindowResult>) {
        for op in &self.state.operators {
            op.partials(&self.state.names, out);
        }
    }

    /// Whether an idle flush would fire something now.
    pub fn idle_flush_pending(&self) -> bool {
        self.idle_flush_target().is_some()
    }

    /// The idle flush: moves the watermark past every window holding data (see
    /// `JobSpec::idle_timeout`). Returns false when there was nothing to flush.
    pub fn flush_idle(&mut self, out: &mut Vec<Output>) -> bool {
        let Some(max_ts) = self.state.watermark.max_event_time() else {
            return false;
        };
        if self.open_windows() == 0 {
            return false;
        }
        self.advance_watermark(max_ts.saturating_add(self.job.max_extent() - 1), out);
        true
    }

    /// The end of a bounded input: the watermark goes to +∞ and every window fires.
    pub fn finish(&mut self, out: &mut Vec<Output>) {
        self.advance_watermark(WATERMARK_MAX, out);
    }

    fn fire(&mut self, out: &mut Vec<Output>) {
        let watermark = self.state.watermark.current();
        for op in &mut self.state.operators {
            if op.next_timer().is_some_and(|t| t <= watermark) {
                op.advance(watermark, &self.state.names, out);
            }
        }
    }

    /// Feeds first emissions of windows (revision 0) to the detectors on window series.
    fn detect_on_windows(&mut self, out: &mut Vec<Output>, from: usize) {
        let mut points = Vec::new();
        for output in &out[from..] {
            let Output::Result(r) = output else { continue };
            if r.revision != 0 {
                continue;
            }
            for (i, detector) in self.state.detectors.iter().enumerate() {
                if let Series::Window { window, aggregate } = &detector.def().series {
                    if *window == r.window {
                        if let (Some(&key), Some(x)) =
                            (self.index.get(&r.metric_id), r.get(*aggregate))
                        {
                            points.push((i, key, r.metric_id.clone(), r.window_start, x));
                        }
                    }
                }
            }
        }
        for (i, key, metric_id, ts, x) in points {
            let tags = &self.state.tags[key as usize];
            self.state.detectors[i].observe(&self.job.name, key, &metric_id, tags, ts, x, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::job::JobSpec;
    use crate::window::{WindowSpec, WindowType};

    fn job(window: WindowSpec, lateness_ms: u64) -> Job {
        JobSpec {
            max_out_of_orderness: Duration::ZERO,
            allowed_lateness: Duration::from_millis(lateness_ms),
            windows: vec![window],
            detectors: vec![],
            ..JobSpec::default()
        }
        .validate()
        .unwrap()
    }

    fn spec(t: WindowType, size: Option<u64>, gap: Option<u64>) -> WindowSpec {
        WindowSpec {
            name: "w".into(),
            window_type: t,
            size: size.map(Duration::from_millis),
            slide: None,
            gap: gap.map(Duration::from_millis),
            offset: None,
            aggregates: vec![],
        }
    }

    fn results(out: &[Output]) -> Vec<(Millis, u64, u32)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Result(WindowResult {
                    window_start,
                    count,
                    revision,
                    ..
                }) => Some((*window_start, *count, *revision)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn partial_results_show_unfired_windows_and_change_nothing() {
        for (t, size, gap) in [
            (WindowType::Tumbling, Some(10_000), None),
            (WindowType::Session, None, Some(5_000)),
        ] {
            let mut p = PartitionPipeline::new(&job(spec(t, size, gap), 0));
            let mut fired = PartitionPipeline::new(&job(spec(t, size, gap), 0));
            let (mut out, mut out2) = (Vec::new(), Vec::new());
            for (i, ts) in [1_000, 2_000, 3_000].into_iter().enumerate() {
                p.process("m", ts, 1.0, i as u64, &mut out);
                fired.process("m", ts, 1.0, i as u64, &mut out2);
            }
            let mut partial = Vec::new();
            p.partial_results(&mut partial);
            assert_eq!(partial.len(), 1, "{t:?}: one open window");
            assert_eq!(
                (partial[0].count, partial[0].sum, partial[0].revision),
                (3, 3.0, 0)
            );
            // Asking for partials is a read: the final result is the same as without it.
            p.process("m", 30_000, 1.0, 3, &mut out);
            fired.process("m", 30_000, 1.0, 3, &mut out2);
            assert_eq!(results(&out), results(&out2), "{t:?}");
            assert_eq!(
                results(&out),
                vec![(if gap.is_some() { 1_000 } else { 0 }, 3, 0)]
            );
            // The fired window is no longer partial; the new one is.
            partial.clear();
            p.partial_results(&mut partial);
            assert_eq!(partial.len(), 1, "{t:?}: {partial:?}");
            assert_eq!(partial[0].count, 1);
        }
    }

    #[test]
    fn late_events_within_lateness_re_emit_and_later_ones_go_to_the_late_output() {
        let mut p =
            PartitionPipeline::new(&job(spec(WindowType::Tumbling, Some(10_000), None), 5_000));
        let mut out = Vec::new();
        p.process("m", 1_000, 1.0, 0, &mut out);
        p.process("m", 12_000, 2.0, 1, &mut out);
        assert_eq!(
            results(&out),
            vec![(0, 1, 0)],
            "fires at watermark 12000 >= 9999"
        );
        out.clear();
        p.process("m", 5_000, 3.0, 2, &mut out);
        assert_eq!(
            results(&out),
            vec![(0, 2, 1)],
            "late but within lateness: revision 1"
        );
        out.clear();
        p.process("m", 16_000, 1.0, 3, &mut out);
        p.process("m", 6_000, 1.0, 4, &mut out);
        assert!(results(&out).is_empty());
        assert!(
            matches!(&out[..], [Output::Late(l)] if l.ts == 6_000 && l.offset == 4 && l.watermark == 16_000)
        );
    }

    #[test]
    fn a_session_merged_into_an_earlier_start_retracts_its_old_row() {
        let mut p =
            PartitionPipeline::new(&job(spec(WindowType::Session, None, Some(1_000)), 10_000));
        let mut out = Vec::new();
        p.process("m", 1_000, 1.0, 0, &mut out);
        p.process("m", 5_000, 1.0, 1, &mut out);
        assert_eq!(results(&out), vec![(1_000, 1, 0)]);
        out.clear();
        p.process("m", 500, 1.0, 2, &mut out);
        assert!(
            matches!(
                &out[0],
                Output::Retract {
                    window_start: 1_000,
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(
            results(&out),
            vec![(500, 2, 0)],
            "a new start is a new row: revision 0"
        );
    }

    #[test]
    fn idle_flush_fires_every_window_holding_data_once() {
        let mut p = PartitionPipeline::new(&job(spec(WindowType::Tumbling, Some(10_000), None), 0));
        let mut out = Vec::new();
        p.process("m", 3_000, 1.0, 0, &mut out);
        assert!(p.idle_flush_pending());
        assert!(p.flush_idle(&mut out));
        assert_eq!(results(&out), vec![(0, 1, 0)]);
        assert!(!p.idle_flush_pending(), "nothing left to flush");
        assert!(!p.flush_idle(&mut out));
    }

    #[test]
    fn detectors_on_window_series_see_first_emissions() {
        let mut spec = JobSpec {
            max_out_of_orderness: Duration::ZERO,
            windows: vec![spec(WindowType::Tumbling, Some(1_000), None)],
            detectors: vec![crate::detect::DetectorSpec {
                series: "w.max".into(),
                n: Some(5),
                min_points: Some(5),
                warning: Some(4.0),
                ..crate::detect::DetectorSpec::raw("z", crate::detect::DetectorType::Zscore)
            }],
            ..JobSpec::default()
        };
        spec.windows[0].name = "w".into();
        let mut p = PartitionPipeline::new(&spec.validate().unwrap());
        let mut out = Vec::new();
        // Window maxima 10, 12, 10, 12, 10 (mean 10.8, σ ≈ 0.98), then 30: z ≈ 19.6.
        for (i, v) in [10.0, 12.0, 10.0, 12.0, 10.0, 30.0, 10.0]
            .into_iter()
            .enumerate()
        {
            p.process("m", i as i64 * 1_000 + 500, v, i as u64, &mut out);
        }
        let alerts: Vec<_> = out
            .iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some((a.series.clone(), a.first_ts, a.observed)),
                _ => None,
            })
            .collect();
        assert_eq!(alerts, vec![("w.max".to_string(), 5_000, 30.0)]);
    }

    #[test]
    fn restore_refuses_a_changed_lateness() {
        let old = job(spec(WindowType::Tumbling, Some(10_000), None), 0);
        let new = job(spec(WindowType::Tumbling, Some(10_000), None), 5_000);
        let p = PartitionPipeline::new(&old);
        let err = PartitionPipeline::restore(&new, p.state().clone()).err();
        assert_eq!(
            err,
            Some(RestoreError::LatenessChanged {
                saved: 0,
                configured: 5_000
            })
        );
    }

    #[test]
    fn restore_refuses_a_changed_window() {
        let old = job(spec(WindowType::Tumbling, Some(10_000), None), 0);
        let new = job(spec(WindowType::Tumbling, Some(20_000), None), 0);
        let p = PartitionPipeline::new(&old);
        let err = PartitionPipeline::restore(&new, p.state().clone()).err();
        assert_eq!(err, Some(RestoreError::WindowChanged("w".into())));
    }

    /// The tags of an event at `offset`: `host` changes with every event, so a raw event that
    /// reused its metric's first tags would show.
    fn tags_of(offset: u64) -> BTreeMap<String, String> {
        [("host".to_string(), format!("h{offset}"))].into()
    }

    #[test]
    fn raw_events_carry_each_events_tags_and_only_when_kept() {
        let mut spec = JobSpec {
            max_out_of_orderness: Duration::ZERO,
            windows: vec![spec(WindowType::Tumbling, Some(10_000), None)],
            detectors: vec![],
            ..JobSpec::default()
        };
        for keep in [false, true] {
            spec.keep_raw_events = keep;
            let mut p = PartitionPipeline::new(&spec.validate().unwrap());
            let mut out = Vec::new();
            let mut decoded = 0;
            // The last event is late (its window closed at 10s): kept all the same.
            for (offset, ts) in [(0u64, 1_000), (1, 12_000), (2, 3_000)] {
                let tags = || {
                    decoded += 1;
                    tags_of(offset)
                };
                p.process_tagged("m", tags, ts, offset as f64, offset, &mut out);
            }
            let raw: Vec<&RawEvent> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Raw(r) => Some(r),
                    _ => None,
                })
                .collect();
            if keep {
                assert_eq!(decoded, 3, "tags are needed for every raw event");
                let want: Vec<RawEvent> = [(0u64, 1_000), (1, 12_000), (2, 3_000)]
                    .into_iter()
                    .map(|(offset, ts)| RawEvent {
                        metric_id: "m".into(),
                        ts,
                        value: offset as f64,
                        tags: tags_of(offset),
                        offset,
                    })
                    .collect();
                assert_eq!(raw, want.iter().collect::<Vec<_>>());
            } else {
                assert_eq!(
                    decoded, 1,
                    "without raw events, only a metric's first event's tags"
                );
                assert!(raw.is_empty());
            }
            // The catalog keeps the first event's tags either way.
            assert!(out
                .iter()
                .any(|o| matches!(o, Output::Metric { tags, .. } if *tags == tags_of(0))));
        }
    }
}
