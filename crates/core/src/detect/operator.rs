//! The state of one detector over every metric of a partition: a model and an alert tracker per
//! key. Points come in as (key, metric, event time, value); transitions go out as
//! [`Output::Alert`](crate::output::Output::Alert).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alert::{AlertTracker, Verdict};
use super::ewma::Ewma;
use super::mad::Mad;
use super::spec::{DetectorDef, DetectorKind};
use super::zscore::ZScore;
use crate::output::Output;
use crate::time::Millis;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Model {
    ZScore(ZScore),
    Ewma(Ewma),
    Mad(Mad),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    model: Model,
    tracker: AlertTracker,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetectorOperator {
    def: DetectorDef,
    series: String,
    keys: Vec<Option<KeyState>>,
}

impl DetectorOperator {
    pub fn new(def: &DetectorDef) -> Self {
        Self {
            def: def.clone(),
            series: def.series.name(),
            keys: Vec::new(),
        }
    }

    pub fn def(&self) -> &DetectorDef {
        &self.def
    }

    /// Forgets the model and alert tracker of `key`, whose state TTL has passed: its next point
    /// starts a new model, silent during warm-up like a new metric's. An alert still firing stays
    /// as last emitted (as it would if the metric never reported again), and the alert tracker's
    /// episode count restarts; new alert ids still differ from old ones because their first event
    /// time is later than any of the key's earlier points (see `crate::pipeline`).
    pub fn drop_key(&mut self, key: u32) {
        if let Some(slot) = self.keys.get_mut(key as usize) {
            *slot = None;
        }
    }

    /// Scores one point of `key`'s series and pushes the alert transition it causes, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        job: &str,
        key: u32,
        metric_id: &str,
        tags: &BTreeMap<String, String>,
        ts: Millis,
        x: f64,
        out: &mut Vec<Output>,
    ) {
        let idx = key as usize;
        if self.keys.len() <= idx {
            self.keys.resize_with(idx + 1, || None);
        }
        let state = self.keys[idx].get_or_insert_with(|| KeyState {
            model: match self.def.kind {
                DetectorKind::ZScore(_) => Model::ZScore(ZScore::default()),
                DetectorKind::Ewma(_) => Model::Ewma(Ewma::default()),
                DetectorKind::Mad(_) => Model::Mad(Mad::default()),
            },
            tracker: AlertTracker::default(),
        });
        let scored = match (&mut state.model, &self.def.kind) {
            (Model::ZScore(m), DetectorKind::ZScore(p)) => m.observe(p, x),
            (Model::Ewma(m), DetectorKind::Ewma(p)) => m.observe(p, x),
            (Model::Mad(m), DetectorKind::Mad(p)) => m.observe(p, x),
            // Restore refuses a changed detector, so model and parameters always agree.
            _ => None,
        };
        let Some((score, expected)) = scored else {
            return;
        };
        let verdict = Verdict {
            ts,
            observed: x,
            expected,
            score,
        };
        let identity = (job, metric_id, self.def.name.as_str(), self.series.as_str());
        if let Some(alert) = state
            .tracker
            .observe(&self.def.lifecycle, verdict, identity, tags)
        {
            out.push(Output::Alert(alert));
        }
    }
}
