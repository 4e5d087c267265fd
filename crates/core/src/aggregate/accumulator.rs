//! The mergeable partial aggregate of a set of values.
//!
//! An accumulator is updated once per event and merged when a sliding window combines its slices
//! or when sessions merge. Every field merges exactly except the percentile sketch, which keeps a
//! relative error of 1 % (DDSketch), and floating-point sums, whose last bits depend on the order
//! of addition.
//!
//! A window of a few values keeps them as they are and builds the sketch only when merged with a
//! sketch or past [`KEPT_VALUES`]: the sketch is the same as if every value had been added to it
//! (its bins count values, whatever the order), and its percentiles are read from the values
//! ([`super::kept_quantiles`]), so results do not change, but the short windows that most
//! metrics have no longer each carry a kilobyte of sketch that every event chases pointers into.
//! A checkpoint writes the values too (state format 4): building and writing the sketch of every
//! such window was two thirds of a snapshot, with the partition's events waiting.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};

use super::kept_quantiles::KeptQuantiles;
use super::{AggregateKind, ExtraValues};
use crate::time::Millis;

/// Relative accuracy of the percentile sketch.
pub const SKETCH_RELATIVE_ACCURACY: f64 = 0.01;

/// Values kept as they are before a sketch replaces them.
pub const KEPT_VALUES: usize = 64;

/// What the percentiles are computed from.
#[derive(Clone)]
enum Percentiles {
    /// Up to [`KEPT_VALUES`] values, in the order they were added.
    Values(Vec<f64>),
    Sketch(Box<DDSketch>),
}

impl Percentiles {
    fn add(&mut self, value: f64) {
        match self {
            // Grown as a vector grows: most windows hold ten values or so.
            Percentiles::Values(values) if values.len() < KEPT_VALUES => values.push(value),
            Percentiles::Values(values) => {
                let mut sketch = sketch_of(values);
                sketch.add(value);
                *self = Percentiles::Sketch(Box::new(sketch));
            }
            Percentiles::Sketch(sketch) => sketch.add(value),
        }
    }

    /// Folds `other` in, as a sketch's merge does: `other`'s values as a sketch of their own.
    fn merge(&mut self, other: &Percentiles) {
        if let (Percentiles::Values(mine), Percentiles::Values(theirs)) = (&mut *self, other) {
            if mine.len() + theirs.len() <= KEPT_VALUES {
                mine.extend_from_slice(theirs);
                return;
            }
        }
        let mut merged = match std::mem::replace(self, Percentiles::Values(Vec::new())) {
            Percentiles::Values(values) => Box::new(sketch_of(&values)),
            Percentiles::Sketch(sketch) => sketch,
        };
        // Both sketches share one config, the only way merge can fail.
        let _ = merged.merge(&other.sketch());
        *self = Percentiles::Sketch(merged);
    }

    fn sketch(&self) -> Cow<'_, DDSketch> {
        match self {
            Percentiles::Values(values) => Cow::Owned(sketch_of(values)),
            Percentiles::Sketch(sketch) => Cow::Borrowed(sketch),
        }
    }

    /// Calls `answer` with what answers percentiles (the percentile at q, for q in [0, 1]): the
    /// kept values' bins where they answer as the sketch would, else the sketch.
    ///
    /// The kept values' bins are built in this frame and lent: returned, wrapped and moved, their
    /// half KiB of keys was copied several times over, a sixth of a window result's cost.
    fn with_quantiles<R>(&self, answer: impl FnOnce(&mut dyn FnMut(f64) -> Option<f64>) -> R) -> R {
        match self {
            Percentiles::Values(values) => {
                let mut kept = KeptQuantiles::new(*SKETCH_CONFIG);
                if kept.fill(values, SKETCH_MAX_BINS) {
                    return answer(&mut |q| kept.quantile(q));
                }
                let sketch = sketch_of(values);
                answer(&mut |q| sketch.quantile(q).ok().flatten())
            }
            Percentiles::Sketch(sketch) => answer(&mut |q| sketch.quantile(q).ok().flatten()),
        }
    }
}

