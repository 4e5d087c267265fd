//! The pure half of `streampulse produce`: a seeded generator of synthetic metric events.
//!
//! It follows the value model of the offline reference generator (`gen_events.py`): each metric
//! has a steady baseline (a few negative), a slow sinusoid and gaussian noise; some metrics are
//! sparse (natural gaps of seconds, for session windows) or gappy (periodically silent for 6–20 s);
//! spike episodes multiply one metric's values by 5–20 for 1–5 s, so anomaly detection has
//! something to find. Event times trail the caller's clock by a bounded out-of-orderness, and a
//! small fraction of events are very late (30–120 s behind), so the late output is exercised too.
//!
//! There is no clock and no I/O here: the caller passes `now_ms`. The same seed and the same
//! sequence of `now_ms` give the same events, which is what makes the generator testable.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Very late events trail `now_ms` by this much at least…
pub const LATE_MIN_MS: i64 = 30_000;
/// …and by this much at most.
pub const LATE_MAX_MS: i64 = 120_000;

/// How many draws a pick may spend looking for a gappy metric outside its silent phase before it
/// settles for the last one drawn (the reference generator's bound, so the cost stays bounded
/// even when every metric is gappy and silent).
const MAX_PICK_TRIES: usize = 64;

/// Parameters of the event stream. Values are expected to be validated by the caller; the
/// generator only clamps what would otherwise make it misbehave.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Number of distinct metrics (`metric_00000`, `metric_00001`, …).
    pub metrics: usize,
    /// Number of distinct hosts the metrics are spread over (`host-000`, …).
    pub hosts: usize,
    pub seed: u64,
    /// Regular events have `ts` in `[now_ms - out_of_order_ms, now_ms]`.
    pub out_of_order_ms: i64,
    /// Fraction of events with `ts` in `[now_ms - LATE_MAX_MS, now_ms - LATE_MIN_MS]`.
    pub late_fraction: f64,
    /// Chance per second (of the caller's clock) that a new spike episode starts.
    pub spike_probability: f64,
    /// Fraction of metrics that are sparse (drawn 50 times less often than regular ones).
    pub sparse_fraction: f64,
    /// Fraction of metrics that are periodically silent.
    pub gappy_fraction: f64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            metrics: 100,
            hosts: 50,
            seed: 1,
            out_of_order_ms: 3_000,
            late_fraction: 0.005,
            spike_probability: 0.1,
            sparse_fraction: 0.1,
            gappy_fraction: 0.1,
        }
    }
}

/// One event, serialized in the platform's reference shape (fields in this order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyntheticEvent {
    pub metric_id: String,
    /// Event time, epoch milliseconds.
    pub ts: i64,
    pub value: f64,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tags {
    pub host: String,
}

/// A period during which one metric's values are multiplied by `factor`.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeEpisode {
    pub metric_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub factor: f64,
}

/// What the generator has produced so far (for the producer's summary).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GeneratorStats {
    pub events: u64,
    pub late: u64,
    pub spiked: u64,
    pub episodes: u64,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Regular,
    Sparse,
    /// Silent while `(t + phase_ms) mod cycle_ms < off_ms`.
    Gappy {
        cycle_ms: i64,
        off_ms: i64,
        phase_ms: i64,
    },
}

#[derive(Debug, Clone)]
struct Metric {
    name: String,
    host: String,
    kind: Kind,
    baseline: f64,
    amplitude: f64,
    period_ms: f64,
    /// Start phase of the sinusoid, so metrics do not all peak together.
    phase: f64,
    sigma: f64,
}

#[derive(Debug, Clone)]
struct Episode {
    metric: usize,
    start_ms: i64,
    end_ms: i64,
    factor: f64,
}

/// The seeded event stream. See the module documentation for the model.
pub struct SyntheticEvents {
    config: GeneratorConfig,
    rng: SmallRng,
    metrics: Vec<Metric>,
    /// Cumulative pick weights (sparse metrics weigh 0.02, others 1), for a weighted draw.
    cumulative: Vec<f64>,
    /// Episodes that can still apply (a late event may fall into an old one).
    episodes: Vec<Episode>,
    latest_episode: Option<Episode>,
    last_now_ms: Option<i64>,
    stats: GeneratorStats,
}

