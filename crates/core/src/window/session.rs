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
use std::sync::Arc;

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

    /// The timer `s` is waiting for now: its firing until the watermark reaches `end − 1`, its
    /// expiry after.
    fn due_timer(&self, key: u32, s: &Session, watermark: Millis) -> Timer {
        if s.end - 1 <= watermark {
            self.expiry_timer(key, s)
        } else {
            self.fire_timer(key, s)
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
        if last == first + 1 && sessions[first].start <= lo {
            // The common case, an event inside or just after one session: it keeps its start
            // (its row) and grows in place.
            self.extend(key, first, event, watermark, out);
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
            merged.start = merged.start.min(old.start);
            merged.end = merged.end.max(old.end);
            merged.acc.merge(&old.acc);
        }
        // The row keeps its revision history only if it keeps its key (its start); a session
        // with a new start is a new row, emitted first as revision 0.
        let kept = touched.iter().find(|old| old.start == merged.start);
        merged.revision = kept.and_then(|old| old.revision);
        merged.acc.add(ts, value);
        for old in &touched {
            if old.revision.is_some() && old.start != merged.start {
                out.push(Output::Retract {
                    metric_id: metric_id.to_string(),
                    window: self.def.name.to_string(),
                    window_start: old.start,
                    window_end: old.end,
                });
            }
        }
        // The timers of the other touched sessions stay queued: they name starts no session has
        // any more, and `advance` skips them.
        let kept_timer = kept.map(|old| self.due_timer(key, old, watermark));
        if merged.end - 1 <= watermark {
            // Within allowed lateness: emit the update now; it expires later.
            Self::emit(&self.def, &mut merged, metric_id, out);
        }
        self.reschedule(key, kept_timer, &merged, watermark);
        self.keys[idx].insert(first, merged);
    }

    /// Adds `event` to the session at `pos`, which it touches and does not start before.
    fn extend(
        &mut self,
        key: u32,
        pos: usize,
        event: &Arrival<'_>,
        watermark: Millis,
        out: &mut Vec<Output>,
    ) {
        let before = self.due_timer(key, &self.keys[key as usize][pos], watermark);
        let session = &mut self.keys[key as usize][pos];
        session.end = session.end.max(event.ts + self.gap);
        session.acc.add(event.ts, event.value);
        if session.end - 1 <= watermark {
            // Within allowed lateness: emit the update now; it expires later.
            Self::emit(&self.def, session, event.metric_id, out);
        }
        let after = self.due_timer(key, &self.keys[key as usize][pos], watermark);
        if before.kind != after.kind {
            self.timers.insert(after);
        }
    }

    /// Timers are moved lazily: a session that grows keeps the timer it had, which is due no
    /// later than it is, and `advance` moves that timer on when it comes due early. Removing and
    /// inserting a timer on every event was the largest cost of session windows. A new timer is
    /// queued only when the session had none of the kind it now waits for: it is new, has a new
    /// start, or was reopened by a late event after it fired.
    fn reschedule(&mut self, key: u32, kept: Option<Timer>, merged: &Session, watermark: Millis) {
        let due = self.due_timer(key, merged, watermark);
        if kept.is_none_or(|timer| timer.kind != due.kind) {
            self.timers.insert(due);
        }
    }

    pub fn advance(&mut self, watermark: Millis, names: &[Arc<str>], out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_due(watermark) {
            let idx = timer.key as usize;
            let Ok(pos) = self.keys[idx].binary_search_by_key(&timer.start, |s| s.start) else {
                continue;
            };
            let session = &self.keys[idx][pos];
            let due = match timer.kind {
                TimerKind::Fire => self.fire_timer(timer.key, session),
                TimerKind::Expire => self.expiry_timer(timer.key, session),
            };
            if due.at > timer.at {
                // The session grew since this timer was queued: wait for its new end.
                self.timers.insert(due);
                continue;
            }
            match timer.kind {
                TimerKind::Fire => {
                    let mut session = self.keys[idx].remove(pos);
                    Self::emit(&self.def, &mut session, &names[idx], out);
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
    pub fn partials(&self, names: &[Arc<str>], out: &mut Vec<WindowResult>) {
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

    fn emit(def: &WindowDef, session: &mut Session, metric_id: &Arc<str>, out: &mut Vec<Output>) {
        let revision = session.revision.map_or(0, |r| r + 1);
        session.revision = Some(revision);
        out.push(Output::Result(WindowResult::from_accumulator(
            metric_id,
            &def.name,
            (session.start, session.end),
            &session.acc,
            &def.extra,
            revision,
        )));
    }
}

#[cfg(test)]
mod tests {
    //! The operator against a model without timers: after every watermark step the model scans
    //! every session for what is due. Timers (moved lazily) are the operator's optimisation; the
    //! rows, revisions, retractions and late events must be the model's.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// (start, end, count, sum, revision last emitted, fired)
    type ModelSession = (Millis, Millis, u64, f64, Option<u32>, bool);

    #[derive(Debug, Default, PartialEq)]
    struct Seen {
        /// (metric, start) → (end, count, sum, revision), upserted and retracted.
        rows: BTreeMap<(String, Millis), (Millis, u64, f64, u32)>,
        emissions: usize,
        late: Vec<(String, Millis)>,
    }

    impl Seen {
        fn row(&mut self, metric: &str, start: Millis, end: Millis, n: u64, sum: f64, rev: u32) {
            self.emissions += 1;
            self.rows
                .insert((metric.to_string(), start), (end, n, sum, rev));
        }

        fn apply(&mut self, outputs: &mut Vec<Output>) {
            for output in outputs.drain(..) {
                match output {
                    Output::Result(r) => self.row(
                        &r.metric_id,
                        r.window_start,
                        r.window_end,
                        r.count,
                        r.sum,
                        r.revision,
                    ),
                    Output::Retract {
                        metric_id,
                        window_start,
                        ..
                    } => {
                        self.rows.remove(&(metric_id, window_start));
                    }
                    Output::Late(late) => self.late.push((late.metric_id, late.ts)),
                    other => panic!("unexpected output {other:?}"),
                }
            }
        }
    }

    struct Model {
        gap: Millis,
        lateness: Millis,
        keys: Vec<Vec<ModelSession>>,
    }

    impl Model {
        fn emit(s: &mut ModelSession, metric: &str, seen: &mut Seen) {
            let rev = s.4.map_or(0, |r| r + 1);
            s.4 = Some(rev);
            s.5 = true;
            seen.row(metric, s.0, s.1, s.2, s.3, rev);
        }

        fn process(
            &mut self,
            key: usize,
            metric: &str,
            ts: Millis,
            v: f64,
            wm: Millis,
            seen: &mut Seen,
        ) {
            let (lo, hi) = (ts, ts + self.gap);
            let sessions = &mut self.keys[key];
            let (touched, rest): (Vec<_>, Vec<_>) =
                sessions.drain(..).partition(|s| s.1 >= lo && s.0 <= hi);
            *sessions = rest;
            if touched.is_empty() && hi - 1 + self.lateness <= wm {
                seen.late.push((metric.to_string(), ts));
                return;
            }
            let start = touched.iter().map(|s| s.0).fold(lo, Millis::min);
            let end = touched.iter().map(|s| s.1).fold(hi, Millis::max);
            let kept = touched.iter().find(|s| s.0 == start);
            let mut merged = (
                start,
                end,
                1 + touched.iter().map(|s| s.2).sum::<u64>(),
                v + touched.iter().map(|s| s.3).sum::<f64>(),
                kept.and_then(|s| s.4),
                false,
            );
            for old in &touched {
                if old.4.is_some() && old.0 != start {
                    seen.rows.remove(&(metric.to_string(), old.0));
                }
            }
            if end - 1 <= wm {
                Self::emit(&mut merged, metric, seen);
            }
            sessions.push(merged);
            sessions.sort_by_key(|s| s.0);
        }

        fn advance(&mut self, wm: Millis, names: &[Arc<str>], seen: &mut Seen) {
            for (key, sessions) in self.keys.iter_mut().enumerate() {
                for s in sessions.iter_mut() {
                    if !s.5 && s.1 - 1 <= wm {
                        Self::emit(s, &names[key], seen);
                    }
                }
                sessions.retain(|s| s.1 - 1 + self.lateness > wm);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn sessions_equal_a_model_without_timers(
            gap in 1i64..400,
            lateness in prop::sample::select(vec![0i64, 150, 1_000]),
            ooo in 0i64..300,
            events in prop::collection::vec((0usize..3, 0i64..3_000, -1_500i64..200, -50i32..50), 1..150),
        ) {
            let def = WindowDef { name: "s".into(), kind: WindowKind::Session { gap }, extra: vec![] };
            let names: Vec<Arc<str>> = (0..3).map(|k| format!("m{k}").into()).collect();
            let mut op = SessionWindows::new(&def, lateness);
            let mut model = Model { gap, lateness, keys: vec![Vec::new(); 3] };
            let (mut got, mut want) = (Seen::default(), Seen::default());
            let mut out = Vec::new();
            let mut max_ts = Millis::MIN;
            let mut wm = Millis::MIN;
            // Event times mostly increase (a nominal clock), some jump back far (late events).
            for (i, &(key, step, back, v)) in events.iter().enumerate() {
                let ts = 10_000 + step + i as i64 * 40 + back.min(0);
                let arrival = Arrival { key: key as u32, metric_id: &names[key], ts, value: v as f64, offset: i as u64 };
                op.process(&arrival, wm, &mut out);
                got.apply(&mut out);
                model.process(key, &names[key], ts, v as f64, wm, &mut want);
                max_ts = max_ts.max(ts);
                if max_ts - ooo > wm {
                    wm = max_ts - ooo;
                    op.advance(wm, &names, &mut out);
                    got.apply(&mut out);
                    model.advance(wm, &names, &mut want);
                }
            }
            op.advance(Millis::MAX / 2, &names, &mut out);
            got.apply(&mut out);
            model.advance(Millis::MAX / 2, &names, &mut want);
            prop_assert_eq!(&got.rows, &want.rows);
            prop_assert_eq!(got.emissions, want.emissions);
            prop_assert_eq!(&got.late, &want.late);
            prop_assert_eq!(op.open_windows(), 0);
        }
    }
}
