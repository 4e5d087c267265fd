//! Detector definitions: the config a user writes ([`DetectorSpec`]) and its validated form.

use crate::config::ConfigError;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alert::Lifecycle;
use super::ewma::EwmaParams;
use super::mad::MadParams;
use super::zscore::ZScoreParams;
use crate::aggregate::AggregateKind;
use crate::window::WindowDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorType {
    Zscore,
    Ewma,
    /// Median and median absolute deviation of the last `n` points.
    Mad,
}

/// One detector as written in a job config. Every parameter has a default chosen by measurement
/// on the reference data (see `tests/anomaly_quality.rs`): quiet on normal data, catching every
/// injected spike.
///
/// ```yaml
/// - name: raw_zscore
///   type: zscore
///   series: raw            # or <window>.<aggregate>, e.g. tumble_10s.mean
///   warning: 10
///   critical: 30
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub detector_type: DetectorType,
    /// `raw` (each event's value) or `<window>.<aggregate>` (each first emission of a window).
    #[serde(default = "default_series")]
    pub series: String,
    /// zscore, mad: points of history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// zscore, mad: silent until the history holds this many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_points: Option<usize>,
    /// zscore, mad: floor on σ (mad: on its robust estimate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_std: Option<f64>,
    /// ewma: weight of the newest point, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// ewma: silent for this many points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<u64>,
    /// Score from which a point is anomalous (warning severity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<f64>,
    /// Score from which an alert is critical.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<f64>,
    /// Normal points in a row that resolve a firing alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_after: Option<u32>,
    /// Event time after a resolution during which an anomaly re-opens the same alert.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub cooldown: Option<Duration>,
    /// Score the points before the model is ready against a robust estimate and a raised
    /// threshold (see [`super::warmup`]); `false`: silent until then. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robust_warmup: Option<bool>,
}

fn default_series() -> String {
    "raw".into()
}

pub const DEFAULT_ZSCORE_N: usize = 120;
pub const DEFAULT_ZSCORE_MIN_POINTS: usize = 30;
pub const DEFAULT_MAD_N: usize = 60;
pub const DEFAULT_MAD_MIN_POINTS: usize = 10;
/// Each point sorts its history (O(n)): a longer one is `zscore`'s job.
pub const MAX_MAD_N: usize = 10_000;
pub const DEFAULT_EWMA_ALPHA: f64 = 0.1;
pub const DEFAULT_EWMA_WARMUP: u64 = 30;
pub const DEFAULT_WARNING: f64 = 10.0;
pub const DEFAULT_CRITICAL: f64 = 30.0;
pub const DEFAULT_RESOLVE_AFTER: u32 = 5;
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(30);
/// Upper bound of every count of points (`n`, `warmup`, `resolve_after`).
pub const MAX_POINTS: u64 = 100_000;

