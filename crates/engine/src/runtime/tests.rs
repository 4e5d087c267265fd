//! The checkpoint coordinator and the restore at start, with fakes: a restart resumes where the
//! final checkpoint left off, a store that lost writes sends every partition back to the last
//! checkpoint, and start positions the source cannot serve are refused by name.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use streampulse_testkit::oracle;

use super::*;
use crate::checkpoint::FileCheckpointStorage;
use crate::fakes::{events, job, FakeSource, FlakyStore};

struct Setup {
    source: Arc<FakeSource>,
    store: Arc<FlakyStore>,
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(payloads: Vec<Vec<u8>>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let source = FakeSource::default();
        *source.records.lock().unwrap() = payloads;
        Self {
            source: Arc::new(source),
            store: Arc::new(FlakyStore::open(&dir.path().join("store"))),
            dir,
        }
    }

    fn start(&self, from: StartFrom, initial: InitialPosition) -> Result<Runtime, EngineError> {
        let storage = FileCheckpointStorage::open(&self.dir.path().join("checkpoints")).unwrap();
        Runtime::start(
            job(),
            RuntimeConfig {
                // Only the checkpoints a test asks for.
                checkpoint_interval: Duration::from_secs(3600),
                webhooks: Vec::new(),
                initial_position: initial,
            },
            self.source.clone(),
            None,
            self.store.clone(),
            CheckpointStore::new(Box::new(storage), "t", 3),
            from,
        )
    }

    fn stored(&self) -> BTreeMap<oracle::Key, oracle::Row> {
        self.store.windows("t")
    }
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn offset(runtime: &Runtime) -> u64 {
    runtime.counters().partitions[0].next_offset.load(SeqCst)
}

#[test]
fn a_restart_resumes_at_the_final_checkpoint() {
    let (payloads, sent) = events();
    let (first, rest) = payloads.split_at(50);
    let setup = Setup::new(first.to_vec());
    let runtime = setup
        .start(StartFrom::LatestCheckpoint, InitialPosition::Earliest)
        .unwrap();
    wait_until("the first half is read", || offset(&runtime) == 50);
    runtime.shutdown().unwrap();
    for p in rest {
        setup.source.push(p.clone());
    }
    let runtime = setup
        .start(StartFrom::LatestCheckpoint, InitialPosition::Earliest)
        .unwrap();
    assert_eq!(offset(&runtime), 50, "resumed at the final checkpoint");
    wait_until("everything is read", || offset(&runtime) == 101);
    runtime.shutdown().unwrap();
    assert_eq!(setup.stored(), oracle::batch(&job(), &sent));
}

#[test]
fn a_store_that_lost_writes_sends_the_partitions_back_to_the_last_checkpoint() {
    let (payloads, sent) = events();
    let (first, rest) = payloads.split_at(50);
    let setup = Setup::new(first.to_vec());
    let runtime = setup
        .start(StartFrom::LatestCheckpoint, InitialPosition::Earliest)
        .unwrap();
    wait_until("the first half is read", || offset(&runtime) == 50);
    runtime.savepoint("half").unwrap();
    for p in rest {
        setup.source.push(p.clone());
    }
    wait_until("everything is read", || offset(&runtime) == 101);
    // The store was reopened after an I/O failure: what it took since the checkpoint may be gone.
    setup.store.generation.store(1, SeqCst);
    match runtime.savepoint("after") {
        Err(EngineError::StoreReopened { from }) => {
            assert!(from.starts_with("checkpoint "), "{from}")
        }
        other => panic!("a checkpoint must not pass writes the store may have lost: {other:?}"),
    }
    // The partition replays from offset 50 (the savepoint's) and writes everything again: 51
    // records read a second time.
    let events = || runtime.counters().partitions[0].events.load(SeqCst);
    wait_until("the replay catches up", || events() == 101 + 51);
    wait_until("the replay is applied", || offset(&runtime) == 101);
    runtime.savepoint("replayed").unwrap();
    runtime.shutdown().unwrap();
    assert_eq!(setup.stored(), oracle::batch(&job(), &sent));
    assert_eq!(runtime.counters().checkpoints_failed.load(SeqCst), 1);
}

#[test]
fn start_offsets_the_source_cannot_serve_are_refused_by_name() {
    let (payloads, _) = events();
    let setup = Setup::new(payloads);
    setup.source.start.store(10, SeqCst);
    let err = |initial| {
        setup
            .start(StartFrom::LatestCheckpoint, initial)
            .err()
            .unwrap()
    };
    assert!(matches!(
        err(InitialPosition::Offsets(vec![5])),
        EngineError::OffsetTruncated {
            partition: 0,
            offset: 5,
            first: 10
        }
    ));
    assert!(matches!(
        err(InitialPosition::Offsets(vec![500])),
        EngineError::OffsetBeyondLog {
            offset: 500,
            end: 101,
            ..
        }
    ));
    assert!(matches!(
        err(InitialPosition::Offsets(vec![10, 10])),
        EngineError::PartitionMismatch {
            found: 2,
            expected: 1,
            ..
        }
    ));
    assert!(matches!(
        setup.start(
            StartFrom::Savepoint("none".into()),
            InitialPosition::Earliest
        ),
        Err(EngineError::Checkpoint(CheckpointError::SavepointNotFound(
            _
        )))
    ));
    let runtime = setup
        .start(StartFrom::LatestCheckpoint, InitialPosition::Latest)
        .unwrap();
    assert_eq!(
        offset(&runtime),
        101,
        "latest: only what arrives from now on"
    );
    runtime.shutdown().unwrap();
}
