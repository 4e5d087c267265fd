//! Event time: milliseconds since the Unix epoch, and the parsing of user-supplied instants.
//!
//! Timestamps are plain `i64` milliseconds everywhere in StreamPulse. This module turns the forms
//! users write (epoch ms, epoch seconds, RFC 3339) into that one representation and never consults a
//! clock.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Millis = i64;

/// Earliest instant accepted from input: 1970-01-01.
pub const MIN_TIMESTAMP: Millis = 0;
/// Latest instant accepted from input: the end of year 9999. Anything beyond is a unit mistake.
pub const MAX_TIMESTAMP: Millis = 253_402_300_799_999;

/// Why a string could not be read as an instant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeParseError {
    #[error(
        "'{0}' is neither epoch milliseconds nor an RFC 3339 timestamp (e.g. 2023-11-14T22:13:20Z)"
    )]
    Unrecognized(String),
    #[error("timestamp {0} ms is outside the accepted range (1970-01-01 to 9999-12-31)")]
    OutOfRange(i128),
}

/// Parses epoch milliseconds (`1700000000000`) or RFC 3339 (`2023-11-14T22:13:20.5Z`).
pub fn parse_instant(text: &str) -> Result<Millis, TimeParseError> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return check_range(ms as i128);
    }
    parse_rfc3339(text)
}

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339(text: &str) -> Result<Millis, TimeParseError> {
    let parsed = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| TimeParseError::Unrecognized(text.to_string()))?;
    check_range(parsed.unix_timestamp_nanos() / 1_000_000)
}

/// Checks that `ms` lies in the accepted range and narrows it.
pub fn check_range(ms: i128) -> Result<Millis, TimeParseError> {
    if ms < MIN_TIMESTAMP as i128 || ms > MAX_TIMESTAMP as i128 {
        return Err(TimeParseError::OutOfRange(ms));
    }
    Ok(ms as Millis)
}

/// Formats epoch milliseconds as RFC 3339 in UTC (for logs and API answers).
pub fn format_rfc3339(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Rounds `ts` down to a multiple of `step` shifted by `offset` (works for negative times too).
pub fn align_down(ts: Millis, step: Millis, offset: Millis) -> Millis {
    ts - (ts - offset).rem_euclid(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_epoch_ms_and_rfc3339_to_the_same_instant() {
        assert_eq!(parse_instant("1700000000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_instant("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_instant("2023-11-14T23:13:20.250+01:00"),
            Ok(1_700_000_000_250)
        );
    }

    #[test]
    fn rejects_garbage_and_absurd_instants() {
        assert!(matches!(
            parse_instant("yesterday"),
            Err(TimeParseError::Unrecognized(_))
        ));
        assert!(matches!(
            parse_instant("-5"),
            Err(TimeParseError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_instant("99999999999999999"),
            Err(TimeParseError::OutOfRange(_))
        ));
    }

    #[test]
    fn align_down_is_epoch_aligned_with_offset() {
        assert_eq!(align_down(1_700_000_012_345, 10_000, 0), 1_700_000_010_000);
        assert_eq!(align_down(1_700_000_010_000, 10_000, 0), 1_700_000_010_000);
        assert_eq!(align_down(-1, 10_000, 0), -10_000);
        assert_eq!(align_down(12_345, 10_000, 3_000), 3_000);
        assert_eq!(format_rfc3339(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
