//! Kafka over TLS, end to end: a broker of the test's own (nisshi with a certificate signed by a
//! throwaway CA) whose listener only speaks TLS; topics created and events produced over TLS; a
//! worker with `kafka.properties: {security.protocol: SSL, ssl.ca.location: <the CA>}` whose
//! window results are exact; and a worker that does not trust the CA, which must fail visibly
//! instead of running without input.
//!
//! The certificates come from the `openssl` command (Debian's `openssl` package, which
//! `ca-certificates` depends on), with a configuration file of our own so that the system's
//! `openssl.cnf` plays no part.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is a failed assertion

mod kafka_support;
mod support;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_support::{create_topics, fresh, nisshi};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use streampulse_kafka::producer::EventProducer;
use streampulse_kafka::KafkaConfig;
use support::{agent, free_port, Platform};

/// The two extension profiles: a CA, and a server certificate for the loopback address and name.
const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = match Command::new("openssl").current_dir(dir).args(args).output() {
        Ok(out) => out,
        Err(err) => panic!(
            "cannot run the openssl command ({err}): this test makes its certificates with it \
             (Debian: apt-get install openssl)"
        ),
    };
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA (P-256) and a server certificate it signed for 127.0.0.1 and localhost, valid
/// for two days; the keys are unencrypted PKCS#8.
fn make_certs(dir: &Path) -> Certs {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-config",
        "openssl.cnf",
        "-extensions",
        "ca",
    ];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=StreamPulse test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req", "-new", "-config", "openssl.cnf"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir, &csr);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            "server",
            "-out",
            "server.pem",
        ],
    );
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    }
}

/// A nisshi broker that accepts only TLS on a free loopback port; stopped when dropped.
struct TlsBroker {
    child: Child,
    address: String,
    log: PathBuf,
}

impl TlsBroker {
    fn start(nisshi: &Path, certs: &Certs, dir: &Path) -> TlsBroker {
        let address = format!("127.0.0.1:{}", free_port());
        let log = dir.join("nisshi.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(nisshi)
            .arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://{address}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://{address}"))
            .args(["--storage-engine", "memory://nisshi/"])
            .arg("--cert")
            .arg(&certs.cert)
            .arg("--key")
            .arg(&certs.key)
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", nisshi.display()));
        let mut broker = TlsBroker {
            child,
            address,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&broker.address).is_err() {
            if let Ok(Some(exit)) = broker.child.try_wait() {
                panic!("nisshi exited ({exit}):\n{}", broker.log());
            }
            assert!(
                Instant::now() < deadline,
                "nisshi does not listen on {}:\n{}",
                broker.address,
                broker.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

#[test]
fn kafka_over_tls_gives_exact_windows_and_an_untrusted_broker_fails_visibly() {
    let Some(nisshi) = nisshi() else { return };
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(&dir.path().join("certs"));
    let mut broker = TlsBroker::start(&nisshi, &certs, dir.path());
    let topic = fresh("tls");
    let ca = certs.ca.display().to_string();
    let tls = format!("    security.protocol: SSL\n    ssl.ca.location: \"{ca}\"\n");
    let trusted = config(&broker.address, &topic, &fresh("tls-group"), &tls);
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
        brokers: broker.address.clone(),
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
    let deadline = Instant::now() + Duration::from_secs(60);
    let got = loop {
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
        if got == want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        got,
        want,
        "window results over TLS; worker log:\n{}\nbroker log:\n{}",
        p.log(),
        broker.log()
    );
    let status = p.get("/jobs/tls").1;
    assert_eq!(status["ingest_accepted"], events.len() as u64, "{status}");
    assert_eq!(status["ingest_rejected"], 0, "{status}");
    // The worker's producer spoke TLS too: the same results are on the results topic.
    let on_topic = read_results(&producer_config, &format!("{topic}.results"), &want);
    assert_eq!(on_topic, want, "the results topic, read over TLS");
    assert!(p.interrupt().success(), "a clean stop");

    // The same job without ssl.ca.location: the broker's certificate is not trusted (without it
    // the statically linked OpenSSL looks in its own /usr/local/ssl, absent on Debian; `probe`
    // would take the system's bundle, which does not hold this CA either). The worker must not
    // run, nor look healthy: it stops at start-up, unable to read the topic's metadata.
    let untrusted = config(
        &broker.address,
        &topic,
        &fresh("tls-untrusted"),
        "    security.protocol: SSL\n",
    );
    let wdir = dir.path().join("untrusted");
    std::fs::create_dir_all(&wdir).unwrap();
    std::fs::write(wdir.join("config.yaml"), &untrusted).unwrap();
    let log_path = wdir.join("platform.log");
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_streampulse"))
        .arg("run")
        .arg("--config")
        .arg(wdir.join("config.yaml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(wdir.join("data"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("spawn streampulse");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let http = agent();
    let deadline = Instant::now() + Duration::from_secs(90);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        let ready = http
            .get(&format!("http://127.0.0.1:{port}/readyz"))
            .call()
            .is_ok_and(|r| r.status() == 200);
        if ready || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "a worker that does not trust the broker's certificate {}; log:\n{}",
                if ready {
                    "became ready"
                } else {
                    "neither stopped nor said why"
                },
                log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = log();
    assert!(!exit.success(), "{exit}; log:\n{log}");
    assert!(
        log.contains("cannot start the Kafka consumer")
            && log.contains("Meta data fetch error: BrokerTransportFailure"),
        "the failure is in the log:\n{log}"
    );
    assert!(
        log.contains("certificate verify failed"),
        "the log names the cause, the broker's untrusted certificate:\n{log}"
    );
    // The same broker still serves a client that trusts it: the failure was the certificate's.
    assert!(
        broker.child.try_wait().is_ok_and(|e| e.is_none()),
        "{}",
        broker.log()
    );
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
