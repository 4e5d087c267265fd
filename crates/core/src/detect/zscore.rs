//! The z-score detector: how many population standard deviations a point lies from the mean of
//! the last `n` points before it.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// Parameters of a z-score detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZScoreParams {
    pub n: usize,
    pub min_points: usize,
    /// Floor on σ (0 = none): keeps a near-constant series from scoring tiny wiggles as huge.
    pub min_std: f64,
}

/// The history of one series.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZScore {
    history: VecDeque<f64>,
}

impl ZScore {
    /// Scores `x` against the history (not including `x`), then adds it. `None` until the history
    /// holds `min_points` points. Returns (score, expected value).
    pub fn observe(&mut self, params: &ZScoreParams, x: f64) -> Option<(f64, f64)> {
        let verdict =
            (self.history.len() >= params.min_points.max(1)).then(|| self.score(params, x));
        if self.history.len() == params.n {
            self.history.pop_front();
        }
        self.history.push_back(x);
        verdict
    }

    fn score(&self, params: &ZScoreParams, x: f64) -> (f64, f64) {
        // Two passes over at most n points: exact, and cheap next to everything else per event.
        let len = self.history.len() as f64;
        let mean = self.history.iter().sum::<f64>() / len;
        let variance = self
            .history
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>()
            / len;
        let sigma = variance.sqrt().max(params.min_std);
        let deviation = (x - mean).abs();
        let score = if sigma > 0.0 {
            deviation / sigma
        } else if deviation == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        (score, mean)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: usize, min_points: usize, min_std: f64) -> ZScoreParams {
        ZScoreParams {
            n,
            min_points,
            min_std,
        }
    }

    #[test]
    fn hand_worked_sequence() {
        // History [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, population σ 2. Then x = 11 → z = 3.
        let p = params(8, 8, 0.0);
        let mut z = ZScore::default();
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0] {
            assert_eq!(z.observe(&p, x), None, "silent before min_points");
        }
        assert_eq!(z.observe(&p, 9.0), None);
        assert_eq!(z.observe(&p, 11.0), Some((3.0, 5.0)));
        // The window slides: history is now [4, 4, 4, 5, 5, 7, 9, 11], mean 6.125.
        let (score, mean) = z.observe(&p, 6.125).unwrap();
        assert_eq!((score, mean), (0.0, 6.125));
    }

    #[test]
    fn constant_series_scores_zero_or_infinity_unless_min_std() {
        let mut z = ZScore::default();
        let p = params(5, 3, 0.0);
        for _ in 0..3 {
            z.observe(&p, 7.0);
        }
        assert_eq!(z.observe(&p, 7.0), Some((0.0, 7.0)));
        assert_eq!(z.observe(&p, 7.5).map(|v| v.0), Some(f64::INFINITY));
        let mut floored = ZScore::default();
        let p = params(5, 3, 0.25);
        for _ in 0..3 {
            floored.observe(&p, 7.0);
        }
        assert_eq!(floored.observe(&p, 7.5).map(|v| v.0), Some(2.0));
    }

    #[test]
    fn single_spike_and_level_shift() {
        let p = params(4, 4, 0.0);
        let mut z = ZScore::default();
        for x in [10.0, 12.0, 10.0, 12.0] {
            z.observe(&p, x);
        }
        // mean 11, σ 1: a spike to 31 scores 20.
        assert_eq!(z.observe(&p, 31.0).map(|v| v.0), Some(20.0));
        // A level shift is anomalous at first and then becomes the baseline.
        let mut z = ZScore::default();
        for x in [10.0, 12.0, 10.0, 12.0, 20.0, 22.0, 20.0, 22.0] {
            z.observe(&p, x);
        }
        assert_eq!(z.observe(&p, 21.0).map(|v| v.0), Some(0.0));
    }
}
