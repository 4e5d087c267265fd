//! Window definitions: the config a user writes ([`WindowSpec`]) and its validated form
//! ([`WindowDef`]).

use crate::config::ConfigError;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::AggregateKind;
use crate::time::Millis;

/// Longest window accepted, to catch unit mistakes (`size: 10d` meant as `10s`) early.
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// Most slices of `gcd(size, slide)` one sliding window spans (a day every minute: 1,440). Each
/// event registers `size / slide` windows and each window merges up to this many slices, so the
/// ratio bounds the state and the work one event can cause.
pub const MAX_SLICES_PER_WINDOW: Millis = 1_440;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowType {
    Tumbling,
    Sliding,
    Session,
}

/// One named window as written in a job config.
///
/// ```yaml
/// - name: hop_30s_10s
///   type: sliding
///   size: 30s
///   slide: 10s
///   aggregates: [stddev, p99]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Unique within the job; results are stored and queried under this name.
    pub name: String,
    #[serde(rename = "type")]
    pub window_type: WindowType,
    /// Window length (tumbling, sliding).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub size: Option<Duration>,
    /// Distance between window starts (sliding).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub slide: Option<Duration>,
    /// Inactivity that closes a session (session).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub gap: Option<Duration>,
    /// Shifts the epoch alignment of tumbling and sliding windows.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub offset: Option<Duration>,
    /// Aggregates beyond count, sum, min, max and mean, which every result has.
    #[serde(default)]
    pub aggregates: Vec<AggregateKind>,
}

/// The shape of a validated window, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WindowKind {
    Tumbling {
        size: Millis,
        offset: Millis,
    },
    Sliding {
        size: Millis,
        slide: Millis,
        offset: Millis,
    },
    Session {
        gap: Millis,
    },
}

impl WindowKind {
    /// How far past an event's time its windows can end: the idle flush moves the watermark this
    /// far past the latest event so that every window holding data fires.
    pub fn extent(&self) -> Millis {
        match *self {
            Self::Tumbling { size, .. } | Self::Sliding { size, .. } => size,
            Self::Session { gap } => gap,
        }
    }
}

/// A window definition that passed validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowDef {
    /// Shared with every result the window emits.
    pub name: Arc<str>,
    pub kind: WindowKind,
    /// Non-basic aggregates to report, deduplicated, in config order.
    pub extra: Vec<AggregateKind>,
}

impl WindowDef {
    /// Whether a percentile sketch must be kept.
    pub fn needs_sketch(&self) -> bool {
        self.extra.iter().any(|k| k.quantile().is_some())
    }
}

