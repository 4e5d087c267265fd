//! The cluster-wide live feed: follows the results and alerts topics from their end and publishes
//! every record into a [`LiveFeed`], so that a WebSocket client of any worker (or of
//! `streampulse serve`) sees the outputs of every partition, not only of those its worker owns.
//!
//! It reads with a plain assignment of every partition, starting at the end: it never joins the
//! consumer group, never commits an offset, and never delays the worker (a record it cannot
//! decode is counted and skipped, a broker it cannot reach is retried by librdkafka). Under
//! `kafka.exactly_once` it reads `read_committed`, so a client sees only committed outputs (one
//! checkpoint interval later), never a record of a transaction that is then aborted.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use streampulse_core::detect::Alert;
use streampulse_core::output::WindowResult;
use streampulse_engine::feed::{Emission, FromElsewhere, LiveFeed, FEED_CHUNK, LIVE_FEED_CAPACITY};

use crate::config::KafkaConfig;
use crate::driver::topic_partitions;
use crate::KafkaError;

/// How long one poll waits before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// A thread that follows the output topics into a feed; stops when dropped.
pub struct OutputFollower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The feed a process of a consumer group serves its WebSocket clients from: results and alerts
/// from the output topics that are configured (the others from this process's own partitions).
pub fn cluster_feed(config: &KafkaConfig) -> LiveFeed {
    LiveFeed::fed_from(
        LIVE_FEED_CAPACITY,
        FromElsewhere {
            results: !config.results_topic.is_empty(),
            alerts: !config.alerts_topic.is_empty(),
        },
    )
}

impl OutputFollower {
    /// Starts following the topics `feed` takes from elsewhere (see [`cluster_feed`]); `None`
    /// when it takes none (no output topic is configured).
    pub fn start(config: &KafkaConfig, feed: LiveFeed) -> Result<Option<Self>, KafkaError> {
        let elsewhere = feed.elsewhere();
        let mut assignment = TopicPartitionList::new();
        for (wanted, topic) in [
            (elsewhere.results, &config.results_topic),
            (elsewhere.alerts, &config.alerts_topic),
        ] {
            if !wanted {
                continue;
            }
            for p in 0..topic_partitions(config, topic)? {
                assignment.add_partition_offset(topic, p as i32, Offset::End)?;
            }
        }
        if assignment.count() == 0 {
            return Ok(None);
        }
        let mut client = config.client_config();
        // librdkafka wants a group even for a plain assignment; it is never joined (no
        // subscribe) and nothing is committed to it.
        client
            .set("group.id", "streampulse-live-feed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "isolation.level",
                if config.exactly_once {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            );
        let consumer: BaseConsumer = client.create()?;
        consumer.assign(&assignment)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (results_topic, alerts_topic) =
            (config.results_topic.clone(), config.alerts_topic.clone());
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("output-follower".into())
                .spawn(move || {
                    let mut chunk = Vec::with_capacity(FEED_CHUNK);
                    while !stop.load(Relaxed) {
                        // What came at once goes to the feed as one chunk; a wait publishes it.
                        let wait = if chunk.is_empty() {
                            POLL
                        } else {
                            Duration::ZERO
                        };
                        let Some(polled) = consumer.poll(wait) else {
                            if !chunk.is_empty() {
                                feed.publish_remote(std::mem::take(&mut chunk));
                            }
                            continue;
                        };
                        let msg = match polled {
                            Ok(msg) => msg,
                            Err(err) => {
                                tracing::debug!(error = %err, "following the output topics");
                                continue;
                            }
                        };
                        // Nobody listens: nothing to decode (the offsets move on regardless).
                        if feed.subscribers() == 0 {
                            chunk.clear();
                            continue;
                        }
                        let emission = msg.payload().and_then(|payload| {
                            decode(
                                msg.topic() == results_topic,
                                msg.topic() == alerts_topic,
                                payload,
                            )
                        });
                        match emission {
                            Some(Some(emission)) => chunk.push(emission),
                            // A retraction: the feed carries results and alerts only.
                            Some(None) => {}
                            None => {
                                tracing::debug!(
                                    topic = msg.topic(),
                                    offset = msg.offset(),
                                    "an output record that is not a result or an alert; skipped"
                                );
                            }
                        }
                        if chunk.len() >= FEED_CHUNK {
                            feed.publish_remote(std::mem::take(&mut chunk));
                        }
                    }
                })
                .map_err(KafkaError::Spawn)?
        };
        Ok(Some(Self {
            stop,
            thread: Some(thread),
        }))
    }
}

/// The emission a record of the results (`result`) or alerts (`alert`) topic stands for:
/// `Some(None)` for a retraction, `None` for a record that is none of these.
fn decode(result: bool, alert: bool, payload: &[u8]) -> Option<Option<Emission>> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if result {
        if value.get("retracted").is_some() {
            return Some(None);
        }
        return WindowResult::from_json(&value).map(|r| Some(Emission::Result(r)));
    }
    if alert {
        return serde_json::from_value::<Alert>(value)
            .ok()
            .map(|a| Some(Emission::Alert(a)));
    }
    None
}

impl Drop for OutputFollower {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_as_the_sink_wrote_them() {
        let r = WindowResult {
            metric_id: "cpu".into(),
            window: "tumble_10s".into(),
            window_start: 0,
            window_end: 10_000,
            count: 2,
            sum: 3.0,
            min: 1.0,
            max: 2.0,
            mean: 1.5,
            extra: Default::default(),
            revision: 1,
        };
        let payload = r.to_json().to_string();
        assert!(matches!(
            decode(true, false, payload.as_bytes()),
            Some(Some(Emission::Result(back))) if back == r
        ));
        let retraction = br#"{"metric_id":"cpu","window":"w","window_start":0,"retracted":true}"#;
        assert!(matches!(decode(true, false, retraction), Some(None)));
        assert!(decode(true, false, b"not json").is_none());
        assert!(
            decode(false, true, payload.as_bytes()).is_none(),
            "not an alert"
        );
    }
}
