//! Kafka over TLS and SASL, end to end, against Apache Kafka's own TLS listeners (started by
//! `deploy/local/services.sh start kafka`; `services.sh kafka-tls` prints the endpoints and the CA,
//! which the test reads from `STREAMPULSE_TEST_KAFKA_TLS`): topics created and events produced over
//! TLS; a worker with `kafka.properties: {security.protocol: SSL, ssl.ca.location: <the CA>}`
//! whose window results are exact, in the store and on the results topic; the same job over
//! SASL_SSL with a SCRAM-SHA-512 user created through Kafka's admin API; and workers that do not
//! trust the CA, or give a wrong password, which must fail visibly instead of running without
//! input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_support::{create_topics, fresh, refused_worker};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use streampulse_kafka::producer::EventProducer;
use streampulse_kafka::KafkaConfig;
use support::{free_port, Platform};

/// The TLS endpoints of the Kafka of `deploy/local/services.sh`, as `services.sh kafka-tls`
/// prints them: `ssl=HOST:PORT sasl_ssl=HOST:PORT ca=FILE`.
struct TlsKafka {
    ssl: String,
    sasl_ssl: String,
    ca: String,
}

fn tls_kafka() -> Option<TlsKafka> {
    let line = streampulse_testkit::env::required(
        "STREAMPULSE_TEST_KAFKA_TLS",
        "the TLS endpoints of Apache Kafka, as `deploy/local/services.sh kafka-tls` prints them",
    )?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("STREAMPULSE_TEST_KAFKA_TLS has no {key}=: {line}"))
            .to_string()
    };
    Some(TlsKafka {
        ssl: field("ssl"),
        sasl_ssl: field("sasl_ssl"),
        ca: field("ca"),
    })
}

