//! A job: which events to read and which windows to compute over them.
//!
//! [`JobSpec`] is the serde form written in YAML; [`JobSpec::validate`] checks it and yields a
//! [`Job`] in milliseconds, or a [`ConfigError`] naming the offending key.

use crate::config::ConfigError;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::AggregateKind;
use crate::detect::rules::MAX_RULES;
use crate::detect::{DetectorDef, DetectorSpec, DetectorType, RuleSpec, Selector};
use crate::event::EventFormat;
use crate::time::Millis;
use crate::window::{WindowDef, WindowSpec, WindowType, MAX_WINDOW};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSpec {
    /// Identifies the job's results and checkpoints.
    pub name: String,
    /// Where the fields of an event are found in the input JSON.
    pub event: EventFormat,
    /// Watermark = max event time seen − this.
    #[serde(with = "humantime_serde")]
    pub max_out_of_orderness: Duration,
    /// A partition with no events for this long (processing time) advances its watermark past
    /// every window holding data, so the last windows fire when traffic stops.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long after firing a window still accepts late events (each re-emits it).
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Early firing: every this much processing time, the current aggregates of windows that
    /// have not fired yet are pushed to live subscribers, flagged partial (never stored: the
    /// final result replaces them). `null`: off.
    #[serde(with = "humantime_serde")]
    pub early_firing: Option<Duration>,
    /// Keep every valid event in the store, queryable by metric and time (`GET /events`). Off by
    /// default: it costs one store write per event, on top of the window results.
    pub keep_raw_events: bool,
    pub windows: Vec<WindowSpec>,
    /// Anomaly detectors over raw values or window aggregates: those of every metric that no
    /// rule of `detector_rules` matches.
    pub detectors: Vec<DetectorSpec>,
    /// Per-metric detectors: the first rule whose `match` a metric satisfies gives its detectors
    /// instead of `detectors` (see [`crate::detect::rules`]).
    pub detector_rules: Vec<RuleSpec>,
    /// State TTL, in event time: a metric whose latest event is older than watermark − this has
    /// its per-metric state (detector history, window bookkeeping) dropped, and starts afresh if
    /// it reports again. At least the longest window plus `allowed_lateness`. `null`: off, every
    /// metric's state is kept forever.
    #[serde(with = "humantime_serde")]
    pub state_ttl: Option<Duration>,
    /// Events whose time is further than this ahead of the wall clock (at HTTP ingest) or of their
    /// Kafka record's timestamp are rejected (dead-lettered on Kafka) and never move a watermark.
    /// `null`: no guard (for producers that stamp events ahead on purpose).
    #[serde(with = "humantime_serde")]
    pub max_future: Option<Duration>,
}

/// Most detectors in a job, the defaults and every rule's together: each event is offered to
/// each of them.
pub const MAX_DETECTORS: usize = 256;
/// Longest `idle_timeout`.
pub const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest and longest `early_firing` interval.
pub const MIN_EARLY_FIRING: Duration = Duration::from_millis(10);
pub const MAX_EARLY_FIRING: Duration = Duration::from_secs(3600);
/// Default of `max_future`.
pub const DEFAULT_MAX_FUTURE: Duration = Duration::from_secs(3600);

impl Default for JobSpec {
    fn default() -> Self {
        let rich = vec![
            AggregateKind::Stddev,
            AggregateKind::First,
            AggregateKind::Last,
            AggregateKind::P50,
            AggregateKind::P90,
            AggregateKind::P95,
            AggregateKind::P99,
        ];
        let tumbling = |name: &str, secs| WindowSpec {
            name: name.into(),
            window_type: WindowType::Tumbling,
            size: Some(Duration::from_secs(secs)),
            slide: None,
            gap: None,
            offset: None,
            aggregates: rich.clone(),
        };
        Self {
            name: "default".into(),
            event: EventFormat::default(),
            max_out_of_orderness: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(10),
            allowed_lateness: Duration::ZERO,
            early_firing: None,
            keep_raw_events: false,
            windows: vec![tumbling("tumble_10s", 10), tumbling("tumble_1m", 60)],
            detectors: vec![
                DetectorSpec::raw("raw_zscore", DetectorType::Zscore),
                DetectorSpec::raw("raw_ewma", DetectorType::Ewma),
            ],
            detector_rules: Vec::new(),
            state_ttl: None,
            max_future: Some(DEFAULT_MAX_FUTURE),
        }
    }
}