pub(crate) fn gcd(a: Millis, b: Millis) -> Millis {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn millis(field: &str, d: Option<Duration>, kind: &str) -> Result<Millis, ConfigError> {
    let d = d.ok_or_else(|| ConfigError::new(field, format!("required for a {kind} window")))?;
    if d.is_zero() {
        return Err(ConfigError::new(field, "must be greater than zero"));
    }
    if d > MAX_WINDOW {
        return Err(ConfigError::new(field, "must be at most 366 days"));
    }
    if d.subsec_nanos() % 1_000_000 != 0 {
        return Err(ConfigError::new(
            field,
            "must be a whole number of milliseconds",
        ));
    }
    Ok(d.as_millis() as Millis)
}

fn forbid(field: &str, d: Option<Duration>, kind: &str) -> Result<(), ConfigError> {
    match d {
        Some(_) => Err(ConfigError::new(
            field,
            format!("does not apply to a {kind} window"),
        )),
        None => Ok(()),
    }
}

impl WindowSpec {
    /// Validates the spec. On error the key is relative to this window.
    pub fn validate(&self) -> Result<WindowDef, ConfigError> {
        crate::name::WINDOW
            .check(&self.name)
            .map_err(|reason| ConfigError::new("name", reason))?;
        let offset = match self.offset {
            None => 0,
            Some(d) if d > MAX_WINDOW => {
                return Err(ConfigError::new("offset", "must be at most 366 days"))
            }
            Some(d) => d.as_millis() as Millis,
        };
        let kind = match self.window_type {
            WindowType::Tumbling => {
                forbid("slide", self.slide, "tumbling")?;
                forbid("gap", self.gap, "tumbling")?;
                let size = millis("size", self.size, "tumbling")?;
                if offset >= size {
                    return Err(ConfigError::new("offset", "must be smaller than size"));
                }
                WindowKind::Tumbling { size, offset }
            }
            WindowType::Sliding => {
                forbid("gap", self.gap, "sliding")?;
                let size = millis("size", self.size, "sliding")?;
                let slide = millis("slide", self.slide, "sliding")?;
                if slide > size {
                    return Err(ConfigError::new(
                        "slide",
                        "must not exceed size (windows would leave gaps)",
                    ));
                }
                if offset >= slide {
                    return Err(ConfigError::new("offset", "must be smaller than slide"));
                }
                let slices = size / gcd(size, slide);
                if slices > MAX_SLICES_PER_WINDOW {
                    return Err(ConfigError::new(
                        "slide",
                        format!(
                            "a window of size {size} ms every {slide} ms spans {slices} slices of \
                             {} ms; at most {MAX_SLICES_PER_WINDOW} are allowed (make slide a \
                             larger divisor of size)",
                            gcd(size, slide)
                        ),
                    ));
                }
                WindowKind::Sliding {
                    size,
                    slide,
                    offset,
                }
            }
            WindowType::Session => {
                forbid("size", self.size, "session")?;
                forbid("slide", self.slide, "session")?;
                forbid("offset", self.offset, "session")?;
                WindowKind::Session {
                    gap: millis("gap", self.gap, "session")?,
                }
            }
        };
        let mut extra = Vec::new();
        for &k in &self.aggregates {
            if !k.is_basic() && !extra.contains(&k) {
                extra.push(k);
            }
        }
        Ok(WindowDef {
            name: self.name.as_str().into(),
            kind,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(t: WindowType) -> WindowSpec {
        WindowSpec {
            name: "w".into(),
            window_type: t,
            size: None,
            slide: None,
            gap: None,
            offset: None,
            aggregates: vec![],
        }
    }

    #[test]
    fn sliding_needs_slide_not_larger_than_size() {
        let mut s = spec(WindowType::Sliding);
        s.size = Some(Duration::from_secs(30));
        assert_eq!(s.validate().unwrap_err().key, "slide");
        s.slide = Some(Duration::from_secs(40));
        assert!(s
            .validate()
            .unwrap_err()
            .reason
            .contains("must not exceed size"));
        s.slide = Some(Duration::from_secs(10));
        assert_eq!(
            s.validate().unwrap().kind,
            WindowKind::Sliding {
                size: 30_000,
                slide: 10_000,
                offset: 0
            }
        );
    }

    #[test]
    fn sliding_windows_span_a_bounded_number_of_slices() {
        let mut s = spec(WindowType::Sliding);
        s.size = Some(Duration::from_secs(366 * 86_400));
        s.slide = Some(Duration::from_millis(1));
        let ConfigError { key: field, reason } = s.validate().unwrap_err();
        assert_eq!(field, "slide");
        assert!(reason.contains("at most 1440"), "{reason}");
        s.size = Some(Duration::from_secs(86_400));
        s.slide = Some(Duration::from_secs(60));
        assert!(
            s.validate().is_ok(),
            "a day every minute is the documented maximum"
        );
        s.slide = Some(Duration::from_secs(7)); // gcd 1 s: 86,400 slices
        assert_eq!(s.validate().unwrap_err().key, "slide");
    }

    #[test]
    fn rejects_fields_that_do_not_apply_and_zero_sizes() {
        let mut s = spec(WindowType::Session);
        s.gap = Some(Duration::from_secs(5));
        s.size = Some(Duration::from_secs(5));
        assert_eq!(
            s.validate().unwrap_err(),
            ConfigError::new("size", "does not apply to a session window")
        );
        let mut t = spec(WindowType::Tumbling);
        t.size = Some(Duration::ZERO);
        assert_eq!(
            t.validate().unwrap_err().reason,
            "must be greater than zero"
        );
    }
}
