//! What a WebSocket client wants pushed: metric globs, window names, results and/or alerts, and a
//! minimum alert severity. Given in the URL (`/ws?metrics=cpu.*,mem.*&alerts=true`) or, to change
//! it later, as a message: `{"type": "subscribe", "metrics": ["cpu.*"], "alerts": false}`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use streampulse_core::detect::Severity;
use streampulse_core::glob::glob_match;
use streampulse_engine::feed::Emission;

use crate::Problem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Metric id globs (`*` any run of characters, `?` one); empty: every metric.
    #[serde(default)]
    pub metrics: Vec<String>,
    /// Window names; empty: every window.
    #[serde(default)]
    pub windows: Vec<String>,
    /// Push window results.
    #[serde(default = "yes")]
    pub results: bool,
    /// Push alert transitions.
    #[serde(default = "yes")]
    pub alerts: bool,
    /// Push only alerts of at least this severity.
    #[serde(default)]
    pub severity: Option<Severity>,
}

fn yes() -> bool {
    true
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            metrics: Vec::new(),
            windows: Vec::new(),
            results: true,
            alerts: true,
            severity: None,
        }
    }
}

/// Most metric globs and window names in one subscription, and their longest: what one client
/// may cost per pushed message (each result is matched against every glob).
pub const MAX_PATTERNS: usize = 64;
pub const MAX_PATTERN_BYTES: usize = 256;

const PARAMS: [&str; 5] = ["metrics", "windows", "results", "alerts", "severity"];

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn flag(name: &str, v: &str) -> Result<bool, Problem> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Problem::bad_request(format!(
            "parameter '{name}' must be true or false, got '{v}'"
        ))),
    }
}

impl Subscription {
    pub fn from_query(query: &HashMap<String, String>) -> Result<Self, Problem> {
        if let Some(unknown) = query.keys().find(|k| !PARAMS.contains(&k.as_str())) {
            return Err(Problem::bad_request(format!(
                "unknown query parameter '{unknown}'; allowed: {}",
                PARAMS.join(", ")
            )));
        }
        let mut sub = Subscription::default();
        if let Some(v) = query.get("metrics") {
            sub.metrics = list(v);
        }
        if let Some(v) = query.get("windows") {
            sub.windows = list(v);
        }
        if let Some(v) = query.get("results") {
            sub.results = flag("results", v)?;
        }
        if let Some(v) = query.get("alerts") {
            sub.alerts = flag("alerts", v)?;
        }
        sub.severity = match query.get("severity").map(String::as_str) {
            None | Some("") => None,
            Some("warning") => Some(Severity::Warning),
            Some("critical") => Some(Severity::Critical),
            Some(other) => {
                return Err(Problem::bad_request(format!(
                    "parameter 'severity' must be one of: warning, critical; got '{other}'"
                )))
            }
        };
        sub.check().map_err(Problem::bad_request)?;
        Ok(sub)
    }

    /// The subscription's size limits ([`MAX_PATTERNS`], [`MAX_PATTERN_BYTES`]); `Err` says which.
    pub fn check(&self) -> Result<(), String> {
        for (name, list) in [("metrics", &self.metrics), ("windows", &self.windows)] {
            if list.len() > MAX_PATTERNS {
                return Err(format!(
                    "'{name}' lists {} entries; at most {MAX_PATTERNS} are allowed",
                    list.len()
                ));
            }
            if list.iter().any(|p| p.len() > MAX_PATTERN_BYTES) {
                return Err(format!(
                    "an entry of '{name}' is longer than {MAX_PATTERN_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }

    fn metric_matches(&self, metric_id: &str) -> bool {
        self.metrics.is_empty() || self.metrics.iter().any(|g| glob_match(g, metric_id))
    }

    pub fn matches(&self, emission: &Emission) -> bool {
        match emission {
            Emission::Result(r) | Emission::Partial(r) => {
                self.results
                    && self.metric_matches(&r.metric_id)
                    && (self.windows.is_empty() || self.windows.iter().any(|w| **w == *r.window))
            }
            Emission::Alert(a) => {
                self.alerts
                    && self.metric_matches(&a.metric_id)
                    && self.severity.is_none_or(|min| a.severity >= min)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_bounded() {
        let q = |k: &str, v: String| HashMap::from([(k.to_string(), v)]);
        let many = (0..=MAX_PATTERNS)
            .map(|i| format!("m{i}.*"))
            .collect::<Vec<_>>()
            .join(",");
        let e = Subscription::from_query(&q("metrics", many)).unwrap_err();
        assert!(e.detail.contains("at most 64"), "{}", e.detail);
        let long = "x".repeat(MAX_PATTERN_BYTES + 1);
        assert!(Subscription::from_query(&q("windows", long)).is_err());
        let ok = (0..MAX_PATTERNS)
            .map(|i| format!("m{i}.*"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            Subscription::from_query(&q("metrics", ok))
                .unwrap()
                .metrics
                .len(),
            64
        );
    }

    #[test]
    fn query_parsing_rejects_what_it_does_not_know() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let sub = Subscription::from_query(&q(&[("metrics", "cpu.*, mem.*"), ("alerts", "false")]))
            .unwrap();
        assert_eq!(sub.metrics, vec!["cpu.*", "mem.*"]);
        assert!(!sub.alerts && sub.results);
        assert!(Subscription::from_query(&q(&[("metric", "x")]))
            .unwrap_err()
            .detail
            .contains("unknown query parameter 'metric'"));
        assert!(Subscription::from_query(&q(&[("alerts", "maybe")])).is_err());
        assert!(Subscription::from_query(&q(&[("severity", "high")])).is_err());
    }
}
