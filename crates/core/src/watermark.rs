//! The watermark of one source partition: how far event time has surely progressed.
//!
//! `W = max event time seen − max_out_of_orderness`, advancing with every event. An event is judged
//! against the watermark in force *before* it (as Flink does with a per-record watermark), so how
//! events are batched never changes which of them are late. The tracker never reads a clock: the
//! engine decides when a partition is idle and calls [`WatermarkTracker::advance_to`].

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// The watermark before any event: nothing is late yet.
pub const WATERMARK_MIN: Millis = Millis::MIN;
/// The watermark at the end of a bounded input: every window fires.
pub const WATERMARK_MAX: Millis = Millis::MAX;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatermarkTracker {
    max_out_of_orderness: Millis,
    max_event_time: Option<Millis>,
    current: Millis,
}

impl WatermarkTracker {
    pub fn new(max_out_of_orderness: Millis) -> Self {
        Self {
            max_out_of_orderness,
            max_event_time: None,
            current: WATERMARK_MIN,
        }
    }

    /// A saved tracker under a possibly changed bound: the watermark itself never goes back.
    pub fn restored(saved: &WatermarkTracker, max_out_of_orderness: Millis) -> Self {
        Self {
            max_out_of_orderness,
            ..saved.clone()
        }
    }

    pub fn current(&self) -> Millis {
        self.current
    }

    pub fn max_event_time(&self) -> Option<Millis> {
        self.max_event_time
    }

    /// Notes an event; returns true when the watermark moved forward.
    pub fn observe(&mut self, ts: Millis) -> bool {
        if self.max_event_time.is_none_or(|m| ts > m) {
            self.max_event_time = Some(ts);
        }
        self.advance_to(ts.saturating_sub(self.max_out_of_orderness))
    }

    /// Moves the watermark to `wm` if that is forward; it never goes back.
    pub fn advance_to(&mut self, wm: Millis) -> bool {
        if wm > self.current {
            self.current = wm;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_max_event_time_minus_bound_and_never_regresses() {
        let mut wm = WatermarkTracker::new(5_000);
        assert_eq!(wm.current(), WATERMARK_MIN);
        assert!(wm.observe(10_000));
        assert_eq!(wm.current(), 5_000);
        assert!(
            !wm.observe(7_000),
            "an older event does not move the watermark"
        );
        assert_eq!(wm.current(), 5_000);
        assert!(wm.observe(12_000));
        assert_eq!(wm.current(), 7_000);
        assert!(!wm.advance_to(6_000));
        assert_eq!(wm.max_event_time(), Some(12_000));
    }
}
