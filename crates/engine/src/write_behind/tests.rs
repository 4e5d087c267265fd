//! The write-behind thread over the embedded store, counting where its calls ran and failing
//! them on demand.

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use super::*;
use crate::fakes::{job, FlakyStore};

/// Polls `done` for up to 10 s.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_wake_runs_the_store_s_write_behind_on_the_thread_and_its_failure_shows_until_a_call_succeeds()
{
    let dir = tempfile::tempdir().unwrap();
    let job = job();
    let store = Arc::new(FlakyStore::open(dir.path()));
    let counters = Arc::new(JobCounters::new(&job, 2));
    let writer = WriteBehind::start(&job.name, store.clone(), counters.clone()).unwrap();
    writer.wake();
    eventually("a call", || store.behind_calls.load(SeqCst) == 1);
    assert_eq!(
        store.behind_calls_off_caller.load(SeqCst),
        1,
        "on its thread"
    );

    store.failing_behind.store(true, SeqCst);
    let failing = |counters: &JobCounters| counters.store_failing.lock().unwrap().clone();
    counters
        .store_failing
        .lock()
        .unwrap()
        .insert(1, "an apply of partition 1 failed".into());
    writer.wake();
    eventually("the failure counted", || {
        counters.store_errors.load(SeqCst) == 1
    });
    assert!(failing(&counters)
        .get(&FAILING_SLOT)
        .is_some_and(|e| e.contains("disk full")));

    store.failing_behind.store(false, SeqCst);
    writer.wake();
    eventually("its failure cleared", || {
        !failing(&counters).contains_key(&FAILING_SLOT)
    });
    assert!(
        failing(&counters).contains_key(&1),
        "a partition's failed apply is the partition's to clear"
    );
    drop(writer);
    let calls = store.behind_calls.load(SeqCst);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        store.behind_calls.load(SeqCst),
        calls,
        "no call once stopped"
    );
}

/// A call that could not try (a flush or another caller at it) neither clears the thread's
/// failure nor ends its work: it calls again by itself until one gets through.
#[test]
fn a_busy_store_is_called_again_unasked_and_keeps_the_failure_until_a_call_goes_through() {
    let dir = tempfile::tempdir().unwrap();
    let job = job();
    let store = Arc::new(FlakyStore::open(dir.path()));
    let counters = Arc::new(JobCounters::new(&job, 1));
    let writer = WriteBehind::start(&job.name, store.clone(), counters.clone()).unwrap();
    let failing = || {
        counters
            .store_failing
            .lock()
            .unwrap()
            .contains_key(&FAILING_SLOT)
    };
    store.failing_behind.store(true, SeqCst);
    writer.wake();
    eventually("the failure shown", failing);
    let calls = store.behind_calls.load(SeqCst);
    store.busy_behind.store(5, SeqCst);
    store.failing_behind.store(false, SeqCst);
    writer.wake();
    eventually("a busy call", || {
        store.behind_calls.load(SeqCst) >= calls + 2
    });
    let (still, now) = (failing(), store.behind_calls.load(SeqCst));
    assert!(
        still || now >= calls + 6,
        "cleared by a busy answer after {} calls",
        now - calls
    );
    eventually("cleared once a call went through", || !failing());
    assert!(
        store.behind_calls.load(SeqCst) >= calls + 6,
        "five busy answers and one that went through, from one wake"
    );
}

#[test]
fn wakes_during_a_call_make_one_more_call_not_one_each() {
    let dir = tempfile::tempdir().unwrap();
    let job = job();
    let store = Arc::new(FlakyStore::open(dir.path()));
    store.behind_delay_ms.store(50, SeqCst);
    let counters = Arc::new(JobCounters::new(&job, 1));
    let writer = WriteBehind::start(&job.name, store.clone(), counters).unwrap();
    writer.wake();
    // The thread took the request: it is in the call (50 ms).
    eventually("the first call began", || {
        !lock(&writer.shared.state).wanted
    });
    for _ in 0..100 {
        writer.wake();
    }
    eventually("the second call", || store.behind_calls.load(SeqCst) == 2);
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(
        store.behind_calls.load(SeqCst),
        2,
        "a hundred wakes, one call"
    );
    drop(writer);
}
