//! Robust warm-up: how a detector scores the points that come before its own model is ready
//! (`min_points` of `zscore` and `mad`, `warmup` of `ewma`), so that a spike in the first points
//! of a new metric is not missed.
//!
//! From the [`EARLY_FROM`]-th point on, each point is scored like `mad` scores it, against the
//! median and MAD of the points so far (the last [`EARLY_HISTORY`] of them), and that score is
//! divided by a factor that falls linearly from [`EARLY_FACTOR`] to 1 as the model approaches
//! readiness: a few points give a rough estimate, so only an extreme outlier counts, and the
//! bar lowers to the detector's own as evidence accumulates. The factor was chosen on the
//! reference data and two generated datasets (BENCHMARKS.md (c)): normal points scored at most
//! 31 in the first 30 points of their metric there, the injected spikes among them 640 and more.
//!
//! Pure computation: no I/O, no clock; the same points give the same scores bit for bit.

use serde::{Deserialize, Serialize};

use super::mad::{Mad, MadParams};

/// The first point scored during warm-up comes after this many.
pub const EARLY_FROM: usize = 5;
/// The warm-up divisor of the score right after [`EARLY_FROM`] points.
pub const EARLY_FACTOR: f64 = 8.0;
/// The most recent points the warm-up estimate is taken over.
pub const EARLY_HISTORY: usize = 64;

/// The points seen so far while the model warms up, and their count.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Early {
    points: Mad,
    seen: u64,
}

impl Early {
    /// Scores `x` against the points before it once there are [`EARLY_FROM`] of them, with the
    /// model ready after `ready_at` points; then adds it. Returns (score, median).
    pub fn observe(&mut self, ready_at: usize, min_std: f64, x: f64) -> Option<(f64, f64)> {
        let params = MadParams {
            n: EARLY_HISTORY,
            min_points: EARLY_FROM,
            min_std,
        };
        let factor = factor(self.seen, ready_at);
        self.seen = self.seen.saturating_add(1);
        let (score, median) = self.points.observe(&params, x)?;
        Some((score / factor, median))
    }
}

/// Whether a detector that is ready after `ready_at` points has a warm-up to score.
pub fn applies(ready_at: usize) -> bool {
    ready_at > EARLY_FROM
}

/// [`EARLY_FACTOR`] after [`EARLY_FROM`] points, falling linearly to 1 at `ready_at`.
fn factor(seen: u64, ready_at: usize) -> f64 {
    let span = ready_at.saturating_sub(EARLY_FROM).max(1) as f64;
    let left = (ready_at as f64 - seen as f64).clamp(0.0, span);
    1.0 + (EARLY_FACTOR - 1.0) * left / span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_falls_from_its_maximum_to_one() {
        assert_eq!(factor(5, 30), EARLY_FACTOR);
        assert_eq!(factor(30, 30), 1.0);
        assert!((factor(17, 29) - (1.0 + 7.0 * 12.0 / 24.0)).abs() < 1e-12);
        assert!(factor(6, 30) < factor(5, 30));
    }

    #[test]
    fn silent_for_the_first_points_then_only_extreme_outliers_score_high() {
        let mut early = Early::default();
        let noise = [100.0, 102.0, 98.0, 101.0, 99.0];
        for x in noise {
            assert_eq!(early.observe(30, 0.0, x), None);
        }
        // Median 100, MAD 1 → robust σ 1.4826; at 5 points the factor is 8.
        let (score, median) = early.observe(30, 0.0, 103.0).unwrap();
        assert_eq!(median, 100.0);
        assert!((score - 3.0 / 1.4826 / 8.0).abs() < 1e-12, "{score}");
        let (spike, _) = early.observe(30, 0.0, 1300.0).unwrap();
        assert!(spike > 50.0, "a 13x spike still stands out: {spike}");
    }

    #[test]
    fn only_the_last_points_are_kept() {
        let mut early = Early::default();
        for i in 0..1000 {
            early.observe(100_000, 0.0, f64::from(i));
        }
        let (_, median) = early.observe(100_000, 0.0, 0.0).unwrap();
        assert_eq!(median, 967.5, "the median of 936..=999");
    }
}
