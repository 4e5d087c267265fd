//! Windows: how events are grouped in event time, and the operators that keep their state.
//!
//! All windows are half-open `[start, end)`, aligned to the epoch (plus an optional offset), and
//! fire when the watermark reaches `end − 1`. With `allowed_lateness` L a window's state is kept
//! until the watermark passes `end − 1 + L`; an event for a window that has fired but not expired
//! re-emits it with the next revision. An event all of whose windows have expired goes to the
//! late output. Lateness is decided by the window's time against the watermark, never by whether
//! this key happened to have data in it, exactly as Flink decides it.
//!
//! - [`SlicedWindows`] serves tumbling and sliding windows: each event updates one slice of
//!   gcd(size, slide), and a window's result is the merge of its slices.
//! - [`SessionWindows`] keeps per-key sessions that merge when an event touches them.

mod session;
mod sliced;
mod spec;
mod timer;
mod vec_map;

pub use session::SessionWindows;
pub use sliced::SlicedWindows;
pub use spec::{WindowDef, WindowKind, WindowSpec, WindowType, MAX_WINDOW};

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::output::{Output, WindowResult};
use crate::time::Millis;

/// One event as a window operator sees it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// Dense id of the metric within the partition.
    pub key: u32,
    pub metric_id: &'a Arc<str>,
    pub ts: Millis,
    pub value: f64,
    /// Position in the source partition (identifies a late event).
    pub offset: u64,
}

impl Arrival<'_> {
    fn late(&self, window: &str, watermark: Millis) -> Output {
        Output::Late(crate::output::LateEvent {
            window: window.to_string(),
            metric_id: self.metric_id.to_string(),
            ts: self.ts,
            value: self.value,
            watermark,
            offset: self.offset,
        })
    }
}

/// The operator of one named window: sliced (tumbling, sliding) or session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WindowOperator {
    Sliced(SlicedWindows),
    Session(SessionWindows),
}

impl WindowOperator {
    pub fn new(def: &WindowDef, allowed_lateness: Millis) -> Self {
        // A name of this operator's own: every result holds it, and a count shared with the
        // other partitions' operators made each result's copy and drop a contended atomic.
        let def = &WindowDef {
            name: Arc::from(&*def.name),
            ..def.clone()
        };
        match def.kind {
            WindowKind::Session { .. } => Self::Session(SessionWindows::new(def, allowed_lateness)),
            _ => Self::Sliced(SlicedWindows::new(def, allowed_lateness)),
        }
    }

    /// Routes one event, judged against `watermark` (the watermark in force before it).
    pub fn process(&mut self, event: &Arrival<'_>, watermark: Millis, out: &mut Vec<Output>) {
        match self {
            Self::Sliced(op) => op.process(event, watermark, out),
            Self::Session(op) => op.process(event, watermark, out),
        }
    }

    /// Fires and expires what the new `watermark` has passed. `names` maps key ids to metric ids.
    pub fn advance(&mut self, watermark: Millis, names: &[Arc<str>], out: &mut Vec<Output>) {
        match self {
            Self::Sliced(op) => op.advance(watermark, names, out),
            Self::Session(op) => op.advance(watermark, names, out),
        }
    }

    /// The earliest pending timer, if any: when the watermark reaches it, something fires.
    pub fn next_timer(&self) -> Option<Millis> {
        match self {
            Self::Sliced(op) => op.next_timer(),
            Self::Session(op) => op.next_timer(),
        }
    }

    /// The current aggregates of every window that has not fired yet (early firing).
    pub fn partials(&self, names: &[Arc<str>], out: &mut Vec<WindowResult>) {
        match self {
            Self::Sliced(op) => op.partials(names, out),
            Self::Session(op) => op.partials(names, out),
        }
    }

    /// Forgets the bookkeeping of `key`, whose state TTL has passed (see
    /// [`crate::pipeline`]). By then every window of the key has fired and expired, so there is
    /// nothing to lose: debug builds assert it, release builds drop it all the same.
    pub fn drop_key(&mut self, key: u32) {
        match self {
            Self::Sliced(op) => op.drop_key(key),
            Self::Session(op) => op.drop_key(key),
        }
    }

    /// Windows (or sessions) currently holding state.
    pub fn open_windows(&self) -> usize {
        match self {
            Self::Sliced(op) => op.open_windows(),
            Self::Session(op) => op.open_windows(),
        }
    }

    pub fn def(&self) -> &WindowDef {
        match self {
            Self::Sliced(op) => op.def(),
            Self::Session(op) => op.def(),
        }
    }

    /// The allowed lateness its timers were scheduled with.
    pub fn lateness(&self) -> Millis {
        match self {
            Self::Sliced(op) => op.lateness(),
            Self::Session(op) => op.lateness(),
        }
    }
}