impl DetectorSpec {
    /// A detector of `detector_type` on raw values with every default.
    pub fn raw(name: &str, detector_type: DetectorType) -> Self {
        Self {
            name: name.into(),
            detector_type,
            series: default_series(),
            n: None,
            min_points: None,
            min_std: None,
            alpha: None,
            warmup: None,
            warning: None,
            critical: None,
            resolve_after: None,
            cooldown: None,
            robust_warmup: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum DetectorKind {
    ZScore(ZScoreParams),
    Ewma(EwmaParams),
    Mad(MadParams),
}

impl DetectorKind {
    /// How many points of a series the model needs before it scores the next one.
    pub fn ready_at(&self) -> usize {
        match self {
            Self::ZScore(p) => p.min_points.max(1),
            Self::Ewma(p) => usize::try_from(p.warmup).unwrap_or(usize::MAX).max(1),
            Self::Mad(p) => p.min_points.max(1),
        }
    }

    /// The floor on σ the model applies, which its warm-up applies too.
    pub fn min_std(&self) -> f64 {
        match self {
            Self::ZScore(p) => p.min_std,
            Self::Ewma(_) => 0.0,
            Self::Mad(p) => p.min_std,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Series {
    Raw,
    Window {
        window: String,
        aggregate: AggregateKind,
    },
}

impl Series {
    pub fn name(&self) -> String {
        match self {
            Self::Raw => "raw".into(),
            Self::Window { window, aggregate } => format!("{window}.{aggregate}"),
        }
    }
}

/// A validated detector. Checkpoints hold it, so that a restore can refuse a changed model; the
/// fields after `lifecycle` only choose which points are scored, never what a model holds, so
/// they are not checkpointed (a restore takes them from the job) and may change across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorDef {
    pub name: String,
    pub kind: DetectorKind,
    pub series: Series,
    pub lifecycle: Lifecycle,
    /// The detector rule it belongs to (`None`: the job's default detectors).
    #[serde(skip)]
    pub rule: Option<u16>,
    /// See [`DetectorSpec::robust_warmup`].
    #[serde(skip)]
    pub robust_warmup: bool,
}

impl DetectorDef {
    /// Whether state saved under `self` is valid under `other`: the same model, series and
    /// alert lifecycle.
    pub fn same_model(&self, other: &DetectorDef) -> bool {
        self.name == other.name
            && self.kind == other.kind
            && self.series == other.series
            && self.lifecycle == other.lifecycle
    }
}

type FieldError = ConfigError;

fn err(field: &str, reason: impl Into<String>) -> FieldError {
    ConfigError::new(field, reason)
}

fn forbid<T>(field: &str, value: &Option<T>, kind: &str) -> Result<(), FieldError> {
    match value {
        Some(_) => Err(err(field, format!("does not apply to a {kind} detector"))),
        None => Ok(()),
    }
}

impl DetectorSpec {
    /// `n`, `min_points` and `min_std` of a detector over a history of points (`kind`), checked:
    /// `least <= min_points <= n <= most`.
    fn history(
        &self,
        kind: &str,
        default_n: usize,
        default_min_points: usize,
        least: usize,
        most: usize,
    ) -> Result<(usize, usize, f64), FieldError> {
        forbid("alpha", &self.alpha, kind)?;
        forbid("warmup", &self.warmup, kind)?;
        let n = self.n.unwrap_or(default_n);
        let min_points = self.min_points.unwrap_or(default_min_points.min(n));
        let min_std = self.min_std.unwrap_or(0.0);
        if !(least..=most).contains(&n) {
            return Err(err(
                "n",
                format!("must be between {least} and {most} for a {kind} detector"),
            ));
        }
        if min_points < least || min_points > n {
            return Err(err(
                "min_points",
                format!("must be at least {least} and at most n"),
            ));
        }
        if !(min_std.is_finite() && min_std >= 0.0) {
            return Err(err("min_std", "must be a finite number >= 0"));
        }
        Ok((n, min_points, min_std))
    }

    /// Validates against the job's windows. On error the key is relative to this detector.
    pub fn validate(&self, windows: &[WindowDef]) -> Result<DetectorDef, FieldError> {
        crate::name::DETECTOR
            .check(&self.name)
            .map_err(|r| err("name", r))?;
        let series = if self.series == "raw" {
            Series::Raw
        } else {
            let (window, aggregate) = self.series.rsplit_once('.').ok_or_else(|| {
                err(
                    "series",
                    "must be 'raw' or '<window>.<aggregate>', e.g. tumble_10s.mean",
                )
            })?;
            let def = windows
                .iter()
                .find(|w| *w.name == *window)
                .ok_or_else(|| err("series", format!("no window named '{window}' in this job")))?;
            let aggregate = AggregateKind::ALL
                .into_iter()
                .find(|k| k.name() == aggregate)
                .ok_or_else(|| err("series", format!("'{aggregate}' is not an aggregate")))?;
            if !aggregate.is_basic() && !def.extra.contains(&aggregate) {
                return Err(err(
                    "series",
                    format!(
                        "window '{window}' does not compute {aggregate}; add it to its aggregates"
                    ),
                ));
            }
            Series::Window {
                window: window.to_string(),
                aggregate,
            }
        };
        let kind = match self.detector_type {
            DetectorType::Zscore => {
                let (n, min_points, min_std) = self.history(
                    "zscore",
                    DEFAULT_ZSCORE_N,
                    DEFAULT_ZSCORE_MIN_POINTS,
                    2,
                    100_000,
                )?;
                DetectorKind::ZScore(ZScoreParams {
                    n,
                    min_points,
                    min_std,
                })
            }
            DetectorType::Ewma => {
                forbid("n", &self.n, "ewma")?;
                forbid("min_points", &self.min_points, "ewma")?;
                forbid("min_std", &self.min_std, "ewma")?;
                let alpha = self.alpha.unwrap_or(DEFAULT_EWMA_ALPHA);
                if !(alpha > 0.0 && alpha <= 1.0) {
                    return Err(err("alpha", "must be in (0, 1]"));
                }
                let warmup = self.warmup.unwrap_or(DEFAULT_EWMA_WARMUP);
                if warmup > MAX_POINTS {
                    return Err(err("warmup", "must be at most 100000"));
                }
                DetectorKind::Ewma(EwmaParams { alpha, warmup })
            }
            DetectorType::Mad => {
                let (n, min_points, min_std) =
                    self.history("mad", DEFAULT_MAD_N, DEFAULT_MAD_MIN_POINTS, 3, MAX_MAD_N)?;
                DetectorKind::Mad(MadParams {
                    n,
                    min_points,
                    min_std,
                })
            }
        };
        let warning = self.warning.unwrap_or(DEFAULT_WARNING);
        let critical = self.critical.unwrap_or(DEFAULT_CRITICAL.max(warning));
        if !(warning.is_finite() && warning > 0.0) {
            return Err(err("warning", "must be a positive number"));
        }
        if !(critical.is_finite() && critical >= warning) {
            return Err(err("critical", "must be a number >= warning"));
        }
        let resolve_after = self.resolve_after.unwrap_or(DEFAULT_RESOLVE_AFTER);
        if resolve_after == 0 || u64::from(resolve_after) > MAX_POINTS {
            return Err(err("resolve_after", "must be between 1 and 100000"));
        }
        let cooldown = self.cooldown.unwrap_or(DEFAULT_COOLDOWN);
        if cooldown > crate::window::MAX_WINDOW {
            return Err(err("cooldown", "must be at most 366 days"));
        }
        Ok(DetectorDef {
            name: self.name.clone(),
            kind,
            series,
            lifecycle: Lifecycle {
                warning,
                critical,
                resolve_after,
                cooldown: cooldown.as_millis() as i64,
            },
            rule: None,
            robust_warmup: self.robust_warmup.unwrap_or(true),
        })
    }
}
