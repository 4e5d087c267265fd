//! The state of one detector over every metric of a partition: a model and an alert tracker per
//! key. Points come in as (key, metric, event time, value); transitions go out as
//! [`Output::Alert`](crate::output::Output::Alert).
//!
//! A new key's model starts warming up ([`Model::Warming`]) when the detector scores its warm-up
//! robustly: the plain model is fed as usual and, until it is ready, the warm-up scores; from the
//! first point the model scores itself, the warm-up's points are dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::alert::{AlertTracker, Verdict};
use super::ewma::Ewma;
use super::mad::Mad;
use super::spec::{DetectorDef, DetectorKind};
use super::warmup::{self, Early};
use super::zscore::ZScore;
use crate::output::Output;
use crate::time::Millis;

/// Checkpointed: variants are only ever appended.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Model {
    ZScore(ZScore),
    Ewma(Ewma),
    Mad(Mad),
    /// A model that is not ready yet, beside the warm-up that scores for it meanwhile. The boxed
    /// model is never itself `Warming`.
    Warming(Early, Box<Model>),
}

impl Model {
    fn new(def: &DetectorDef) -> Self {
        let plain = match def.kind {
            DetectorKind::ZScore(_) => Model::ZScore(ZScore::default()),
            DetectorKind::Ewma(_) => Model::Ewma(Ewma::default()),
            DetectorKind::Mad(_) => Model::Mad(Mad::default()),
        };
        if def.robust_warmup && warmup::applies(def.kind.ready_at()) {
            Model::Warming(Early::default(), Box::new(plain))
        } else {
            plain
        }
    }

    /// Scores `x` and learns it; (score, expected value), or `None` while silent.
    fn observe(&mut self, def: &DetectorDef, x: f64) -> Option<(f64, f64)> {
        let kind = &def.kind;
        if let Model::Warming(early, model) = self {
            let early_verdict = early.observe(kind.ready_at(), kind.min_std(), x);
            let verdict = model.observe(def, x);
            if verdict.is_none() {
                // Off since the key started warming up (a restore with robust_warmup: false).
                return early_verdict.filter(|_| def.robust_warmup);
            }
            // Ready: the warm-up's points are of no further use.
            let ready = std::mem::replace(model.as_mut(), Model::Ewma(Ewma::default()));
            *self = ready;
            return verdict;
        }
        match (self, kind) {
            (Model::ZScore(m), DetectorKind::ZScore(p)) => m.observe(p, x),
            (Model::Ewma(m), DetectorKind::Ewma(p)) => m.observe(p, x),
            (Model::Mad(m), DetectorKind::Mad(p)) => m.observe(p, x),
            // Restore refuses a changed detector, so model and parameters always agree.
            _ => None,
        }
    }
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

    /// Takes the job's definition after a restore: the same model (checked by the caller with
    /// [`DetectorDef::same_model`]), with the job's current rule and warm-up choice.
    pub fn configure(&mut self, def: &DetectorDef) {
        self.def = def.clone();
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
        let def = &self.def;
        let state = self.keys[idx].get_or_insert_with(|| KeyState {
            model: Model::new(def),
            tracker: AlertTracker::default(),
        });
        let Some((score, expected)) = state.model.observe(def, x) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key of every detector holds one of these, side by side: 96 bytes, 288 with the
    /// alert inline. Ten thousand metrics with the default two detectors hold 1.8 MiB of them
    /// (5.5 MiB before); a million, 183 MiB (549 MiB).
    #[test]
    fn a_key_s_state_fits_in_two_cache_lines() {
        assert!(
            std::mem::size_of::<Option<KeyState>>() <= 128,
            "{} bytes",
            std::mem::size_of::<Option<KeyState>>()
        );
    }
}
