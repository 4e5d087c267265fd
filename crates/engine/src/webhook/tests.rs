use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use streampulse_core::detect::{Alert, AlertState, Severity};

use super::transport::{Attempt, Transport};
use super::{WebhookConfig, WebhookDispatcher};

fn alert(id: &str, sequence: u32) -> Alert {
    Alert {
        id: id.to_string(),
        metric_id: "m".into(),
        detector: "z".into(),
        series: "raw".into(),
        state: if sequence & 1 == 0 {
            AlertState::Firing
        } else {
            AlertState::Resolved
        },
        severity: Severity::Critical,
        observed: 100.0,
        expected: 1.0,
        score: f64::INFINITY,
        peak_score: 12.5,
        threshold: 8.0,
        first_ts: 1_000,
        last_ts: 2_000,
        resolved_ts: (sequence & 1 == 1).then_some(3_000),
        sequence,
        tags: Default::default(),
    }
}

fn config(queue_capacity: usize, max_attempts: u32) -> WebhookConfig {
    WebhookConfig {
        url: "http://test.invalid/hook".into(),
        timeout: Duration::from_secs(1),
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        queue_capacity,
    }
}

type Script = Arc<dyn Fn(&str, usize) -> Attempt + Send + Sync>;
/// Each request a receiver saw: headers (and ":request"), body, status answered.
type Seen = Arc<Mutex<Vec<(HashMap<String, String>, serde_json::Value, u16)>>>;

/// Answers by a script of the attempt number of each key; records every attempt.
#[derive(Clone)]
struct Scripted {
    attempts: Arc<Mutex<Vec<String>>>,
    outcome: Script,
    delay: Duration,
}

impl Scripted {
    fn new(outcome: impl Fn(&str, usize) -> Attempt + Send + Sync + 'static) -> Self {
        Self {
            attempts: Arc::default(),
            outcome: Arc::new(outcome),
            delay: Duration::ZERO,
        }
    }

    fn attempts(&self) -> Vec<String> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Transport for Scripted {
    fn post(&mut self, body: &[u8], key: &str, timeout: Duration) -> Attempt {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(
            format!("{}-{}", v["id"].as_str().unwrap(), v["sequence"]),
            key
        );
        let n = {
            let mut a = self.attempts.lock().unwrap();
            a.push(key.to_string());
            a.iter().filter(|k| *k == key).count()
        };
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay.min(timeout));
            if self.delay > timeout {
                return Attempt::Retry {
                    reason: "timeout".into(),
                    after: None,
                };
            }
        }
        (self.outcome)(key, n)
    }
}

fn retry() -> Attempt {
    Attempt::Retry {
        reason: "HTTP 500".into(),
        after: None,
    }
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Keys in the order of their successful attempt.
fn delivered_order(attempts: &[String], fails_before_success: usize) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut order = Vec::new();
    for k in attempts {
        let n = seen.entry(k).or_default();
        *n += 1;
        if *n == fails_before_success + 1 {
            order.push(k.clone());
        }
    }
    order
}

#[test]
fn retried_deliveries_keep_every_alerts_transitions_in_order() {
    let t = Scripted::new(|_, n| if n <= 2 { retry() } else { Attempt::Delivered });
    let d = WebhookDispatcher::start_with("job", &[config(100, 8)], |_| t.clone()).unwrap();
    let mut submitted = Vec::new();
    for seq in 0..5 {
        for id in ["a", "b", "c"] {
            d.submit(&alert(id, seq));
            submitted.push(format!("{id}-{seq}"));
        }
    }
    wait_until("15 deliveries", Duration::from_secs(10), || {
        d.status()[0].delivered == 15
    });
    let attempts = t.attempts();
    // One delivery at a time, each retried twice before the next one starts.
    let expected: Vec<String> = submitted
        .iter()
        .flat_map(|k| std::iter::repeat_n(k.clone(), 3))
        .collect();
    assert_eq!(attempts, expected);
    assert_eq!(delivered_order(&attempts, 2), submitted);
    let s = &d.status()[0];
    assert_eq!(
        (
            s.failed_attempts,
            s.given_up,
            s.dropped_queue_full,
            s.queued
        ),
        (30, 0, 0, 0)
    );
    assert_eq!(s.last_error.as_deref(), Some("HTTP 500"));
    d.shutdown(Duration::from_secs(1));
}

#[test]
fn gives_up_after_max_attempts_and_moves_on_in_order() {
    // "a-0" always fails; the others succeed at once.
    let t = Scripted::new(|key, _| {
        if key == "a-0" {
            retry()
        } else {
            Attempt::Delivered
        }
    });
    let d = WebhookDispatcher::start_with("job", &[config(100, 4)], |_| t.clone()).unwrap();
    for k in [("a", 0), ("b", 0), ("a", 1)] {
        d.submit(&alert(k.0, k.1));
    }
    wait_until("the rest delivered", Duration::from_secs(10), || {
        d.status()[0].delivered == 2
    });
    assert_eq!(t.attempts(), vec!["a-0", "a-0", "a-0", "a-0", "b-0", "a-1"]);
    let s = &d.status()[0];
    assert_eq!((s.failed_attempts, s.given_up), (4, 1));
    d.shutdown(Duration::from_secs(1));
}

