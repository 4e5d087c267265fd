//! The EWMA detector: distance of a point from an exponentially weighted mean, in exponentially
//! weighted standard deviations, both taken before the point updates them.
//!
//! μ₀ = x₀, v₀ = 0; for each later point: d = x − μ, score = |d| / √v, then μ ← μ + α·d and
//! v ← (1 − α)(v + α·d²). Silent for the first `warmup` points.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EwmaParams {
    pub alpha: f64,
    pub warmup: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ewma {
    points: u64,
    mean: f64,
    variance: f64,
}

impl Ewma {
    /// Scores `x`, then updates. Returns (score, expected value) after the warm-up.
    pub fn observe(&mut self, params: &EwmaParams, x: f64) -> Option<(f64, f64)> {
        self.points += 1;
        if self.points == 1 {
            self.mean = x;
            self.variance = 0.0;
            return None;
        }
        let d = x - self.mean;
        let score = super::standard_score(x, self.mean, self.variance.sqrt());
        let expected = self.mean;
        self.mean += params.alpha * d;
        self.variance = (1.0 - params.alpha) * (self.variance + params.alpha * d * d);
        (self.points > params.warmup).then_some((score, expected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_sequence() {
        // α = 0.5: x = 10, 12, 10, 40.
        // x1 = 12: d = 2, score ∞ (v = 0), μ = 11, v = 0.5·(0 + 0.5·4) = 1
        // x2 = 10: d = −1, score 1/1 = 1, μ = 10.5, v = 0.5·(1 + 0.5·1) = 0.75
        // x3 = 40: d = 29.5, score 29.5/√0.75
        let p = EwmaParams {
            alpha: 0.5,
            warmup: 0,
        };
        let mut e = Ewma::default();
        assert_eq!(e.observe(&p, 10.0), None);
        assert_eq!(e.observe(&p, 12.0), Some((f64::INFINITY, 10.0)));
        assert_eq!(e.observe(&p, 10.0), Some((1.0, 11.0)));
        let (score, expected) = e.observe(&p, 40.0).unwrap();
        assert_eq!(expected, 10.5);
        assert!((score - 29.5 / 0.75f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn warmup_is_silent_and_nan_free_on_a_constant_series() {
        let p = EwmaParams {
            alpha: 0.3,
            warmup: 3,
        };
        let mut e = Ewma::default();
        let scores: Vec<_> = (0..6).map(|_| e.observe(&p, 5.0)).collect();
        assert_eq!(
            scores,
            vec![
                None,
                None,
                None,
                Some((0.0, 5.0)),
                Some((0.0, 5.0)),
                Some((0.0, 5.0))
            ]
        );
    }
}
