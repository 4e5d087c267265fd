//! Exponential backoff with jitter between delivery attempts.
//!
//! After failed attempt `k` (1-based) the ceiling is `initial · 2^(k−1)`, capped at `max`; the wait
//! is half the ceiling plus a uniformly random share of the other half ("equal jitter"), so
//! retries of many alerts against one recovering receiver spread out instead of arriving in step,
//! and no wait is ever shorter than half its ceiling.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The longest wait after failed attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The wait after failed attempt `attempt`: in `[ceiling / 2, ceiling]`.
    pub fn delay(&self, attempt: u32, jitter: &mut Jitter) -> Duration {
        let half = self.ceiling(attempt) / 2;
        half + half.mul_f64(jitter.next_unit())
    }
}

/// A small non-cryptographic random source (SplitMix64): jitter needs spread, not secrecy, and
/// the engine needs no random-number crate for it.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from the clock and `salt` (e.g. a hash of the webhook URL).
    pub fn from_clock(salt: u64) -> Self {
        let nanos = streampulse_core::clock::since_epoch().as_nanos() as u64;
        Self(nanos ^ salt.rotate_left(17))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(30),
    };

    #[test]
    fn ceilings_double_from_initial_and_stop_at_max() {
        let ms = |a| B.ceiling(a).as_millis();
        assert_eq!(
            (1..=9).map(ms).collect::<Vec<_>>(),
            vec![200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000]
        );
        assert_eq!(B.ceiling(0), B.initial, "attempt 0 is treated as the first");
        assert_eq!(
            B.ceiling(1_000),
            B.max,
            "no overflow for huge attempt numbers"
        );
        let huge = Backoff {
            initial: Duration::from_secs(u64::MAX / 2),
            max: Duration::MAX,
        };
        assert_eq!(
            huge.ceiling(40),
            Duration::MAX,
            "saturates instead of panicking"
        );
    }

    #[test]
    fn delays_stay_within_half_ceiling_and_ceiling_and_are_spread() {
        let mut j = Jitter::new(7);
        for attempt in 1..=12 {
            let c = B.ceiling(attempt);
            let delays: Vec<Duration> = (0..200).map(|_| B.delay(attempt, &mut j)).collect();
            assert!(
                delays.iter().all(|d| *d >= c / 2 && *d <= c),
                "attempt {attempt}"
            );
            let min = delays.iter().min().unwrap();
            let max = delays.iter().max().unwrap();
            assert!(
                *max - *min > c / 4,
                "attempt {attempt}: jitter spreads the waits"
            );
        }
    }

    #[test]
    fn jitter_is_uniform_enough() {
        let mut j = Jitter::new(42);
        let xs: Vec<f64> = (0..10_000).map(|_| j.next_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        assert_ne!(Jitter::new(1).next_unit(), Jitter::new(2).next_unit());
    }
}
