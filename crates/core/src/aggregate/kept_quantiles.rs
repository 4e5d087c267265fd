//! The percentiles the sketch of a window's kept values would give, read from the values
//! themselves.
//!
//! A DDSketch answers a quantile with the bin (its `key`) of the value at a rank: with its bins
//! uncollapsed, the rank-th smallest key. So sorting the values' keys gives the same bin, and the
//! same answer to the bit, without building the sketch: its 128-bin stores allocated and then
//! walked once per percentile were most of what firing a window of a few values cost. The keys
//! and values come from the sketch's own `Config`, so only the choice of bin is done here; a
//! property test holds both ways to the same bits.
//!
//! It must never answer where the sketch would answer differently: when the keys of a store
//! span more bins than the sketch keeps (it would collapse the lowest), or a value is not finite,
//! [`KeptQuantiles::fill`] says no and the caller builds the sketch.

use std::cell::Cell;

use sketches_ddsketch::Config;
use smallvec::SmallVec;

use super::accumulator::KEPT_VALUES;

type Keys = SmallVec<[i32; KEPT_VALUES]>;

pub(super) struct KeptQuantiles {
    config: Config,
    /// Sorted keys of the values above the sketch's smallest magnitude.
    positive: Keys,
    /// Sorted keys of the magnitudes of the values below minus that.
    negative: Keys,
    /// Values of a magnitude up to it: the sketch's zero bin.
    zeros: usize,
    min: f64,
    max: f64,
    last: Cell<Option<(i32, f64)>>,
}

impl KeptQuantiles {
    /// Empty: [`Self::fill`] puts the values in, in place, since the keys are half a KiB.
    pub(super) fn new(config: Config) -> Self {
        Self {
            config,
            positive: Keys::new(),
            negative: Keys::new(),
            zeros: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last: Cell::new(None),
        }
    }

    /// Takes `values` (at most [`KEPT_VALUES`] of them, else the keys spill to the heap); false when
    /// they do not answer as the sketch would (a value that is not finite, or keys of one sign
    /// spanning `max_bins` or more, past which the sketch collapses its lowest bins).
    pub(super) fn fill(&mut self, values: &[f64], max_bins: u32) -> bool {
        let smallest = self.config.min_possible();
        for &v in values {
            if !v.is_finite() {
                return false;
            }
            if v > smallest {
                self.positive.push(self.config.key(v));
            } else if v < -smallest {
                self.negative.push(self.config.key(-v));
            } else {
                self.zeros += 1;
            }
            if v < self.min {
                self.min = v;
            }
            if self.max < v {
                self.max = v;
            }
        }
        self.positive.sort_unstable();
        self.negative.sort_unstable();
        let within = |keys: &Keys| match (keys.first(), keys.last()) {
            (Some(&lo), Some(&hi)) => i64::from(hi) - i64::from(lo) < i64::from(max_bins),
            _ => true,
        };
        within(&self.positive) && within(&self.negative)
    }

    /// The value of bin `key`; the last one is kept, since a window's few values often put
    /// several percentiles in one bin and the mapping takes an `exp`.
    fn value(&self, key: i32) -> f64 {
        match self.last.get() {
            Some((k, v)) if k == key => v,
            _ => {
                let v = self.config.value(key);
                self.last.set(Some((key, v)));
                v
            }
        }
    }

