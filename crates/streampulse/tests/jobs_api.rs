//! `POST /jobs`: a job submitted to a running process reads the same events as the configured
//! job, gives Flink's rows, survives a clean restart (stopped) and a SIGKILL (running), resumes
//! from a savepoint, and starts at the end of the log when asked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod flink_support;
mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use flink_support::{assert_same, read_flink, repo, rows_by_window, WINDOWS};
use serde_json::{json, Value};
use support::{free_port, Platform};

/// The configured job: one window also in the parity job, so both can be checked against Flink.
const CONFIG: &str = "log:\n  partitions: 1\ncheckpoint:\n  interval: 1s\njob:\n  idle_timeout: 2s\n  \
                      windows:\n    - {name: tumble_10s, type: tumbling, size: 10s, aggregates: [count, sum, min, max, mean]}\n  \
                      detectors: []\n";

/// The job of examples/flink_parity.yaml, as a submission.
fn parity_job() -> Value {
    json!({
        "name": "flink_parity",
        "max_out_of_orderness": "5s",
        "idle_timeout": "2s",
        "windows": [
            {"name": "tumble_10s", "type": "tumbling", "size": "10s"},
            {"name": "hop_30s_10s", "type": "sliding", "size": "30s", "slide": "10s"},
            {"name": "session_5s", "type": "session", "gap": "5s"},
        ],
        "detectors": [],
    })
}

/// The range of the public events (and nothing after it).
const START: i64 = 1_699_999_800_000;
const END: i64 = 1_700_000_400_000;
/// Events ingested later, far from the public ones.
const LATER: i64 = 1_700_100_000_000;

/// The public events in file order (as Flink read them), in 10 requests of 20,000.
fn public_chunks() -> Vec<String> {
    let file = std::fs::File::open(repo().join("testdata/public.jsonl.gz")).unwrap();
    let lines: Vec<String> = std::io::BufReader::new(flate2::read::GzDecoder::new(file))
        .lines()
        .map(Result::unwrap)
        .collect();
    assert_eq!(lines.len(), 200_000);
    lines.chunks(20_000).map(|c| c.join("\n")).collect()
}

fn ingest(p: &Platform, chunks: &[String]) {
    for chunk in chunks {
        let (status, body) = p.post(chunk, "application/x-ndjson", None).unwrap();
        assert_eq!(status, 200, "{body}");
    }
}

