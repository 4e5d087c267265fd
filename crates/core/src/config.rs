//! The one shape of a configuration error: the key that is wrong and why, whatever the section
//! (a window, a detector, the event format, Kafka, Cassandra, the log).
//!
//! A section validates with keys relative to itself and the enclosing section prefixes its own
//! path ([`ConfigError::within`]), so a message always names the full dotted key a user can find
//! in the file: `job.windows[1].slide: must not exceed size`.

use std::fmt::Display;

/// A config key that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Dotted path, relative to the section that validated it, e.g. `windows[1].slide`.
    pub key: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error seen from the enclosing section: `slide` within `windows[1]` is
    /// `windows[1].slide`.
    pub fn within(self, section: impl Display) -> Self {
        Self {
            key: format!("{section}.{}", self.key),
            reason: self.reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_grow_outwards_and_print_first() {
        let e = ConfigError::new("slide", "must not exceed size")
            .within("windows[1]")
            .within("job");
        assert_eq!(e.key, "job.windows[1].slide");
        assert_eq!(e.to_string(), "job.windows[1].slide: must not exceed size");
    }
}
