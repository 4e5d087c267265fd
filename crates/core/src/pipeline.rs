//! The processing of one source partition: watermark plus every window of a job.
//!
//! A [`PartitionPipeline`] owns all the state of one partition, so partitions never share
//! anything: they can run on separate threads, be checkpointed one by one and, later, move between
//! workers. Its whole state is one serde value, [`PipelineState`], that a checkpoint stores and a
//! restore reads back; processing the same input after a restore yields the same outputs.
//!
//! Per event the order is Flink's: the event is judged against the watermark in force before it,
//! then the watermark advances, then every window the new watermark has passed fires.
//!
//! ## Keys and their state TTL
//!
//! Each metric gets a dense key id on its first event; windows and detectors keep their per-key
//! state in vectors indexed by it. With `job.state_ttl` set, a key whose latest event time is
//! older than `watermark − state_ttl` is *expired* when the watermark passes that point: its
//! window bookkeeping, detector models and alert trackers, name and tags are dropped, and its id
//! goes to a free list. A later event of that metric is a new metric: it gets a (possibly reused)
//! id, is announced again with [`Output::Metric`] (an upsert of the catalog row, so repeating it
//! is harmless), and its detectors warm up again.
//!
//! Expiry is by event time, never processing time, so a replay from a checkpoint expires the same
//! keys at the same points of the input and produces the same outputs. Expired keys are found
//! through a set ordered by expiry time, so an event costs O(log n) and a watermark advance
//! O(log n) per key it expires; nothing ever scans all keys. Validation makes the TTL at least the
//! longest window plus `allowed_lateness`, so a key's windows have all fired and expired before
//! its state goes (debug builds assert it).
//!
//! Expired ids are reused, smallest first, rather than compacted or kept as tombstones: ids never
//! appear in outputs, so reuse changes nothing visible, and it bounds every per-key vector by the
//! peak number of live keys, whereas tombstones (a name per id ever seen) would still grow without
//! bound with per-request metric ids, and compaction would have to renumber every pending timer.
//!
//! This module must never read a clock, and never drop a key whose windows can still change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::detect::{DetectorOperator, Series};
use crate::job::Job;
use crate::key_index::KeyIndex;
use crate::output::{Output, RawEvent, WindowResult};
use crate::time::Millis;
use crate::watermark::{WatermarkTracker, WATERMARK_MAX};
use crate::window::{Arrival, WindowOperator};

/// Bumped whenever the serialized layout of [`PipelineState`] changes.
///
/// 3 added `last_seen` and `free` (state TTL) after the fields of 2. Postcard, which encodes
/// checkpoints, cannot skip or default a missing trailing field, so [`PipelineState`]'s
/// `Deserialize` reads the version first and reads the new fields only from version 3 on: a
/// version 2 checkpoint still restores (every key live, none ever expired).
///
/// 4 writes the percentiles of a window of up to 64 values as the values, where 3 wrote the
/// sketch they make; a sketch is written as before, so states of 2 and 3 still read (see
/// `crate::aggregate`). A state of 4 does not read in a version that only knows 3.
pub const STATE_FORMAT_VERSION: u32 = 4;

/// The oldest [`PipelineState::format_version`] that [`PartitionPipeline::restore`] accepts.
pub const OLDEST_STATE_FORMAT_VERSION: u32 = 2;

/// Everything a partition must remember across a restart.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineState {
    pub format_version: u32,
    pub watermark: WatermarkTracker,
    /// Key id → metric id ("" for a free id).
    pub names: Vec<Arc<str>>,
    /// Key id → the tags of the metric's first event since it became live (alerts carry them).
    pub tags: Vec<BTreeMap<String, String>>,
    pub operators: Vec<WindowOperator>,
    pub detectors: Vec<DetectorOperator>,
    /// Key id → the latest event time of the key, kept only while the job has a state TTL (empty
    /// otherwise). The expiry order is rebuilt from it on restore.
    pub last_seen: Vec<Millis>,
    /// Key ids whose state expired, handed out again smallest first.
    pub free: BTreeSet<u32>,
}

