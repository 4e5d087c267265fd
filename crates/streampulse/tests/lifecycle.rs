//! The platform's life cycle from the command line: invalid configs refuse to start and say why;
//! savepoints are taken by `streampulse savepoint` and resumed with `run --from-savepoint`.

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
