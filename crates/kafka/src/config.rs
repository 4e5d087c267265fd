//! The `kafka:` section of the configuration: where events come from and where outputs go when a
//! job runs in a consumer group.
//!
//! Empty `brokers` means Kafka is off (events come over HTTP into the embedded log). Everything in
//! `properties` is handed to librdkafka unchanged, for both the consumer and the producer, so TLS
//! and SASL (`security.protocol`, `sasl.mechanisms`, `ssl.ca.location`, …) need no code here.

use std::collections::BTreeMap;
use streampulse_core::config::ConfigError;

use serde::{Deserialize, Serialize};

/// Where a partition without a checkpoint starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// The first retained record: a new job sees the topic's history.
    #[default]
    Earliest,
    /// Only records produced after the partition is first assigned.
    Latest,
}

/// What a partition does when its checkpoint resumes at an offset the topic no longer holds
/// (retention deleted it, or `DeleteRecords`): the records in between are gone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDataLoss {
    /// The worker stops, naming the topic, partition, the offset wanted and the earliest there.
    #[default]
    Fail,
    /// The partition resumes at the earliest offset there; the records it never saw are counted
    /// (`lost_records`) and logged.
    Skip,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port…]`; empty: Kafka off.
    pub brokers: String,
    /// The events topic: JSON events keyed by metric id.
    pub topic: String,
    /// Consumer group of the job's workers; empty: `streampulse-<job name>`.
    pub group_id: String,
    /// Where a partition without a checkpoint starts.
    pub start: StartPosition,
    /// What a partition does when its checkpointed offset is no longer in the topic.
    pub on_data_loss: OnDataLoss,
    /// Records that are not valid events go here, with the reason in a header.
    pub dead_letter_topic: String,
    /// Window results as JSON keyed by metric id; empty: not written to Kafka.
    pub results_topic: String,
    /// Alert transitions as JSON keyed by metric id; empty: not written to Kafka.
    pub alerts_topic: String,
    /// Results, alerts and dead letters go out in Kafka transactions, committed with each
    /// checkpoint together with the consumed offsets: a `read_committed` consumer of the output
    /// topics sees each record exactly once, one checkpoint interval later.
    pub exactly_once: bool,
    /// The `transactional.id` of this worker's producer when `exactly_once`: unique per live
    /// worker and, ideally, the same after a restart (a pod name), so that a restarted worker
    /// aborts its predecessor's open transaction at once instead of after the transaction
    /// timeout. `STREAMPULSE_KAFKA_TRANSACTIONAL_ID` wins over it; empty: `<group>-<host>-<pid>`.
    pub transactional_id: String,
    /// librdkafka properties for the consumer and the producer (TLS, SASL, timeouts).
    pub properties: BTreeMap<String, String>,
}

/// The environment variable that sets [`KafkaConfig::transactional_id`] (e.g. from a pod's name).
pub const TRANSACTIONAL_ID_ENV: &str = "STREAMPULSE_KAFKA_TRANSACTIONAL_ID";

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            topic: "events".into(),
            group_id: String::new(),
            start: StartPosition::Earliest,
            on_data_loss: OnDataLoss::Fail,
            dead_letter_topic: "events.dead-letter".into(),
            results_topic: String::new(),
            alerts_topic: String::new(),
            exactly_once: false,
            transactional_id: String::new(),
            properties: BTreeMap::new(),
        }
    }
}

/// Properties the runtime sets itself: a user value would break the exactly-once argument.
const RESERVED: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "bootstrap.servers",
    "transactional.id",
];

impl KafkaConfig {
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }

    pub fn group_for(&self, job: &str) -> String {
        if self.group_id.is_empty() {
            format!("streampulse-{job}")
        } else {
            self.group_id.clone()
        }
    }

    /// The producer's `transactional.id` under `exactly_once`: the environment variable, the
    /// configured id, or one unique to this process.
    pub fn transactional_id_for(&self, job: &str) -> String {
        if let Ok(id) = std::env::var(TRANSACTIONAL_ID_ENV) {
            if !id.trim().is_empty() {
                return id.trim().to_string();
            }
        }
        if !self.transactional_id.is_empty() {
            return self.transactional_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        format!("{}-{host}-{}", self.group_for(job), std::process::id())
    }

    /// Checks what a broker would only reject later, or never: names the offending key.
    /// Keys are relative to `kafka`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let fail = |key: &str, msg: &str| Err(ConfigError::new(key, msg));
        for (key, topic) in [
            ("topic", &self.topic),
            ("dead_letter_topic", &self.dead_letter_topic),
        ] {
            if topic.is_empty() {
                return fail(key, "must name a topic");
            }
        }
        for (key, topic) in [
            ("topic", &self.topic),
            ("dead_letter_topic", &self.dead_letter_topic),
            ("results_topic", &self.results_topic),
            ("alerts_topic", &self.alerts_topic),
        ] {
            // An empty results or alerts topic means "not produced" (the empty events and
            // dead-letter topics were refused above).
            if !topic.is_empty() && !streampulse_core::name::KAFKA_TOPIC.allows(topic) {
                return fail(
                    key,
                    "a topic name is at most 249 letters, digits, '.', '_' and '-'",
                );
            }
        }
        if !self.transactional_id.is_empty()
            && !streampulse_core::name::KAFKA_TOPIC.allows(&self.transactional_id)
        {
            return fail(
                "transactional_id",
                "at most 249 letters, digits, '.', '_' and '-'",
            );
        }
        // The environment's id wins over the file's: it must pass the same rule, or the
        // producer would fail only once partitions are assigned.
        if let Ok(id) = std::env::var(TRANSACTIONAL_ID_ENV) {
            let id = id.trim();
            if !id.is_empty() && !streampulse_core::name::KAFKA_TOPIC.allows(id) {
                return Err(ConfigError::new(
                    "transactional_id",
                    format!(
                        "{TRANSACTIONAL_ID_ENV} '{}' must be at most 249 letters, digits, '.', \
                         '_' and '-'",
                        id.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        if self.dead_letter_topic == self.topic {
            return fail("dead_letter_topic", "must differ from kafka.topic");
        }
        for key in self.properties.keys() {
            if RESERVED.contains(&key.as_str()) {
                return Err(ConfigError::new(
                    format!("properties.{key}"),
                    "is set by StreamPulse itself (use kafka.brokers, kafka.group_id, \
                     kafka.exactly_once, kafka.transactional_id)",
                ));
            }
        }
        Ok(())
    }

    /// A librdkafka configuration with the brokers and the pass-through properties.
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", self.brokers.trim());
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            ..Default::default()
        }
    }

    #[test]
    fn disabled_by_default_and_valid_when_enabled() {
        assert!(!KafkaConfig::default().enabled());
        assert!(KafkaConfig::default().validate().is_ok());
        assert!(enabled().validate().is_ok());
        assert_eq!(enabled().group_for("q1"), "streampulse-q1");
    }

    #[test]
    fn errors_name_the_key() {
        let mut c = enabled();
        c.results_topic = "bad topic".into();
        assert_eq!(c.validate().unwrap_err().key, "results_topic");
        let mut c = enabled();
        c.properties
            .insert("enable.auto.commit".into(), "true".into());
        assert_eq!(
            c.validate().unwrap_err().key,
            "properties.enable.auto.commit"
        );
        let mut c = enabled();
        c.dead_letter_topic = "events".into();
        assert_eq!(c.validate().unwrap_err().key, "dead_letter_topic");
    }
}
