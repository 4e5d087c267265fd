//! The command-line clients against a running platform: `streampulse query` prints what the REST
//! API holds and `streampulse tail` follows the WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::{free_port, Platform};

const CONFIG: &str = r#"
job:
  max_out_of_orderness: 0s
  windows:
    - { name: tumble_1s, type: tumbling, size: 1s }
  detectors:
    - { name: z, type: zscore, series: raw, n: 20, min_points: 10, warning: 5, critical: 50 }
"#;

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn query_and_tail_print_what_the_platform_stores_and_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    let mut tail = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["tail", "--output", "json", "--target", &p.base])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut tail_lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let subscribed: Value = serde_json::from_str(&tail_lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(subscribed["type"], "subscribed");

    // 30 one-per-100ms points of cpu ending now, then a spike: windows fire and an alert opens.
    let now = streampulse_core::clock::now_ms();
    let start = now - now % 1_000 - 3_000;
    let mut body: String = (0..30)
        .map(|i| {
            json!({"metric_id": "cpu", "ts": start + i * 100, "value": 10.0 + (i % 3) as f64})
                .to_string()
                + "\n"
        })
        .collect();
    body += &(json!({"metric_id": "cpu", "ts": start + 3_000, "value": 500.0}).to_string() + "\n");
    assert_eq!(p.post(&body, "application/x-ndjson", None).unwrap().0, 200);

    let mut kinds = Vec::new();
    while !(kinds.contains(&"result".to_string()) && kinds.contains(&"alert".to_string())) {
        let line = tail_lines.next().expect("tail output").unwrap();
        let m: Value = serde_json::from_str(&line).unwrap();
        kinds.push(m["type"].as_str().unwrap().to_string());
    }
    let _ = tail.kill();
    let _ = tail.wait();

    let out = cli(&[
        "query", "metrics", "--since", "1m", "--metric", "cpu", "--output", "json", "--target",
        &p.base,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows.len(),
        3,
        "three 1 s windows closed before the spike: {rows:?}"
    );
    assert_eq!(
        rows.iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>(),
        30
    );

    let out = cli(&["query", "alerts", "--since", "1m", "--target", &p.base]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("id "), "{table}");
    assert!(
        table.contains("cpu") && table.contains("firing") && table.contains("critical"),
        "{table}"
    );

    let out = cli(&[
        "query",
        "metrics",
        "--since",
        "1m",
        "--target",
        "http://127.0.0.1:9",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is 'streampulse run' running?"));
}

fn stdout_json(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn jobs_commands_submit_list_query_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let p = Platform::start(dir.path(), CONFIG, free_port());
    // A config file: only its job: section is submitted.
    let file = dir.path().join("per_3s.yaml");
    std::fs::write(
        &file,
        "log:\n  partitions: 2\njob:\n  name: per_3s\n  max_out_of_orderness: 0s\n  windows:\n    - { name: tumble_3s, type: tumbling, size: 3s, aggregates: [count, sum] }\n  detectors: []\n",
    )
    .unwrap();
    let submit = |extra: &[&str]| {
        let mut args = vec![
            "jobs",
            "submit",
            file.to_str().unwrap(),
            "--target",
            &p.base,
        ];
        args.extend_from_slice(extra);
        cli(&args)
    };
    let out = submit(&["--start", "latest"]);
    let submitted = stdout_json(&out);
    assert_eq!(submitted[0]["job"], "per_3s", "{submitted:?}");
    assert_eq!(submitted[0]["state"], "running");
    assert!(String::from_utf8_lossy(&out.stderr).contains("only the job: section"));
    // Again while it runs: the server's reason, and a failing exit.
    let again = submit(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is running"));

    let now = streampulse_core::clock::now_ms();
    let start = now - now % 3_000 - 9_000;
    // Nine events in three 3 s windows, then one that closes them.
    let body: String = (0..10)
        .map(|i| {
            json!({"metric_id": "disk", "ts": start + i * 1_000, "value": 1.0}).to_string() + "\n"
        })
        .collect();
    assert_eq!(p.post(&body, "application/x-ndjson", None).unwrap().0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let rows = loop {
        let rows = stdout_json(&cli(&[
            "query", "metrics", "--since", "1m", "--job", "per_3s", "--output", "json", "--target",
            &p.base,
        ]));
        if rows.len() == 3 || std::time::Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(rows.iter().all(|r| r["window"] == "tumble_3s"), "{rows:?}");
    assert_eq!(
        rows.iter()
            .map(|r| r["count"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [3, 3, 3]
    );

    let listed = stdout_json(&cli(&[
        "jobs", "list", "--output", "json", "--target", &p.base,
    ]));
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|j| (j["job"].as_str().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("default", "running"), ("per_3s", "running")]);
    assert_eq!(listed[1]["events"], 10, "{listed:?}");

    let stopped = stdout_json(&cli(&[
        "jobs",
        "stop",
        "per_3s",
        "--savepoint",
        "s1",
        "--target",
        &p.base,
    ]));
    assert_eq!(stopped[0]["state"], "stopped");
    let out = cli(&["jobs", "stop", "nope", "--target", &p.base]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