    pub(super) fn quantile(&self, q: f64) -> Option<f64> {
        let negatives = self.negative.len();
        let count = negatives + self.zeros + self.positive.len();
        if count == 0 {
            return None;
        }
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        // As the sketch rounds it: towards zero.
        let rank = (q * (count as f64 - 1.0)) as usize;
        if rank < negatives {
            // The negative store counts magnitudes: its largest key is the smallest value.
            let key = self.negative[negatives - rank - 1];
            Some(-self.value(key))
        } else if rank < negatives + self.zeros {
            Some(0.0)
        } else {
            let key = *self.positive.get(rank - negatives - self.zeros)?;
            Some(self.value(key))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use sketches_ddsketch::DDSketch;

    use super::*;

    fn filled(values: &[f64], config: Config, max_bins: u32) -> Option<KeptQuantiles> {
        let mut kept = KeptQuantiles::new(config);
        kept.fill(values, max_bins).then_some(kept)
    }
    use crate::aggregate::accumulator::{sketch_config, SKETCH_MAX_BINS};

    fn sketch_answer(values: &[f64], q: f64) -> Option<f64> {
        let mut sketch = DDSketch::new(sketch_config());
        for &v in values {
            sketch.add(v);
        }
        sketch.quantile(q).ok().flatten()
    }

    /// Values of every sign and size, with repeats, zeros and the sketch's smallest magnitude.
    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1.0e3..1.0e3f64,
            (0u32..40).prop_map(|i| f64::from(i) - 20.0),
            Just(0.0),
            Just(-0.0),
            Just(1.0e-9),
            Just(-1.0e-9),
            Just(1.1e-9),
            (-300i32..300).prop_map(|e| 10f64.powi(e)),
            (-300i32..300).prop_map(|e| -(10f64.powi(e))),
        ]
    }

    const QUANTILES: [f64; 8] = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0];

    proptest! {
        #[test]
        fn the_sketch_s_answer_to_the_bit(values in prop::collection::vec(value(), 0..=KEPT_VALUES)) {
            match filled(&values, sketch_config(), SKETCH_MAX_BINS) {
                Some(kept) => {
                    for q in QUANTILES {
                        let (got, want) = (kept.quantile(q), sketch_answer(&values, q));
                        prop_assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "q {}", q);
                    }
                }
                // Only where one sign's keys span more bins than the sketch keeps.
                None => {
                    let c = sketch_config();
                    let span = |positive: bool| {
                        let keys = values.iter()
                            .filter(|&&v| if positive { v > c.min_possible() } else { v < -c.min_possible() })
                            .map(|&v| i64::from(c.key(v.abs())));
                        keys.clone().max().zip(keys.min()).map_or(0, |(hi, lo)| hi - lo + 1)
                    };
                    let widest = span(true).max(span(false));
                    prop_assert!(widest > i64::from(SKETCH_MAX_BINS), "{:?}", values);
                }
            }
        }
    }

    #[test]
    fn keys_spanning_more_bins_than_the_sketch_keeps_are_left_to_it() {
        let c = sketch_config();
        let within = [1.0, 1.0e15];
        assert!(c.key(1.0e15) - c.key(1.0) < SKETCH_MAX_BINS as i32);
        assert!(filled(&within, c, SKETCH_MAX_BINS).is_some());
        let beyond = [1.0e-8, 1.0e300];
        assert!(filled(&beyond, c, SKETCH_MAX_BINS).is_none());
        assert!(filled(&[-1.0e-8, -1.0e300], c, SKETCH_MAX_BINS).is_none());
        // One sign each way is no span.
        assert!(filled(&[-1.0e-8, 1.0e300], c, SKETCH_MAX_BINS).is_some());
        assert!(filled(&[f64::NAN], c, SKETCH_MAX_BINS).is_none());
    }

    #[test]
    fn keys_spanning_exactly_the_sketch_s_bins_are_answered_here() {
        let c = sketch_config();
        let span = |bins: i32| {
            let top = c.value(c.key(1.0) + bins - 1);
            assert_eq!(c.key(top) - c.key(1.0) + 1, bins);
            vec![1.0, 1.0, 2.0, top]
        };
        let widest = span(SKETCH_MAX_BINS as i32);
        let kept = filled(&widest, c, SKETCH_MAX_BINS).expect("within the bins");
        for q in QUANTILES {
            assert_eq!(
                kept.quantile(q).map(f64::to_bits),
                sketch_answer(&widest, q).map(f64::to_bits)
            );
        }
        let beyond = span(SKETCH_MAX_BINS as i32 + 1);
        assert!(filled(&beyond, c, SKETCH_MAX_BINS).is_none());
        let negated: Vec<f64> = beyond.iter().map(|v| -v).collect();
        assert!(filled(&negated, c, SKETCH_MAX_BINS).is_none());
    }

    #[test]
    fn an_empty_window_has_no_percentile() {
        let kept = filled(&[], sketch_config(), SKETCH_MAX_BINS);
        assert_eq!(kept.map(|k| k.quantile(0.5)), Some(None));
    }
}
