//! A worker's owned partitions without a broker: where an assigned partition starts, what a
//! checkpoint writes and commits, and that a store that lost writes stops the worker rather than
//! checkpointing past them.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use streampulse_core::event::Event;
use streampulse_engine::checkpoint::{FileCheckpointStorage, PartitionCheckpoint};
use streampulse_engine::fakes::{job, FlakyStore};
use streampulse_engine::feed::LiveFeed;
use streampulse_engine::status::JobCounters;
use streampulse_store::ResultStore;

use super::*;
use crate::config::{KafkaConfig, OnDataLoss};

struct Setup {
    parts: Partitions,
    store: Arc<FlakyStore>,
    _dir: tempfile::TempDir,
}

fn setup(start: StartPosition) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let job = job();
    let store = Arc::new(FlakyStore::open(&dir.path().join("store")));
    let counters = Arc::new(JobCounters::new(&job, 3));
    let storage = FileCheckpointStorage::open(&dir.path().join("checkpoints")).unwrap();
    // The producer connects lazily: nothing here sends a record, so no broker is needed.
    let config = KafkaConfig {
        brokers: "127.0.0.1:9".into(),
        ..KafkaConfig::default()
    };
    let parts = Partitions {
        job: job.clone(),
        topic: "events".into(),
        start,
        on_data_loss: OnDataLoss::Fail,
        owned: Default::default(),
        tally: OutputTally::new(&counters.metrics),
        emitter: Emitter {
            job_name: job.name.clone(),
            store: store.clone(),
            counters,
            webhooks: None,
            feed: LiveFeed::new(16),
            writer: None,
        },
        checkpoints: PartitionCheckpointStore::new(Box::new(storage), &job.name, 3),
        topics: OutputTopics::new(&config).unwrap(),
        fatal: None,
        store_generation: 0,
        tentative_writer: None,
        traces: Default::default(),
    };
    Setup {
        parts,
        store,
        _dir: dir,
    }
}

fn feed(parts: &mut Partitions, partition: u32, offsets: std::ops::Range<u64>) {
    let task = &mut parts.owned.get_mut(&partition).unwrap().task;
    for offset in offsets {
        let e = Event {
            metric_id: "m".into(),
            ts: offset as i64 * 1_000,
            value: 1.0,
            tags: Default::default(),
        };
        task.event(offset, &e.metric_id, Default::default, e.ts, e.value);
    }
}

#[test]
fn an_assigned_partition_resumes_at_its_checkpoint_or_at_the_configured_start() {
    let mut s = setup(StartPosition::Earliest);
    let snapshot = PartitionCheckpoint::of(1, 42, &PartitionPipeline::new(&s.parts.job)).unwrap();
    s.parts.checkpoints.write(7, 0, snapshot).unwrap();
    assert_eq!(
        s.parts.assign(1, None, || Some(0)).unwrap(),
        Offset::Offset(42)
    );
    assert_eq!(s.parts.owned[&1].checkpoint_id, 7);
    assert_eq!(
        s.parts.assign(0, None, || Some(0)).unwrap(),
        Offset::Beginning
    );
    let counters = &s.parts.emitter.counters.partitions;
    assert!(counters[0].owned.load(SeqCst) && counters[1].owned.load(SeqCst));
    assert_eq!(counters[1].next_offset.load(SeqCst), 42);

    let mut latest = setup(StartPosition::Latest);
    assert_eq!(latest.parts.assign(2, None, || None).unwrap(), Offset::End);
    assert_eq!(latest.parts.owned[&2].task.next_offset(), None);
    latest.parts.release(2);
    assert!(!latest.parts.emitter.counters.partitions[2]
        .owned
        .load(SeqCst));
}

