//! The platform's life cycle from the command line: invalid configs refuse to start and say why;
//! savepoints are taken by `streampulse savepoint` and resumed with `run --from-savepoint`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{free_port, Platform};

#[test]
fn invalid_config_names_the_key_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, key) in [
        (
            "job:\n  windows:\n    - {name: w, type: sliding, size: 30s}\n",
            "job.windows[0].slide",
        ),
        ("log:\n  partitons: 3\n", "unknown field `partitons`"),
        ("checkpoint:\n  interval: soon\n", "checkpoint.interval"),
        ("job:\n  allowed_lateness: -1s\n", "job.allowed_lateness"),
        ("server:\n  max_query_range: 0s\n", "server.max_query_range"),
        ("server:\n  max_query_scan: 10\n", "server.max_query_scan"),
        ("log:\n  cache_bytes: 4096\n", "log.cache_bytes"),
        ("store:\n  cache_bytes: 4096\n", "store.cache_bytes"),
        ("logging:\n  level: streampulse=loud\n", "logging.level"),
        (
            "server:\n  max_query_range: a month\n",
            "server.max_query_range",
        ),
    ] {
        let config = dir.path().join("bad.yaml");
        std::fs::write(&config, yaml).unwrap();
        let data = dir.path().join("data");
        let out = Command::new(env!("CARGO_BIN_EXE_streampulse"))
            .args([
                "run",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
                "--config",
            ])
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{yaml}");
        assert!(stderr.contains(key), "{yaml}: {stderr}");
        assert!(
            !data.exists(),
            "nothing may be created for an invalid config"
        );
    }
}

#[test]
fn savepoint_then_resume_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = "job:\n  windows:\n    - {name: tumble_10s, type: tumbling, size: 10s}\n";
    let p = Platform::start(dir.path(), config, port);
    let events: String = (0..20)
        .map(|i| {
            json!({"metric_id": "m", "ts": 1_700_000_000_000i64 + i * 1000, "value": 1}).to_string()
                + "\n"
        })
        .collect();
    assert_eq!(
        p.post(&events, "application/x-ndjson", None).unwrap().0,
        200
    );
    p.wait_drained_to_log(Duration::from_secs(20));
    let out = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["savepoint", "--name", "before-upgrade", "--target", &p.base])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("before-upgrade"));
    // More events after the savepoint: a resume from it replays them from the log.
    let later = json!({"metric_id": "m", "ts": 1_700_000_030_000i64, "value": 1}).to_string();
    assert_eq!(p.post(&later, "application/json", None).unwrap().0, 200);
    assert!(p.interrupt().success());

    let p = Platform::start_with(
        dir.path(),
        config,
        port,
        &["--from-savepoint", "before-upgrade"],
    );
    let status = p.status();
    let offsets: u64 = status["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["next_offset"].as_u64().unwrap())
        .sum();
    assert!(
        offsets >= 20,
        "resumed at the savepoint's offsets: {status}"
    );
    p.wait_drained_to_log(Duration::from_secs(20));
    // Window [..10000, ..20000) holds 10 events whether or not the resume replayed it.
    let rows = p.results(1_700_000_010_000, 1_700_000_010_001, Some("m"));
    assert_eq!(rows[0]["count"], 10, "{rows:?}");

    assert!(p.interrupt().success());

    let out = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--metrics-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .args(["--from-savepoint", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("savepoint 'nope' not found"));
}

#[test]
fn a_busy_metrics_port_is_a_clear_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--metrics-listen",
            &busy_addr,
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot listen on {busy_addr} (metrics.listen)")),
        "{stderr}"
    );
    assert!(!data.exists(), "nothing may be created when a port is busy");
}

#[test]
fn log_level_and_format_come_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logging.yaml");
    std::fs::write(&config, "logging:\n  level: debug\n  format: json\n").unwrap();
    let stderr = dir.path().join("stderr.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-listen",
        ])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env_remove("STREAMPULSE_LOG_FORMAT")
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let agent = support::agent();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while agent
        .get(&format!("http://127.0.0.1:{port}/readyz"))
        .call()
        .map_or(true, |r| r.status() != 200)
    {
        assert!(std::time::Instant::now() < deadline, "not ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&stderr).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    assert!(
        lines.iter().any(|l| l["level"] == "DEBUG"),
        "debug lines are on: {text}"
    );
}

#[test]
fn delete_stops_the_job_with_a_savepoint_and_queries_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let config = "log:\n  partitions: 1\njob:\n  windows:\n    - {name: tumble_10s, type: tumbling, size: 10s}\n  detectors: []\n";
    let port = free_port();
    let p = Platform::start(dir.path(), config, port);
    let body: String = (0..30)
        .map(|i| {
            format!(
                "{}\n",
                json!({"metric_id": "m", "ts": 1_700_000_000_000i64 + i * 1000, "value": 1.0})
            )
        })
        .collect();
    let (status, _) = p.post(&body, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 200);
    p.wait_drained_to_log(Duration::from_secs(30));
    let agent = support::agent();
    let stop = |query: &str| {
        let mut r = agent
            .delete(&format!("{}/jobs/default{query}", p.base))
            .call()
            .unwrap();
        let status = r.status().as_u16();
        let body: serde_json::Value = r.body_mut().read_json().unwrap();
        (status, body)
    };
    let (status, stopped) = stop("?savepoint=before-upgrade");
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "stopped");
    assert_eq!(stopped["partitions"][0]["next_offset"], 30, "{stopped}");
    // Stopped: no more input, not ready, but the stored results are still served.
    let (status, problem) = p.post(&body, "application/x-ndjson", None).unwrap();
    assert_eq!(status, 409, "{problem}");
    let (status, _) = p.get("/readyz");
    assert_eq!(status, 503);
    let rows = p.results(1_700_000_000_000, 1_700_000_100_000, Some("m"));
    assert_eq!(
        rows.len(),
        2,
        "windows [0,10) and [10,20) fired before the stop: {rows:?}"
    );
    // Again: still stopped (idempotent); a savepoint of a stopped job is a conflict.
    assert_eq!(stop("").0, 200);
    assert_eq!(stop("?savepoint=again").0, 409);
    assert_eq!(stop("?bogus=1").0, 400);
    let (status, _) = p.get("/jobs/nope");
    assert_eq!(status, 404);
    assert!(p.interrupt().success());
    // The savepoint resumes the job where it stopped: the open window [20 s, 30 s) completes.
    let p = Platform::start_with(
        dir.path(),
        config,
        free_port(),
        &["--from-savepoint", "before-upgrade"],
    );
    let status = p.status();
    assert_eq!(status["state"], "running");
    assert_eq!(status["partitions"][0]["next_offset"], 30, "{status}");
    let more = format!(
        "{}\n",
        json!({"metric_id": "m", "ts": 1_700_000_040_000i64, "value": 1.0})
    );
    let (code, _) = p.post(&more, "application/x-ndjson", None).unwrap();
    assert_eq!(code, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let rows = p.results(1_700_000_000_000, 1_700_000_100_000, Some("m"));
        if rows.len() == 3 {
            assert_eq!(rows[2]["count"], 10, "{rows:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
