//! The store conformance suite against a real Apache Cassandra node, plus what only this backend
//! promises: convergence whatever the order writes land in, and retention by TTL.
//!
//! The node comes from `STREAMPULSE_TEST_CASSANDRA` (`host:port`, e.g. the address printed by
//! `deploy/local/services.sh start cassandra`). Without it each test prints "skipped" and passes,
//! unless `CI` is set: then it fails. Every test works in a keyspace of its own, dropped at the
//! end.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::collections::BTreeMap;
use std::time::Duration;
use streampulse_core::clock::now_ms;

use proptest::prelude::*;
use streampulse_cassandra::{CassandraConfig, CassandraStore};
use streampulse_core::output::{Output, WindowResult};
use streampulse_store::conformance::{self, all, query, result};
use streampulse_store::{ResultStore, RetentionPolicy};

const ENV: &str = "STREAMPULSE_TEST_CASSANDRA";

/// The node's address, or `None` (after saying so) when the test must be skipped.
fn node() -> Option<String> {
    streampulse_testkit::env::required(
        ENV,
        "a Cassandra node (host:port; deploy/local/services.sh start cassandra prints it)",
    )
}

/// A store over a keyspace of its own, dropped when the guard goes.
struct Fresh {
    store: CassandraStore,
    config: CassandraConfig,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        // Best effort: a throwaway keyspace left behind only costs disk.
        let _ = drop_keyspace(&self.config);
    }
}

fn drop_keyspace(config: &CassandraConfig) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .build()
            .await?;
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", config.keyspace), ())
            .await?;
        Ok(())
    })
}

fn fresh(name: &str, retention: RetentionPolicy) -> Option<Fresh> {
    let addr = node()?;
    let nanos = streampulse_core::clock::since_epoch().subsec_nanos();
    let short: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let config = CassandraConfig {
        contact_points: vec![addr],
        keyspace: format!("t_{short}_{:x}{nanos:x}", std::process::id()),
        request_timeout: Duration::from_secs(30),
        ..CassandraConfig::default()
    };
    let store = CassandraStore::connect(&config, retention).expect("connect");
    Some(Fresh { store, config })
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let Some(f) = fresh(stringify!($name), RetentionPolicy::default()) else { return };
            conformance::$name(&f.store);
        }
    )*};
}

conformance!(
    the_catalog_lists_metrics_by_id_match_and_tags_in_pages,
    results_are_filtered_by_the_tags_in_the_metric_catalog,
    upsert_of_the_same_key_keeps_one_row_with_the_last_value,
    retract_deletes_from_both_access_paths,
    queries_respect_half_open_range_filters_order_and_limit,
    two_jobs_do_not_see_each_others_rows,
    late_events_are_stored_idempotently_and_queried_by_event_time,
    raw_events_are_upserted_idempotently_and_read_by_metric_and_time,
    an_alert_keeps_its_highest_sequence_whatever_the_arrival_order,
    alert_queries_return_overlapping_episodes_newest_first,
    alert_queries_keep_alerts_carrying_every_given_tag,
    alert_queries_filter_by_metric_state_severity_and_limit,
    a_series_longer_than_a_page_reads_whole_and_in_order,
    a_scan_budget_cuts_pages_that_resume_where_they_stopped,
);

#[test]
fn rows_expire_by_ttl_from_their_event_time() {
    let retention = RetentionPolicy {
        results: Some(Duration::from_secs(60)),
        ..RetentionPolicy::default()
    };
    let Some(f) = fresh("ttl", retention) else {
        return;
    };
    let now = now_ms();
    // Ends 57 s ago: about 3 s of retention left. Ended 61 s ago: already gone, never written.
    let soon = WindowResult {
        window_end: now - 57_000,
        ..result("m", "w", now - 67_000, 0)
    };
    let gone = WindowResult {
        window_end: now - 61_000,
        ..result("m", "w", now - 71_000, 0)
    };
    f.store
        .apply(
            "job",
            0,
            &[Output::Result(soon.clone()), Output::Result(gone)],
        )
        .expect("apply");
    let q = query("job", 0, i64::MAX, Some("m"), None, 10);
    assert_eq!(f.store.query_results(&q).expect("query"), vec![soon]);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(f.store.query_results(&q).expect("query"), vec![]);
    assert_eq!(f.store.query_results(&all("job")).expect("query"), vec![]);
}

/// One write of the model: a window's revision, or the retraction of a session.
#[derive(Debug, Clone)]
enum Op {
    Put(u8, u32),
    Retract(u8),
}

fn key_start(k: u8) -> i64 {
    1_700_000_000_000 + i64::from(k) * 10_000
}

fn output(op: &Op) -> Output {
    match *op {
        Op::Put(k, rev) => Output::Result(result("m", "s", key_start(k), rev)),
        Op::Retract(k) => Output::Retract {
            metric_id: "m".into(),
            window: "s".into(),
            window_start: key_start(k),
            window_end: key_start(k) + 10_000,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// What a pipeline emits per key (revisions 0..n, then perhaps a retraction), written in any
    /// order, split into any batches, with any of it replayed: the rows are those of the last
    /// emission of each key (none for a retracted one).
    #[test]
    fn writes_converge_whatever_order_they_land_in(
        revisions in prop::collection::vec((0u32..4, any::<bool>()), 1..6),
        order in prop::collection::vec(any::<u32>(), 40),
        cuts in prop::collection::vec(1usize..6, 10),
        replays in prop::collection::vec(any::<bool>(), 40),
    ) {
        let Some(f) = fresh("converge", RetentionPolicy::default()) else { return Ok(()) };
        let mut ops = Vec::new();
        let mut model: BTreeMap<u8, Option<u32>> = BTreeMap::new();
        for (k, &(last, retracted)) in revisions.iter().enumerate() {
            let k = k as u8;
            for rev in 0..=last {
                ops.push(Op::Put(k, rev));
            }
            if retracted {
                ops.push(Op::Retract(k));
            }
            model.insert(k, (!retracted).then_some(last));
        }
        // Replays: some writes land twice.
        let mut landed: Vec<Op> = ops.clone();
        for (op, again) in ops.iter().zip(&replays) {
            if *again {
                landed.push(op.clone());
            }
        }
        let mut keyed: Vec<(u32, Op)> = landed.into_iter().zip(order.iter().cycle()).map(|(o, k)| (*k, o)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let shuffled: Vec<Output> = keyed.iter().map(|(_, o)| output(o)).collect();
        let mut rest = &shuffled[..];
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*cut).min(rest.len()));
            f.store.apply("job", 0, batch).expect("apply");
            rest = tail;
        }
        let want: Vec<WindowResult> = model
            .iter()
            .filter_map(|(k, rev)| rev.map(|r| result("m", "s", key_start(*k), r)))
            .collect();
        let by_time = f.store.query_results(&all("job")).expect("by time");
        prop_assert_eq!(&by_time, &want);
        let by_metric = f.store
            .query_results(&query("job", i64::MIN, i64::MAX, Some("m"), None, 1000))
            .expect("by metric");
        prop_assert_eq!(&by_metric, &want);
    }
}