impl SyntheticEvents {
    pub fn new(mut config: GeneratorConfig) -> Self {
        config.metrics = config.metrics.max(1);
        config.hosts = config.hosts.max(1);
        config.out_of_order_ms = config.out_of_order_ms.max(0);
        config.late_fraction = clamp_probability(config.late_fraction);
        config.spike_probability = clamp_probability(config.spike_probability);

        let mut rng = SmallRng::seed_from_u64(config.seed);
        let mut metrics = Vec::with_capacity(config.metrics);
        let mut cumulative = Vec::with_capacity(config.metrics);
        let mut total = 0.0;
        for i in 0..config.metrics {
            let host = format!(
                "host-{:03}",
                (rng.random::<f64>() * config.hosts as f64) as usize
            );
            let u = rng.random::<f64>();
            let kind = if u < config.sparse_fraction {
                Kind::Sparse
            } else if u < config.sparse_fraction + config.gappy_fraction {
                let cycle_ms = 20_000 + (rng.random::<f64>() * 40_000.0) as i64;
                let off_ms = 6_000 + (rng.random::<f64>() * 14_000.0) as i64;
                let phase_ms = (rng.random::<f64>() * cycle_ms as f64) as i64;
                Kind::Gappy {
                    cycle_ms,
                    off_ms,
                    phase_ms,
                }
            } else {
                Kind::Regular
            };
            let mut baseline = 10.0 + rng.random::<f64>() * 990.0;
            if rng.random::<f64>() < 0.05 {
                baseline = -baseline;
            }
            let amplitude = baseline.abs() * 0.1 * rng.random::<f64>();
            let period_ms = 60_000.0 + rng.random::<f64>() * 540_000.0;
            let phase = rng.random::<f64>() * std::f64::consts::TAU;
            let sigma = baseline.abs() * 0.02 + 0.5;
            total += if matches!(kind, Kind::Sparse) {
                0.02
            } else {
                1.0
            };
            cumulative.push(total);
            metrics.push(Metric {
                name: format!("metric_{i:05}"),
                host,
                kind,
                baseline,
                amplitude,
                period_ms,
                phase,
                sigma,
            });
        }
        Self {
            config,
            rng,
            metrics,
            cumulative,
            episodes: Vec::new(),
            latest_episode: None,
            last_now_ms: None,
            stats: GeneratorStats::default(),
        }
    }

