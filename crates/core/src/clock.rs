//! The wall clock, read in one place for the whole platform.
//!
//! Nothing else in `core` calls it: windows, watermarks and detectors see only event time (and
//! processing time passed in as an argument), so replays stay deterministic. It is here so that the
//! crates around `core` (checkpoint stamps, retention, lag, heartbeats, clients) share one reading
//! with one rule for a clock set before 1970, instead of each writing its own. Clippy's
//! `disallowed-methods` (clippy.toml) keeps `SystemTime::now` out of every other file.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::time::Millis;

/// Time since 1970-01-01T00:00:00Z; zero on a host whose clock is set before it (a misconfigured
/// host: data only looks old, nothing panics).
#[allow(clippy::disallowed_methods)] // the one reading of the wall clock
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

/// The wall clock in epoch milliseconds, the unit of event time.
pub fn now_ms() -> Millis {
    Millis::try_from(since_epoch().as_millis()).unwrap_or(Millis::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_itself_and_is_past_2020() {
        let (a, b) = (now_ms(), since_epoch().as_millis() as Millis);
        assert!(a > 1_577_836_800_000, "{a}");
        assert!(b >= a && b - a < 60_000, "{a} {b}");
    }
}
