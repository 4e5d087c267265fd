//! Ingest over a real embedded log: valid lines are appended and acknowledged, invalid ones are
//! reported by line without costing the valid ones, a repeated idempotency key appends nothing,
//! and a job that does not read the log refuses events by name.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use streampulse_core::batch::{self, Framing};
use streampulse_log::{EmbeddedLog, LogConfig};

use super::*;
use crate::checkpoint::{CheckpointStore, FileCheckpointStorage};
use crate::fakes::{job, FakeSource, FlakyStore};
use crate::runtime::{InitialPosition, RuntimeConfig, StartFrom};

fn start(dir: &std::path::Path, embedded: bool) -> Runtime {
    let log = EmbeddedLog::open(
        &dir.join("log"),
        LogConfig {
            partitions: 2,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let source: Arc<dyn crate::source::EventSource> = if embedded {
        Arc::new(log.clone())
    } else {
        Arc::new(FakeSource::default())
    };
    let storage = FileCheckpointStorage::open(&dir.join("checkpoints")).unwrap();
    Runtime::start(
        job(),
        RuntimeConfig {
            checkpoint_interval: Duration::from_secs(3600),
            webhooks: Vec::new(),
            initial_position: InitialPosition::Earliest,
        },
        source,
        embedded.then_some(log),
        Arc::new(FlakyStore::open(&dir.join("store"))),
        CheckpointStore::new(Box::new(storage), "t", 3),
        StartFrom::LatestCheckpoint,
    )
    .unwrap()
}

fn items(runtime: &Runtime, body: &str) -> PreparedIngest {
    let items = batch::parse_refs(body.as_bytes(), Framing::Ndjson, &runtime.job().event, 1000);
    runtime.prepare_ingest(items.unwrap()).unwrap()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn invalid_lines_are_reported_by_line_and_the_valid_ones_are_appended() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(dir.path(), true);
    let now = streampulse_core::clock::now_ms();
    let far_ahead = now + 86_400_000;
    let body = format!(
        "{{\"metric_id\":\"a\",\"ts\":{now},\"value\":1}}\n\
         not json\n\
         {{\"metric_id\":\"b\",\"ts\":{far_ahead},\"value\":2}}\n\
         {{\"metric_id\":\"c\",\"ts\":{now},\"value\":3}}\n"
    );
    let report = block_on(runtime.ingest(items(&runtime, &body), None)).unwrap();
    assert_eq!(report.accepted, 2);
    let lines: Vec<usize> = report.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, [2, 3]);
    assert!(
        report.rejected[1].reason.contains("max_future"),
        "{:?}",
        report.rejected
    );
    let log = runtime.ingest_log().unwrap();
    assert_eq!(log.end_offset(0) + log.end_offset(1), 2);
    let c = runtime.counters();
    assert_eq!(
        (
            c.ingest_received.load(SeqCst),
            c.ingest_accepted.load(SeqCst),
            c.ingest_rejected.load(SeqCst)
        ),
        (4, 2, 2)
    );
    runtime.shutdown().unwrap();
}

#[test]
fn a_repeated_idempotency_key_appends_nothing_but_a_corrected_body_does() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(dir.path(), true);
    let now = streampulse_core::clock::now_ms();
    let body = format!("{{\"metric_id\":\"a\",\"ts\":{now},\"value\":1}}\n");
    let key = || Some("batch-1".to_string());
    let first = block_on(runtime.ingest(items(&runtime, &body), key())).unwrap();
    let again = block_on(runtime.ingest(items(&runtime, &body), key())).unwrap();
    assert!(!first.duplicate && again.duplicate);
    let log = runtime.ingest_log().unwrap();
    let appended = || log.end_offset(0) + log.end_offset(1);
    assert_eq!(appended(), 1);
    assert_eq!(runtime.counters().ingest_duplicate.load(SeqCst), 1);
    let corrected = format!("{{\"metric_id\":\"a\",\"ts\":{now},\"value\":2}}\n");
    let fixed = block_on(runtime.ingest(items(&runtime, &corrected), key())).unwrap();
    assert!(!fixed.duplicate, "the key is bound to the content");
    assert_eq!(appended(), 2);
    runtime.shutdown().unwrap();
}

#[test]
fn a_job_that_does_not_read_the_embedded_log_refuses_events_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = start(dir.path(), false);
    let body = "{\"metric_id\":\"a\",\"ts\":1,\"value\":1}\n";
    let items = batch::parse_refs(body.as_bytes(), Framing::Ndjson, &runtime.job().event, 1000);
    match runtime.prepare_ingest(items.unwrap()) {
        Err(IngestError::NotTheEmbeddedLog { job }) => assert_eq!(job, "t"),
        other => panic!("{other:?}"),
    }
    runtime.shutdown().unwrap();
}
