//! The job as seen by a process that only serves its results (`streampulse serve`): the job runs
//! in the workers of a consumer group, which write every partition to the shared store. This
//! process has no partitions, takes no checkpoints and refuses stops with a savepoint and
//! savepoints. Its readiness is the shared store's: nothing else here can fail, so the driver
//! thread reads one row of the store every [`PROBE_EVERY`] and `/readyz` answers 503 with the
//! error while that read fails.
//!
//! Never writes to the store: the probe is a point read of a key no alert has.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use streampulse_core::job::Job;
use streampulse_store::ResultStore;

use super::{Control, EngineError, Runtime, RuntimeParts};
use crate::feed::LiveFeed;
use crate::status::JobCounters;

/// How often the shared store is probed: how long `/readyz` may lag behind an outage.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The alert id the probe reads (alert ids are hashes, so no alert has it).
const PROBE_ID: &str = "streampulse-readiness-probe";

/// The key of the probe's entry among the job's failing store writers.
const PROBE_SLOT: u32 = 0;

/// Why a process that serves a job's results cannot control the job.
const REMOTE: &str =
    "this process only serves the job's results (streampulse serve); the job runs \
                      in its workers, which take its checkpoints and stop with them";

impl Runtime {
    /// A job that runs in other processes (the workers of a consumer group), as seen by a
    /// process that only serves its results from the shared `store`: it has no partitions and
    /// no counters, `feed` is filled by someone else, savepoints and stops are refused, it
    /// reports the state `remote`, and its status carries the store's error while a read of
    /// the store fails.
    pub fn remote(
        job: Job,
        feed: LiveFeed,
        store: Arc<dyn ResultStore>,
    ) -> Result<Self, EngineError> {
        let (control, requests) = mpsc::channel::<Control>();
        let counters = Arc::new(JobCounters::new(&job, 0));
        let name = job.name.clone();
        let watched = counters.clone();
        let driver = std::thread::Builder::new()
            .name("remote-job".into())
            .spawn(move || loop {
                probe(store.as_ref(), &name, &watched);
                match requests.recv_timeout(PROBE_EVERY) {
                    Ok(Control::Savepoint { reply, .. }) => {
                        let _ = reply.send(Err(EngineError::Unsupported(REMOTE)));
                    }
                    Ok(Control::Stop {
                        savepoint: Some(_),
                        reply,
                    }) => {
                        let _ = reply.send(Err(EngineError::Unsupported(REMOTE)));
                    }
                    // This process exits: nothing of the job's is here to checkpoint.
                    Ok(Control::Stop {
                        savepoint: None,
                        reply,
                    }) => {
                        let _ = reply.send(Ok(None));
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|source| EngineError::Spawn {
                thread: "remote-job".into(),
                source,
            })?;
        Ok(Self::assemble(
            RuntimeParts {
                job,
                ingest_log: None,
                counters,
                webhooks: None,
                feed,
                control,
                driver,
                log_end: Arc::new(|_| 0),
                failure: Arc::default(),
            },
            true,
        ))
    }
}

/// Reads one row of the store; records its error (or clears it) where `/readyz` looks.
fn probe(store: &dyn ResultStore, job: &str, counters: &JobCounters) {
    let outcome = store.get_alert(job, PROBE_ID);
    let Ok(mut failing) = counters.store_failing.lock() else {
        return;
    };
    match outcome {
        Ok(_) => {
            if failing.remove(&PROBE_SLOT).is_some() {
                tracing::info!(job, "the result store answers again");
            }
        }
        Err(err) => {
            if failing.insert(PROBE_SLOT, err.to_string()).is_none() {
                tracing::warn!(job, error = %err, "the result store does not answer: not ready");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Instant;

    use super::*;
    use crate::fakes::{job, FlakyStore};
    use crate::feed::LIVE_FEED_CAPACITY;

    fn until(what: &str, runtime: &Runtime, done: impl Fn(&Runtime) -> bool) {
        let deadline = Instant::now() + PROBE_EVERY * 5;
        while !done(runtime) {
            assert!(Instant::now() < deadline, "{what}: {:?}", runtime.status());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn readiness_follows_the_shared_store_and_savepoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FlakyStore::open(&dir.path().join("store")));
        let runtime =
            Runtime::remote(job(), LiveFeed::new(LIVE_FEED_CAPACITY), store.clone()).unwrap();
        assert_eq!(runtime.status().state, "remote");
        assert_eq!(runtime.status().store_error, None);

        store.failing.store(true, SeqCst);
        until("the store's outage was not reported", &runtime, |r| {
            r.status()
                .store_error
                .is_some_and(|e| e.contains("timed out"))
        });
        store.failing.store(false, SeqCst);
        until("the store's recovery was not noticed", &runtime, |r| {
            r.status().store_error.is_none()
        });

        let refused = runtime.savepoint("sp").unwrap_err().to_string();
        assert!(refused.contains("serve"), "{refused}");
        assert_eq!(
            store.failed_applies.load(SeqCst),
            0,
            "the probe never writes"
        );
        runtime.shutdown().unwrap();
    }
}
