//! `streampulse check-config`, the check every deployment runs its config through (the Compose
//! and Helm tests, the chart's documentation): a bad key is refused by its full name, a valid
//! config is summarized (job, Kafka, output guarantee, checkpoints) without creating anything or
//! binding a port, and the environment's overrides are held to the same rules as the keys.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod support;

use std::net::TcpListener;

use support::check_config;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_names_the_bad_key_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    for (config, key) in [
        ("log:\n  partitons: 2\n", "log.partitons"),
        ("server:\n  listen: eighty\n", "server.listen"),
        (
            "kafka:\n  brokers: kafka:9092\n  properties:\n    sesion.timeout.ms: \"10000\"\n",
            "kafka.properties.sesion.timeout.ms",
        ),
        (
            "checkpoint:\n  storage: s3://bucket/prefix\n  storage_options: {aws_endpont: http://m}\n",
            "checkpoint.storage_options.aws_endpont",
        ),
    ] {
        std::fs::write(&path, config).unwrap();
        let out = check_config(&path, &[]);
        assert!(!out.status.success(), "{config} passed");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(key), "{config}: {stderr}");
        assert!(out.stdout.is_empty(), "{config}: {}", text(&out.stdout));
    }
    let out = check_config(&dir.path().join("missing.yaml"), &[]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read config file"));

    // A valid config: nothing created under data_dir, no port bound (this one is taken).
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data_dir = dir.path().join("never-created");
    std::fs::write(
        &path,
        format!(
            "data_dir: {}\nserver:\n  listen: 127.0.0.1:{port}\nkafka:\n  brokers: 127.0.0.1:1\n  properties:\n    session.timeout.ms: \"10000\"\n",
            data_dir.display()
        ),
    )
    .unwrap();
    let out = check_config(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ok: ")
            && stdout.contains("job default")
            && stdout.contains(
                "kafka on (brokers 127.0.0.1:1, topic events, group streampulse-default, outputs at least once)"
            )
            && stdout.contains(&format!(
                "checkpoints {}",
                data_dir.join("checkpoints").display()
            )),
        "{stdout}"
    );
    assert!(
        !data_dir.exists(),
        "check-config created the data directory"
    );
    // The summary says which output guarantee the job runs with.
    std::fs::write(
        &path,
        "kafka:\n  brokers: 127.0.0.1:1\n  results_topic: results\n  exactly_once: true\n",
    )
    .unwrap();
    let out = check_config(&path, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("outputs exactly once, in transactions"),
        "{}",
        text(&out.stdout)
    );
    // The transactional id from the environment is held to the config key's rule.
    let env = [(
        "STREAMPULSE_KAFKA_TRANSACTIONAL_ID",
        "pod 0/with spaces".to_string(),
    )];
    let out = check_config(&path, &env);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("kafka.transactional_id"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_placeholder_token_is_refused_by_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.yaml");
    std::fs::write(&path, "log:\n  partitions: 1\n").unwrap();
    let env = [("STREAMPULSE_ADMIN_TOKENS", "CHANGE_ME-admin".to_string())];
    let out = check_config(&path, &env);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("server.auth.admin_tokens") && stderr.contains("STREAMPULSE_ADMIN_TOKENS"),
        "{stderr}"
    );
    let env = [(
        "STREAMPULSE_ADMIN_TOKENS",
        "a-real-secret-of-enough-length-0123456789".to_string(),
    )];
    let out = check_config(&path, &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
