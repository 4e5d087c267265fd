//! Per-metric detector rules: which detectors score which metrics.
//!
//! A job lists its default `detectors` and, in `detector_rules`, rules that each pair a
//! selector (a metric id glob and/or tags) with detectors of their own. Rules are tried in the
//! order written and the first one a metric matches decides its detectors; a metric that matches
//! none gets the defaults. So a metric is scored by one set, never by two, and a rule with an empty
//! list turns detection off for what it matches.
//!
//! A metric is matched once, when it becomes live in its partition, with the tags of that first
//! event (the same tags its alerts carry): the choice never changes while its state lives, so
//! restarts and replays make the same choice. Nothing here does I/O or keeps state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::DetectorSpec;
use crate::config::ConfigError;
use crate::event::{LIMIT_MAX_METRIC_ID_BYTES, LIMIT_MAX_TAGS, LIMIT_MAX_TAG_BYTES};
use crate::glob::glob_match;

/// Most rules a job may have: each metric tries them in order once, when it first appears.
pub const MAX_RULES: usize = 100;

/// One rule as written in a job config.
///
/// ```yaml
/// detector_rules:
///   - match: { metric: "cpu.*", tags: { env: prod } }
///     detectors:
///       - { name: cpu_mad, type: mad, warning: 6 }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(rename = "match")]
    pub selector: SelectorSpec,
    /// The detectors of the metrics this rule matches (empty: none).
    #[serde(default)]
    pub detectors: Vec<DetectorSpec>,
}

/// Which metrics a rule is for: every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    /// A metric id glob: `*` any run of characters, `?` one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Tags the metric's first event must carry, with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// A validated selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    metric: Option<String>,
    tags: Vec<(String, String)>,
}

impl SelectorSpec {
    /// On error the key is relative to the selector.
    pub fn validate(&self) -> Result<Selector, ConfigError> {
        if self.metric.is_none() && self.tags.is_empty() {
            return Err(ConfigError::new(
                "metric",
                "a rule needs a metric glob or tags (a rule for every metric is what the job's detectors are)",
            ));
        }
        if let Some(metric) = &self.metric {
            if metric.is_empty() || metric.len() > LIMIT_MAX_METRIC_ID_BYTES {
                return Err(ConfigError::new(
                    "metric",
                    format!("must be a glob of 1 to {LIMIT_MAX_METRIC_ID_BYTES} bytes"),
                ));
            }
        }
        if self.tags.len() > LIMIT_MAX_TAGS {
            return Err(ConfigError::new(
                "tags",
                format!("at most {LIMIT_MAX_TAGS} tags"),
            ));
        }
        if let Some(key) = self.tags.iter().find_map(|(k, v)| {
            (k.is_empty() || k.len() > LIMIT_MAX_TAG_BYTES || v.len() > LIMIT_MAX_TAG_BYTES)
                .then_some(k)
        }) {
            return Err(ConfigError::new(
                format!("tags.{key}"),
                format!("a tag key must be 1 to {LIMIT_MAX_TAG_BYTES} bytes, its value at most {LIMIT_MAX_TAG_BYTES}"),
            ));
        }
        Ok(Selector {
            metric: self.metric.clone(),
            tags: self
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

impl Selector {
    pub fn matches(&self, metric_id: &str, tags: &BTreeMap<String, String>) -> bool {
        self.metric
            .as_deref()
            .is_none_or(|glob| glob_match(glob, metric_id))
            && self
                .tags
                .iter()
                .all(|(k, v)| tags.get(k).is_some_and(|have| have == v))
    }
}

/// The rule a metric falls under: the index of the first selector it matches, `None` for the
/// job's default detectors.
pub fn rule_of(
    selectors: &[Selector],
    metric_id: &str,
    tags: &BTreeMap<String, String>,
) -> Option<u16> {
    selectors
        .iter()
        .position(|s| s.matches(metric_id, tags))
        .and_then(|i| u16::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(metric: Option<&str>, tags: &[(&str, &str)]) -> Selector {
        SelectorSpec {
            metric: metric.map(str::to_string),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
        .validate()
        .unwrap()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_condition_must_hold() {
        let s = selector(Some("cpu.*"), &[("env", "prod")]);
        assert!(s.matches("cpu.host1", &tags(&[("env", "prod"), ("dc", "eu")])));
        assert!(!s.matches("cpu.host1", &tags(&[("env", "dev")])));
        assert!(!s.matches("cpu.host1", &tags(&[])));
        assert!(!s.matches("mem.host1", &tags(&[("env", "prod")])));
        let by_tag = selector(None, &[("env", "prod")]);
        assert!(by_tag.matches("anything", &tags(&[("env", "prod")])));
    }

    #[test]
    fn the_first_matching_rule_wins_and_none_means_the_defaults() {
        let rules = [
            selector(Some("cpu.*"), &[("env", "prod")]),
            selector(Some("cpu.*"), &[]),
            selector(None, &[("env", "prod")]),
        ];
        let prod = tags(&[("env", "prod")]);
        assert_eq!(rule_of(&rules, "cpu.a", &prod), Some(0));
        assert_eq!(rule_of(&rules, "cpu.a", &tags(&[])), Some(1));
        assert_eq!(rule_of(&rules, "mem.a", &prod), Some(2));
        assert_eq!(rule_of(&rules, "mem.a", &tags(&[])), None);
    }

    #[test]
    fn a_selector_needs_a_condition_and_bounded_parts() {
        assert!(SelectorSpec::default().validate().is_err());
        let long = SelectorSpec {
            metric: Some("x".repeat(LIMIT_MAX_METRIC_ID_BYTES + 1)),
            ..Default::default()
        };
        assert_eq!(long.validate().unwrap_err().key, "metric");
        let empty_key = SelectorSpec {
            tags: tags(&[("", "v")]),
            ..Default::default()
        };
        assert!(empty_key.validate().is_err());
    }
}
