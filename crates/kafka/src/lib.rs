//! StreamPulse on Kafka: how a job runs when one machine is not enough.
//!
//! N `streampulse` processes join one consumer group on the events topic. Kafka assigns each its
//! share of the partitions; a partition's state (windows, detectors, watermark) lives with whoever
//! owns it and moves with it through the shared checkpoint storage:
//!
//! ```text
//!   events topic ──poll──▶ KafkaDriver ──▶ PartitionPipeline ×owned ──▶ store, results/alerts topics
//!        ▲  seek to checkpointed offset      │ rebalance: checkpoint revoked, restore assigned
//!        └──── commit offsets ◀── PartitionCheckpointStore (file:// on a shared volume, …)
//! ```
//!
//! - [`config`]: the `kafka:` section (brokers, topics, group, librdkafka properties);
//! - [`driver`]: the consumer loop that runs the owned partitions and answers the API;
//! - [`assignment`]: what happens when partitions arrive and leave (restore, checkpoint, commit);
//! - [`partitions`]: the owned partitions and their checkpoints;
//! - [`sink`]: results and alerts to Kafka topics, bad records to the dead-letter topic;
//! - [`follow`]: the output topics followed back into the live feed, so that every worker's
//!   WebSocket clients see every partition;
//! - [`admin`]: creating the topics a job needs;
//! - [`producer`]: keyed event production for load and tests;
//! - [`traces`]: a producer's trace continued through the records it sent (W3C `traceparent`).
//!
//! Exactly-once rests on the same argument as the embedded runtime: state and offsets are
//! checkpointed together, outputs are idempotent upserts (and deterministic Kafka records keyed
//! by metric), and a partition resumes from its last checkpoint wherever it lands. The output
//! topics are at least once by default, with records that repeat identically after a replay;
//! with `kafka.exactly_once` they are written in Kafka transactions that commit the consumed
//! offsets and name the checkpoints they belong to (see [`partitions`]), so read_committed
//! consumers see each record once.

pub mod admin;
pub mod assignment;
pub mod config;
pub mod driver;
pub mod follow;
pub mod partitions;
pub mod producer;
pub mod sink;
pub mod traces;

pub use config::{KafkaConfig, OnDataLoss, StartPosition};
pub use driver::{topic_partitions, KafkaDriver};

/// Why a Kafka job or tool failed.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("topic '{topic}' does not exist on {brokers}: create it first (`streampulse topics create`)")]
    NoSuchTopic { topic: String, brokers: String },
    #[error("{0}")]
    Engine(#[from] streampulse_engine::EngineError),
    #[error("cannot start the kafka driver: {0}")]
    Spawn(std::io::Error),
    /// The group's committed offset names a checkpoint the storage does not hold.
    #[error("partition {partition}: the consumer group's committed offset belongs to checkpoint '{reference}', which {storage} does not hold (deleted, or another checkpoint.storage than the one the group ran with)")]
    MissingCheckpoint {
        partition: u32,
        reference: String,
        storage: String,
    },
    /// A checkpoint resumes, or a running worker reads, at an offset the topic no longer holds
    /// (`kafka.on_data_loss: fail`).
    #[error("partition {partition} of topic '{topic}': {whence} offset {wanted}, but the topic holds records from offset {earliest} on (retention or DeleteRecords removed {lost} records this job never processed); set kafka.on_data_loss: skip to resume at {earliest} and count them, or restore an older state")]
    DataLoss {
        topic: String,
        partition: u32,
        /// "the checkpoint resumes at" or "the worker reads at".
        whence: &'static str,
        wanted: u64,
        earliest: u64,
        lost: u64,
    },
    /// A running worker reads past the end of what the topic holds: it was deleted and created
    /// again, or truncated.
    #[error("partition {partition} of topic '{topic}': the worker reads at offset {wanted}, but the topic's records end before offset {end} (the topic was deleted and created again, or truncated): the job's state belongs to records that are gone; restore an older state or start the job under a new name")]
    TopicRewound {
        topic: String,
        partition: u32,
        wanted: u64,
        end: u64,
    },
}