#[test]
fn after_exactly_once_is_turned_off_no_uncommitted_tentative_checkpoint_is_restored() {
    let mut s = setup(StartPosition::Earliest);
    let pipeline = PartitionPipeline::new(&s.parts.job);
    let at = |offset| PartitionCheckpoint::of(1, offset, &pipeline).unwrap();
    s.parts.checkpoints.write(3, 0, at(30)).unwrap();
    let (committed, _) = s
        .parts
        .checkpoints
        .write_tentative(4, "a", 0, at(40))
        .unwrap();
    // Its transaction never committed: its outputs never reached the output topics.
    s.parts
        .checkpoints
        .write_tentative(5, "b", 0, at(50))
        .unwrap();
    assert_eq!(s.parts.tentative_writer, None, "at least once");
    // The last transaction's offsets name checkpoint 4.
    assert_eq!(
        s.parts.assign(1, Some(&committed), || Some(0)).unwrap(),
        Offset::Offset(40)
    );
    s.parts.release(1);
    // Once the job committed plainly (no reference): the latest plain checkpoint.
    assert_eq!(
        s.parts.assign(1, None, || Some(0)).unwrap(),
        Offset::Offset(30)
    );
    s.parts.release(1);
    // A named checkpoint that is gone: at least once, the latest plain one instead.
    assert_eq!(
        s.parts
            .assign(1, Some("00000000000000000009-gone"), || Some(0))
            .unwrap(),
        Offset::Offset(30)
    );
}

#[test]
fn under_exactly_once_a_partition_restores_the_checkpoint_its_committed_offset_names() {
    let mut s = setup(StartPosition::Earliest);
    s.parts.tentative_writer = Some(writer_token());
    let pipeline = PartitionPipeline::new(&s.parts.job);
    let at = |offset| PartitionCheckpoint::of(1, offset, &pipeline).unwrap();
    s.parts.checkpoints.write(3, 0, at(30)).unwrap();
    let (committed, _) = s
        .parts
        .checkpoints
        .write_tentative(4, "a", 0, at(40))
        .unwrap();
    // Newer, but its transaction never committed (a crash, or a zombie's).
    s.parts
        .checkpoints
        .write_tentative(5, "b", 0, at(50))
        .unwrap();
    let metadata = format!("streampulse-checkpoint:{committed}");
    let reference = committed_checkpoint(&metadata);
    assert_eq!(reference, Some(committed.as_str()));
    assert_eq!(
        s.parts.assign(1, reference, || Some(0)).unwrap(),
        Offset::Offset(40)
    );
    assert_eq!(s.parts.owned[&1].checkpoint_id, 4);
    s.parts.release(1);
    // No committed offset yet (the job ran at least once before): the latest plain checkpoint,
    // never a tentative one.
    assert_eq!(
        s.parts.assign(1, None, || Some(0)).unwrap(),
        Offset::Offset(30)
    );
    s.parts.release(1);
    match s
        .parts
        .assign(1, Some("00000000000000000009-gone"), || Some(0))
    {
        Err(KafkaError::MissingCheckpoint {
            partition: 1,
            reference,
            ..
        }) => {
            assert_eq!(reference, "00000000000000000009-gone");
        }
        other => panic!("expected MissingCheckpoint, got {other:?}"),
    }
    assert_eq!(committed_checkpoint(""), None);
    assert_eq!(committed_checkpoint("streampulse-checkpoint:"), None);
}

#[test]
fn a_checkpoint_stores_the_outputs_then_writes_and_commits_partitions_that_have_an_offset() {
    let mut s = setup(StartPosition::Latest);
    s.parts.assign(0, None, || Some(0)).unwrap();
    s.parts.assign(1, None, || Some(0)).unwrap();
    // Partition 0 read from offset 100 on; partition 1 has read nothing since a `latest` start.
    feed(&mut s.parts, 0, 100..130);
    let commits = s.parts.checkpoint(&[0, 1], None).unwrap();
    assert_eq!(commits, [(0, 130)]);
    let (id, snapshot) = s.parts.checkpoints.latest(0).unwrap().unwrap();
    assert_eq!((id, snapshot.next_offset), (1, 130));
    assert!(s.parts.checkpoints.latest(1).unwrap().is_none());
    // Windows closed by the events are in the store before the checkpoint that covers them.
    let stored = s
        .store
        .query_results(&streampulse_store::conformance::all("t"))
        .unwrap();
    assert_eq!(stored.len(), 2, "[100 s, 110 s) and [110 s, 120 s)");
    assert_eq!(
        s.parts.emitter.counters.checkpoints_completed.load(SeqCst),
        1
    );
}

