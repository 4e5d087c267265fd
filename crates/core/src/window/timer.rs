//! Event-time timers of a window operator, ordered by the watermark at which they fire.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Firing emits a window; expiry drops its state (and happens at firing when lateness is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    Fire,
    Expire,
}

/// A timer for one window of one key; `start` identifies the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    pub at: Millis,
    pub kind: TimerKind,
    pub key: u32,
    pub start: Millis,
}

/// Pending timers; each (at, kind, key, start) at most once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TimerQueue {
    timers: BTreeSet<Timer>,
}

impl TimerQueue {
    pub fn insert(&mut self, timer: Timer) {
        self.timers.insert(timer);
    }

    /// Removes and returns the earliest timer due at `watermark`.
    pub fn pop_due(&mut self, watermark: Millis) -> Option<Timer> {
        if self.timers.first()?.at <= watermark {
            self.timers.pop_first()
        } else {
            None
        }
    }

    pub fn next(&self) -> Option<Millis> {
        self.timers.first().map(|t| t.at)
    }
}