/// A validated job, times in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: String,
    pub event: EventFormat,
    pub max_out_of_orderness: Millis,
    pub idle_timeout: Duration,
    pub allowed_lateness: Millis,
    pub early_firing: Option<Duration>,
    /// See [`JobSpec::keep_raw_events`].
    pub keep_raw_events: bool,
    pub windows: Vec<WindowDef>,
    /// Every detector: the defaults, then each rule's (each knows its rule, `DetectorDef::rule`).
    pub detectors: Vec<DetectorDef>,
    /// The selectors of the detector rules, in order.
    pub rules: Vec<Selector>,
    /// See [`JobSpec::state_ttl`]; validated to be at least
    /// `max_extent() + allowed_lateness`.
    pub state_ttl: Option<Millis>,
    /// See [`JobSpec::max_future`].
    pub max_future: Option<Millis>,
}

impl Job {
    /// How far past the latest event the idle flush moves the watermark: every window holding
    /// data ends at most this far after its latest event.
    pub fn max_extent(&self) -> Millis {
        self.windows
            .iter()
            .map(|w| w.kind.extent())
            .max()
            .unwrap_or(0)
    }
}

impl JobSpec {
    pub fn validate(&self) -> Result<Job, ConfigError> {
        crate::name::JOB
            .check(&self.name)
            .map_err(|reason| ConfigError::new("name", reason))?;
        self.event.validate().map_err(|e| e.within("event"))?;
        let ms = |key: &str, d: Duration| {
            if d > MAX_WINDOW {
                Err(ConfigError::new(key, "must be at most 366 days"))
            } else {
                Ok(d.as_millis() as Millis)
            }
        };
        let max_out_of_orderness = ms("max_out_of_orderness", self.max_out_of_orderness)?;
        let allowed_lateness = ms("allowed_lateness", self.allowed_lateness)?;
        if self.idle_timeout.is_zero() || self.idle_timeout > MAX_IDLE_TIMEOUT {
            return Err(ConfigError::new(
                "idle_timeout",
                "must be greater than zero and at most 7 days",
            ));
        }
        if self
            .early_firing
            .is_some_and(|d| !(MIN_EARLY_FIRING..=MAX_EARLY_FIRING).contains(&d))
        {
            return Err(ConfigError::new(
                "early_firing",
                "must be between 10ms and 1h (or null for off)",
            ));
        }
        let max_future = match self.max_future {
            None => None,
            Some(d) => Some(ms("max_future", d)?),
        };
        if self.windows.is_empty() {
            return Err(ConfigError::new(
                "windows",
                "a job needs at least one window",
            ));
        }
        let mut windows: Vec<WindowDef> = Vec::with_capacity(self.windows.len());
        for (i, spec) in self.windows.iter().enumerate() {
            let def = spec
                .validate()
                .map_err(|e| e.within(format_args!("windows[{i}]")))?;
            if windows.iter().any(|w| w.name == def.name) {
                return Err(ConfigError::new(
                    format!("windows[{i}].name"),
                    format!("'{}' is used twice", def.name),
                ));
            }
            windows.push(def);
        }
        if self.detector_rules.len() > MAX_RULES {
            return Err(ConfigError::new(
                "detector_rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let mut detectors: Vec<DetectorDef> = Vec::new();
        let mut rules = Vec::with_capacity(self.detector_rules.len());
        let sets = std::iter::once((None, "detectors".to_string(), &self.detectors)).chain(
            self.detector_rules.iter().enumerate().map(|(r, rule)| {
                // MAX_RULES fits in a u16.
                let index = u16::try_from(r).ok();
                (
                    index,
                    format!("detector_rules[{r}].detectors"),
                    &rule.detectors,
                )
            }),
        );
        for (rule, key, specs) in sets {
            for (i, spec) in specs.iter().enumerate() {
                let mut def = spec
                    .validate(&windows)
                    .map_err(|e| e.within(format_args!("{key}[{i}]")))?;
                if detectors.iter().any(|d| d.name == def.name) {
                    return Err(ConfigError::new(
                        format!("{key}[{i}].name"),
                        format!(
                            "'{}' is used twice (detector names are unique across all rules: alerts are identified by them)",
                            def.name
                        ),
                    ));
                }
                if detectors.len() >= MAX_DETECTORS {
                    return Err(ConfigError::new(
                        key,
                        format!("at most {MAX_DETECTORS} detectors in a job, all rules together"),
                    ));
                }
                def.rule = rule;
                detectors.push(def);
            }
        }
        for (r, rule) in self.detector_rules.iter().enumerate() {
            rules.push(
                rule.selector
                    .validate()
                    .map_err(|e| e.within(format_args!("detector_rules[{r}].match")))?,
            );
        }
        let state_ttl = match self.state_ttl {
            None => None,
            Some(ttl) => Some(validate_state_ttl(ttl, &windows, allowed_lateness)?),
        };
        Ok(Job {
            detectors,
            rules,
            state_ttl,
            max_future,
            name: self.name.clone(),
            event: self.event.clone(),
            max_out_of_orderness,
            idle_timeout: self.idle_timeout,
            allowed_lateness,
            early_firing: self.early_firing,
            keep_raw_events: self.keep_raw_events,
            windows,
        })
    }
}

/// A TTL shorter than a window plus lateness would drop the state of a key whose window is still
/// open (or may still be updated by a late event): its result would lose data. From a key's
/// latest event at `t`, its last window expires at `t + extent − 1 + lateness` at the latest, and
/// its state at `t + ttl + 1`, so `ttl ≥ extent + lateness` keeps every window whole.
fn validate_state_ttl(
    ttl: Duration,
    windows: &[WindowDef],
    allowed_lateness: Millis,
) -> Result<Millis, ConfigError> {
    if ttl > MAX_WINDOW {
        return Err(ConfigError::new("state_ttl", "must be at most 366 days"));
    }
    let ttl = ttl.as_millis() as Millis;
    let extent = windows.iter().map(|w| w.kind.extent()).max().unwrap_or(0);
    let min = extent + allowed_lateness;
    if ttl < min {
        let show = |ms: Millis| humantime::format_duration(Duration::from_millis(ms as u64));
        return Err(ConfigError::new(
            "state_ttl",
            format!(
                "must be at least {} (the longest window, {}, plus allowed_lateness, {}), so no \
                 metric's state is dropped while one of its windows can still change; or null",
                show(min),
                show(extent),
                show(allowed_lateness)
            ),
        ));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_job_is_valid_and_has_two_tumbling_windows() {
        let job = JobSpec::default().validate().unwrap();
        assert_eq!(job.windows.len(), 2);
        assert_eq!(job.max_extent(), 60_000);
        assert!(
            !job.keep_raw_events,
            "raw events cost a write per event: off by default"
        );
    }

    #[test]
    fn errors_name_the_window_key() {
        let mut spec = JobSpec::default();
        spec.windows[1].name = "tumble_10s".into();
        let err = spec.validate().unwrap_err();
        assert_eq!(err.key, "windows[1].name");
        spec.windows.clear();
        assert_eq!(spec.validate().unwrap_err().key, "windows");
    }

    #[test]
    fn state_ttl_is_off_by_default_and_at_least_a_window_plus_lateness() {
        assert_eq!(JobSpec::default().validate().unwrap().state_ttl, None);
        let mut spec = JobSpec {
            allowed_lateness: Duration::from_secs(5),
            state_ttl: Some(Duration::from_secs(64)),
            ..JobSpec::default()
        };
        let err = spec.validate().unwrap_err();
        assert_eq!(err.key, "state_ttl");
        assert!(err.reason.contains("at least 1m 5s"), "{}", err.reason);
        spec.state_ttl = Some(Duration::from_secs(65));
        assert_eq!(spec.validate().unwrap().state_ttl, Some(65_000));
        spec.state_ttl = Some(Duration::from_secs(400 * 86_400));
        assert_eq!(spec.validate().unwrap_err().key, "state_ttl");
    }

    #[test]
    fn every_duration_and_name_is_bounded() {
        let long = "x".repeat(crate::name::MAX_NAME_BYTES + 1);
        let cases: Vec<(&str, JobSpec)> = vec![
            (
                "name",
                JobSpec {
                    name: long.clone(),
                    ..JobSpec::default()
                },
            ),
            (
                "early_firing",
                JobSpec {
                    early_firing: Some(Duration::from_secs(300_000_000_000 * 31_557_600)),
                    ..JobSpec::default()
                },
            ),
            (
                "early_firing",
                JobSpec {
                    early_firing: Some(Duration::from_millis(9)),
                    ..JobSpec::default()
                },
            ),
            (
                "idle_timeout",
                JobSpec {
                    idle_timeout: Duration::from_secs(8 * 86_400),
                    ..JobSpec::default()
                },
            ),
            (
                "max_future",
                JobSpec {
                    max_future: Some(Duration::from_secs(400 * 86_400)),
                    ..JobSpec::default()
                },
            ),
            (
                "event.max_tags",
                JobSpec {
                    event: EventFormat {
                        max_tags: 0,
                        ..EventFormat::default()
                    },
                    ..JobSpec::default()
                },
            ),
        ];
        for (key, spec) in cases {
            assert_eq!(spec.validate().unwrap_err().key, key);
        }
        let mut spec = JobSpec::default();
        spec.windows[0].name = long;
        assert_eq!(spec.validate().unwrap_err().key, "windows[0].name");
        let job = JobSpec {
            max_future: None,
            ..JobSpec::default()
        }
        .validate()
        .unwrap();
        assert_eq!(job.max_future, None);
        assert_eq!(
            JobSpec::default().validate().unwrap().max_future,
            Some(3_600_000)
        );
    }

    #[test]
    fn state_ttl_reads_as_a_duration_or_null() {
        let spec: JobSpec = serde_json::from_str(r#"{"state_ttl": "1h"}"#).unwrap();
        assert_eq!(spec.state_ttl, Some(Duration::from_secs(3_600)));
        let spec: JobSpec = serde_json::from_str(r#"{"state_ttl": null}"#).unwrap();
        assert_eq!(spec.state_ttl, None);
        let spec: JobSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.state_ttl, None);
    }

    #[test]
    fn detector_rules_are_validated_with_their_full_keys_and_bounded() {
        let rules = |json: &str| -> Result<Job, ConfigError> {
            let spec: JobSpec = serde_json::from_str(json).unwrap();
            spec.validate()
        };
        let job = rules(
            r#"{"detectors": [{"name": "z", "type": "zscore"}],
                "detector_rules": [
                  {"match": {"metric": "cpu.*"}, "detectors": [{"name": "m", "type": "mad"}]},
                  {"match": {"tags": {"env": "dev"}}, "detectors": []}]}"#,
        )
        .unwrap();
        let scopes: Vec<_> = job
            .detectors
            .iter()
            .map(|d| (d.name.as_str(), d.rule))
            .collect();
        assert_eq!(scopes, vec![("z", None), ("m", Some(0))]);
        assert_eq!(job.rules.len(), 2);
        let err = rules(
            r#"{"detectors": [{"name": "z", "type": "zscore"}],
                "detector_rules": [{"match": {"metric": "a*"}, "detectors": [{"name": "z", "type": "mad"}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.key, "detector_rules[0].detectors[0].name");
        let err = rules(r#"{"detector_rules": [{"match": {}, "detectors": []}]}"#).unwrap_err();
        assert_eq!(err.key, "detector_rules[0].match.metric");
        let err = rules(
            r#"{"detector_rules": [{"match": {"metric": "a"}, "detectors": [{"name": "x", "type": "zscore", "n": 1}]}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.key, "detector_rules[0].detectors[0].n");
        assert!(
            serde_json::from_str::<JobSpec>(
                r#"{"detector_rules": [{"match": {"metric": "a", "host": "b"}}]}"#
            )
            .is_err(),
            "unknown keys of a match are refused"
        );
        let many = format!(
            r#"{{"detector_rules": [{}]}}"#,
            vec![r#"{"match": {"metric": "a"}}"#; MAX_RULES + 1].join(",")
        );
        assert_eq!(rules(&many).unwrap_err().key, "detector_rules");
        let detectors: Vec<String> = (0..=MAX_DETECTORS)
            .map(|i| format!(r#"{{"name": "d{i}", "type": "ewma"}}"#))
            .collect();
        let too_many = format!(r#"{{"detectors": [{}]}}"#, detectors.join(","));
        assert_eq!(rules(&too_many).unwrap_err().key, "detectors");
    }
}
