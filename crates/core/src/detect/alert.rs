//! Alerts: one episode of anomalous points per (metric, detector), and its lifecycle.
//!
//! ```text
//!            anomalous point               resolve_after normal points in a row
//!   quiet ───────────────────▶ firing ────────────────────────────────────▶ resolved
//!     ▲                          ▲  anomalous: track peak, escalate severity     │
//!     │                          └──────── anomalous within cooldown ────────────┤
//!     └──────────────────────── cooldown (event time) passed ────────────────────┘
//! ```
//!
//! An anomaly within `cooldown` of a resolution re-opens the same alert (same id) instead of
//! raising a new one, so a flapping series makes one alert, not a storm. The id is a hash of
//! (job, metric, detector, first event time): the same input always gives the same ids, which is
//! what lets a replay after a crash rewrite alerts instead of duplicating them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::time::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// An alert as emitted at one of its transitions (opened, escalated, re-opened, resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Deterministic: 16 hex digits of a hash of (job, metric, detector, first_ts).
    pub id: String,
    pub metric_id: String,
    pub detector: String,
    /// `raw` or `<window>.<aggregate>`.
    pub series: String,
    pub state: AlertState,
    pub severity: Severity,
    /// The value at the peak score, and what the detector expected there.
    pub observed: f64,
    pub expected: f64,
    /// The score of the latest anomalous point; `peak_score` is the highest of the episode.
    pub score: f64,
    pub peak_score: f64,
    /// The threshold of the severity reached.
    pub threshold: f64,
    /// Event time of the first and the latest anomalous point.
    pub first_ts: Millis,
    pub last_ts: Millis,
    /// When the alert resolved, in event time: the later of the resolving point's time and
    /// `last_ts` (points arrive out of order, so the point that completes the run of normal
    /// points may be older than the last anomalous one). Never before `first_ts` or `last_ts`.
    pub resolved_ts: Option<Millis>,
    /// Increases with every transition of this alert, so a consumer can order and deduplicate.
    pub sequence: u32,
    /// The tags of the metric (from the first event of the metric seen by its partition).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// FNV-1a 64: stable across versions and platforms (ids must survive upgrades).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The id of the `episode`-th alert (counting from 0) of (job, metric, detector), first anomalous
/// at `first_ts`. The episode number keeps two episodes apart even when out-of-order points give
/// them the same first time.
pub fn alert_id(
    job: &str,
    metric_id: &str,
    detector: &str,
    first_ts: Millis,
    episode: u64,
) -> String {
    format!(
        "{:016x}",
        fnv1a(&[
            job.as_bytes(),
            metric_id.as_bytes(),
            detector.as_bytes(),
            &first_ts.to_be_bytes(),
            &episode.to_be_bytes(),
        ])
    )
}

/// What the lifecycle needs of a detector's verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub ts: Millis,
    pub observed: f64,
    pub expected: f64,
    pub score: f64,
}

/// The lifecycle parameters, validated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub warning: f64,
    pub critical: f64,
    pub resolve_after: u32,
    pub cooldown: Millis,
}

impl Lifecycle {
    fn severity(&self, score: f64) -> Option<(Severity, f64)> {
        if score >= self.critical {
            Some((Severity::Critical, self.critical))
        } else if score >= self.warning {
            Some((Severity::Warning, self.warning))
        } else {
            None
        }
    }
}

/// The lifecycle state of one (metric, detector).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AlertTracker {
    /// Boxed: most metrics never alert, and an inline `Alert` (about 200 bytes) would spread
    /// every key's detector state over five cache lines instead of two. Serialized as the
    /// `Alert` itself (serde's `Box` is transparent), so checkpoints are unchanged.
    current: Option<Box<Alert>>,
    /// Normal points in a row while firing.
    normal_run: u32,
    /// Alerts opened so far.
    episodes: u64,
}

