//! The emitter's order of effects (store first, then counters and the live feed) and its retry
//! rule, with a store that fails on demand.

use std::sync::atomic::Ordering::SeqCst;

use streampulse_core::aggregate::Accumulator;
use streampulse_core::output::{LateEvent, WindowResult};
use streampulse_store::conformance::all;

use super::*;
use crate::fakes::{job, FlakyStore};
use crate::feed::Emission;

fn result(start: i64) -> Output {
    let mut acc = Accumulator::new(false);
    acc.add(start, 2.0);
    Output::Result(WindowResult::from_accumulator(
        &"m".into(),
        &"w".into(),
        (start, start + 10_000),
        &acc,
        &[],
        0,
    ))
}

fn late() -> Output {
    Output::Late(LateEvent {
        window: "w".into(),
        metric_id: "m".into(),
        ts: 1,
        value: 1.0,
        watermark: 50_000,
        offset: 9,
    })
}

fn emitter(store: Arc<FlakyStore>) -> Emitter {
    let job = job();
    Emitter {
        job_name: job.name.clone(),
        store,
        counters: Arc::new(JobCounters::new(&job, 1)),
        webhooks: None,
        feed: LiveFeed::new(16),
        writer: None,
    }
}

#[test]
fn outputs_are_stored_before_they_are_counted_and_published() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::open(dir.path()));
    let emitter = emitter(store.clone());
    let mut live = emitter.feed.subscribe();
    let mut tally = OutputTally::new(&emitter.counters.metrics);
    let mut outputs = vec![result(0), result(10_000), late()];
    assert!(emitter.apply(
        0,
        &mut outputs,
        &mut tally,
        std::time::Instant::now(),
        |_| RetryDecision::Retry
    ));
    assert!(outputs.is_empty(), "applied outputs are cleared");
    assert_eq!(store.query_results(&all("t")).unwrap().len(), 2);
    let c = &emitter.counters.partitions[0];
    assert_eq!((c.results.load(SeqCst), c.late.load(SeqCst)), (2, 1));
    let published = live.try_recv().unwrap();
    let starts: Vec<i64> = published
        .chunk
        .emissions()
        .iter()
        .map(|e| match e {
            Emission::Result(r) => r.window_start,
            other => panic!("late events are not live results: {other:?}"),
        })
        .collect();
    assert_eq!(starts, [0, 10_000]);
    assert!(live.try_recv().is_none());
}

#[test]
fn a_failing_store_is_retried_and_nothing_is_published_until_it_takes_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::open(dir.path()));
    store.failing.store(true, SeqCst);
    let emitter = emitter(store.clone());
    let mut live = emitter.feed.subscribe();
    let mut tally = OutputTally::new(&emitter.counters.metrics);
    let mut outputs = vec![result(0)];
    let mut attempts = 0;
    let applied = emitter.apply(
        0,
        &mut outputs,
        &mut tally,
        std::time::Instant::now(),
        |err| {
            attempts += 1;
            assert!(err.to_string().contains("timed out"), "{err}");
            if attempts == 3 {
                RetryDecision::GiveUp
            } else {
                RetryDecision::Retry
            }
        },
    );
    assert!(!applied);
    assert_eq!(attempts, 3);
    assert_eq!(
        outputs.len(),
        1,
        "outputs stay pending when the caller gives up"
    );
    assert!(live.try_recv().is_none());
    assert_eq!(emitter.counters.store_errors.load(SeqCst), 3);
    assert!(emitter
        .counters
        .store_failing
        .lock()
        .unwrap()
        .contains_key(&0));
    assert_eq!(emitter.counters.partitions[0].results.load(SeqCst), 0);

    // The store is back: the same outputs go through, and the partition is no longer failing.
    store.failing.store(false, SeqCst);
    assert!(emitter.apply(
        0,
        &mut outputs,
        &mut tally,
        std::time::Instant::now(),
        |_| RetryDecision::GiveUp
    ));
    assert!(emitter.counters.store_failing.lock().unwrap().is_empty());
    assert_eq!(store.query_results(&all("t")).unwrap().len(), 1);
    assert!(matches!(
        live.try_recv().unwrap().chunk.emissions(),
        [Emission::Result(_)]
    ));
}

/// With a write-behind thread, the emitter wakes it instead of writing behind itself, and a
/// partition whose applies failed is no longer failing once one goes through.
#[test]
fn with_a_writer_the_put_off_writes_run_on_its_thread() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FlakyStore::open(dir.path()));
    let mut emitter = emitter(store.clone());
    let writer = WriteBehind::start("t", store.clone(), emitter.counters.clone()).unwrap();
    emitter.writer = Some(Arc::new(writer));
    let mut tally = OutputTally::new(&emitter.counters.metrics);
    store.failing.store(true, SeqCst);
    let mut outputs = vec![result(0)];
    let applied = emitter.apply(
        0,
        &mut outputs,
        &mut tally,
        std::time::Instant::now(),
        |_| RetryDecision::GiveUp,
    );
    assert!(!applied);
    assert!(emitter
        .counters
        .store_failing
        .lock()
        .unwrap()
        .contains_key(&0));
    store.failing.store(false, SeqCst);
    assert!(emitter.apply(
        0,
        &mut outputs,
        &mut tally,
        std::time::Instant::now(),
        |_| RetryDecision::GiveUp
    ));
    assert!(emitter.counters.store_failing.lock().unwrap().is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store.behind_calls.load(SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "never written behind");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        store.behind_calls_off_caller.load(SeqCst),
        store.behind_calls.load(SeqCst),
        "only on the writer's thread"
    );
    assert_eq!(store.query_results(&all("t")).unwrap().len(), 1);
}
