//! Alert webhooks: every alert transition is POSTed as JSON to each configured URL.
//!
//! ```text
//!  PartitionWorker ×N ──submit (never blocks)──▶ bounded queue ──▶ lane thread ──POST──▶ receiver
//!                                                 (one per webhook URL, FIFO, one delivery at a time)
//! ```
//!
//! The store is the record of alerts; webhooks are a notification. So `submit` never holds a
//! partition back: when a webhook's queue is full the transition is dropped for that webhook,
//! counted and logged (it is still in the store).
//!
//! - **Payload**: the serde form of [`Alert`] plus `"job"`; headers `Content-Type:
//!   application/json` and `Idempotency-Key: <id>-<sequence>`.
//! - **At least once**: after a crash the log is replayed from the last checkpoint, so a
//!   transition may be sent again with the same (id, sequence); a retry after a timeout may also
//!   reach a receiver that had already processed the first attempt. Receivers dedupe by
//!   (id, sequence), i.e. by the `Idempotency-Key`.
//! - **Order**: one lane per webhook delivers its queue in order, one transition at a time, so
//!   the transitions of each alert arrive in sequence order. A delivery being retried holds back
//!   every later one of the same webhook (simple, and it keeps the order); other webhooks are not
//!   affected. A transition given up on leaves a gap in that alert's sequence.
//! - **Retries**: connection errors, timeouts, 408, 429 and 5xx are retried with exponential
//!   backoff and jitter ([`backoff`]) up to `max_attempts` attempts in all, then given up (counted,
//!   logged); other statuses are not retried ([`transport`]).
//! - **Shutdown**: [`WebhookDispatcher::shutdown`] lets the lanes deliver what is queued for a
//!   bounded grace period (each attempt's timeout is cut to what is left of it), then stops; what
//!   is left is counted as dropped at shutdown.

pub mod backoff;
mod lane;
pub mod redact;
pub mod transport;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use streampulse_core::detect::Alert;

use self::backoff::{Backoff, Jitter};
use self::lane::{Delivery, Lane, Stop};
use self::redact::redact;
use self::transport::{HttpTransport, Transport};

/// One webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// `http://host:port/path` (the client is built without TLS).
    pub url: String,
    /// Limit on one attempt: connect, send, and receive the response.
    pub timeout: Duration,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff ceiling after the first failed attempt; doubles after each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Transitions waiting for this webhook beyond which new ones are dropped.
    pub queue_capacity: usize,
}

impl WebhookConfig {
    /// A webhook with the defaults of the configuration file.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            timeout: Duration::from_secs(5),
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            queue_capacity: 10_000,
        }
    }
}

/// Live counters of one webhook.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub given_up: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_at_shutdown: AtomicU64,
    /// Transitions in the queue now (not counting the one being delivered).
    pub queued: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl WebhookCounters {
    fn set_last_error(&self, reason: &str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(reason.to_string());
        }
    }
}

/// One webhook as `GET /jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStatus {
    pub url: String,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub given_up: u64,
    pub dropped_queue_full: u64,
    pub dropped_at_shutdown: u64,
    pub queued: u64,
    /// The reason of the latest failed attempt.
    pub last_error: Option<String>,
}

/// The request body: the alert's fields plus the job's name.
#[derive(Serialize)]
struct Payload<'a> {
    job: &'a str,
    #[serde(flatten)]
    alert: &'a Alert,
}

struct Webhook {
    url: String,
    queue: SyncSender<Delivery>,
    counters: Arc<WebhookCounters>,
}