/// Waits until job `name` has completed a checkpoint.
fn wait_checkpointed(p: &Platform, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.get(&format!("/jobs/{name}")).1["last_checkpoint"].is_null() {
        assert!(Instant::now() < deadline, "{name} never checkpointed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until job `name` has read its whole log and holds no open window.
fn wait_drained(p: &Platform, name: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, job) = p.get(&format!("/jobs/{name}"));
        assert_eq!(status, 200, "{job}");
        let parts = job["partitions"].as_array().cloned().unwrap_or_default();
        if !parts.is_empty()
            && parts
                .iter()
                .all(|p| p["next_offset"] == p["log_end_offset"] && p["open_windows"] == 0)
        {
            return job;
        }
        assert!(Instant::now() < deadline, "{name} not drained: {job}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_parity(p: &Platform) {
    let ours =
        rows_by_window(&p.walk_results(&format!("start={START}&end={END}&job=flink_parity")));
    for (window, file) in WINDOWS {
        let flink = read_flink(&repo().join("testdata/flink").join(file));
        assert_same(window, ours.get(window).unwrap_or(&BTreeMap::new()), &flink);
    }
}

fn states(p: &Platform) -> Vec<(String, String)> {
    let (status, body) = p.get("/jobs");
    assert_eq!(status, 200, "{body}");
    body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn state(name: &str, s: &str) -> (String, String) {
    (name.to_string(), s.to_string())
}

#[test]
fn submitted_jobs_read_the_same_events_and_outlive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let chunks = public_chunks();
    ingest(&p, &chunks[..5]);

    // Submitted after half the events: `earliest` reads them all.
    let (status, created) = p.send(
        "POST",
        "/jobs",
        &json!({"job": parity_job(), "start": "earliest"}),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["job"], "flink_parity");
    assert_eq!(created["state"], "running");
    // More events arrive; once the submitted job has checkpointed, the process is SIGKILLed.
    ingest(&p, &chunks[5..7]);
    wait_checkpointed(&p, "flink_parity");
    p.kill();
    // Both jobs come back from their checkpoints (the submitted one from the job catalog), and
    // the rest of the events arrive.
    let p = Platform::start(dir.path(), CONFIG, free_port());
    assert_eq!(
        states(&p),
        [
            state("default", "running"),
            state("flink_parity", "running")
        ]
    );
    ingest(&p, &chunks[7..]);
    wait_drained(&p, "flink_parity", Duration::from_secs(120));
    check_parity(&p);

    // The configured job computed its own tumble_10s over the same events: Flink's q1 too.
    p.wait_drained(Duration::from_secs(60));
    let configured = rows_by_window(&p.walk_results(&format!("start={START}&end={END}")));
    assert_eq!(configured.keys().collect::<Vec<_>>(), ["tumble_10s"]);
    assert_same(
        "tumble_10s",
        &configured["tumble_10s"],
        &read_flink(&repo().join("testdata/flink/q1.csv")),
    );
    // Each job answers for its own windows.
    let hop = format!("/metrics?start={START}&end={END}&window=hop_30s_10s&limit=1");
    assert_eq!(p.get(&hop).0, 400);
    assert_eq!(p.get(&format!("{hop}&job=flink_parity")).0, 200);
    assert_eq!(p.get(&format!("{hop}&job=nope")).0, 404);

    // Refusals name what to change.
    let refused = |body: Value, code: u16, needle: &str| {
        let (status, problem) = p.send("POST", "/jobs", &body);
        assert_eq!(status, code, "{body} -> {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "{body} -> {detail}");
    };
    refused(json!({"job": parity_job()}), 409, "is running");
    refused(json!({"job": {"name": "default"}}), 409, "config file");
    refused(json!({"job": {"windows": []}}), 400, "job.name is required");
    refused(
        json!({"job": {"name": "x", "windows": [{"name": "w", "type": "tumbling"}]}}),
        400,
        "windows[0]",
    );
    refused(json!({"job": {"name": "x", "bogus": 1}}), 400, "bogus");
    refused(
        json!({"job": {"name": "x"}, "start": "middle"}),
        400,
        "middle",
    );
    refused(json!({"job": {"name": "x y"}}), 400, "job.name");
    // The log holds events as parsed at ingest, with the configured job's field names.
    refused(
        json!({"job": {"name": "x", "event": {"value_field": "v"}}}),
        400,
        "job.event",
    );
    assert_eq!(
        states(&p),
        [
            state("default", "running"),
            state("flink_parity", "running")
        ]
    );

    // Stopped with a savepoint: still listed, results still served, the process still ready.
    let (status, stopped) = p.send("DELETE", "/jobs/flink_parity?savepoint=sp1", &Value::Null);
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(p.get("/readyz").0, 200);
    check_parity(&p);

    // A clean restart keeps it stopped (and queryable); no WebSocket feed for it.
    assert!(p.interrupt().success());
    let p = Platform::start(dir.path(), CONFIG, free_port());
    assert_eq!(
        states(&p),
        [
            state("default", "running"),
            state("flink_parity", "stopped")
        ]
    );
    check_parity(&p);
    match support::ws_open(&p, "?job=flink_parity") {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 409),
        other => panic!("a stopped job's feed must be refused: {:?}", other.is_ok()),
    }

    // Resumed from its savepoint (`start` is ignored when there is state to restore).
    let (status, resumed) = p.send(
        "POST",
        "/jobs",
        &json!({"job": parity_job(), "from_savepoint": "sp1", "start": "latest"}),
    );
    assert_eq!(status, 201, "{resumed}");
    let resumed = wait_drained(&p, "flink_parity", Duration::from_secs(60));
    let read = resumed["partitions"][0]["events"].as_u64().unwrap();
    assert!(
        read < 1_000,
        "resumed at the savepoint's offset, not from the start: read {read} records"
    );
    check_parity(&p);

    // `latest`: only what is ingested from now on.
    let fresh_job = json!({
        "name": "fresh_only",
        "idle_timeout": "1s",
        "windows": [{"name": "tumble_10s", "type": "tumbling", "size": "10s", "aggregates": ["count", "sum"]}],
        "detectors": [],
    });
    let (status, body) = p.send(
        "POST",
        "/jobs",
        &json!({"job": fresh_job, "start": "latest"}),
    );
    assert_eq!(status, 201, "{body}");
    let fresh: String = (0..5)
        .map(|i| {
            format!(
                "{}\n",
                json!({"metric_id": "fresh", "ts": LATER + i * 1000, "value": 2.0})
            )
        })
        .collect();
    assert_eq!(p.post(&fresh, "application/x-ndjson", None).unwrap().0, 200);
    wait_drained(&p, "fresh_only", Duration::from_secs(60));
    let all = format!("start={START}&end={}&job=fresh_only", LATER + 3_600_000);
    let rows = p.walk_results(&all);
    let summary: Vec<(String, u64, f64)> = rows
        .values()
        .map(|r| {
            (
                r["metric_id"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
                r["sum"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [("fresh".to_string(), 5, 10.0)]);

    // SIGKILL: both submitted jobs come back from the catalog and their checkpoints.
    wait_drained(&p, "flink_parity", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(1500)); // a checkpoint after the drain
    p.kill();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    assert_eq!(
        states(&p),
        [
            state("default", "running"),
            state("flink_parity", "running"),
            state("fresh_only", "running"),
        ]
    );
    wait_drained(&p, "fresh_only", Duration::from_secs(60));
    wait_drained(&p, "flink_parity", Duration::from_secs(60));
    check_parity(&p);
    assert_eq!(p.walk_results(&all).len(), 1);
    assert!(p.interrupt().success());
}

fn ingest_range(p: &Platform, from: i64, n: i64) {
    let body: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"metric_id": "m", "ts": from + i * 100, "value": 1.0})
            )
        })
        .collect();
    let (status, reply) = p.post(&body, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 200, "{reply}");
}

fn total_count(p: &Platform, job: &str) -> u64 {
    p.walk_results(&format!(
        "start={LATER}&end={}&job={job}",
        LATER + 3_600_000
    ))
    .values()
    .map(|r| r["count"].as_u64().unwrap())
    .sum()
}

/// With retention as eager as it gets (every checkpointed byte may go), a stopped configured job
/// still holds back what it has not read (it resumes with the process), while a submitted job
/// stopped for good does not (its resume is then refused, naming the deleted offsets).
#[test]
fn retention_waits_for_the_configured_job_but_not_for_a_stopped_submitted_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = "log:\n  partitions: 1\n  retention_bytes: 0\n  retention_age: null\ncheckpoint:\n  interval: 300ms\njob:\n  idle_timeout: 1s\n  \
                  windows:\n    - {name: tumble_10s, type: tumbling, size: 10s, aggregates: [count]}\n  detectors: []\n";
    let sub = json!({
        "name": "sub",
        "idle_timeout": "1s",
        "windows": [{"name": "tumble_10s", "type": "tumbling", "size": "10s", "aggregates": ["count"]}],
        "detectors": [],
    });
    let p = Platform::start(dir.path(), config, free_port());
    assert_eq!(p.send("POST", "/jobs", &json!({"job": sub})).0, 201);
    ingest_range(&p, LATER, 100);
    wait_drained(&p, "default", Duration::from_secs(30));
    wait_drained(&p, "sub", Duration::from_secs(30));

    // The configured job stops; events keep coming for the submitted one, which checkpoints
    // and releases them.
    let (status, stopped) = p.send("DELETE", "/jobs/default", &Value::Null);
    assert_eq!(status, 200, "{stopped}");
    ingest_range(&p, LATER + 20_000, 100);
    wait_drained(&p, "sub", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1_000)); // a few checkpoints of "sub"
    assert_eq!(total_count(&p, "sub"), 200);
    assert!(p.interrupt().success());

    // The configured job resumes from its final checkpoint: retention kept its input.
    let p = Platform::start(dir.path(), config, free_port());
    wait_drained(&p, "default", Duration::from_secs(30));
    assert_eq!(total_count(&p, "default"), 200);
    assert_eq!(total_count(&p, "sub"), 200);

    // A submitted job stopped for good holds nothing back.
    let (status, stopped) = p.send("DELETE", "/jobs/sub", &Value::Null);
    assert_eq!(status, 200, "{stopped}");
    ingest_range(&p, LATER + 40_000, 100);
    wait_drained(&p, "default", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1_000)); // a few checkpoints of "default"
    let (status, problem) = p.send("POST", "/jobs", &json!({"job": sub}));
    assert_eq!(status, 409, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("retention"), "{detail}");
    // Refused, so still listed as it was: stopped.
    assert_eq!(
        states(&p),
        [state("default", "running"), state("sub", "stopped")]
    );
    assert_eq!(total_count(&p, "default"), 300);
    assert!(p.interrupt().success());
}
