//! The platform on the Cassandra store, against a real Apache Cassandra node
//! (`STREAMPULSE_TEST_CASSANDRA`; skipped without it, a failure under `CI`): the Flink parity job
//! fed over HTTP gives Flink's rows read back through the API, and a second process on the same
//! keyspace (another data directory, no events of its own) answers the same queries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod flink_support;
mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use flink_support::{assert_same, read_flink, repo, rows_by_window, WINDOWS};
use support::{cassandra_node, cassandra_store_yaml, free_port, Platform};

const START: i64 = 1_699_999_800_000;
const END: i64 = 1_700_000_400_000;

fn parity_config(store: &str) -> String {
    format!(
        "log:\n  partitions: 1\ncheckpoint:\n  interval: 1s\n{store}job:\n  \
         max_out_of_orderness: 5s\n  idle_timeout: 2s\n  windows:\n    \
         - {{name: tumble_10s, type: tumbling, size: 10s}}\n    \
         - {{name: hop_30s_10s, type: sliding, size: 30s, slide: 10s}}\n    \
         - {{name: session_5s, type: session, gap: 5s}}\n  detectors: []\n"
    )
}

fn public_chunks() -> Vec<String> {
    let file = std::fs::File::open(repo().join("testdata/public.jsonl.gz")).unwrap();
    let lines: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect();
    lines.chunks(20_000).map(|c| c.join("\n")).collect()
}

fn check_parity(p: &Platform) {
    let ours = rows_by_window(&p.walk_results(&format!("start={START}&end={END}")));
    for (window, file) in WINDOWS {
        let flink = read_flink(&repo().join("testdata/flink").join(file));
        assert_same(window, ours.get(window).unwrap_or(&BTreeMap::new()), &flink);
    }
}

#[test]
fn flink_parity_through_cassandra_and_a_second_process_reads_the_same_rows() {
    let Some(node) = cassandra_node() else { return };
    let store = cassandra_store_yaml(&node, "parity");
    let config = parity_config(&store);
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(&dir.path().join("a"), &config, free_port());
    for chunk in public_chunks() {
        let (status, body) = p.post(&chunk, "application/x-ndjson", None).unwrap();
        assert_eq!(status, 200, "{body}");
    }
    p.wait_drained(Duration::from_secs(180));
    // The last windows fire on the idle flush; the drained status says none is open.
    check_parity(&p);

    // Another process with its own (empty) log and data directory, on the same keyspace: every
    // row is there, from the shared store.
    let q = Platform::start(&dir.path().join("b"), &config, free_port());
    let deadline = Instant::now() + Duration::from_secs(5);
    while q.status()["partitions"].as_array().is_none() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    check_parity(&q);
}

#[test]
fn an_unreachable_cluster_stops_the_start_naming_the_contact_points() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = format!(
        "store:\n  backend: cassandra\n  cassandra:\n    contact_points: [\"127.0.0.1:{port}\"]\n    connect_timeout: 1s\n"
    );
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot connect to Cassandra at 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn the_example_config_checks_and_initialises_a_local_node() {
    let example = repo().join("examples/cassandra.yaml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["check-config", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("store cassandra (keyspace streampulse on 127.0.0.1:9042)"),
        "{text}"
    );
    // `store init` against the example's own address, when that is the test node.
    let Some(node) = cassandra_node() else { return };
    if node != "127.0.0.1:9042" {
        eprintln!("skipped store init: the test node is {node}, the example names 127.0.0.1:9042");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["store", "init", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("holds StreamPulse schema version 1"),
        "{text}"
    );
}

/// The node's TLS port and the CA that signed its certificate, from `STREAMPULSE_TEST_CASSANDRA_TLS`
/// (`tls=HOST:PORT ca=FILE`, as `deploy/local/services.sh cassandra-tls` prints it).
fn cassandra_tls() -> Option<(String, String)> {
    let spec = streampulse_testkit::env::required(
        "STREAMPULSE_TEST_CASSANDRA_TLS",
        "a Cassandra node's TLS port and CA (deploy/local/services.sh cassandra-tls prints them)",
    )?;
    let field = |name: &str| {
        spec.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .unwrap_or_else(|| panic!("STREAMPULSE_TEST_CASSANDRA_TLS has no {name}: {spec}"))
            .to_string()
    };
    Some((field("tls="), field("ca=")))
}

/// `store init` with `store` (a `store:` section); its exit status and stderr.
fn store_init(dir: &std::path::Path, store: &str) -> (bool, String) {
    let path = dir.join("init.yaml");
    std::fs::write(&path, store).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["store", "init", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tls_to_the_cluster_verifies_the_nodes_certificate() {
    let Some((node, ca)) = cassandra_tls() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tls = |ca_file: &str| {
        format!(
            "{}    tls:\n      enabled: true\n      ca_file: {ca_file}\n",
            cassandra_store_yaml(&node, "tls")
        )
    };
    // A CA that did not sign the node's certificate: no connection, whatever else would work.
    let (ok, err) = store_init(dir.path(), &tls("/etc/ssl/certs/ca-certificates.crt"));
    assert!(
        !ok,
        "a node whose certificate no trusted CA signed was accepted"
    );
    assert!(
        err.contains(&format!("cannot connect to Cassandra at {node}")),
        "{err}"
    );

    // The right CA: events in, window results back out, over TLS.
    let store = tls(&ca);
    let config = format!(
        "log:\n  partitions: 1\n{store}job:\n  max_out_of_orderness: 0s\n  windows:\n    \
         - {{name: tumble_1s, type: tumbling, size: 1s}}\n  detectors: []\n"
    );
    let p = Platform::start(&dir.path().join("p"), &config, free_port());
    let base = 1_700_000_000_000_i64;
    let events: Vec<_> = (0..50)
        .map(|i| ("m".to_string(), base + i * 100, i as f64))
        .collect();
    let (status, body) = p
        .post(&support::ndjson(&events), "application/x-ndjson", None)
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = p.results(base, base + 10_000, Some("m"));
        let counts: Vec<u64> = rows.iter().map(|r| r["count"].as_u64().unwrap()).collect();
        // Windows [0,1s) to [3s,4s) have fired (the watermark is at 4.9 s): 10 events each.
        if counts.len() >= 4 {
            assert_eq!(&counts[..4], &[10, 10, 10, 10], "{rows:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no results over TLS: {rows:?}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