/// Creates (or updates) a SCRAM-SHA-512 user through Kafka's admin API, with the script that
/// started the broker.
fn create_scram_user(name: &str, password: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/services.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(["kafka-user", name, password])
        .output()
        .expect("run services.sh kafka-user");
    assert!(
        out.status.success(),
        "services.sh kafka-user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A job reading `topic` on `brokers` with `properties` (YAML lines, indented for the map).
fn config(brokers: &str, topic: &str, group: &str, properties: &str) -> String {
    format!(
        "kafka:\n  brokers: \"{brokers}\"\n  topic: {topic}\n  group_id: {group}\n  \
         dead_letter_topic: {topic}.dlq\n  results_topic: {topic}.results\n  properties:\n    \
         session.timeout.ms: \"6000\"\n{properties}job:\n  name: tls\n  idle_timeout: 1s\n  \
         windows:\n    - name: tumble_10s\n      type: tumbling\n      size: 10s\n  detectors: []\n"
    )
}

const T0: i64 = 1_700_000_000_000;

type Windows = BTreeMap<(String, i64), (u64, f64)>;

/// (metric, window start) → (count, sum) of the latest record per window on `topic` (both
/// partitions from the start), read with `client`'s brokers and properties until it equals `want`
/// or 30 s have passed.
fn read_results(client: &KafkaConfig, topic: &str, want: &Windows) -> Windows {
    let consumer: BaseConsumer = client
        .client_config()
        .set("group.id", fresh("tls-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Windows::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got != *want && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.expect("consume over TLS");
        let v: serde_json::Value = serde_json::from_slice(msg.payload().unwrap()).unwrap();
        got.insert(
            (
                v["metric_id"].as_str().unwrap().to_string(),
                v["window_start"].as_i64().unwrap(),
            ),
            (v["count"].as_u64().unwrap(), v["sum"].as_f64().unwrap()),
        );
    }
    got
}

/// The window results of the job, polled from the worker's API until they equal `want` or 60 s
/// have passed.
fn stored_windows(p: &Platform, want: &Windows) -> Windows {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Windows = p
            .results(T0, T0 + 60_000, None)
            .iter()
            .map(|r| {
                assert_eq!(r["window"], "tumble_10s", "{r}");
                (
                    (
                        r["metric_id"].as_str().unwrap().to_string(),
                        r["window_start"].as_i64().unwrap(),
                    ),
                    (r["count"].as_u64().unwrap(), r["sum"].as_f64().unwrap()),
                )
            })
            .collect();
        if got == *want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kafka_over_tls_and_sasl_gives_exact_windows_and_untrusted_or_unauthenticated_workers_fail_visibly(
) {
    let Some(kafka) = tls_kafka() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = fresh("tls");
    let ca = kafka.ca.clone();
    let tls = format!("    security.protocol: SSL\n    ssl.ca.location: \"{ca}\"\n");
    let trusted = config(&kafka.ssl, &topic, &fresh("tls-group"), &tls);
    create_topics(&trusted, &dir.path().join("topics"), 2);

    // Events per (metric, 10 s window): the k-th has value k (1-based) and lies k s into its
    // window; produced in event-time order, so none is late.
    let plan: [(&str, i64, i64); 5] = [
        ("cpu", 0, 5),
        ("cpu", 1, 3),
        ("cpu", 2, 7),
        ("mem", 0, 2),
        ("mem", 2, 4),
    ];
    let mut events = Vec::new();
    let mut want = BTreeMap::new();
    for (metric, window, n) in plan {
        let start = T0 + window * 10_000;
        for k in 1..=n {
            events.push((start + k * 1_000, metric, k));
        }
        want.insert(
            (metric.to_string(), start),
            (n as u64, (n * (n + 1) / 2) as f64),
        );
    }
    events.sort();
    let producer_config = KafkaConfig {
        brokers: kafka.ssl.clone(),
        properties: [
            ("security.protocol".to_string(), "SSL".to_string()),
            ("ssl.ca.location".to_string(), ca.clone()),
        ]
        .into(),
        ..Default::default()
    };
    let producer = EventProducer::new(&producer_config, &topic).expect("producer");
    for (ts, metric, value) in &events {
        let line = format!(r#"{{"metric_id":"{metric}","ts":{ts},"value":{value}}}"#);
        producer.send(metric, line.as_bytes()).unwrap();
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("every event acknowledged over TLS");
    drop(producer);

    let p = Platform::start(&dir.path().join("worker"), &trusted, free_port());
    let got = stored_windows(&p, &want);
    assert_eq!(
        got,
        want,
        "window results over TLS; worker log:\n{}",
        p.log()
    );
    let status = p.get("/jobs/tls").1;
    assert_eq!(status["ingest_accepted"], events.len() as u64, "{status}");
    assert_eq!(status["ingest_rejected"], 0, "{status}");
    // The worker's producer spoke TLS too: the same results are on the results topic.
    let on_topic = read_results(&producer_config, &format!("{topic}.results"), &want);
    assert_eq!(on_topic, want, "the results topic, read over TLS");
    assert!(p.interrupt().success(), "a clean stop");

    // The same job over SASL_SSL, as a SCRAM-SHA-512 user created through the admin API, in a
    // group of its own: it reads the topic from the start and computes the same windows.
    let user = fresh("reader");
    create_scram_user(&user, "s3cret-pass");
    let sasl = |password: &str| {
        format!(
            "    security.protocol: SASL_SSL\n    ssl.ca.location: \"{ca}\"\n    \
             sasl.mechanism: SCRAM-SHA-512\n    sasl.username: {user}\n    \
             sasl.password: {password}\n"
        )
    };
    let authenticated = config(
        &kafka.sasl_ssl,
        &topic,
        &fresh("sasl-group"),
        &sasl("s3cret-pass"),
    );
    let p = Platform::start(&dir.path().join("sasl"), &authenticated, free_port());
    let got = stored_windows(&p, &want);
    assert_eq!(
        got,
        want,
        "window results over SASL_SSL; worker log:\n{}",
        p.log()
    );
    assert!(p.interrupt().success(), "a clean stop");

    // A wrong password: the worker stops at start-up and says why, without printing it.
    let wrong = "not-the-pass-7f3k";
    let log = refused_worker(
        &dir.path().join("wrong-password"),
        &config(&kafka.sasl_ssl, &topic, &fresh("sasl-wrong"), &sasl(wrong)),
        false,
    );
    assert!(log.contains("cannot start the Kafka consumer"), "{log}");
    assert!(
        log.contains("SASL authentication error: Authentication failed"),
        "the log names the cause, the refused credentials:\n{log}"
    );
    assert!(!log.contains(wrong), "the log shows the password:\n{log}");

    // The TLS job without ssl.ca.location: the broker's certificate is not trusted (without it
    // the statically linked OpenSSL looks in its own /usr/local/ssl, absent on Debian; `probe`
    // would take the system's bundle, which does not hold this CA either). The worker must not
    // run, nor look healthy: it stops at start-up, unable to read the topic's metadata.
    let log = refused_worker(
        &dir.path().join("untrusted"),
        &config(
            &kafka.ssl,
            &topic,
            &fresh("tls-untrusted"),
            "    security.protocol: SSL\n",
        ),
        false,
    );
    assert!(log.contains("cannot start the Kafka consumer"), "{log}");
    assert!(
        log.contains("Meta data fetch error: BrokerTransportFailure")
            && log.contains("certificate verify failed"),
        "the log names the cause, the broker's untrusted certificate:\n{log}"
    );
    // The broker still serves a client that trusts it: the failure was the certificate's.
    let check = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .args(["topics", "create", "--partitions", "1", "--config"])
        .arg(dir.path().join("topics").join("topics.yaml"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && out.contains(&format!("exists  {topic}")),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