    /// The next `n` events as seen at `now_ms` (epoch ms, the caller's wall clock).
    pub fn next_batch(&mut self, now_ms: i64, n: usize) -> Vec<SyntheticEvent> {
        self.maybe_start_episode(now_ms);
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let m = self.pick_metric(now_ms);
            let late = self.rng.random::<f64>() < self.config.late_fraction;
            let ts = if late {
                self.stats.late += 1;
                now_ms - LATE_MIN_MS - self.draw_ms(LATE_MAX_MS - LATE_MIN_MS)
            } else {
                now_ms - self.draw_ms(self.config.out_of_order_ms)
            };
            let mut value = self.value_at(m, ts);
            if let Some(factor) = self.spike_factor(m, ts) {
                value *= factor;
                self.stats.spiked += 1;
            }
            let metric = &self.metrics[m];
            batch.push(SyntheticEvent {
                metric_id: metric.name.clone(),
                ts,
                // Three decimals, like the reference data: shorter lines, same information.
                value: (value * 1000.0).round() / 1000.0,
                tags: Tags {
                    host: metric.host.clone(),
                },
            });
        }
        self.stats.events += n as u64;
        batch
    }

    pub fn stats(&self) -> GeneratorStats {
        self.stats
    }

    /// The episode started last, if any: at most one starts per batch, so a caller that compares
    /// `stats().episodes` before and after a batch sees every one of them.
    pub fn latest_episode(&self) -> Option<SpikeEpisode> {
        let e = self.latest_episode.as_ref()?;
        Some(SpikeEpisode {
            metric_id: self.metrics[e.metric].name.clone(),
            start_ms: e.start_ms,
            end_ms: e.end_ms,
            factor: e.factor,
        })
    }

    /// Starts an episode with the chance the elapsed time deserves: `1 - (1 - p)^seconds`, so
    /// the rate of episodes per second does not depend on how often the caller asks for batches.
    fn maybe_start_episode(&mut self, now_ms: i64) {
        // A long pause (a stalled target) must not turn into a burst of episodes: count at most
        // a minute.
        let elapsed_ms = self
            .last_now_ms
            .map_or(0, |last| (now_ms - last).clamp(0, 60_000));
        self.last_now_ms = Some(now_ms);
        let chance = 1.0 - (1.0 - self.config.spike_probability).powf(elapsed_ms as f64 / 1000.0);
        if self.rng.random::<f64>() < chance {
            let metric = self.pick_metric(now_ms);
            let length_ms = 1_000 + (self.rng.random::<f64>() * 4_000.0) as i64;
            let factor = 5.0 + self.rng.random::<f64>() * 15.0;
            let episode = Episode {
                metric,
                start_ms: now_ms,
                end_ms: now_ms + length_ms,
                factor,
            };
            self.episodes.push(episode.clone());
            self.latest_episode = Some(episode);
            self.stats.episodes += 1;
        }
        // Events are never older than the late bound, so older episodes can no longer apply.
        let horizon = now_ms - LATE_MAX_MS - self.config.out_of_order_ms;
        self.episodes.retain(|e| e.end_ms >= horizon);
    }

    /// A weighted draw of a metric that is not in a silent phase at `now_ms`.
    fn pick_metric(&mut self, now_ms: i64) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let last = self.metrics.len() - 1;
        let mut m = 0;
        for _ in 0..MAX_PICK_TRIES {
            let x = self.rng.random::<f64>() * total;
            m = self.cumulative.partition_point(|&c| c < x).min(last);
            match self.metrics[m].kind {
                Kind::Gappy {
                    cycle_ms,
                    off_ms,
                    phase_ms,
                } if (now_ms + phase_ms).rem_euclid(cycle_ms) < off_ms => {}
                _ => break,
            }
        }
        m
    }

    /// A whole number of milliseconds uniformly in `[0, max_ms]`.
    fn draw_ms(&mut self, max_ms: i64) -> i64 {
        ((self.rng.random::<f64>() * (max_ms as f64 + 1.0)) as i64).min(max_ms)
    }

    fn value_at(&mut self, m: usize, ts: i64) -> f64 {
        let metric = &self.metrics[m];
        let seasonal = metric.amplitude
            * (std::f64::consts::TAU * ts as f64 / metric.period_ms + metric.phase).sin();
        // Box–Muller; `1 - u1` is in (0, 1], so the logarithm is finite.
        let u1 = self.rng.random::<f64>();
        let u2 = self.rng.random::<f64>();
        let noise = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        metric.baseline + seasonal + metric.sigma * noise
    }

    fn spike_factor(&self, m: usize, ts: i64) -> Option<f64> {
        self.episodes
            .iter()
            .find(|e| e.metric == m && e.start_ms <= ts && ts < e.end_ms)
            .map(|e| e.factor)
    }
}