#[test]
fn rejections_are_not_retried() {
    let t = Scripted::new(|_, _| Attempt::Reject("HTTP 404".into()));
    let d = WebhookDispatcher::start_with("job", &[config(100, 8)], |_| t.clone()).unwrap();
    d.submit(&alert("a", 0));
    wait_until("given up", Duration::from_secs(10), || {
        d.status()[0].given_up == 1
    });
    assert_eq!(t.attempts(), vec!["a-0"]);
    d.shutdown(Duration::from_secs(1));
}

#[test]
fn a_full_queue_drops_instead_of_blocking_and_other_webhooks_are_unaffected() {
    let mut slow = Scripted::new(|_, _| Attempt::Delivered);
    slow.delay = Duration::from_millis(200);
    let fast = Scripted::new(|_, _| Attempt::Delivered);
    let mut configs = vec![config(3, 2), config(1000, 2)];
    configs[1].url = "http://fast.invalid/".into();
    let d = WebhookDispatcher::start_with("job", &configs, |c| {
        if c.url.contains("fast") {
            fast.clone()
        } else {
            slow.clone()
        }
    })
    .unwrap();
    let started = Instant::now();
    for seq in 0..100 {
        d.submit(&alert("a", seq));
    }
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "submit never waits for delivery"
    );
    let s = d.status();
    // At most one in delivery and three queued: the rest dropped.
    assert!(s[0].dropped_queue_full >= 96, "{s:?}");
    assert!(s[0].queued <= 3, "{s:?}");
    wait_until(
        "fast webhook got everything",
        Duration::from_secs(10),
        || d.status()[1].delivered == 100,
    );
    assert_eq!(d.status()[1].dropped_queue_full, 0);
    d.shutdown(Duration::from_secs(2));
    let s = &d.status()[0];
    assert_eq!(
        s.delivered + s.dropped_queue_full + s.dropped_at_shutdown,
        100,
        "{s:?}"
    );
}

#[test]
fn shutdown_is_bounded_while_a_receiver_hangs() {
    // Every attempt times out after 200ms; the grace period cuts the retries short.
    let mut hanging = Scripted::new(|_, _| Attempt::Delivered);
    hanging.delay = Duration::from_secs(3600);
    let mut c = config(100, 1000);
    c.timeout = Duration::from_millis(200);
    let d = WebhookDispatcher::start_with("job", &[c], |_| hanging.clone()).unwrap();
    for seq in 0..10 {
        d.submit(&alert("a", seq));
    }
    wait_until("a few failed attempts", Duration::from_secs(5), || {
        d.status()[0].failed_attempts >= 2
    });
    let started = Instant::now();
    d.shutdown(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    d.submit(&alert("a", 99));
    let s = &d.status()[0];
    assert_eq!((s.delivered, s.given_up, s.queued), (0, 0, 0), "{s:?}");
    // The one being retried + 9 queued + the one submitted after the stop.
    assert_eq!(s.dropped_at_shutdown, 11, "{s:?}");
    assert!(hanging.attempts().iter().all(|k| k == "a-0"));
}

/// A real HTTP/1.1 receiver: 500 for the first two attempts of each Idempotency-Key, then 200.
fn flaky_server() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/alerts", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = HashMap::new();
                    headers.insert(":request".to_string(), line.trim().to_string());
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                    }
                    let len: usize = headers["content-length"].parse().unwrap();
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let key = headers["idempotency-key"].clone();
                    let mut log = log.lock().unwrap();
                    let n = log
                        .iter()
                        .filter(|(h, _, _)| h["idempotency-key"] == key)
                        .count();
                    let status = if n < 2 { 500 } else { 200 };
                    log.push((headers, serde_json::from_slice(&body).unwrap(), status));
                    drop(log);
                    let reason = if status == 200 {
                        "OK"
                    } else {
                        "Internal Server Error"
                    };
                    write!(
                        out,
                        "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n"
                    )
                    .unwrap();
                }
            });
        }
    });
    (url, seen)
}

#[test]
fn posts_json_with_idempotency_key_over_real_http() {
    let (url, seen) = flaky_server();
    let mut c = config(100, 5);
    c.url = url;
    let d = WebhookDispatcher::start("job-1", &[c]).unwrap();
    d.submit(&alert("00ff", 0));
    d.submit(&alert("00ff", 1));
    wait_until("2 deliveries", Duration::from_secs(10), || {
        d.status()[0].delivered == 2
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 6);
    let statuses: Vec<u16> = seen.iter().map(|x| x.2).collect();
    assert_eq!(statuses, [500, 500, 200, 500, 500, 200]);
    for (i, (headers, body, _)) in seen.iter().enumerate() {
        let seq = i / 3;
        assert_eq!(headers[":request"], "POST /hooks/alerts HTTP/1.1");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["idempotency-key"], format!("00ff-{seq}"));
        assert_eq!(body["job"], "job-1");
        assert_eq!(body["id"], "00ff");
        assert_eq!(body["sequence"], seq);
        assert_eq!(body["state"], if seq == 0 { "firing" } else { "resolved" });
        assert_eq!(body["severity"], "critical");
        assert_eq!(
            body["score"],
            serde_json::Value::Null,
            "non-finite numbers are null"
        );
        assert_eq!(body["peak_score"], 12.5);
    }
    let s = &d.status()[0];
    assert_eq!((s.delivered, s.failed_attempts, s.given_up), (2, 4, 0));
    assert_eq!(s.queued, 0);
    drop(seen);
    d.shutdown(Duration::from_secs(1));
    assert_eq!(d.status()[0].dropped_at_shutdown, 0);
}