const STATE_FIELDS: &[&str] = &[
    "format_version",
    "watermark",
    "names",
    "tags",
    "operators",
    "detectors",
    "last_seen",
    "free",
];

/// Reads the layouts of every version from [`OLDEST_STATE_FORMAT_VERSION`] on (see
/// [`STATE_FORMAT_VERSION`]). Only sequence formats (postcard) are supported: state is never
/// written as a map.
impl<'de> Deserialize<'de> for PipelineState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("PipelineState", STATE_FIELDS, StateVisitor)
    }
}

struct StateVisitor;

impl<'de> Visitor<'de> for StateVisitor {
    type Value = PipelineState;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a pipeline state")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PipelineState, A::Error> {
        fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            i: usize,
        ) -> Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &"a pipeline state"))
        }
        let format_version: u32 = next(&mut seq, 0)?;
        let mut state = PipelineState {
            format_version,
            watermark: next(&mut seq, 1)?,
            names: next(&mut seq, 2)?,
            tags: next(&mut seq, 3)?,
            operators: next(&mut seq, 4)?,
            detectors: next(&mut seq, 5)?,
            last_seen: Vec::new(),
            free: BTreeSet::new(),
        };
        // Version 2 ends here; a version it cannot read is refused by `restore`, by number.
        if format_version >= 3 {
            state.last_seen = next(&mut seq, 6)?;
            state.free = next(&mut seq, 7)?;
        }
        Ok(state)
    }
}