fn clamp_probability(p: f64) -> f64 {
    if p.is_nan() {
        0.0
    } else {
        p.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn config(seed: u64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            ..GeneratorConfig::default()
        }
    }

    /// `batches` batches of `per_batch` events, 100 ms apart, each event with the `now` it saw.
    fn run(
        generator: &mut SyntheticEvents,
        batches: i64,
        per_batch: usize,
    ) -> Vec<(i64, SyntheticEvent)> {
        let mut out = Vec::new();
        for i in 0..batches {
            let now = NOW + i * 100;
            out.extend(
                generator
                    .next_batch(now, per_batch)
                    .into_iter()
                    .map(|e| (now, e)),
            );
        }
        out
    }

    #[test]
    fn same_seed_same_events_other_seed_other_events() {
        let a = run(&mut SyntheticEvents::new(config(7)), 100, 50);
        let b = run(&mut SyntheticEvents::new(config(7)), 100, 50);
        let c = run(&mut SyntheticEvents::new(config(8)), 100, 50);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn timestamps_stay_within_the_stated_bounds_of_now() {
        let mut generator = SyntheticEvents::new(GeneratorConfig {
            late_fraction: 0.05,
            ..config(3)
        });
        for (now, e) in run(&mut generator, 200, 100) {
            let regular = (now - 3_000..=now).contains(&e.ts);
            let late = (now - LATE_MAX_MS..=now - LATE_MIN_MS).contains(&e.ts);
            assert!(
                regular || late,
                "ts {} is outside the bounds of now {now}",
                e.ts
            );
        }
    }

    #[test]
    fn the_late_fraction_is_roughly_respected() {
        for (fraction, tolerance) in [(0.005, 0.0015), (0.05, 0.005), (0.0, 0.0)] {
            let mut generator = SyntheticEvents::new(GeneratorConfig {
                late_fraction: fraction,
                ..config(11)
            });
            let events = run(&mut generator, 200, 500);
            let late = events
                .iter()
                .filter(|(now, e)| e.ts < now - LATE_MIN_MS + 1)
                .count();
            let observed = late as f64 / events.len() as f64;
            assert!(
                (observed - fraction).abs() <= tolerance,
                "late fraction {observed}, wanted {fraction}"
            );
            assert_eq!(generator.stats().late, late as u64);
        }
    }

    #[test]
    fn values_are_finite_and_follow_the_metric_baselines() {
        let mut generator = SyntheticEvents::new(GeneratorConfig {
            spike_probability: 0.0,
            ..config(5)
        });
        let events = run(&mut generator, 100, 200);
        assert!(events.iter().all(|(_, e)| e.value.is_finite()));
        // Without spikes a value stays within baseline ± (10 % amplitude + generous noise).
        for (_, e) in &events {
            let m = &generator.metrics[e.metric_id["metric_".len()..].parse::<usize>().unwrap()];
            let bound = m.amplitude + 10.0 * m.sigma + 0.001;
            assert!(
                (e.value - m.baseline).abs() <= bound,
                "{e:?} is far from baseline {}",
                m.baseline
            );
        }
    }

    #[test]
    fn metric_ids_and_hosts_are_well_formed() {
        let mut generator = SyntheticEvents::new(GeneratorConfig {
            metrics: 10,
            hosts: 3,
            ..config(2)
        });
        for (_, e) in run(&mut generator, 20, 100) {
            let index: usize = e
                .metric_id
                .strip_prefix("metric_")
                .unwrap()
                .parse()
                .unwrap();
            assert!(index < 10);
            let host: usize = e.tags.host.strip_prefix("host-").unwrap().parse().unwrap();
            assert!(host < 3);
        }
    }

    #[test]
    fn spike_episodes_multiply_values_and_are_reported() {
        // Certain episodes every second, few metrics so each episode's metric gets events.
        let mut generator = SyntheticEvents::new(GeneratorConfig {
            metrics: 3,
            spike_probability: 1.0,
            late_fraction: 0.0,
            ..config(9)
        });
        let events = run(&mut generator, 50, 100);
        let stats = generator.stats();
        assert!(stats.episodes >= 40, "{stats:?}");
        assert!(stats.spiked > 0, "{stats:?}");
        let latest = generator.latest_episode().expect("an episode");
        assert!((5.0..=20.0).contains(&latest.factor), "{latest:?}");
        assert!(
            (1_000..=5_000).contains(&(latest.end_ms - latest.start_ms)),
            "{latest:?}"
        );
        assert_eq!(latest.start_ms, NOW + 49 * 100);
        assert!(events.iter().all(|(_, e)| e.value.is_finite()));
    }

    #[test]
    fn no_spikes_when_the_probability_is_zero() {
        let mut generator = SyntheticEvents::new(GeneratorConfig {
            spike_probability: 0.0,
            ..config(4)
        });
        run(&mut generator, 100, 100);
        assert_eq!(generator.stats().episodes, 0);
        assert_eq!(generator.stats().spiked, 0);
        assert_eq!(generator.stats().events, 10_000);
    }

    #[test]
    fn serializes_in_the_reference_shape() {
        let event = SyntheticEvent {
            metric_id: "metric_00042".into(),
            ts: 1_700_000_012_345,
            value: 123.456,
            tags: Tags {
                host: "host-007".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"metric_id":"metric_00042","ts":1700000012345,"value":123.456,"tags":{"host":"host-007"}}"#
        );
    }
}
