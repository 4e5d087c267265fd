//! The thread that does a job's put-off store work ([`ResultStore::write_behind`]) for its
//! partitions, so that no partition thread does it.
//!
//! The embedded store keeps each applied batch in memory and writes it (and its held-back index
//! rows) later. Done by the partition that had just published, that work (tens of milliseconds,
//! more when the index buffer is far over its cap) held up the partition's next events: an event
//! that fired a window waited for it, and which partition did it decided which metrics saw the
//! pause. Here partitions only wake this thread after publishing; it writes while they read on.
//!
//! It never holds anything back: if it falls behind, the store's own caps push back on `apply`,
//! and every read writes what waits before it reads. It must never stop a partition from
//! applying, nor drop a failure without counting it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use streampulse_store::{BehindOutcome, ResultStore};

use crate::runtime::EngineError;
use crate::status::JobCounters;

/// Where the thread's failure shows in [`JobCounters::store_failing`] (which `/readyz` and the
/// job's status read): not a partition's id.
pub const FAILING_SLOT: u32 = u32::MAX;

/// The start of the thread's name, followed by the job's.
pub const THREAD_NAME: &str = "write-behind";

/// Handle of the thread; dropping the last one stops it (after the call under way) and joins it.
pub struct WriteBehind {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Work was asked for since the thread last began a call.
    wanted: bool,
    stop: bool,
}

impl WriteBehind {
    /// Starts the thread for `job`, writing behind in `store` and counting failures in
    /// `counters`.
    pub fn start(
        job: &str,
        store: Arc<dyn ResultStore>,
        counters: Arc<JobCounters>,
    ) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        // One per job: the name says whose (Linux shows its first 15 bytes).
        let name = format!("{THREAD_NAME}-{job}");
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn({
                let (shared, job) = (shared.clone(), job.to_string());
                move || run(&shared, &job, store.as_ref(), &counters)
            })
            .map_err(|source| EngineError::Spawn {
                thread: name,
                source,
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for a call of the store's `write_behind`; returns at once. Calls asked for while one
    /// runs make one more after it.
    pub fn wake(&self) {
        let mut state = lock(&self.shared.state);
        if !state.wanted {
            state.wanted = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        lock(&self.shared.state).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the write-behind thread panicked");
            }
        }
    }
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBehind").finish_non_exhaustive()
    }
}

/// The state is two flags, whole at every step: a panic elsewhere left nothing half done.
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How soon the thread calls again, unasked, when a call left work (more than one call does,
/// or a durable flush or another job's thread held it): batches applied at the end of a flush
/// would otherwise wait for the next batch to wake it.
const AGAIN_AFTER: Duration = Duration::from_millis(10);

fn run(shared: &Shared, job: &str, store: &dyn ResultStore, counters: &JobCounters) {
    let mut again = false;
    loop {
        {
            let mut state = lock(&shared.state);
            let since = Instant::now();
            while !state.wanted && !state.stop {
                if again {
                    let left = AGAIN_AFTER.saturating_sub(since.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    state = shared
                        .wake
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                } else {
                    state = shared
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
            if state.stop {
                return;
            }
            state.wanted = false;
        }
        let outcome = store.write_behind();
        again = matches!(outcome, Ok(BehindOutcome::More | BehindOutcome::Busy));
        // A map of errors: whole at every step, whoever panicked holding it.
        let mut failing = counters
            .store_failing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match outcome {
            // It did not try: nothing is known of the store from this call.
            Ok(BehindOutcome::Busy) => {}
            Ok(BehindOutcome::Done | BehindOutcome::More) => {
                // A partition's own entry is its applies' (the emitter clears it).
                if failing.remove(&FAILING_SLOT).is_some() {
                    tracing::info!(job, "the result store's deferred writes go through again");
                }
            }
            Err(err) => {
                // The store retries it with the next call; a file failure shows in its
                // generation, which the checkpoint reads.
                tracing::warn!(job, error = %err, "the result store's deferred writes failed; retried with the next batch, or replayed from the last checkpoint if its file was reopened");
                counters.store_errors.fetch_add(1, Relaxed);
                failing.insert(FAILING_SLOT, err.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests;
