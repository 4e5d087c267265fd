//! Session windows: per key, runs of events separated by less than `gap`.
//!
//! An event at `t` opens `[t, t + gap)` and merges with every session of its key that it touches;
//! touching is inclusive, so events exactly `gap` apart share a session (Flink's
//! `TimeWindow.intersects`). A session's end is its last event time plus `gap`, and it fires when
//! the watermark reaches `end − 1`. An event that touches no live session and whose own session
//! would already have expired goes to the late output; one that falls into a live session is kept,
//! however old it is.
//!
//! When lateness lets a fired session merge into one with another start, the old row is retracted
//! so the store never shows both.

use serde::{Deserialize, Serialize};

use super::timer::{Timer, TimerKind, TimerQueue};
use super::{Arrival, WindowDef, WindowKind};
use crate::aggregate::Accumulator;
use crate::output::{Output, WindowResult};
use crate::time::Millis;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    start: Millis,
    /// Last event time + gap (exclusive).
    end: Millis,
    acc: Accumulator,
    /// Revision last emitted, if any.
    revision: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionWindows {
    def: WindowDef,
    gap: Millis,
    lateness: Millis,
    /// Per key: sessions sorted by start, pairwise disjoint and not touching.
    keys: Vec<Vec<Session>>,
    timers: TimerQueue,
}

impl SessionWindows {
    pub fn new(def: &WindowDef, allowed_lateness: Millis) -> Self {
        let WindowKind::Session { gap } = def.kind else {
            unreachable!("tumbling and sliding windows have their own operator")
        };
        Self {
            def: def.clone(),
            gap,
            lateness: allowed_lateness,
            keys: Vec::new(),
            timers: TimerQueue::default(),
        }
    }

    pub fn def(&self) -> &WindowDef {
        &self.def
    }

    pub fn lateness(&self) -> Millis {
        self.lateness
    }

    pub fn next_timer(&self) -> Option<Millis> {
        self.timers.next()
    }

    pub fn open_windows(&self) -> usize {
        self.keys.iter().map(Vec::len).sum()
    }

    /// See [`super::WindowOperator::drop_key`]. Replaces the key's list with an empty one so its
    /// capacity is freed; the slot stays for the key id's next owner.
    pub fn drop_key(&mut self, key: u32) {
        if let Some(sessions) = self.keys.get_mut(key as usize) {
            debug_assert!(
                sessions.is_empty(),
                "window '{}': key {key} dropped with open sessions at {:?}",
                self.def.name,
                sessions.iter().map(|s| s.start).collect::<Vec<_>>()
            );
            *sessions = Vec::new();
        }
    }

    fn fire_timer(&self, key: u32, s: &Session) -> Timer {
        Timer {
            at: s.end - 1,
            kind: TimerKind::Fire,
            key,
            start: s.start,
        }
    }

    fn expiry_timer(&self, key: u32, s: &Session) -> Timer {
        Timer {
            at: s.end - 1 + self.lateness,
            kind: TimerKind::Expire,
            key,
            start: s.start,
        }
    }

    pub fn process(&mut self, event: &Arrival<'_>, watermark: Millis, out: &mut Vec<Output>) {
        let Arrival {
            key,
            metric_id,
            ts,
            value,
            ..
        } = *event;
        let idx = key as usize;
        if self.keys.len() <= idx {
            self.keys.resize_with(idx + 1, Vec::new);
        }
        let (lo, hi) = (ts, ts + self.gap);
        let sessions = &self.keys[idx];
        // Sessions are sorted and disjoint, so those touching [lo, hi] form one run.
        let first = sessions.partition_point(|s| s.end < lo);
        let last = first
            + sessions[first..]
                .iter()
                .take_while(|s| s.start <= hi)
                .count();
        if first == last && hi - 1 + self.lateness <= watermark {
            out.push(event.late(&self.def.name, watermark));
            return;
        }

        let touched: Vec<Session> = self.keys[idx].drain(first..last).collect();
        let mut merged = Session {
            start: lo,
            end: hi,
            acc: Accumulator::new(self.def.needs_sketch()),
            revision: None,
        };
        for old in &touched {
            self.timers.remove(&self.fire_timer(key, old));
            self.timers.remove(&self.expiry_timer(key, old));
            merged.start = merged.start.min(old.start);
            merged.end = merged.end.max(old.end);
            merged.acc.merge(&old.acc);
        }
        // The row keeps its revision history only if it keeps its key (its start); a session
        // with a new start is a new row, emitted first as revision 0.
        merged.revision = touched
            .iter()
            .find(|old| old.start == merged.start)
            .and_then(|old| old.revision);
        merged.acc.add(ts, value);
        for old in &touched {
            if old.revision.is_some() && old.start != merged.start {
                out.push(Output::Retract {
                    metric_id: metric_id.to_string(),
                    window: self.def.name.clone(),
                    window_start: old.start,
                    window_end: old.end,
                });
            }
        }

        let fired_already = merged.end - 1 <= watermark;
        if fired_already {
            // Within allowed lateness: emit the update now; it expires later.
            self.emit(&mut merged, metric_id, out);
            self.timers.insert(self.expiry_timer(key, &merged));
        } else {
            self.timers.insert(self.fire_timer(key, &merged));
        }
        self.keys[idx].insert(first, merged);
    }

    pub fn advance(&mut self, watermark: Millis, names: &[String], out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_due(watermark) {
            let idx = timer.key as usize;
            let Ok(pos) = self.keys[idx].binary_search_by_key(&timer.start, |s| s.start) else {
                continue;
            };
            match timer.kind {
                TimerKind::Fire => {
                    let mut session = self.keys[idx].remove(pos);
                    self.emit(&mut session, &names[idx], out);
                    if self.lateness > 0 {
                        self.timers.insert(self.expiry_timer(timer.key, &session));
                        self.keys[idx].insert(pos, session);
                    }
                }
                TimerKind::Expire => {
                    self.keys[idx].remove(pos);
                }
            }
        }
    }

    /// The sessions that have not fired yet, as they stand now (early firing). Reads only.
    pub fn partials(&self, names: &[String], out: &mut Vec<WindowResult>) {
        for (key, sessions) in self.keys.iter().enumerate() {
            let Some(metric_id) = names.get(key) else {
                continue;
            };
            for s in sessions.iter().filter(|s| s.revision.is_none()) {
                out.push(WindowResult::from_accumulator(
                    metric_id,
                    &self.def.name,
                    (s.start, s.end),
                    &s.acc,
                    &self.def.extra,
                    0,
                ));
            }
        }
    }

    fn emit(&self, session: &mut Session, metric_id: &str, out: &mut Vec<Output>) {
        let revision = session.revision.map_or(0, |r| r + 1);
        session.revision = Some(revision);
        out.push(Output::Result(WindowResult::from_accumulator(
            metric_id,
            &self.def.name,
            (session.start, session.end),
            &session.acc,
            &self.def.extra,
            revision,
        )));
    }
}