/// Delivers alert transitions to the configured webhooks; shared by every partition worker.
pub struct WebhookDispatcher {
    job: String,
    webhooks: Vec<Webhook>,
    stop: Arc<Stop>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl WebhookDispatcher {
    /// Starts one delivery thread per webhook.
    pub fn start(job: &str, configs: &[WebhookConfig]) -> std::io::Result<Self> {
        Self::start_with(job, configs, |c| HttpTransport::new(&c.url))
    }

    /// As [`start`](Self::start), with the transport of each webhook made by `transport`.
    pub fn start_with<T: Transport>(
        job: &str,
        configs: &[WebhookConfig],
        transport: impl Fn(&WebhookConfig) -> T,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(Stop::default());
        let mut webhooks = Vec::with_capacity(configs.len());
        let mut threads = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let (tx, rx) = mpsc::sync_channel(config.queue_capacity.max(1));
            let counters = Arc::new(WebhookCounters::default());
            let lane = Lane {
                url: redact(&config.url),
                transport: transport(config),
                queue: rx,
                counters: counters.clone(),
                stop: stop.clone(),
                timeout: config.timeout,
                max_attempts: config.max_attempts.max(1),
                backoff: Backoff {
                    initial: config.initial_backoff,
                    max: config.max_backoff,
                },
                jitter: Jitter::from_clock(
                    streampulse_log::fnv1a_64(config.url.as_bytes()) ^ i as u64,
                ),
            };
            let spawned = std::thread::Builder::new()
                .name(format!("webhook-{i}"))
                .spawn(move || lane.run());
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(err) => {
                    stop.signal(Instant::now());
                    return Err(err);
                }
            }
            webhooks.push(Webhook {
                url: redact(&config.url),
                queue: tx,
                counters,
            });
        }
        Ok(Self {
            job: job.to_string(),
            webhooks,
            stop,
            threads: Mutex::new(threads),
        })
    }

    /// Queues one alert transition for every webhook. Never blocks: a webhook whose queue is full
    /// does not get this transition (counted and logged).
    pub fn submit(&self, alert: &Alert) {
        if self.webhooks.is_empty() {
            return;
        }
        let key = format!("{}-{}", alert.id, alert.sequence);
        let stopping = self.stop.deadline().is_some();
        let body: Arc<[u8]> = match serde_json::to_vec(&Payload {
            job: &self.job,
            alert,
        }) {
            Ok(body) => body.into(),
            Err(err) => {
                tracing::error!(key, error = %err, "cannot serialize an alert transition for webhooks");
                return;
            }
        };
        for webhook in &self.webhooks {
            let counters = &webhook.counters;
            if stopping {
                counters.dropped_at_shutdown.fetch_add(1, Relaxed);
                continue;
            }
            counters.queued.fetch_add(1, Relaxed);
            let delivery = Delivery {
                key: key.clone(),
                body: body.clone(),
            };
            match webhook.queue.try_send(delivery) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    counters.queued.fetch_sub(1, Relaxed);
                    let dropped = counters.dropped_queue_full.fetch_add(1, Relaxed) + 1;
                    tracing::warn!(url = %webhook.url, key, dropped, "webhook queue full: alert transition not sent to this webhook (it is in the store)");
                }
                Err(TrySendError::Disconnected(_)) => {
                    counters.queued.fetch_sub(1, Relaxed);
                    counters.dropped_at_shutdown.fetch_add(1, Relaxed);
                }
            }
        }
    }

    pub fn status(&self) -> Vec<WebhookStatus> {
        self.webhooks
            .iter()
            .map(|w| {
                let c = &w.counters;
                WebhookStatus {
                    url: w.url.clone(),
                    delivered: c.delivered.load(Relaxed),
                    failed_attempts: c.failed_attempts.load(Relaxed),
                    given_up: c.given_up.load(Relaxed),
                    dropped_queue_full: c.dropped_queue_full.load(Relaxed),
                    dropped_at_shutdown: c.dropped_at_shutdown.load(Relaxed),
                    queued: c.queued.load(Relaxed),
                    last_error: c.last_error.lock().ok().and_then(|e| e.clone()),
                }
            })
            .collect()
    }

    /// Stops accepting transitions, lets the lanes deliver what is queued for at most `grace`,
    /// then stops them. Returns within about `grace` (plus a small margin for a thread to
    /// notice): a lane still busy then is left to finish on its own. Later calls do nothing more.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.stop.signal(deadline);
        let threads = match self.threads.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => return,
        };
        if threads.is_empty() {
            return;
        }
        let wait_until = deadline + Duration::from_millis(500);
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < wait_until {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut unfinished = 0;
        for handle in threads {
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                unfinished += 1;
            }
        }
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "webhook delivery threads did not stop in time; leaving them"
            );
        }
        for s in self.status() {
            tracing::info!(url = %s.url, delivered = s.delivered, failed_attempts = s.failed_attempts, given_up = s.given_up, dropped_queue_full = s.dropped_queue_full, dropped_at_shutdown = s.dropped_at_shutdown, "webhook stopped");
        }
    }
}

impl Drop for WebhookDispatcher {
    fn drop(&mut self) {
        // Without a shutdown, lanes stop once their queue is disconnected and drained.
        self.stop.signal(Instant::now() + Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests;
