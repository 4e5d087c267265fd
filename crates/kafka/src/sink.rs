//! Outputs to Kafka: window results and alert transitions as JSON records keyed by metric id, and
//! records that are not valid events to the dead-letter topic with the reason in a header (cut to
//! a size any broker takes, so that one huge record cannot fail every checkpoint).
//!
//! One idempotent producer serves all three topics. Records are produced asynchronously; a
//! checkpoint calls [`OutputTopics::flush`] and completes only if every record produced before it
//! was acknowledged, so a partition's offsets are never committed past an output that was lost.
//! A delivery that fails for good is not retried here: it fails the checkpoint, and the worker
//! stops so that its partitions are replayed from their last checkpoint (by it or by another
//! worker). Records are deterministic, so a replay repeats them identically: consumers of these
//! topics see each record at least once and can deduplicate by key and `revision`/`sequence`.
//!
//! Under `kafka.exactly_once` the producer is transactional ([`OutputTopics::transactional`]):
//! everything produced between two checkpoints is one transaction, which the checkpoint commits
//! together with the consumed offsets ([`OutputTopics::commit`], EOS v2: the consumer group's
//! metadata fences a worker that lost its partitions). A transaction that cannot commit is never
//! retried here either: the worker stops, the transaction is aborted (by the broker, or at once by
//! a successor with the same `transactional.id`), and read_committed consumers never see it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, TopicPartitionList};
use streampulse_core::output::Output;

use crate::config::KafkaConfig;
use crate::KafkaError;

/// Header carrying why a record went to the dead-letter topic.
pub const ERROR_HEADER: &str = "streampulse.error";
/// Header carrying where the record came from: `topic/partition/offset`.
pub const SOURCE_HEADER: &str = "streampulse.source";
/// Header present when the dead-letter record holds only the start of the original: the
/// original's size in bytes (payload, then key, as `payload_bytes/key_bytes`).
pub const TRUNCATED_HEADER: &str = "streampulse.truncated";

/// Most payload bytes a dead-letter record keeps: any broker takes it (the default
/// `message.max.bytes` is 1 MiB), so one huge record cannot stop the worker; the coordinates in
/// `streampulse.source` find the original.
pub const MAX_DEAD_LETTER_PAYLOAD: usize = 64 * 1024;
/// Most key bytes a dead-letter record keeps.
pub const MAX_DEAD_LETTER_KEY: usize = 1024;
/// Most bytes of the reason header.
const MAX_REASON: usize = 1024;

/// How long a checkpoint waits for outstanding deliveries (and a transaction to commit).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long starting the transactional producer may take (it aborts a predecessor's open
/// transaction with the same `transactional.id` first).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the output topics could not confirm every record produced so far.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("kafka producer flush: {0}")]
    Flush(#[from] RdKafkaError),
    #[error("{failed} record(s) could not be delivered to Kafka (last: {last})")]
    Undelivered { failed: u64, last: String },
    /// Committing the transaction failed; its records are aborted. Fenced (another worker owns
    /// the partitions now, or took over the `transactional.id`) or a broker error.
    #[error("kafka transaction ({step}): {source}")]
    Transaction {
        step: &'static str,
        #[source]
        source: RdKafkaError,
    },
}

/// Counts deliveries that failed for good; checked by every flush.
#[derive(Default)]
pub struct DeliveryReport {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((err, msg)) = result {
            use rdkafka::Message;
            self.failed.fetch_add(1, Relaxed);
            tracing::error!(error = %err, topic = msg.topic(), "a record could not be delivered");
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(format!("{} on topic {}", err, msg.topic()));
            }
        }
    }
}

pub struct OutputTopics {
    producer: ThreadedProducer<DeliveryReport>,
    results_topic: Option<String>,
    alerts_topic: Option<String>,
    dead_letter_topic: String,
    /// Records sent to the dead-letter topic (for the counters).
    pub dead_lettered: AtomicU64,
    /// Whether a transaction is open (`kafka.exactly_once`): a failed commit has already aborted its transaction, and
    /// aborting again only fails with a warning.
    open: AtomicBool,
}

impl OutputTopics {
    /// At-least-once outputs: records are acknowledged at each checkpoint ([`Self::flush`]).
    pub fn new(config: &KafkaConfig) -> Result<Arc<Self>, KafkaError> {
        Self::create(config, config.client_config())
    }

