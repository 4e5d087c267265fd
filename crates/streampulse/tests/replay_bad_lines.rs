//! `streampulse replay` over a file with lines that are not events: a line far over the event
//! size limit and a line that is not UTF-8 are each reported with their line number and skipped;
//! every other line gives exactly the results of the same file without them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

use std::path::Path;
use std::process::{Command, Output};

fn replay(input: &Path, out: &Path) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["replay", "--input"])
        .arg(input)
        .arg("--output")
        .arg(out)
        .output()
        .expect("run streampulse replay");
    assert!(
        output.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn bad_lines_are_reported_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<Vec<u8>> = (0..600)
        .map(|i| {
            format!(
                r#"{{"metric_id": "m{}", "ts": {}, "value": {}.5}}"#,
                i % 5,
                1_700_000_000_000i64 + i * 250,
                i % 17
            )
            .into_bytes()
        })
        .collect();
    let clean = dir.path().join("clean.jsonl");
    std::fs::write(&clean, events.join(&b'\n')).unwrap();

    // Line 2: 4 MiB of one metric id, far past the default 64 KiB limit; line 3: not UTF-8.
    let mut huge = br#"{"metric_id": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 4 << 20));
    huge.extend(br#"", "ts": 1700000000000, "value": 1}"#);
    let broken = b"{\"metric_id\": \"\xff\xfe\", \"ts\": 1700000000000, \"value\": 1}".to_vec();
    let mut dirty_lines = vec![events[0].clone(), huge, broken];
    dirty_lines.extend(events[1..].iter().cloned());
    let dirty = dir.path().join("dirty.jsonl");
    std::fs::write(&dirty, dirty_lines.join(&b"\r\n"[..])).unwrap();

    let want = dir.path().join("want.csv");
    replay(&clean, &want);
    let got = dir.path().join("got.csv");
    let output = replay(&dirty, &got);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("line 2: rejected:") && stderr.contains("max_event_bytes"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 3: rejected: invalid JSON: not UTF-8"),
        "{stderr}"
    );
    assert!(stderr.contains("(2 lines rejected)"), "{stderr}");
    let want = std::fs::read_to_string(want).unwrap();
    assert!(want.lines().count() > 10, "{want}");
    assert_eq!(std::fs::read_to_string(got).unwrap(), want);
}