/// The sketch `values` make, added in their order.
fn sketch_of(values: &[f64]) -> DDSketch {
    let mut sketch = DDSketch::new(sketch_config());
    for &v in values {
        sketch.add(v);
    }
    sketch
}

/// How percentiles are written in a checkpoint. Postcard writes an enum's variant as its index
/// and an `Option` as a 0 or 1 tag, so `None` and `Sketch` are byte for byte the
/// `Option<DDSketch>` that state formats up to 3 wrote, which therefore still read.
#[derive(Serialize, Deserialize)]
enum Stored<S, V> {
    None,
    Sketch(S),
    Values(V),
}

mod stored {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<Percentiles>, s: S) -> Result<S::Ok, S::Error> {
        let stored: Stored<&DDSketch, &[f64]> = match p {
            None => Stored::None,
            Some(Percentiles::Sketch(sketch)) => Stored::Sketch(sketch),
            Some(Percentiles::Values(values)) => Stored::Values(values),
        };
        stored.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Percentiles>, D::Error> {
        Ok(match Stored::<Box<DDSketch>, Vec<f64>>::deserialize(d)? {
            Stored::None => None,
            Stored::Sketch(sketch) => Some(Percentiles::Sketch(sketch)),
            // Never more than a window keeps, whatever the file says.
            Stored::Values(values) if values.len() > KEPT_VALUES => {
                Some(Percentiles::Sketch(Box::new(sketch_of(&values))))
            }
            Stored::Values(values) => Some(Percentiles::Values(values)),
        })
    }
}

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
    #[serde(with = "stored")]
    sketch: Option<Percentiles>,
}

