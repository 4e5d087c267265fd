//! The delivery loop of one webhook: its own thread, its own bounded FIFO queue, one delivery at a
//! time. A delivery that is being retried holds back the ones queued behind it, which is what
//! keeps every alert's transitions in order at the receiver.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::backoff::{Backoff, Jitter};
use super::transport::{Attempt, Transport};
use super::WebhookCounters;

/// How often an idle lane looks at the stop signal.
const POLL: Duration = Duration::from_millis(50);

/// One alert transition, serialized once and shared by every webhook.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    /// `<id>-<sequence>`: the `Idempotency-Key` header.
    pub key: String,
    pub body: Arc<[u8]>,
}

/// The shutdown signal: once set, lanes keep delivering until `deadline`, then stop.
#[derive(Debug, Default)]
pub(super) struct Stop {
    deadline: Mutex<Option<Instant>>,
    changed: Condvar,
}

impl Stop {
    pub fn signal(&self, deadline: Instant) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = Some(d.map_or(deadline, |old| old.min(deadline)));
        }
        self.changed.notify_all();
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.lock().ok().and_then(|d| *d)
    }

    /// Time left before the deadline (`None`: not stopping).
    fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Sleeps `wait`, or less if the deadline comes first. False if the deadline has passed.
    fn sleep(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let Ok(mut guard) = self.deadline.lock() else {
            return false;
        };
        loop {
            let now = Instant::now();
            let end = guard.map_or(until, |d| d.min(until));
            if now >= end {
                return guard.is_none_or(|d| now < d);
            }
            guard = match self.changed.wait_timeout(guard, end - now) {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
    }
}

pub(super) struct Lane<T: Transport> {
    pub url: String,
    pub transport: T,
    pub queue: Receiver<Delivery>,
    pub counters: Arc<WebhookCounters>,
    pub stop: Arc<Stop>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub jitter: Jitter,
}

impl<T: Transport> Lane<T> {
    pub fn run(mut self) {
        let _span = tracing::info_span!("webhook", url = %self.url).entered();
        while let Some(delivery) = self.next() {
            self.counters.queued.fetch_sub(1, Relaxed);
            self.deliver(&delivery);
        }
        let mut abandoned = 0;
        while self.queue.try_recv().is_ok() {
            self.counters.queued.fetch_sub(1, Relaxed);
            abandoned += 1;
        }
        if abandoned > 0 {
            self.counters
                .dropped_at_shutdown
                .fetch_add(abandoned, Relaxed);
            tracing::warn!(
                abandoned,
                "stopping: alert transitions still queued for this webhook are not delivered (they are in the store)"
            );
        }
    }

    /// The next delivery, in queue order; `None` when the lane must stop.
    fn next(&self) -> Option<Delivery> {
        loop {
            if let Some(deadline) = self.stop.deadline() {
                // Stopping: drain what is queued until the deadline, wait for nothing new.
                return (Instant::now() < deadline)
                    .then(|| self.queue.try_recv().ok())
                    .flatten();
            }
            match self.queue.recv_timeout(POLL) {
                Ok(delivery) => return Some(delivery),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn deliver(&mut self, delivery: &Delivery) {
        let key = delivery.key.as_str();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let timeout = match self.stop.remaining() {
                Some(left) if left.is_zero() => return self.abandon(key),
                Some(left) => self.timeout.min(left),
                None => self.timeout,
            };
            let (reason, after) = match self.transport.post(&delivery.body, key, timeout) {
                Attempt::Delivered => {
                    self.counters.delivered.fetch_add(1, Relaxed);
                    tracing::debug!(key, attempt, "alert transition delivered");
                    return;
                }
                Attempt::Reject(reason) => {
                    self.counters.failed_attempts.fetch_add(1, Relaxed);
                    self.counters.given_up.fetch_add(1, Relaxed);
                    self.counters.set_last_error(&reason);
                    tracing::error!(key, attempt, %reason, "webhook rejected an alert transition; not retrying");
                    return;
                }
                Attempt::Retry { reason, after } => (reason, after),
            };
            self.counters.failed_attempts.fetch_add(1, Relaxed);
            self.counters.set_last_error(&reason);
            if attempt >= self.max_attempts {
                self.counters.given_up.fetch_add(1, Relaxed);
                tracing::error!(key, attempts = attempt, %reason, "giving up on an alert transition");
                return;
            }
            let mut wait = self.backoff.delay(attempt, &mut self.jitter);
            if let Some(after) = after {
                wait = wait.max(after.min(self.backoff.max));
            }
            tracing::warn!(key, attempt, %reason, retry_in = ?wait, "webhook delivery failed; retrying");
            if !self.stop.sleep(wait) {
                return self.abandon(key);
            }
        }
    }

    fn abandon(&self, key: &str) {
        self.counters.dropped_at_shutdown.fetch_add(1, Relaxed);
        tracing::warn!(
            key,
            "stopping: abandoning an alert transition being retried"
        );
    }
}
