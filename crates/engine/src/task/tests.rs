//! What a record, the idle clock and a rewind do to one partition's task, whatever drives it.

use std::time::{Duration, Instant};

use streampulse_core::job::{Job, JobSpec};
use streampulse_core::pipeline::PartitionPipeline;

use super::*;

fn job() -> Job {
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "t",
        "max_out_of_orderness": "0s",
        "windows": [{"name": "w", "type": "tumbling", "size": "10s"}],
        "detectors": [],
    }))
    .unwrap();
    spec.validate().unwrap()
}

fn task(next_offset: Option<u64>) -> (PartitionTask, JobCounters) {
    let job = job();
    (
        PartitionTask::new(0, PartitionPipeline::new(&job), next_offset),
        JobCounters::new(&job, 1),
    )
}

#[test]
fn records_the_state_covers_are_not_new() {
    let (mut t, _) = task(Some(10));
    assert!(!t.is_new(9) && t.is_new(10) && t.is_new(11));
    t.step_over(10);
    assert_eq!(t.next_offset(), Some(11));
    assert!(!t.is_new(10));
    // A `latest` start: everything is new until the first record.
    let (t, _) = task(None);
    assert!(t.is_new(0));
}

#[test]
fn events_advance_the_offset_and_close_windows_into_pending_outputs() {
    let (mut t, _) = task(Some(0));
    t.event(0, "m", Default::default, 1_000, 1.0);
    assert_eq!(t.next_offset(), Some(1));
    assert!(t.pending().iter().all(|o| !matches!(o, Output::Result(_))));
    t.event(1, "m", Default::default, 20_000, 2.0);
    assert!(t
        .pending()
        .iter()
        .any(|o| matches!(o, Output::Result(r) if r.count == 1)));
}

#[test]
fn a_partition_is_idle_only_after_the_timeout_and_with_windows_open() {
    let (mut t, counters) = task(Some(0));
    assert!(!t.idle_due(Duration::ZERO), "nothing to flush");
    t.event(0, "m", Default::default, 1_000, 1.0);
    t.arrived(Instant::now());
    assert!(!t.idle_due(Duration::from_secs(3600)));
    assert!(t.idle_due(Duration::ZERO));
    assert!(t.flush_idle(&counters));
    assert_eq!(counters.partitions[0].idle_flushes.load(Relaxed), 1);
    assert!(
        !t.idle_due(Duration::ZERO),
        "flushed: nothing left to close"
    );
}

#[test]
fn no_snapshot_without_an_offset_and_a_rewind_drops_pending_outputs() {
    let (t, counters) = task(None);
    assert!(t.snapshot(&counters).unwrap().is_none());
    let (mut t, counters) = task(Some(5));
    t.event(5, "m", Default::default, 1_000, 1.0);
    t.event(6, "m", Default::default, 20_000, 1.0);
    assert!(!t.pending().is_empty());
    let snapshot = t.snapshot(&counters).unwrap().unwrap();
    assert_eq!(snapshot.next_offset, 7);
    assert_eq!(
        counters.partitions[0].state_bytes.load(Relaxed),
        snapshot.state.len() as u64
    );
    t.rewind(PartitionPipeline::new(&job()), 5, &counters);
    assert!(t.pending().is_empty());
    assert_eq!(t.next_offset(), Some(5));
    assert_eq!(counters.partitions[0].next_offset.load(Relaxed), 5);
    assert_eq!(t.pipeline().open_windows(), 0);
}
