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

/// The history of one series, with its running mean and sum of squared deviations.
///
/// Sliding the window updates mean and M2 in O(1) (Welford's update for one point in, one out);
/// every `n` slides they are recomputed from the history in two exact passes, so rounding errors
/// cannot accumulate. The same input always gives the same bits, so replay is deterministic.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZScore {
    history: VecDeque<f64>,
    mean: f64,
    m2: f64,
    slides_since_exact: usize,
}

impl ZScore {
    /// Scores `x` against the history (not including `x`), then adds it. `None` until the history
    /// holds `min_points` points. Returns (score, expected value).
    pub fn observe(&mut self, params: &ZScoreParams, x: f64) -> Option<(f64, f64)> {
        let ready = self.history.len() >= params.min_points.max(1);
        let verdict = ready.then(|| self.score(params, x));
        self.push(params.n, x);
        verdict
    }

    fn push(&mut self, n: usize, x: f64) {
        if self.history.len() < n {
            self.history.push_back(x);
            let len = self.history.len() as f64;
            let delta = x - self.mean;
            self.mean += delta / len;
            self.m2 += delta * (x - self.mean);
            return;
        }
        let Some(out) = self.history.pop_front() else {
            return;
        };
        self.history.push_back(x);
        self.slides_since_exact += 1;
        if self.slides_since_exact >= n {
            self.recompute();
            return;
        }
        let old_mean = self.mean;
        self.mean += (x - out) / n as f64;
        self.m2 += (x - out) * (x - self.mean + out - old_mean);
    }

    fn recompute(&mut self) {
        let len = self.history.len() as f64;
        self.mean = self.history.iter().sum::<f64>() / len;
        let mean = self.mean;
        self.m2 = self
            .history
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f64>();
        self.slides_since_exact = 0;
    }

    fn score(&self, params: &ZScoreParams, x: f64) -> (f64, f64) {
        let len = self.history.len() as f64;
        let mean = self.mean;
        let sigma = (self.m2 / len).max(0.0).sqrt().max(params.min_std);
        (super::standard_score(x, mean, sigma), mean)
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
    fn running_moments_match_a_two_pass_computation() {
        let p = params(7, 3, 0.0);
        let mut z = ZScore::default();
        let mut state = 12345u64;
        for _ in 0..500 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let x = 1e6 + (state >> 40) as f64 / 1e3;
            z.observe(&p, x);
            let len = z.history.len() as f64;
            let exact_mean = z.history.iter().sum::<f64>() / len;
            let exact_m2: f64 = z
                .history
                .iter()
                .map(|v| (v - exact_mean) * (v - exact_mean))
                .sum();
            assert!(
                (z.mean - exact_mean).abs() <= 1e-9 * exact_mean.abs(),
                "{} vs {exact_mean}",
                z.mean
            );
            assert!(
                (z.m2 - exact_m2).abs() <= 1e-6 * exact_m2.max(1.0),
                "{} vs {exact_m2}",
                z.m2
            );
        }
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
