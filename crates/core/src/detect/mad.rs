//! The MAD detector: how far a point lies from the median of the last `n` points before it, in
//! robust standard deviations (1.4826 · the median absolute deviation, which estimates σ for
//! normal data). The outliers it finds barely move the median and the MAD, so a spike does not
//! hide the next one, and a few points are enough for a stable estimate, so it speaks earlier
//! than `zscore` after a metric appears.
//!
//! When more than half the history is one value (MAD 0: a counter that is mostly 0, a gauge that
//! rarely moves), σ is estimated from the mean absolute deviation around the median instead
//! (· 1.2533), as the modified z-score of Iglewicz and Hoaglin does; only a history that is
//! entirely one value scores a different point as infinite (use `min_std` against that).
//!
//! Never allocates per point: the history and its sorted copy are kept and updated in place.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// σ ≈ 1.4826 · MAD for normally distributed data.
const MAD_TO_SIGMA: f64 = 1.4826;
/// σ ≈ 1.2533 · mean absolute deviation for normally distributed data.
const MEAN_AD_TO_SIGMA: f64 = 1.2533;

/// Parameters of a MAD detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MadParams {
    pub n: usize,
    pub min_points: usize,
    /// Floor on the robust σ (0 = none).
    pub min_std: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Mad {
    /// The last `n` points, oldest first (which one leaves next).
    history: VecDeque<f64>,
    /// The same points, sorted: the median is read off it and the MAD found by walking out from
    /// the median, in O(n) cheap steps instead of two selections. Rebuilt from `history` after a
    /// restore (not checkpointed).
    #[serde(skip)]
    sorted: Vec<f64>,
}

impl Mad {
    /// Scores `x` against the history (not including `x`), then adds it. `None` until the history
    /// holds `min_points` points. Returns (score, expected value = the median).
    pub fn observe(&mut self, params: &MadParams, x: f64) -> Option<(f64, f64)> {
        if self.sorted.len() != self.history.len() {
            self.sorted = self.history.iter().copied().collect();
            self.sorted.sort_by(f64::total_cmp);
        }
        let ready = self.history.len() >= params.min_points.max(1);
        let verdict = ready.then(|| self.score(params, x));
        if self.history.len() >= params.n {
            if let Some(out) = self.history.pop_front() {
                if let Ok(at) = self.sorted.binary_search_by(|v| v.total_cmp(&out)) {
                    self.sorted.remove(at);
                }
            }
        }
        self.history.push_back(x);
        let at = self.sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        self.sorted.insert(at, x);
        verdict
    }

    fn score(&self, params: &MadParams, x: f64) -> (f64, f64) {
        let s = &self.sorted;
        let center = middle(s.len(), |i| s[i]);
        // Deviations from the center, ascending: `down` for the points below it (walking down
        // from the center), `up` for those at or above it; the MAD is the middle of both merged,
        // found by bisection (a merge walk mispredicts a branch at every step).
        let split = s.partition_point(|v| *v < center);
        let down = |i: usize| center - s[split - 1 - i];
        let up = |j: usize| s[split + j] - center;
        let kth = |k: usize| kth_of_two(split, down, s.len() - split, up, k);
        let half = s.len() / 2;
        let mad = if s.len() % 2 == 1 {
            kth(half)
        } else {
            (kth(half - 1) + kth(half)) / 2.0
        };
        let sigma = if mad > 0.0 {
            MAD_TO_SIGMA * mad
        } else {
            let total: f64 = s.iter().map(|v| (v - center).abs()).sum();
            MEAN_AD_TO_SIGMA * total / s.len() as f64
        }
        .max(params.min_std);
        (super::standard_score(x, center, sigma), center)
    }
}

