//! The mergeable partial aggregate of a set of values.
//!
//! An accumulator is updated once per event and merged when a sliding window combines its slices
//! or when sessions merge. Every field merges exactly except the percentile sketch, which keeps a
//! relative error of 1 % (DDSketch), and floating-point sums, whose last bits depend on the order
//! of addition.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use super::AggregateKind;
use crate::time::Millis;

/// Relative accuracy of the percentile sketch.
pub const SKETCH_RELATIVE_ACCURACY: f64 = 0.01;

#[derive(Clone, Serialize, Deserialize)]
pub struct Accumulator {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Running mean and sum of squared deviations (Welford), merged with Chan's formula.
    welford_mean: f64,
    m2: f64,
    first: (Millis, f64),
    last: (Millis, f64),
    sketch: Option<Box<DDSketch>>,
}

impl Accumulator {
    /// An empty accumulator; `with_sketch` enables percentiles (about 1 KiB per accumulator).
    pub fn new(with_sketch: bool) -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            welford_mean: 0.0,
            m2: 0.0,
            first: (Millis::MAX, 0.0),
            last: (Millis::MIN, 0.0),
            sketch: with_sketch.then(|| Box::new(DDSketch::new(sketch_config()))),
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn add(&mut self, ts: Millis, value: f64) {
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        let delta = value - self.welford_mean;
        self.welford_mean += delta / self.count as f64;
        self.m2 += delta * (value - self.welford_mean);
        if ts < self.first.0 {
            self.first = (ts, value);
        }
        if ts >= self.last.0 {
            self.last = (ts, value);
        }
        if let Some(sketch) = &mut self.sketch {
            sketch.add(value);
        }
    }

    /// Folds `other` into `self`; `other` is taken to have arrived after `self`.
    pub fn merge(&mut self, other: &Accumulator) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            let sketch = self.sketch.take();
            *self = other.clone();
            if sketch.is_none() {
                self.sketch = None;
            }
            return;
        }
        let (n1, n2) = (self.count as f64, other.count as f64);
        let n = n1 + n2;
        let delta = other.welford_mean - self.welford_mean;
        self.welford_mean += delta * n2 / n;
        self.m2 += other.m2 + delta * delta * n1 * n2 / n;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first.0 < self.first.0 {
            self.first = other.first;
        }
        if other.last.0 >= self.last.0 {
            self.last = other.last;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.sketch, &other.sketch) {
            // Both sketches share one config, the only way merge can fail.
            let _ = mine.merge(theirs);
        }
    }

    /// The value of one aggregate; `None` when it is undefined (an empty accumulator, or a
    /// percentile without a sketch).
    pub fn value(&self, kind: AggregateKind) -> Option<f64> {
        if self.count == 0 {
            return (kind == AggregateKind::Count).then_some(0.0);
        }
        match kind {
            AggregateKind::Count => Some(self.count as f64),
            AggregateKind::Sum => Some(self.sum),
            AggregateKind::Min => Some(self.min),
            AggregateKind::Max => Some(self.max),
            // sum / count, as SQL's AVG computes it, so results agree with Flink to the last bit.
            AggregateKind::Mean => Some(self.sum / self.count as f64),
            AggregateKind::Stddev => Some((self.m2.max(0.0) / self.count as f64).sqrt()),
            AggregateKind::First => Some(self.first.1),
            AggregateKind::Last => Some(self.last.1),
            AggregateKind::P50 | AggregateKind::P90 | AggregateKind::P95 | AggregateKind::P99 => {
                let q = kind.quantile()?;
                self.sketch.as_ref()?.quantile(q).ok().flatten()
            }
        }
    }
}

impl std::fmt::Debug for Accumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accumulator")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("sketch", &self.sketch.is_some())
            .finish()
    }
}

fn sketch_config() -> SketchConfig {
    SketchConfig::new(SKETCH_RELATIVE_ACCURACY, 2048, 1.0e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filled(values: &[(Millis, f64)], sketch: bool) -> Accumulator {
        let mut acc = Accumulator::new(sketch);
        for &(ts, v) in values {
            acc.add(ts, v);
        }
        acc
    }

    #[test]
    fn basic_aggregates_of_a_known_set() {
        let acc = filled(
            &[
                (3, 2.0),
                (1, 4.0),
                (2, 4.0),
                (5, 4.0),
                (4, 5.0),
                (6, 5.0),
                (7, 7.0),
                (8, 9.0),
            ],
            false,
        );
        assert_eq!(acc.value(AggregateKind::Count), Some(8.0));
        assert_eq!(acc.value(AggregateKind::Sum), Some(40.0));
        assert_eq!(acc.value(AggregateKind::Min), Some(2.0));
        assert_eq!(acc.value(AggregateKind::Max), Some(9.0));
        assert_eq!(acc.value(AggregateKind::Mean), Some(5.0));
        assert_eq!(acc.value(AggregateKind::Stddev), Some(2.0));
        assert_eq!(acc.value(AggregateKind::First), Some(4.0));
        assert_eq!(acc.value(AggregateKind::Last), Some(9.0));
        assert_eq!(
            acc.value(AggregateKind::P50),
            None,
            "no sketch, no percentile"
        );
    }

    #[test]
    fn empty_accumulator_has_only_a_zero_count() {
        let acc = Accumulator::new(true);
        assert_eq!(acc.value(AggregateKind::Count), Some(0.0));
        assert_eq!(acc.value(AggregateKind::Mean), None);
        assert_eq!(acc.value(AggregateKind::P99), None);
    }

    #[test]
    fn percentiles_are_within_one_percent_of_the_exact_rank() {
        let values: Vec<(Millis, f64)> = (1..=1000).map(|i| (i, i as f64)).collect();
        let acc = filled(&values, true);
        for (kind, exact) in [
            (AggregateKind::P50, 500.0),
            (AggregateKind::P90, 900.0),
            (AggregateKind::P99, 990.0),
        ] {
            let got = acc.value(kind).unwrap();
            assert!(
                (got - exact).abs() / exact <= 0.011,
                "{kind}: {got} vs {exact}"
            );
        }
    }

    proptest! {
        /// Merging the accumulators of any split equals accumulating the whole (up to float rounding).
        #[test]
        fn merge_of_parts_equals_whole(
            values in prop::collection::vec((0i64..1000, -1e6f64..1e6), 1..200),
            split in 0usize..200,
        ) {
            let split = split.min(values.len());
            let whole = filled(&values, true);
            let mut merged = filled(&values[..split], true);
            merged.merge(&filled(&values[split..], true));
            for kind in AggregateKind::ALL {
                let (a, b) = (whole.value(kind).unwrap(), merged.value(kind).unwrap());
                let tolerance = 1e-6 * (1.0 + a.abs().max(b.abs()));
                prop_assert!((a - b).abs() <= tolerance, "{}: {} vs {}", kind, a, b);
            }
        }
    }
}