    /// Exactly-once outputs: a transactional producer with `transactional_id`, its first
    /// transaction open. `checkpoint_interval` sets `transaction.timeout.ms` (unless the
    /// properties do): a transaction stays open one interval, and a worker that dies leaves one
    /// open until a successor with the same id starts, or the timeout aborts it.
    pub fn transactional(
        config: &KafkaConfig,
        transactional_id: &str,
        checkpoint_interval: Duration,
    ) -> Result<Arc<Self>, KafkaError> {
        let mut client = config.client_config();
        client.set("transactional.id", transactional_id);
        if !config.properties.contains_key("transaction.timeout.ms") {
            client.set(
                "transaction.timeout.ms",
                transaction_timeout(checkpoint_interval)
                    .as_millis()
                    .to_string(),
            );
        }
        let topics = Self::create(config, client)?;
        topics.producer.init_transactions(INIT_TIMEOUT)?;
        topics.producer.begin_transaction()?;
        topics.open.store(true, Relaxed);
        tracing::info!(
            transactional_id,
            "exactly-once outputs: transactional producer ready"
        );
        Ok(topics)
    }

    fn create(
        config: &KafkaConfig,
        mut client: rdkafka::ClientConfig,
    ) -> Result<Arc<Self>, KafkaError> {
        // Idempotence makes librdkafka's own retries exact (no duplicates, order kept).
        client.set("enable.idempotence", "true");
        client.set("linger.ms", "5");
        let producer = client.create_with_context(DeliveryReport::default())?;
        let some = |t: &String| (!t.is_empty()).then(|| t.clone());
        Ok(Arc::new(Self {
            producer,
            results_topic: some(&config.results_topic),
            alerts_topic: some(&config.alerts_topic),
            dead_letter_topic: config.dead_letter_topic.clone(),
            dead_lettered: AtomicU64::new(0),
            open: AtomicBool::new(false),
        }))
    }

    /// Whether any output goes to Kafka (the dead-letter topic is always there).
    pub fn writes_outputs(&self) -> bool {
        self.results_topic.is_some() || self.alerts_topic.is_some()
    }

    /// Queues the outputs that have a topic. Blocks (briefly, repeatedly) while the producer's
    /// queue is full rather than dropping a record.
    pub fn send(&self, outputs: &[Output]) {
        for output in outputs {
            let (topic, key, value) = match output {
                Output::Result(r) => {
                    let Some(topic) = &self.results_topic else {
                        continue;
                    };
                    (topic, &*r.metric_id, r.to_json())
                }
                Output::Retract {
                    metric_id,
                    window,
                    window_start,
                    ..
                } => {
                    let Some(topic) = &self.results_topic else {
                        continue;
                    };
                    let value = serde_json::json!({
                        "metric_id": metric_id,
                        "window": window,
                        "window_start": window_start,
                        "retracted": true,
                    });
                    (topic, metric_id.as_str(), value)
                }
                Output::Alert(a) => {
                    let Some(topic) = &self.alerts_topic else {
                        continue;
                    };
                    let value = match serde_json::to_value(a) {
                        Ok(value) => value,
                        Err(err) => {
                            // Counted as a lost delivery: the checkpoint fails rather than
                            // passing an alert that was never produced.
                            self.lost(&format!("cannot encode alert {}: {err}", a.id), topic);
                            continue;
                        }
                    };
                    (topic, a.metric_id.as_str(), value)
                }
                // Late events are stored and served by the API; they are not a stream of their own.
                // Raw events stay in the store: the events topic already holds them.
                Output::Late(_) | Output::Metric { .. } | Output::Raw(_) => continue,
            };
            let payload = value.to_string();
            self.produce(BaseRecord::to(topic).key(key).payload(&payload));
        }
    }