impl AlertTracker {
    /// Feeds one scored point; returns the transition it causes, if any.
    pub fn observe(
        &mut self,
        lifecycle: &Lifecycle,
        verdict: Verdict,
        identity: (&str, &str, &str, &str),
        tags: &BTreeMap<String, String>,
    ) -> Option<Alert> {
        let (job, metric_id, detector, series) = identity;
        let anomalous = lifecycle.severity(verdict.score);
        match (&mut self.current, anomalous) {
            (Some(alert), Some((severity, threshold))) if alert.state == AlertState::Firing => {
                self.normal_run = 0;
                alert.last_ts = alert.last_ts.max(verdict.ts);
                alert.score = verdict.score;
                let escalated = severity > alert.severity;
                if verdict.score > alert.peak_score {
                    alert.peak_score = verdict.score;
                    alert.observed = verdict.observed;
                    alert.expected = verdict.expected;
                }
                if escalated {
                    alert.severity = severity;
                    alert.threshold = threshold;
                    alert.sequence += 1;
                    return Some(Alert::clone(alert));
                }
                None
            }
            (Some(alert), None) if alert.state == AlertState::Firing => {
                self.normal_run += 1;
                if self.normal_run < lifecycle.resolve_after {
                    return None;
                }
                alert.state = AlertState::Resolved;
                alert.resolved_ts = Some(verdict.ts.max(alert.last_ts));
                alert.sequence += 1;
                Some(Alert::clone(alert))
            }
            (Some(alert), Some((severity, threshold)))
                if verdict.ts
                    < alert
                        .resolved_ts
                        .unwrap_or(Millis::MIN)
                        .saturating_add(lifecycle.cooldown) =>
            {
                // Within the cooldown: the same episode continues.
                self.normal_run = 0;
                alert.state = AlertState::Firing;
                alert.resolved_ts = None;
                alert.last_ts = alert.last_ts.max(verdict.ts);
                alert.score = verdict.score;
                if verdict.score > alert.peak_score {
                    alert.peak_score = verdict.score;
                    alert.observed = verdict.observed;
                    alert.expected = verdict.expected;
                }
                if severity > alert.severity {
                    alert.severity = severity;
                    alert.threshold = threshold;
                }
                alert.sequence += 1;
                Some(Alert::clone(alert))
            }
            (_, Some((severity, threshold))) => {
                self.normal_run = 0;
                let episode = self.episodes;
                self.episodes += 1;
                let alert = Alert {
                    id: alert_id(job, metric_id, detector, verdict.ts, episode),
                    metric_id: metric_id.to_string(),
                    detector: detector.to_string(),
                    series: series.to_string(),
                    state: AlertState::Firing,
                    severity,
                    observed: verdict.observed,
                    expected: verdict.expected,
                    score: verdict.score,
                    peak_score: verdict.score,
                    threshold,
                    first_ts: verdict.ts,
                    last_ts: verdict.ts,
                    resolved_ts: None,
                    sequence: 0,
                    tags: tags.clone(),
                };
                self.current = Some(Box::new(alert.clone()));
                Some(alert)
            }
            (_, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFE: Lifecycle = Lifecycle {
        warning: 3.0,
        critical: 6.0,
        resolve_after: 2,
        cooldown: 1_000,
    };
    const ID: (&str, &str, &str, &str) = ("job", "m", "z", "raw");

    fn feed(
        t: &mut AlertTracker,
        ts: Millis,
        score: f64,
    ) -> Option<(AlertState, Severity, u32, f64)> {
        let v = Verdict {
            ts,
            observed: score,
            expected: 0.0,
            score,
        };
        t.observe(&LIFE, v, ID, &BTreeMap::new())
            .map(|a| (a.state, a.severity, a.sequence, a.peak_score))
    }

    #[test]
    fn a_resolution_is_never_before_the_episode_it_ends() {
        let mut t = AlertTracker::default();
        let v = |ts, score| Verdict {
            ts,
            observed: score,
            expected: 0.0,
            score,
        };
        let tags = BTreeMap::new();
        let opened = t.observe(&LIFE, v(5_000, 4.0), ID, &tags).unwrap();
        assert_eq!((opened.first_ts, opened.last_ts), (5_000, 5_000));
        // The normal points that resolve it arrived out of order: older than the anomaly.
        assert!(t.observe(&LIFE, v(4_100, 0.5), ID, &tags).is_none());
        let resolved = t.observe(&LIFE, v(4_200, 0.5), ID, &tags).unwrap();
        assert_eq!(resolved.state, AlertState::Resolved);
        assert_eq!(
            resolved.resolved_ts,
            Some(5_000),
            "not 4,200: before first_ts"
        );
        // In order, the resolving point's own time.
        let mut t = AlertTracker::default();
        t.observe(&LIFE, v(5_000, 4.0), ID, &tags).unwrap();
        t.observe(&LIFE, v(6_000, 0.5), ID, &tags);
        let resolved = t.observe(&LIFE, v(7_000, 0.5), ID, &tags).unwrap();
        assert_eq!(resolved.resolved_ts, Some(7_000));
    }

    #[test]
    fn opens_escalates_tracks_peak_and_resolves_after_normal_points() {
        let mut t = AlertTracker::default();
        assert_eq!(feed(&mut t, 0, 1.0), None);
        assert_eq!(
            feed(&mut t, 10, 4.0),
            Some((AlertState::Firing, Severity::Warning, 0, 4.0))
        );
        assert_eq!(
            feed(&mut t, 20, 5.0),
            None,
            "still warning: no transition, peak tracked"
        );
        assert_eq!(
            feed(&mut t, 30, 7.0),
            Some((AlertState::Firing, Severity::Critical, 1, 7.0))
        );
        assert_eq!(feed(&mut t, 40, 1.0), None);
        assert_eq!(
            feed(&mut t, 50, 4.0),
            None,
            "an anomalous point resets the normal run"
        );
        assert_eq!(feed(&mut t, 60, 1.0), None);
        assert_eq!(
            feed(&mut t, 70, 1.0),
            Some((AlertState::Resolved, Severity::Critical, 2, 7.0))
        );
    }

    #[test]
    fn cooldown_reopens_the_same_alert_and_later_anomalies_open_a_new_one() {
        let mut t = AlertTracker::default();
        let first = t
            .observe(
                &LIFE,
                Verdict {
                    ts: 0,
                    observed: 9.0,
                    expected: 1.0,
                    score: 4.0,
                },
                ID,
                &BTreeMap::new(),
            )
            .unwrap();
        feed(&mut t, 10, 0.0);
        assert_eq!(
            feed(&mut t, 20, 0.0).map(|x| x.0),
            Some(AlertState::Resolved)
        );
        let again = t
            .observe(
                &LIFE,
                Verdict {
                    ts: 500,
                    observed: 9.0,
                    expected: 1.0,
                    score: 4.0,
                },
                ID,
                &BTreeMap::new(),
            )
            .unwrap();
        assert_eq!(
            (again.id.as_str(), again.state, again.sequence),
            (first.id.as_str(), AlertState::Firing, 2)
        );
        feed(&mut t, 510, 0.0);
        feed(&mut t, 520, 0.0);
        let new = t
            .observe(
                &LIFE,
                Verdict {
                    ts: 5_000,
                    observed: 9.0,
                    expected: 1.0,
                    score: 4.0,
                },
                ID,
                &BTreeMap::new(),
            )
            .unwrap();
        assert_ne!(new.id, first.id);
        assert_eq!((new.sequence, new.first_ts), (0, 5_000));
    }

    #[test]
    fn ids_are_deterministic() {
        assert_eq!(alert_id("j", "m", "d", 5, 0), alert_id("j", "m", "d", 5, 0));
        assert_ne!(alert_id("j", "m", "d", 5, 0), alert_id("j", "m", "d", 6, 0));
        assert_ne!(alert_id("j", "m", "d", 5, 0), alert_id("j", "m", "d", 5, 1));
        assert_ne!(alert_id("j", "md", "", 5, 0), alert_id("j", "m", "d", 5, 0));
        assert_eq!(alert_id("j", "m", "d", 5, 0).len(), 16);
    }
}