impl Accumulator {
    /// An empty accumulator; `with_sketch` enables percentiles (up to [`KEPT_VALUES`] values,
    /// then about 1 KiB of sketch).
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
            sketch: with_sketch.then(|| Percentiles::Values(Vec::new())),
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
            mine.merge(theirs);
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
                self.sketch.as_ref()?.with_quantiles(|quantile| quantile(q))
            }
        }
    }

    /// The values of `kinds`, in order; what answers percentiles is made at most once.
    pub fn values(&self, kinds: &[AggregateKind]) -> ExtraValues {
        let wants_quantiles = kinds.iter().any(|k| k.quantile().is_some());
        match &self.sketch {
            Some(percentiles) if self.count > 0 && wants_quantiles => {
                percentiles.with_quantiles(|quantile| {
                    kinds
                        .iter()
                        .map(|&kind| match kind.quantile() {
                            Some(q) => (kind, quantile(q)),
                            None => (kind, self.value(kind)),
                        })
                        .collect()
                })
            }
            _ => kinds.iter().map(|&kind| (kind, self.value(kind))).collect(),
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

/// Bins a sign of the percentile sketch keeps before it collapses the lowest.
pub(super) const SKETCH_MAX_BINS: u32 = 2048;

pub(super) fn sketch_config() -> SketchConfig {
    *SKETCH_CONFIG
}

/// Made once: making it takes two logarithms, and every window result with percentiles needs it.
static SKETCH_CONFIG: LazyLock<SketchConfig> =
    LazyLock::new(|| SketchConfig::new(SKETCH_RELATIVE_ACCURACY, SKETCH_MAX_BINS, 1.0e-9));

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

    /// An accumulator whose percentiles are a sketch from the first value on, as every one was
    /// before values were kept.
    fn sketched(values: &[(Millis, f64)]) -> Accumulator {
        let mut acc = Accumulator::new(true);
        acc.sketch = Some(Percentiles::Sketch(Box::new(
            DDSketch::new(sketch_config()),
        )));
        for &(ts, v) in values {
            acc.add(ts, v);
        }
        acc
    }

    fn value_strategy() -> impl Strategy<Value = Vec<(Millis, f64)>> {
        let value = prop_oneof![
            -1e3f64..1e3,
            Just(0.0),
            (1e-12f64..1e12).prop_map(|v| -v),
            1e-12f64..1e12,
        ];
        prop::collection::vec((0i64..1000, value), 0..3 * KEPT_VALUES)
    }

    proptest! {
        /// Kept values give the results of a sketch fed from the first value, alone and merged
        /// with others of any kind, also read back from a checkpoint; a merge with a sketch
        /// makes the same sketch, to the checkpoint bytes, where no two lists of kept values were
        /// merged. (Merged lists are one sketch where a sketch merge adds two: the sketch's own
        /// running sum, which no result reads, may then differ in its last bit.)
        #[test]
        fn kept_values_are_what_the_sketch_would_hold(
            a in value_strategy(),
            b in value_strategy(),
            c in value_strategy(),
        ) {
            let kinds = AggregateKind::ALL;
            let same_results = |kept: &Accumulator, reference: &Accumulator| {
                let values = kept.values(&kinds);
                values.len() == kinds.len() && kinds.into_iter().zip(values.iter()).all(|(kind, got)| {
                    let want = reference.value(kind);
                    got == (kind, want) && kept.value(kind) == want
                })
            };
            let bytes = |acc: &Accumulator| postcard::to_allocvec(acc).unwrap();
            let mut kept = filled(&a, true);
            let mut reference = sketched(&a);
            prop_assert!(same_results(&kept, &reference));
            // Read back, it keeps its values (or its sketch, past them): the same bytes again.
            let restored: Accumulator = postcard::from_bytes(&bytes(&kept)).unwrap();
            prop_assert_eq!(bytes(&restored), bytes(&kept));
            prop_assert!(same_results(&restored, &reference));
            // Merged with kept values, then with a sketch.
            kept.merge(&filled(&b, true));
            reference.merge(&sketched(&b));
            prop_assert!(same_results(&kept, &reference));
            kept.merge(&sketched(&c));
            reference.merge(&sketched(&c));
            prop_assert!(same_results(&kept, &reference));
            // A sketch merged with kept values, and kept values with a sketch.
            let mut sketch_first = sketched(&c);
            sketch_first.merge(&filled(&a, true));
            let mut reference = sketched(&c);
            reference.merge(&sketched(&a));
            // An empty accumulator merged with another becomes it, kept values and all.
            if !c.is_empty() {
                prop_assert_eq!(bytes(&sketch_first), bytes(&reference));
            }
            prop_assert!(same_results(&sketch_first, &reference));
            let mut kept_first = filled(&a, true);
            kept_first.merge(&sketched(&c));
            let mut reference = sketched(&a);
            reference.merge(&sketched(&c));
            // Merged with nothing, kept values stay values (and are written as such).
            if !c.is_empty() {
                prop_assert_eq!(bytes(&kept_first), bytes(&reference));
            }
            prop_assert!(same_results(&kept_first, &reference));
        }

        /// State formats up to 3 wrote percentiles as an `Option<DDSketch>`: the same bytes as
        /// a sketch (or none) now, and they read back as it.
        #[test]
        fn percentiles_of_format_3_read_back(a in value_strategy(), with_sketch: bool) {
            #[derive(Serialize)]
            struct Format3 {
                count: u64,
                sum: f64,
                min: f64,
                max: f64,
                welford_mean: f64,
                m2: f64,
                first: (Millis, f64),
                last: (Millis, f64),
                sketch: Option<DDSketch>,
            }
            let acc = if with_sketch { sketched(&a) } else { filled(&a, false) };
            let old = Format3 {
                count: acc.count,
                sum: acc.sum,
                min: acc.min,
                max: acc.max,
                welford_mean: acc.welford_mean,
                m2: acc.m2,
                first: acc.first,
                last: acc.last,
                sketch: with_sketch.then(|| sketch_of(&a.iter().map(|v| v.1).collect::<Vec<_>>())),
            };
            let old_bytes = postcard::to_allocvec(&old).unwrap();
            prop_assert_eq!(&old_bytes, &postcard::to_allocvec(&acc).unwrap());
            let read: Accumulator = postcard::from_bytes(&old_bytes).unwrap();
            for kind in AggregateKind::ALL {
                prop_assert_eq!(read.value(kind), acc.value(kind), "{}", kind);
            }
        }

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