    /// Sends a record that is not a valid event to the dead-letter topic, unchanged (or, past
    /// [`MAX_DEAD_LETTER_PAYLOAD`] / [`MAX_DEAD_LETTER_KEY`], cut, with the original sizes in
    /// [`TRUNCATED_HEADER`]), with `reason` and its origin in headers.
    pub fn dead_letter(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        reason: &str,
        origin: &str,
    ) {
        let (payload_len, key_len) = (payload.map_or(0, <[u8]>::len), key.map_or(0, <[u8]>::len));
        let key = key.map(|k| &k[..k.len().min(MAX_DEAD_LETTER_KEY)]);
        let payload = payload.map(|p| &p[..p.len().min(MAX_DEAD_LETTER_PAYLOAD)]);
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: ERROR_HEADER,
                value: Some(cut_str(reason, MAX_REASON)),
            })
            .insert(Header {
                key: SOURCE_HEADER,
                value: Some(origin),
            });
        if payload_len > MAX_DEAD_LETTER_PAYLOAD || key_len > MAX_DEAD_LETTER_KEY {
            let sizes = format!("{payload_len}/{key_len}");
            tracing::warn!(%origin, payload_len, key_len, "dead-letter record cut to its first bytes");
            headers = headers.insert(Header {
                key: TRUNCATED_HEADER,
                value: Some(&sizes),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.dead_letter_topic).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.produce(record);
        self.dead_lettered.fetch_add(1, Relaxed);
    }

    fn produce<K, P>(&self, mut record: BaseRecord<'_, K, P>)
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((err, r)) => {
                    // Not retryable here (e.g. a record over message.max.bytes): counted as a
                    // failed delivery, which fails the next checkpoint.
                    self.lost(&err.to_string(), r.topic);
                    return;
                }
            }
        }
    }

    /// Counts a record that will not reach `topic`; the next flush fails on it.
    fn lost(&self, why: &str, topic: &str) {
        tracing::error!(error = %why, topic, "cannot produce a record");
        self.producer.context().failed.fetch_add(1, Relaxed);
        if let Ok(mut last) = self.producer.context().last_error.lock() {
            *last = Some(format!("{why} on topic {topic}"));
        }
    }

    /// Waits until every record produced so far is acknowledged. An error means some record
    /// is lost: the caller must not checkpoint past it.
    pub fn flush(&self) -> Result<(), SinkError> {
        self.producer.flush(FLUSH_TIMEOUT)?;
        self.undelivered()
    }

    /// Commits the open transaction with `offsets` (the consumed positions, each naming its
    /// checkpoint in the metadata) as the consumer group `group`, then opens the next. An error
    /// leaves nothing of this transaction visible to read_committed consumers; the caller must
    /// stop (its partitions are replayed from the last committed checkpoints).
    pub fn commit(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), SinkError> {
        let step = |step: &'static str| move |source| SinkError::Transaction { step, source };
        let result = (|| {
            self.undelivered()?;
            if offsets.count() > 0 {
                self.producer
                    .send_offsets_to_transaction(offsets, group, FLUSH_TIMEOUT)
                    .map_err(step("send offsets"))?;
            }
            self.producer
                .commit_transaction(FLUSH_TIMEOUT)
                .map_err(step("commit"))?;
            // A record refused while committing (counted by the delivery report) was not in it.
            self.undelivered()
        })();
        self.open.store(false, Relaxed);
        if let Err(err) = result {
            if let Err(abort) = self.producer.abort_transaction(FLUSH_TIMEOUT) {
                tracing::warn!(error = %abort, "aborting the failed transaction");
            }
            return Err(err);
        }
        self.producer
            .begin_transaction()
            .map_err(step("begin the next"))?;
        self.open.store(true, Relaxed);
        Ok(())
    }

    /// Aborts the open transaction, when the worker stops without committing it, so that
    /// read_committed consumers need not wait for the transaction timeout. Best effort: a
    /// fenced producer cannot abort, and then the broker or the successor does.
    pub fn abort(&self) {
        if self.open.swap(false, Relaxed) {
            if let Err(err) = self.producer.abort_transaction(FLUSH_TIMEOUT) {
                tracing::warn!(error = %err, "aborting the open transaction");
            }
        }
    }

    fn undelivered(&self) -> Result<(), SinkError> {
        let failed = self.producer.context().failed.load(Relaxed);
        if failed > 0 {
            let last = self
                .producer
                .context()
                .last_error
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            return Err(SinkError::Undelivered { failed, last });
        }
        Ok(())
    }
}

/// `transaction.timeout.ms` for a checkpoint interval: three intervals (a slow checkpoint must not
/// time out the open transaction), at least one minute, and at most the brokers' default
/// `transaction.max.timeout.ms` of 15 minutes.
pub fn transaction_timeout(checkpoint_interval: Duration) -> Duration {
    (checkpoint_interval * 3).clamp(Duration::from_secs(60), Duration::from_secs(15 * 60))
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        assert_eq!(cut_str("short", 1024), "short");
        assert_eq!(cut_str("ab€", 3), "ab");
        assert_eq!(cut_str("ab€", 5), "ab€");
        assert_eq!(cut_str(&"é".repeat(600), MAX_REASON).len(), MAX_REASON);
    }

    #[test]
    fn the_transaction_timeout_covers_three_checkpoint_intervals_within_broker_limits() {
        let secs = |s| transaction_timeout(Duration::from_secs(s)).as_secs();
        assert_eq!(secs(1), 60);
        assert_eq!(secs(60), 180);
        assert_eq!(secs(3600), 900);
    }
}
