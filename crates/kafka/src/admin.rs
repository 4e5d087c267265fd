//! Creating the topics a job needs: the events topic (its partition count is the job's unit of
//! parallelism), the dead-letter topic, and the result and alert topics when configured.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::KafkaError;

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    AlreadyExists,
    Failed(String),
}

/// The topics `config` names, with the partition count each should get: the events topic gets
/// `partitions`, the others as many (outputs are keyed by metric, like the input).
pub fn job_topics(config: &KafkaConfig, partitions: i32) -> Vec<(String, i32)> {
    [
        &config.topic,
        &config.dead_letter_topic,
        &config.results_topic,
        &config.alerts_topic,
    ]
    .into_iter()
    .filter(|t| !t.is_empty())
    .map(|t| (t.clone(), partitions))
    .collect()
}

/// Creates `topics` (name, partitions) with `replication`; existing topics are left alone.
pub fn create_topics(
    config: &KafkaConfig,
    topics: &[(String, i32)],
    replication: i32,
) -> Result<Vec<(String, TopicOutcome)>, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.client_config().create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(replication))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = block_on(admin.create_topics(&new, &options))?;
    let outcomes: Vec<(String, TopicOutcome)> = results
        .into_iter()
        .map(|r| match r {
            Ok(name) => (name, TopicOutcome::Created),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                (name, TopicOutcome::AlreadyExists)
            }
            Err((name, code)) => (name, TopicOutcome::Failed(code.to_string())),
        })
        .collect();
    for (name, partitions) in topics {
        let created = outcomes
            .iter()
            .any(|(n, o)| n == name && *o == TopicOutcome::Created);
        if created && !visible(&admin, name, *partitions) {
            tracing::warn!(topic = %name, "created, but not yet in the brokers' metadata after {VISIBLE_TIMEOUT:?}");
        }
    }
    Ok(outcomes)
}

/// How long creating waits for new topics to show in the metadata.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `topic` shows in the metadata with its `partitions`, waiting up to [`VISIBLE_TIMEOUT`]:
/// the controller answers before every broker knows the topic, and a worker started right after
/// `topics create` must find it.
fn visible(admin: &AdminClient<DefaultClientContext>, topic: &str, partitions: i32) -> bool {
    let deadline = std::time::Instant::now() + VISIBLE_TIMEOUT;
    loop {
        let found = admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .is_ok_and(|m| {
                m.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0)
                })
            });
        if found || std::time::Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The admin client's futures complete on librdkafka's own thread: a trivial executor suffices.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(std::sync::Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