#[test]
fn a_store_that_lost_writes_stops_the_worker_instead_of_checkpointing() {
    let mut s = setup(StartPosition::Earliest);
    s.parts.assign(0, None, || Some(0)).unwrap();
    feed(&mut s.parts, 0, 0..10);
    s.store.generation.store(1, SeqCst);
    match s.parts.checkpoint(&[0], None) {
        Err(EngineError::StoreReopened { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(s.parts.fatal.is_some());
    assert!(s.parts.checkpoints.latest(0).unwrap().is_none());
    assert_eq!(s.parts.emitter.counters.checkpoints_failed.load(SeqCst), 1);
}

#[test]
fn a_checkpoint_past_what_the_topic_holds_fails_or_skips_as_configured() {
    let mut s = setup(StartPosition::Earliest);
    let snapshot = PartitionCheckpoint::of(0, 100, &PartitionPipeline::new(&s.parts.job)).unwrap();
    s.parts.checkpoints.write(1, 0, snapshot).unwrap();
    match s.parts.assign(0, None, || Some(150)) {
        Err(err @ KafkaError::DataLoss { .. }) => {
            let message = err.to_string();
            for part in [
                "partition 0",
                "'events'",
                "offset 100",
                "offset 150 on",
                "50 records",
            ] {
                assert!(message.contains(part), "{part}: {message}");
            }
        }
        other => panic!("{other:?}"),
    }
    assert!(!s.parts.owned.contains_key(&0));
    // Still held: nothing lost.
    assert_eq!(
        s.parts.assign(0, None, || Some(100)).unwrap(),
        Offset::Offset(100)
    );

    s.parts.release(0);
    s.parts.on_data_loss = OnDataLoss::Skip;
    assert_eq!(
        s.parts.assign(0, None, || Some(150)).unwrap(),
        Offset::Offset(150)
    );
    assert_eq!(s.parts.owned[&0].task.next_offset(), Some(150));
    let c = &s.parts.emitter.counters.partitions[0];
    assert_eq!(c.lost_records.load(SeqCst), 50);
}

#[test]
fn records_removed_ahead_of_a_running_partition_fail_or_are_skipped_as_configured() {
    let mut s = setup(StartPosition::Earliest);
    s.parts.assign(0, None, || Some(0)).unwrap();
    feed(&mut s.parts, 0, 0..200);
    assert_eq!(s.parts.owned[&0].task.next_offset(), Some(200));
    // Not this partition: its position is inside what the topic holds; not owned.
    assert_eq!(s.parts.out_of_range(0, 100, 300).unwrap(), None);
    assert_eq!(s.parts.out_of_range(1, 500, 600).unwrap(), None);

    let message = s.parts.out_of_range(0, 250, 300).unwrap_err().to_string();
    for part in [
        "partition 0",
        "the worker reads at offset 200",
        "offset 250 on",
        "50 records",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    let rewound = s.parts.out_of_range(0, 0, 120).unwrap_err().to_string();
    assert!(rewound.contains("deleted and created again"), "{rewound}");

    s.parts.on_data_loss = OnDataLoss::Skip;
    assert_eq!(s.parts.out_of_range(0, 250, 300).unwrap(), Some(250));
    assert_eq!(
        s.parts.owned[&0].task.next_offset(),
        Some(250),
        "checkpoints resume past the gap"
    );
    let c = &s.parts.emitter.counters.partitions[0];
    assert_eq!(c.lost_records.load(SeqCst), 50);
    assert_eq!(
        s.parts.out_of_range(0, 250, 300).unwrap(),
        None,
        "counted once"
    );
}

#[test]
fn a_savepoint_the_group_was_started_from_wins_over_the_checkpoint_its_offsets_name() {
    let mut s = setup(StartPosition::Earliest);
    s.parts.tentative_writer = Some(writer_token());
    let pipeline = PartitionPipeline::new(&s.parts.job);
    let at = |offset| PartitionCheckpoint::of(1, offset, &pipeline).unwrap();
    let (committed, _) = s
        .parts
        .checkpoints
        .write_tentative(4, "a", 0, at(40))
        .unwrap();
    s.parts
        .checkpoints
        .write_savepoint_part("sp", 0, at(25))
        .unwrap();
    let one = PartitionCheckpoint::of(0, 5, &pipeline).unwrap();
    s.parts
        .checkpoints
        .write_savepoint_part("sp", 0, one)
        .unwrap();
    s.parts
        .checkpoints
        .assemble_savepoint("sp", 2, 0)
        .unwrap()
        .unwrap();
    assert!(s.parts.checkpoints.import_savepoint("sp", 2).unwrap());
    assert_eq!(
        s.parts.assign(1, Some(&committed), || Some(0)).unwrap(),
        Offset::Offset(25)
    );
    assert_eq!(s.parts.owned[&1].checkpoint_id, 5);
}
