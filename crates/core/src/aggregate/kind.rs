//! The names of the aggregates a window can compute, as written in job configs and CSV headers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One aggregate a window can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    Count,
    Sum,
    Min,
    Max,
    Mean,
    /// Population standard deviation.
    Stddev,
    /// The value with the earliest event time (the first to arrive among equal times).
    First,
    /// The value with the latest event time (the last to arrive among equal times).
    Last,
    P50,
    P90,
    P95,
    P99,
}

impl AggregateKind {
    /// Every aggregate, in the order results list them.
    pub const ALL: [AggregateKind; 12] = [
        Self::Count,
        Self::Sum,
        Self::Min,
        Self::Max,
        Self::Mean,
        Self::Stddev,
        Self::First,
        Self::Last,
        Self::P50,
        Self::P90,
        Self::P95,
        Self::P99,
    ];

    /// The aggregates every result carries whatever the config says.
    pub const BASIC: [AggregateKind; 5] =
        [Self::Count, Self::Sum, Self::Min, Self::Max, Self::Mean];

    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Min => "min",
            Self::Max => "max",
            Self::Mean => "mean",
            Self::Stddev => "stddev",
            Self::First => "first",
            Self::Last => "last",
            Self::P50 => "p50",
            Self::P90 => "p90",
            Self::P95 => "p95",
            Self::P99 => "p99",
        }
    }

    pub fn is_basic(self) -> bool {
        Self::BASIC.contains(&self)
    }

    /// The quantile this aggregate reads from the sketch, if it is a percentile.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Self::P50 => Some(0.50),
            Self::P90 => Some(0.90),
            Self::P95 => Some(0.95),
            Self::P99 => Some(0.99),
            _ => None,
        }
    }
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
