//! Checkpoints in an S3 bucket, against a real S3-protocol server that is not ours: `moto_server`
//! (PyPI's `moto[server]`, found through `STREAMPULSE_TEST_MOTO`; skipped without it, a failure
//! without it under CI). The platform checkpoints to `s3://<bucket>/ckpt`, stops with Ctrl-C,
//! restarts on the same data directory and must resume from the checkpoint in the bucket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{agent, free_port, Platform};

const ENV: &str = "STREAMPULSE_TEST_MOTO";
const BUCKET: &str = "streampulse-checkpoints";
/// A multiple of the 10 s window, so windows start at T0, T0 + 10 s, ...
const T0: i64 = 1_700_000_000_000;

/// The `moto_server` binary, or `None` (after saying so) when the test must be skipped.
fn moto_binary() -> Option<PathBuf> {
    streampulse_testkit::env::required_file(
        ENV,
        "moto's S3 server (pip install 'moto[server]': <venv>/bin/moto_server)",
    )
}

/// A moto S3 server on loopback, stopped on drop.
struct Moto {
    child: Child,
    base: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    fn start(binary: &PathBuf, log: &std::path::Path) -> Moto {
        let port = free_port();
        let log = std::fs::File::create(log).expect("moto log file");
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let mut moto = Moto {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while agent().get(&format!("{}/", moto.base)).call().is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited: {status}");
            }
            assert!(Instant::now() < deadline, "moto_server did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Creates a bucket; moto accepts any credentials, and an unsigned request too.
    fn create_bucket(&self, bucket: &str) {
        let resp = agent()
            .put(&format!("{}/{bucket}", self.base))
            .send_empty()
            .expect("PUT bucket");
        assert_eq!(resp.status(), 200, "create bucket {bucket}");
    }

    /// The keys under `prefix`, from a ListObjectsV2 request.
    fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut resp = agent()
            .get(&format!(
                "{}/{bucket}?list-type=2&prefix={prefix}",
                self.base
            ))
            .call()
            .expect("list bucket");
        assert_eq!(resp.status(), 200);
        let xml = resp.body_mut().read_to_string().expect("listing");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
            .collect()
    }
}

/// Ids of the job's checkpoint objects in the bucket, sorted.
fn checkpoint_ids(keys: &[String]) -> Vec<u64> {
    let mut ids: Vec<u64> = keys
        .iter()
        .filter_map(|k| {
            k.strip_prefix("ckpt/default/chk-")?
                .strip_suffix(".ckpt")?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn events(seconds: std::ops::Range<i64>) -> String {
    seconds
        .map(|s| json!({"metric_id": "m", "ts": T0 + s * 1000, "value": 1}).to_string() + "\n")
        .collect()
}

fn sum(status: &Value, field: &str) -> u64 {
    status["partitions"]
        .as_array()
        .map(|parts| parts.iter().filter_map(|p| p[field].as_u64()).sum())
        .unwrap_or(0)
}

/// Waits for a checkpoint completed by this process and returns its id.
fn wait_checkpoint(p: &Platform) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = p.status();
        if let Some(id) = status["last_checkpoint"]["id"].as_u64() {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint in 30 s: {status}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn checkpoints_go_to_s3_and_a_restart_resumes_from_them() {
    let Some(binary) = moto_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&binary, &dir.path().join("moto.log"));
    moto.create_bucket(BUCKET);
    // No idle flushes: each run's processed-record count is then exactly the events it read.
    let config = format!(
        "checkpoint:
  storage: s3://{BUCKET}/ckpt
  storage_options:
    aws_endpoint: {endpoint}
    aws_allow_http: \"true\"
    aws_region: us-east-1
    aws_access_key_id: test
    aws_secret_access_key: test
  interval: 1s
job:
  max_out_of_orderness: 1s
  idle_timeout: 1h
  windows:
    - {{name: tumble_10s, type: tumbling, size: 10s}}
",
        endpoint = moto.base
    );

    // First run: 15 events, so the window [10 s, 20 s) is half full when it stops.
    let port = free_port();
    let p = Platform::start(dir.path(), &config, port);
    let (code, body) = p
        .post(&events(0..15), "application/x-ndjson", None)
        .unwrap();
    assert_eq!(code, 200, "{body}");
    p.wait_drained_to_log(Duration::from_secs(30));
    wait_checkpoint(&p);
    let log = p.log();
    assert!(p.interrupt().success(), "clean stop; log:\n{log}");

    let first = checkpoint_ids(&moto.keys(BUCKET, "ckpt/"));
    let Some(&last_id) = first.last() else {
        panic!(
            "no checkpoint object in the bucket: {:?}",
            moto.keys(BUCKET, "")
        );
    };
    assert!(
        first.len() <= 3,
        "retention (3) applies in the bucket: {first:?}"
    );
    assert!(
        !dir.path().join("data").join("checkpoints").exists(),
        "nothing is checkpointed to the data directory"
    );

    // Second run on the same data directory: it must start from that checkpoint.
    let p = Platform::start(dir.path(), &config, free_port());
    p.wait_drained_to_log(Duration::from_secs(30));
    let status = p.status();
    assert_eq!(
        sum(&status, "next_offset"),
        15,
        "resumed after the 15 events: {status}"
    );
    assert_eq!(
        sum(&status, "events"),
        0,
        "nothing replayed: the checkpoint covered every event: {status}"
    );
    let (code, body) = p
        .post(&events(15..30), "application/x-ndjson", None)
        .unwrap();
    assert_eq!(code, 200, "{body}");
    // Moves the watermark past 30 s, closing the windows up to there.
    let (code, body) = p.post(&events(45..46), "application/json", None).unwrap();
    assert_eq!(code, 200, "{body}");
    p.wait_drained_to_log(Duration::from_secs(30));
    let id = wait_checkpoint(&p);
    assert!(
        id > last_id,
        "checkpoint ids continue above the previous run's {last_id}: {id}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<Value> = [0, 10, 20]
            .iter()
            .map(|s| {
                let start = T0 + s * 1000;
                p.results(start, start + 1, Some("m"))
                    .first()
                    .map_or(Value::Null, |r| r["count"].clone())
            })
            .collect();
        // [10 s, 20 s) spans the restart: 5 events from the checkpointed state, 5 after it.
        if counts == [json!(10), json!(10), json!(10)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "window counts {counts:?}, expected 10 each\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(p.interrupt().success());

    let second = checkpoint_ids(&moto.keys(BUCKET, "ckpt/"));
    assert!(
        second.last().is_some_and(|&newest| newest > last_id) && second.len() <= 3,
        "newer checkpoints replace older ones in the bucket: {first:?} then {second:?}"
    );
}