/// The `k`-th smallest (from 0) of two ascending sequences of `a_len` and `b_len` values read by
/// `a` and `b`, with `k < a_len + b_len`: bisects how many of the smallest `k + 1` come from `a`.
fn kth_of_two(
    a_len: usize,
    a: impl Fn(usize) -> f64,
    b_len: usize,
    b: impl Fn(usize) -> f64,
    k: usize,
) -> f64 {
    // Take `i` from `a` and `k + 1 - i` from `b`: the right `i` has a[i - 1] <= b[j] and
    // b[j - 1] <= a[i], and then the k-th is the larger of the two last taken.
    let (mut lo, mut hi) = ((k + 1).saturating_sub(b_len), (k + 1).min(a_len));
    while lo < hi {
        let i = (lo + hi) / 2;
        let j = k + 1 - i;
        // Too few from `a` while its next is smaller than the last taken from `b`.
        if j > 0 && a(i) < b(j - 1) {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    let i = lo;
    let j = k + 1 - i;
    let from_a = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
    let from_b = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
    from_a.max(from_b)
}

/// The median of `len` sorted values read by `at`: the middle one, or the mean of the two
/// middle ones for an even count.
fn middle(len: usize, at: impl Fn(usize) -> f64) -> f64 {
    if len % 2 == 1 {
        at(len / 2)
    } else {
        (at(len / 2 - 1) + at(len / 2)) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: usize, min_points: usize) -> MadParams {
        MadParams {
            n,
            min_points,
            min_std: 0.0,
        }
    }

    /// Median and MAD the slow way, for comparison.
    fn brute(history: &[f64]) -> (f64, f64) {
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            middle(v.len(), |i| v[i])
        };
        let center = med(&mut history.to_vec());
        let mut deviations: Vec<f64> = history.iter().map(|v| (v - center).abs()).collect();
        (center, med(&mut deviations))
    }

    #[test]
    fn median_and_mad_match_a_brute_force_computation() {
        let mut state = 7u64;
        for n in [3, 4, 5, 60, 61] {
            let p = params(n, 3);
            let mut m = Mad::default();
            let mut window: VecDeque<f64> = VecDeque::new();
            for i in 0..500 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                // Few distinct values, so ties and MAD 0 occur too.
                let x = ((state >> 33) % 7) as f64 * if i % 50 == 0 { 100.0 } else { 1.0 };
                let got = m.observe(&p, x);
                if window.len() >= 3 {
                    let (center, mad) = brute(window.make_contiguous());
                    let (score, expected) = got.unwrap();
                    assert_eq!(expected, center, "n {n} point {i}");
                    if mad > 0.0 {
                        let want = (x - center).abs() / (MAD_TO_SIGMA * mad);
                        assert!(
                            (score - want).abs() <= 1e-9 * want.max(1.0),
                            "n {n} point {i}"
                        );
                    }
                }
                if window.len() >= n {
                    window.pop_front();
                }
                window.push_back(x);
            }
        }
    }

    #[test]
    fn a_restored_model_rebuilds_its_sorted_copy() {
        let p = params(10, 3);
        let mut m = Mad::default();
        for x in [5.0, 1.0, 9.0, 3.0] {
            m.observe(&p, x);
        }
        let bytes = postcard::to_allocvec(&m).unwrap();
        let mut restored: Mad = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(restored.observe(&p, 4.0), m.observe(&p, 4.0));
    }

    #[test]
    fn hand_worked_sequence() {
        // History [1, 2, 3, 4, 100]: median 3, deviations [2, 1, 0, 1, 97], MAD 1, σ 1.4826.
        let p = params(5, 5);
        let mut m = Mad::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            assert_eq!(m.observe(&p, x), None, "silent before min_points");
        }
        assert_eq!(m.observe(&p, 100.0), None);
        let (score, median) = m.observe(&p, 6.0).unwrap();
        assert_eq!(median, 3.0);
        assert!((score - 3.0 / 1.4826).abs() < 1e-12, "{score}");
    }

    #[test]
    fn an_earlier_outlier_does_not_mask_the_next_one() {
        let p = params(20, 5);
        let mut m = Mad::default();
        for i in 0..15 {
            m.observe(&p, 10.0 + f64::from(i % 3));
        }
        let first = m.observe(&p, 500.0).unwrap().0;
        let second = m.observe(&p, 500.0).unwrap().0;
        assert!(first > 100.0 && second > 100.0, "{first} {second}");
    }

    #[test]
    fn a_mostly_constant_history_falls_back_to_the_mean_deviation() {
        // Six zeros and two ones: MAD 0; mean absolute deviation around the median 0 is 0.25.
        let p = params(8, 8);
        let mut m = Mad::default();
        for x in [0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0] {
            m.observe(&p, x);
        }
        let (score, median) = m.observe(&p, 1.0).unwrap();
        assert_eq!(median, 0.0);
        assert!((score - 1.0 / (1.2533 * 0.25)).abs() < 1e-9, "{score}");
        // Entirely one value: a different point is infinitely far, unless σ has a floor.
        let mut flat = Mad::default();
        for _ in 0..8 {
            flat.observe(&p, 5.0);
        }
        assert_eq!(flat.observe(&p, 5.0).map(|v| v.0), Some(0.0));
        assert_eq!(flat.observe(&p, 6.0).map(|v| v.0), Some(f64::INFINITY));
        let floored = MadParams { min_std: 0.5, ..p };
        let mut m = Mad::default();
        for _ in 0..8 {
            m.observe(&floored, 5.0);
        }
        assert_eq!(m.observe(&floored, 6.0).map(|v| v.0), Some(2.0));
    }

    #[test]
    fn the_window_slides() {
        let p = params(3, 3);
        let mut m = Mad::default();
        for x in [100.0, 100.0, 100.0, 1.0, 2.0, 3.0] {
            m.observe(&p, x);
        }
        // History is now [1, 2, 3]: median 2.
        assert_eq!(m.observe(&p, 2.0).map(|v| v.1), Some(2.0));
    }
}
