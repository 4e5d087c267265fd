//! Anomaly detection: detectors that score each point of a series, and the alert lifecycle.
//!
//! A series is the raw event values of each metric (in arrival order, skipping events behind the
//! watermark, whose context has passed) or one aggregate of one window (in firing order, first
//! emissions only). Each point is scored by a detector ([`zscore`], [`ewma`], [`mad`]; before
//! the detector's model is ready, by its [`warmup`]); the job's [`rules`] decide which detectors
//! score a metric. Scores at or above the warning or critical threshold are anomalous and
//! drive an [`alert::AlertTracker`]. All state is per (metric, detector) and part of the
//! pipeline's checkpointed state, so a restart neither forgets the baseline nor raises an alert
//! twice.

pub mod alert;
pub mod ewma;
pub mod mad;
mod operator;
pub mod rules;
mod spec;
pub mod warmup;
pub mod zscore;

pub use alert::{Alert, AlertState, Severity};
pub use operator::DetectorOperator;
pub use rules::{RuleSpec, Selector, SelectorSpec};
pub use spec::{DetectorDef, DetectorKind, DetectorSpec, DetectorType, Series};

/// How many `sigma` the point `x` lies from `center`: 0 at the center, infinite off it when
/// `sigma` is 0 (a history of one value).
pub(crate) fn standard_score(x: f64, center: f64, sigma: f64) -> f64 {
    let deviation = (x - center).abs();
    if sigma > 0.0 {
        deviation / sigma
    } else if deviation == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}
