//! Producing events to the events topic, keyed by metric id so that a metric lives in one
//! partition (the engine's keyed state needs no shuffle). Used by `streampulse produce --kafka`
//! and by the tests.

use std::time::Duration;

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::config::KafkaConfig;
use crate::KafkaError;

pub struct EventProducer {
    producer: ThreadedProducer<DefaultProducerContext>,
    topic: String,
}

impl EventProducer {
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        let mut client = config.client_config();
        client
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        Ok(Self {
            producer: client.create()?,
            topic: topic.to_string(),
        })
    }

    /// Queues one record; waits while the local queue is full.
    pub fn send(&self, key: &str, payload: &[u8]) -> Result<(), KafkaError> {
        let mut record = BaseRecord::to(&self.topic).key(key).payload(payload);
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((err, _)) => return Err(err.into()),
            }
        }
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        Ok(self.producer.flush(timeout)?)
    }
}
