//! Tumbling and sliding windows, computed from slices.
//!
//! A sliding window of `size` every `slide` is the union of consecutive slices of
//! `gcd(size, slide)`; a tumbling window is the case `slide = size` with one slice per window. An
//! event updates exactly one slice accumulator, whatever `size / slide` is; a window's result is
//! the merge of its slices at firing time. A slice lives until the last window containing it
//! expires.
//!
//! Bookkeeping per key: the slices holding data, and the windows registered for firing with the
//! revision last emitted. Windows are registered when a slice is created, so a window fires only if
//! it holds data, as in Flink.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::spec::gcd;
use super::timer::{Timer, TimerKind, TimerQueue};
use super::vec_map::VecMap;
use super::{Arrival, WindowDef, WindowKind};
use crate::aggregate::Accumulator;
use crate::output::{Output, WindowResult};
use crate::time::{align_down, Millis};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct KeyState {
    /// Slice start → accumulator.
    slices: VecMap<Millis, Accumulator>,
    /// Window start → revision last emitted (None: registered, not yet emitted).
    windows: VecMap<Millis, Option<u32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlicedWindows {
    def: WindowDef,
    size: Millis,
    slide: Millis,
    slice: Millis,
    offset: Millis,
    lateness: Millis,
    keys: Vec<KeyState>,
    timers: TimerQueue,
}

impl SlicedWindows {
    pub fn new(def: &WindowDef, allowed_lateness: Millis) -> Self {
        let (size, slide, offset) = match def.kind {
            WindowKind::Tumbling { size, offset } => (size, size, offset),
            WindowKind::Sliding {
                size,
                slide,
                offset,
            } => (size, slide, offset),
            WindowKind::Session { .. } => unreachable!("session windows have their own operator"),
        };
        Self {
            def: def.clone(),
            size,
            slide,
            slice: gcd(size, slide),
            offset,
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
        self.keys.iter().map(|k| k.windows.len()).sum()
    }

    /// See [`super::WindowOperator::drop_key`]. The slot stays (empty) for the key id's next
    /// owner; an empty `KeyState` holds no allocation.
    pub fn drop_key(&mut self, key: u32) {
        if let Some(state) = self.keys.get_mut(key as usize) {
            debug_assert!(
                state.windows.is_empty() && state.slices.is_empty(),
                "window '{}': key {key} dropped with open windows {:?}",
                self.def.name,
                state.windows.keys().collect::<Vec<_>>()
            );
            *state = KeyState::default();
        }
    }

    fn expired(&self, start: Millis, watermark: Millis) -> bool {
        start + self.size - 1 + self.lateness <= watermark
    }

    pub fn process(&mut self, event: &Arrival<'_>, watermark: Millis, out: &mut Vec<Output>) {
        let Arrival {
            key,
            metric_id,
            ts,
            value,
            ..
        } = *event;
        // The window with the latest start holding `ts` is the last to expire.
        let last_start = align_down(ts, self.slide, self.offset);
        if self.expired(last_start, watermark) {
            out.push(event.late(&self.def.name, watermark));
            return;
        }
        let idx = key as usize;
        if self.keys.len() <= idx {
            self.keys.resize_with(idx + 1, KeyState::default);
        }
        let slice_start = align_down(ts, self.slice, self.offset);
        let with_sketch = self.def.needs_sketch();
        let (slice, new_slice) = self.keys[idx]
            .slices
            .get_or_insert_with(slice_start, || Accumulator::new(with_sketch));
        slice.add(ts, value);

        let mut start = last_start;
        while start + self.size > ts {
            if !self.expired(start, watermark) {
                let end = start + self.size;
                if new_slice {
                    let (_, new_window) = self.keys[idx].windows.get_or_insert_with(start, || None);
                    if new_window {
                        if end - 1 > watermark {
                            self.timers.insert(Timer {
                                at: end - 1,
                                kind: TimerKind::Fire,
                                key,
                                start,
                            });
                        } else {
                            self.timers.insert(self.expiry_timer(key, start));
                        }
                    }
                }
                if end - 1 <= watermark {
                    // Fired already but not expired: a late update within allowed lateness.
                    self.emit(key, start, metric_id, out);
                }
            }
            start -= self.slide;
        }
    }

    fn expiry_timer(&self, key: u32, start: Millis) -> Timer {
        Timer {
            at: start + self.size - 1 + self.lateness,
            kind: TimerKind::Expire,
            key,
            start,
        }
    }

    pub fn advance(&mut self, watermark: Millis, names: &[Arc<str>], out: &mut Vec<Output>) {
        while let Some(timer) = self.timers.pop_due(watermark) {
            let name = &names[timer.key as usize];
            match timer.kind {
                TimerKind::Fire => {
                    self.emit(timer.key, timer.start, name, out);
                    if self.lateness == 0 {
                        self.expire(timer.key, timer.start);
                    } else {
                        self.timers
                            .insert(self.expiry_timer(timer.key, timer.start));
                    }
                }
                TimerKind::Expire => self.expire(timer.key, timer.start),
            }
        }
    }

    fn emit(&mut self, key: u32, start: Millis, metric_id: &Arc<str>, out: &mut Vec<Output>) {
        let state = &mut self.keys[key as usize];
        let Some(revision) = state.windows.get_mut(&start) else {
            return;
        };
        let next = revision.map_or(0, |r| r + 1);
        *revision = Some(next);
        if let Some(r) = self.result(&self.keys[key as usize], start, metric_id, next) {
            out.push(Output::Result(r));
        }
    }

    /// The window at `start` of a key as it stands: the merge of its slices.
    fn result(
        &self,
        state: &KeyState,
        start: Millis,
        metric_id: &Arc<str>,
        revision: u32,
    ) -> Option<WindowResult> {
        let end = start + self.size;
        let mut slices = state.slices.range(start..end).map(|(_, acc)| acc);
        let first = slices.next()?;
        let mut merged;
        let acc = match slices.next() {
            None => first,
            Some(second) => {
                merged = first.clone();
                merged.merge(second);
                for acc in slices {
                    merged.merge(acc);
                }
                &merged
            }
        };
        Some(WindowResult::from_accumulator(
            metric_id,
            &self.def.name,
            (start, end),
            acc,
            &self.def.extra,
            revision,
        ))
    }

    /// The windows that have not fired yet, as they stand now (early firing). Reads only.
    pub fn partials(&self, names: &[Arc<str>], out: &mut Vec<WindowResult>) {
        for (key, state) in self.keys.iter().enumerate() {
            let Some(metric_id) = names.get(key) else {
                continue;
            };
            for (&start, revision) in state.windows.iter() {
                if revision.is_none() {
                    out.extend(self.result(state, start, metric_id, 0));
                }
            }
        }
    }

    fn expire(&mut self, key: u32, start: Millis) {
        let state = &mut self.keys[key as usize];
        state.windows.remove(&start);
        // Slices before `start + slide` belong only to windows starting at or before `start`,
        // all of which have expired by now (windows of one key expire in start order).
        state.slices.remove_before(&(start + self.slide));
    }
}
