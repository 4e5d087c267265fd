//! The processing of one source partition: watermark plus every window of a job.
//!
//! A [`PartitionPipeline`] owns all the state of one partition, so partitions never share
//! anything: they can run on separate threads, be checkpointed one by one and, later, move between
//! workers. Its whole state is one serde value, [`PipelineState`], that a checkpoint stores and a
//! restore reads back; processing the same input after a restore yields the same outputs.
//!
//! Per event the order is Flink's: the event is judged against the watermark in force before it,
//! then the watermark advances, then every window the new watermark has passed fires.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::job::Job;
use crate::output::Output;
use crate::time::Millis;
use crate::watermark::{WatermarkTracker, WATERMARK_MAX};
use crate::window::WindowOperator;

/// Bumped whenever the serialized layout of [`PipelineState`] changes.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Everything a partition must remember across a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineState {
    pub format_version: u32,
    pub watermark: WatermarkTracker,
    /// Key id → metric id.
    pub names: Vec<String>,
    pub operators: Vec<WindowOperator>,
}

/// Why a saved state cannot be restored into a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("state format version {found} is not supported (expected {STATE_FORMAT_VERSION})")]
    Version { found: u32 },
    #[error("window '{0}' changed shape or aggregates since the state was saved; rename it or start from empty state")]
    WindowChanged(String),
}

pub struct PartitionPipeline {
    job: Job,
    state: PipelineState,
    index: HashMap<String, u32>,
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
            operators,
        };
        Self {
            job: job.clone(),
            state,
            index: HashMap::new(),
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
                Some(op) => op,
                None => WindowOperator::new(def, job.allowed_lateness),
            };
            state.operators.push(op);
        }
        state.watermark = WatermarkTracker::restored(&state.watermark, job.max_out_of_orderness);
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

    fn key_id(&mut self, metric_id: &str) -> u32 {
        if let Some(&id) = self.index.get(metric_id) {
            return id;
        }
        let id = self.state.names.len() as u32;
        self.state.names.push(metric_id.to_string());
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
        let key = self.key_id(metric_id);
        let watermark = self.state.watermark.current();
        for op in &mut self.state.operators {
            op.process(key, metric_id, ts, value, watermark, offset, out);
        }
        if self.state.watermark.observe(ts) {
            self.fire(out);
        }
    }

    /// Moves the watermark forward to `watermark` (if it is ahead) and fires what it passes.
    pub fn advance_watermark(&mut self, watermark: Millis, out: &mut Vec<Output>) {
        if self.state.watermark.advance_to(watermark) {
            self.fire(out);
        }
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
}