/// Why a saved state cannot be restored into a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("state format version {found} is not supported (expected {OLDEST_STATE_FORMAT_VERSION} to {STATE_FORMAT_VERSION})")]
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
    /// Metric id → key id, live keys only.
    index: KeyIndex,
    /// (expiry time, key) of every live key when the job has a state TTL: the key expires once
    /// the watermark is past its time. Derived from `state.last_seen`, so not checkpointed.
    expiry: BTreeSet<(Millis, u32)>,
    /// Whether any detector reads a window series (skips a scan of outputs when none does).
    has_window_detectors: bool,
    /// Key id → the detector rule of the key (`None`: the job's default detectors). Derived from
    /// the key's metric id and tags, so not checkpointed.
    key_rules: Vec<Option<u16>>,
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
            last_seen: Vec::new(),
            free: BTreeSet::new(),
        };
        Self {
            job: job.clone(),
            state,
            index: KeyIndex::default(),
            expiry: BTreeSet::new(),
            has_window_detectors: has_window_detectors(job),
            key_rules: Vec::new(),
        }
    }

    /// Rebuilds a pipeline from saved state. Windows new to the job start empty; windows no
    /// longer in the job are dropped; a window whose definition changed is an error.
    pub fn restore(job: &Job, mut state: PipelineState) -> Result<Self, RestoreError> {
        if !(OLDEST_STATE_FORMAT_VERSION..=STATE_FORMAT_VERSION).contains(&state.format_version) {
            return Err(RestoreError::Version {
                found: state.format_version,
            });
        }
        let mut saved: HashMap<Arc<str>, WindowOperator> = state
            .operators
            .drain(..)
            .map(|op| (op.def().name.clone(), op))
            .collect();
        for def in &job.windows {
            let op = match saved.remove(&def.name) {
                Some(op) if op.def() != def => {
                    return Err(RestoreError::WindowChanged(def.name.to_string()))
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
                Some(op) if !op.def().same_model(def) => {
                    return Err(RestoreError::DetectorChanged(def.name.clone()))
                }
                Some(mut op) => {
                    op.configure(def);
                    op
                }
                None => DetectorOperator::new(def),
            };
            state.detectors.push(op);
        }
        state.watermark = WatermarkTracker::restored(&state.watermark, job.max_out_of_orderness);
        // From here on the state is written in the current layout.
        state.format_version = STATE_FORMAT_VERSION;
        let keys = state.names.len();
        state.tags.resize_with(keys, BTreeMap::new);
        state.free.retain(|&k| (k as usize) < keys);
        match job.state_ttl {
            Some(_) if state.last_seen.len() != keys => {
                // Saved without a TTL: the latest event time of each key is unknown. The
                // partition's latest event time bounds them all, so no key can expire before its
                // windows; keys just live up to one TTL longer than they would have.
                let bound = state.watermark.max_event_time().unwrap_or(Millis::MIN);
                state.last_seen = vec![bound; keys];
            }
            Some(_) => {}
            None => state.last_seen = Vec::new(),
        }
        let live = |i: &usize| !state.free.contains(&(*i as u32));
        let index = (0..keys)
            .filter(live)
            .map(|i| (&*state.names[i], i as u32))
            .collect();
        // Free keys get a rule when handed out again.
        let key_rules = (0..keys)
            .map(|i| crate::detect::rules::rule_of(&job.rules, &state.names[i], &state.tags[i]))
            .collect();
        let expiry = match job.state_ttl {
            Some(ttl) => (0..keys)
                .filter(live)
                .map(|i| (state.last_seen[i].saturating_add(ttl), i as u32))
                .collect(),
            None => BTreeSet::new(),
        };
        Ok(Self {
            job: job.clone(),
            state,
            index,
            expiry,
            has_window_detectors: has_window_detectors(job),
            key_rules,
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

    /// Metrics whose state is held: every metric seen, less those whose state TTL passed.
    pub fn live_keys(&self) -> usize {
        self.index.len()
    }

    /// The key id of `metric_id` and whether the metric is new (first seen, or back after its
    /// state expired).
    fn key_id(
        &mut self,
        metric_id: &str,
        tags: impl FnOnce() -> BTreeMap<String, String>,
    ) -> (u32, bool) {
        if let Some(id) = self.index.get(metric_id) {
            return (id, false);
        }
        let tags = tags();
        let rule = crate::detect::rules::rule_of(&self.job.rules, metric_id, &tags);
        let id = match self.state.free.pop_first() {
            Some(id) => {
                self.state.names[id as usize] = metric_id.into();
                self.state.tags[id as usize] = tags;
                self.key_rules[id as usize] = rule;
                id
            }
            None => {
                let id = self.state.names.len() as u32;
                self.state.names.push(metric_id.into());
                self.state.tags.push(tags);
                self.key_rules.push(rule);
                if self.job.state_ttl.is_some() {
                    self.state.last_seen.push(Millis::MIN);
                }
                id
            }
        };
        self.index.insert(metric_id, id);
        (id, true)
    }

    /// Records an event of `key` at `ts` for the state TTL: O(log n), and only when `ts` is the
    /// key's latest event time.
    fn touch(&mut self, key: u32, ts: Millis, new: bool) {
        let Some(ttl) = self.job.state_ttl else {
            return;
        };
        let Some(last) = self.state.last_seen.get_mut(key as usize) else {
            return;
        };
        if !new {
            if ts <= *last {
                return;
            }
            self.expiry.remove(&(last.saturating_add(ttl), key));
        }
        *last = ts;
        self.expiry.insert((ts.saturating_add(ttl), key));
    }

    /// Drops every key whose latest event is older than watermark − TTL. Runs after the windows
    /// have fired and the window detectors have seen their results, so nothing of the key's is
    /// still to come.
    fn expire_keys(&mut self) {
        let watermark = self.state.watermark.current();
        while let Some(&(at, key)) = self.expiry.first() {
            if at >= watermark {
                break;
            }
            self.expiry.pop_first();
            for op in &mut self.state.operators {
                op.drop_key(key);
            }
            for detector in &mut self.state.detectors {
                detector.drop_key(key);
            }
            let idx = key as usize;
            let name = std::mem::take(&mut self.state.names[idx]);
            self.index.remove(&name);
            self.state.tags[idx] = BTreeMap::new();
            self.state.free.insert(key);
        }
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
        let ((key, new), raw_tags) = if self.job.keep_raw_events {
            let tags = tags();
            (self.key_id(metric_id, || tags.clone()), Some(tags))
        } else {
            (self.key_id(metric_id, tags), None)
        };
        if new {
            // Also for a metric back after its state expired: the catalog is an upsert by metric
            // id, so announcing it again only rewrites its row (with the tags it has now).
            out.push(Output::Metric {
                metric_id: metric_id.to_string(),
                tags: self.state.tags[key as usize].clone(),
            });
        }
        self.touch(key, ts, new);
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
            metric_id: &self.state.names[key as usize],
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
        let rule = self.key_rules.get(key as usize).copied().flatten();
        for detector in &mut self.state.detectors {
            if in_order && detector.def().series == Series::Raw && detector.def().rule == rule {
                let tags = &self.state.tags[key as usize];
                detector.observe(&self.job.name, key, metric_id, tags, ts, value, out);
            }
        }
        let moved = self.state.watermark.observe(ts);
        if moved {
            self.fire(out);
        }
        // First emissions may come from the event itself (a late update of a window never
        // emitted before) or from the watermark it moved: both feed window detectors.
        if self.has_window_detectors {
            self.detect_on_windows(out, first_new);
        }
        if moved {
            self.expire_keys();
        }
    }

    /// Moves the watermark forward to `watermark` (if it is ahead) and fires what it passes.
    pub fn advance_watermark(&mut self, watermark: Millis, out: &mut Vec<Output>) {
        let first_new = out.len();
        let moved = self.state.watermark.advance_to(watermark);
        if moved {
            self.fire(out);
        }
        if self.has_window_detectors {
            self.detect_on_windows(out, first_new);
        }
        if moved {
            self.expire_keys();
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
            let Some(key) = self.index.get(&r.metric_id) else {
                continue;
            };
            let rule = self.key_rules.get(key as usize).copied().flatten();
            for (i, detector) in self.state.detectors.iter().enumerate() {
                if let Series::Window { window, aggregate } = &detector.def().series {
                    if **window == *r.window && detector.def().rule == rule {
                        if let Some(x) = r.get(*aggregate) {
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

    /// A tumbling 1s window with lateness 500ms, a z-score detector on raw values (silent for 5
    /// points) and one on the window's max, and the given state TTL.
    fn ttl_job(ttl_ms: Option<u64>) -> Job {
        let z = |name: &str, series: &str| crate::detect::DetectorSpec {
            series: series.into(),
            n: Some(5),
            min_points: Some(5),
            warning: Some(4.0),
            ..crate::detect::DetectorSpec::raw(name, crate::detect::DetectorType::Zscore)
        };
        JobSpec {
            max_out_of_orderness: Duration::ZERO,
            allowed_lateness: Duration::from_millis(500),
            windows: vec![spec(WindowType::Tumbling, Some(1_000), None)],
            detectors: vec![z("z", "raw"), z("zw", "w.max")],
            state_ttl: ttl_ms.map(Duration::from_millis),
            ..JobSpec::default()
        }
        .validate()
        .unwrap()
    }

    fn alerts(out: &[Output]) -> Vec<(String, String, Millis)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some((a.metric_id.clone(), a.detector.clone(), a.first_ts)),
                _ => None,
            })
            .collect()
    }

    /// A default detector `z`, a rule for `cpu.*` in `env: prod` with its own `cz`, and a rule
    /// that silences `quiet.*`. Every detector alerts easily.
    fn rules_job() -> Job {
        let z = |name: &str| crate::detect::DetectorSpec {
            n: Some(5),
            min_points: Some(5),
            warning: Some(4.0),
            ..crate::detect::DetectorSpec::raw(name, crate::detect::DetectorType::Zscore)
        };
        let rule = |metric: &str, tags: &[(&str, &str)], detectors| crate::detect::RuleSpec {
            selector: crate::detect::SelectorSpec {
                metric: Some(metric.into()),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            detectors,
        };
        JobSpec {
            max_out_of_orderness: Duration::from_secs(1),
            windows: vec![spec(WindowType::Tumbling, Some(1_000), None)],
            detectors: vec![z("z")],
            detector_rules: vec![
                rule("cpu.*", &[("env", "prod")], vec![z("cz")]),
                rule("quiet.*", &[], vec![]),
            ],
            ..JobSpec::default()
        }
        .validate()
        .unwrap()
    }

    /// Feeds each metric 8 normal points, then a spike, then (after a checkpoint round trip when
    /// `restart`) one more spike; returns (metric, detector) of every alert transition.
    fn rule_alerts(restart: bool) -> BTreeSet<(String, String)> {
        let metrics = [
            ("cpu.a", "prod"),
            ("cpu.b", "dev"),
            ("mem.a", "prod"),
            ("quiet.a", "prod"),
        ];
        let job = rules_job();
        let mut p = PartitionPipeline::new(&job);
        let mut out = Vec::new();
        let mut offset = 0;
        let mut feed = |p: &mut PartitionPipeline, out: &mut Vec<Output>, step: i64, v: f64| {
            for (metric, env) in metrics {
                let tags = || BTreeMap::from([("env".to_string(), env.to_string())]);
                p.process_tagged(metric, tags, step * 100, v, offset, out);
                offset += 1;
            }
        };
        for step in 0..8 {
            feed(&mut p, &mut out, step, 10.0 + (step % 2) as f64);
        }
        if restart {
            let bytes = postcard::to_allocvec(p.state()).unwrap();
            p = PartitionPipeline::restore(&job, postcard::from_bytes(&bytes).unwrap()).unwrap();
        }
        feed(&mut p, &mut out, 8, 1_000.0);
        out.iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some((a.metric_id.clone(), a.detector.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_metric_is_scored_by_the_detectors_of_the_first_rule_it_matches() {
        let expected: BTreeSet<(String, String)> =
            [("cpu.a", "cz"), ("cpu.b", "z"), ("mem.a", "z")]
                .iter()
                .map(|(m, d)| (m.to_string(), d.to_string()))
                .collect();
        assert_eq!(rule_alerts(false), expected);
        assert_eq!(rule_alerts(true), expected, "the same after a restore");
    }

    #[test]
    fn a_spike_in_the_first_points_is_caught_by_the_robust_warmup_unless_it_is_off() {
        let job = |robust_warmup| {
            JobSpec {
                max_out_of_orderness: Duration::from_secs(1),
                windows: vec![spec(WindowType::Tumbling, Some(1_000), None)],
                detectors: vec![crate::detect::DetectorSpec {
                    robust_warmup,
                    ..crate::detect::DetectorSpec::raw("z", crate::detect::DetectorType::Zscore)
                }],
                ..JobSpec::default()
            }
            .validate()
            .unwrap()
        };
        // 7 points of noise around 100 (zscore's default model waits for 30), then 13x.
        let points = [100.0, 102.0, 99.0, 101.0, 98.0, 100.5, 99.5, 1_300.0];
        for (robust_warmup, restart, caught) in [
            (None, false, true),
            (None, true, true),
            (Some(false), false, false),
        ] {
            let job = job(robust_warmup);
            let mut p = PartitionPipeline::new(&job);
            let mut out = Vec::new();
            for (i, v) in points.iter().enumerate() {
                if restart && i == 6 {
                    let bytes = postcard::to_allocvec(p.state()).unwrap();
                    let state = postcard::from_bytes(&bytes).unwrap();
                    p = PartitionPipeline::restore(&job, state).unwrap();
                }
                p.process("m", i as i64 * 100, *v, i as u64, &mut out);
            }
            let alerts: Vec<_> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Alert(a) => Some((a.first_ts, a.expected)),
                    _ => None,
                })
                .collect();
            if caught {
                assert_eq!(
                    alerts,
                    vec![(700, 100.0)],
                    "opened at the spike, median 100"
                );
            } else {
                assert!(alerts.is_empty(), "silent during warm-up: {alerts:?}");
            }
        }
    }

    fn state_bytes(p: &PartitionPipeline) -> usize {
        postcard::to_allocvec(p.state()).unwrap().len()
    }

    #[test]
    fn a_silent_metric_is_dropped_and_comes_back_as_a_new_one() {
        let mut p = PartitionPipeline::new(&ttl_job(Some(2_000)));
        let mut out = Vec::new();
        // "gone" reports a steady 10 for 6s (the detectors are warm), then falls silent.
        for i in 0..12 {
            p.process("gone", i * 500, 10.0 + (i % 2) as f64, i as u64, &mut out);
        }
        assert_eq!(p.live_keys(), 1);
        let with_gone = state_bytes(&p);
        // "stays" keeps the watermark moving. "gone"'s latest event is at 5.5s: it expires once
        // the watermark is past 7.5s.
        for (i, ts) in (6_000..=7_500).step_by(500).enumerate() {
            p.process("stays", ts, 1.0, 100 + i as u64, &mut out);
        }
        assert_eq!(p.live_keys(), 2, "at 7.5s, 'gone' is exactly one TTL old");
        p.process("stays", 7_501, 1.0, 200, &mut out);
        assert_eq!(p.live_keys(), 1, "past 7.5s 'gone' has expired");
        assert!(p.state().free.contains(&0));
        let metrics_before = out
            .iter()
            .filter(|o| matches!(o, Output::Metric { .. }))
            .count();
        assert_eq!(metrics_before, 2);
        assert!(
            state_bytes(&p) < with_gone + 20,
            "the dropped key's history is gone"
        );
        // Back with a value far from its old level: a warm detector would alert on it; a new
        // metric's detectors are silent until they have 5 points.
        out.clear();
        p.process("gone", 8_000, 1_000.0, 300, &mut out);
        assert!(
            matches!(&out[0], Output::Metric { metric_id, .. } if metric_id == "gone"),
            "announced again (a catalog upsert): {out:?}"
        );
        assert_eq!(p.live_keys(), 2);
        assert_eq!(&*p.state().names[0], "gone", "the freed id is reused");
        for (i, ts) in (8_500..=9_500).step_by(500).enumerate() {
            p.process("gone", ts, 1_000.0, 301 + i as u64, &mut out);
        }
        assert!(alerts(&out).is_empty(), "warm-up again: {:?}", alerts(&out));

        // Without a TTL the same input alerts on the jump, and keeps both keys.
        let mut kept = PartitionPipeline::new(&ttl_job(None));
        let mut out = Vec::new();
        for i in 0..12 {
            kept.process("gone", i * 500, 10.0 + (i % 2) as f64, i as u64, &mut out);
        }
        for (i, ts) in (6_000..=7_500).step_by(500).enumerate() {
            kept.process("stays", ts, 1.0, 100 + i as u64, &mut out);
        }
        kept.process("stays", 7_501, 1.0, 200, &mut out);
        kept.process("gone", 8_000, 1_000.0, 300, &mut out);
        assert_eq!(alerts(&out), vec![("gone".into(), "z".into(), 8_000)]);
        assert_eq!(kept.live_keys(), 2);
        assert!(kept.state().last_seen.is_empty(), "no TTL, no bookkeeping");
    }

    #[test]
    fn churning_metrics_keep_the_state_bounded() {
        let mut with_ttl = PartitionPipeline::new(&ttl_job(Some(2_000)));
        let mut without = PartitionPipeline::new(&ttl_job(None));
        let mut out = Vec::new();
        // Each metric id lives for 5 events (1s), like a container or a request id.
        for i in 0..2_000i64 {
            let metric = format!("m{}", i / 5);
            for p in [&mut with_ttl, &mut without] {
                p.process(&metric, i * 200, 1.0, i as u64, &mut out);
            }
        }
        assert_eq!(without.live_keys(), 400);
        assert!(with_ttl.live_keys() <= 20, "{}", with_ttl.live_keys());
        assert!(with_ttl.state().names.len() <= 20, "ids are reused");
        assert!(state_bytes(&with_ttl) * 10 < state_bytes(&without));
    }

    #[test]
    fn restore_in_the_middle_of_expiries_gives_the_same_outputs() {
        let job = ttl_job(Some(1_500));
        let events: Vec<(String, Millis, f64)> = (0..400i64)
            .map(|i| {
                // Metrics come and go: m{k} reports from 100·k to 100·k + 2s, some values jump.
                let k = (i / 3 + i % 3) % 40;
                let v = if i % 37 == 0 { 500.0 } else { (i % 4) as f64 };
                (format!("m{k}"), i * 100, v)
            })
            .collect();
        let run = |p: &mut PartitionPipeline, from: usize, to: usize, out: &mut Vec<Output>| {
            for (i, (m, ts, v)) in events.iter().enumerate().take(to).skip(from) {
                p.process(m, *ts, *v, i as u64, out);
            }
        };
        let mut whole = Vec::new();
        let mut p = PartitionPipeline::new(&job);
        run(&mut p, 0, events.len(), &mut whole);
        p.finish(&mut whole);
        for cut in [1, 57, 200, 333] {
            let mut out = Vec::new();
            let mut p = PartitionPipeline::new(&job);
            run(&mut p, 0, cut, &mut out);
            let bytes = postcard::to_allocvec(p.state()).unwrap();
            let state: PipelineState = postcard::from_bytes(&bytes).unwrap();
            let mut p = PartitionPipeline::restore(&job, state).unwrap();
            run(&mut p, cut, events.len(), &mut out);
            p.finish(&mut out);
            assert_eq!(out, whole, "restored at {cut}");
        }
    }

    /// The layout of format version 2, before the state TTL.
    #[derive(Serialize)]
    struct StateV2<'a> {
        format_version: u32,
        watermark: &'a WatermarkTracker,
        names: &'a Vec<Arc<str>>,
        tags: &'a Vec<BTreeMap<String, String>>,
        operators: &'a Vec<WindowOperator>,
        detectors: &'a Vec<DetectorOperator>,
    }

    #[test]
    fn a_version_2_checkpoint_restores_with_or_without_a_ttl() {
        // m0, m1, m2 report 2s each, one after the other.
        let events: Vec<(String, Millis)> = (0..60i64)
            .map(|i| (format!("m{}", i / 20), i * 100))
            .collect();
        let run = |p: &mut PartitionPipeline, from: usize, out: &mut Vec<Output>| {
            for (i, (m, ts)) in events.iter().enumerate().skip(from).take(30) {
                p.process(m, *ts, 1.0, i as u64, out);
            }
        };
        let results = |o: &[Output]| {
            o.iter()
                .filter(|o| matches!(o, Output::Result(_)))
                .cloned()
                .collect::<Vec<_>>()
        };
        let mut reference = PartitionPipeline::new(&ttl_job(None));
        run(&mut reference, 0, &mut Vec::new());
        let s = reference.state();
        let v2 = postcard::to_allocvec(&StateV2 {
            format_version: 2,
            watermark: &s.watermark,
            names: &s.names,
            tags: &s.tags,
            operators: &s.operators,
            detectors: &s.detectors,
        })
        .unwrap();
        let mut want = Vec::new();
        run(&mut reference, 30, &mut want);
        assert_eq!(results(&want).len(), 3);
        for ttl in [None, Some(1_500)] {
            let state: PipelineState = postcard::from_bytes(&v2).unwrap();
            assert_eq!(state.format_version, 2);
            let mut restored = PartitionPipeline::restore(&ttl_job(ttl), state).unwrap();
            assert_eq!(restored.state().format_version, STATE_FORMAT_VERSION);
            let mut out = Vec::new();
            run(&mut restored, 30, &mut out);
            assert_eq!(results(&out), results(&want), "{ttl:?}");
            // With a TTL, the keys of a version 2 state count as last seen at the partition's
            // latest event (2.9s): m0 and m1 (last seen 3.9s) are older than 5.9s − 1.5s.
            let live = if ttl.is_some() { 1 } else { 3 };
            assert_eq!(restored.live_keys(), live, "{ttl:?}");
        }
        let state = PipelineState {
            format_version: 1,
            ..PartitionPipeline::new(&ttl_job(None)).state().clone()
        };
        assert_eq!(
            PartitionPipeline::restore(&ttl_job(None), state).err(),
            Some(RestoreError::Version { found: 1 })
        );
    }
}
