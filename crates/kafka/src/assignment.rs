//! What happens when the consumer group moves partitions: the rebalance callback.
//!
//! - **Assigned**: restore each partition's latest checkpoint (or start empty) and tell the
//!   consumer to start reading at the checkpointed offset, not at the committed one: the state and
//!   the offset must belong together.
//! - **Revoked**: checkpoint each partition (outputs durable, state saved, offset committed), then
//!   drop it; whoever gets it next restores exactly that.
//! - **Lost** (the session expired, another worker may already own it): drop without writing, so
//!   as never to overwrite the new owner's checkpoint. Under exactly-once the open transaction
//!   holds outputs of the lost partitions, so the worker stops instead (it restarts from the
//!   committed checkpoints).
//!
//! Under exactly-once the checkpoint to restore is the one the group's committed offset names
//! (read with `committed_offsets`, which waits for transactions still committing, read again
//! for up to [`committed_wait`] while a previous owner's transaction holds them), and a revoke
//! commits a transaction for every owned partition.
//!
//! librdkafka calls this from inside `poll` on the driver thread, so it may take the time a
//! checkpoint needs; the consumer's `max.poll.interval.ms` bounds it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset};

use crate::partitions::{committed_checkpoint, Partitions};

/// How long the rebalance callback waits for a partition's earliest offset.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read of the group's committed offsets may take (transactions still committing
/// are waited for).
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AssignmentContext {
    pub partitions: Arc<Mutex<Partitions>>,
    pub topic: String,
    /// How long the callback reads the committed offsets again while they are not stable (see
    /// [`committed_wait`]).
    pub committed_wait: Duration,
    /// Each partition's high watermark, from librdkafka's periodic statistics (no extra
    /// requests): for lag, and to tell an idle partition from one not yet read.
    pub log_end: Arc<Vec<AtomicU64>>,
}

impl ClientContext for AssignmentContext {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        for (&p, stats) in &topic.partitions {
            if let Some(end) = usize::try_from(p).ok().and_then(|p| self.log_end.get(p)) {
                if stats.hi_offset >= 0 {
                    end.store(stats.hi_offset as u64, Relaxed);
                }
            }
        }
    }
}

/// The offsets of `commits` on `topic`, as a list to commit.
pub fn commit_list(topic: &str, commits: &[(u32, u64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::with_capacity(commits.len());
    for &(p, offset) in commits {
        let _ = tpl.add_partition_offset(topic, p as i32, Offset::Offset(offset as i64));
    }
    tpl
}

/// How long a worker waits for the group's committed offsets of partitions it is given. Under
/// exactly-once the broker answers only once no transaction holds pending offsets of them; a
/// previous owner paused or cut off mid-commit holds them until the broker aborts its
/// transaction, `transaction_timeout` after it began (plus the broker's sweep, every 10 s). So
/// the wait covers that, but stays inside `max_poll_interval`: the wait runs inside `poll`,
/// and a longer one would make the group drop this worker too.
pub fn committed_wait(
    exactly_once: bool,
    transaction_timeout: Duration,
    max_poll_interval: Duration,
) -> Duration {
    if !exactly_once {
        return COMMITTED_TIMEOUT;
    }
    let margin = Duration::from_secs(30);
    (transaction_timeout + margin)
        .min(max_poll_interval.saturating_sub(margin))
        .max(COMMITTED_TIMEOUT)
}

/// The checkpoint references in the group's committed offsets of `partitions` (those that have
/// one), read again while the broker's answer times out, for up to `wait`.
fn committed_checkpoints(
    consumer: &BaseConsumer<AssignmentContext>,
    topic: &str,
    partitions: &[u32],
    wait: Duration,
) -> KafkaResult<BTreeMap<u32, String>> {
    let mut tpl = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        tpl.add_partition(topic, p as i32);
    }
    let deadline = Instant::now() + wait;
    let committed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.committed_offsets(tpl.clone(), left.min(COMMITTED_TIMEOUT)) {
            Err(err)
                if err.rdkafka_error_code() == Some(RDKafkaErrorCode::OperationTimedOut)
                    && Instant::now() < deadline =>
            {
                tracing::warn!(
                    ?partitions,
                    waiting_up_to = ?deadline.saturating_duration_since(Instant::now()),
                    "the group's committed offsets are not stable yet (a transaction of the \
                     partitions' previous owner is open until it commits or the broker aborts \
                     it); reading them again"
                );
            }
            other => break other?,
        }
    };
    Ok(committed
        .elements_for_topic(topic)
        .iter()
        .filter_map(|e| {
            let reference = committed_checkpoint(e.metadata())?;
            Some((e.partition() as u32, reference.to_string()))
        })
        .collect())
}

impl AssignmentContext {
    fn on_assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let topic = self.topic.as_str();
        let assigned: Vec<u32> = tpl
            .elements_for_topic(topic)
            .iter()
            .map(|e| e.partition() as u32)
            .collect();
        // Read before taking the partitions' lock: the read can wait up to `committed_wait`, and
        // status requests need that lock meanwhile. Read in both modes: right after a job turns
        // `exactly_once` off, the offsets its last transaction committed still name the
        // checkpoint that belongs to them.
        let read = committed_checkpoints(consumer, topic, &assigned, self.committed_wait);
        let Ok(mut parts) = self.partitions.lock() else {
            return;
        };
        let committed = match read {
            Ok(committed) => committed,
            Err(err) if parts.tentative_writer.is_some() => {
                tracing::error!(error = %err, "cannot read the group's committed offsets");
                parts.fatal.get_or_insert(format!(
                    "cannot read the consumer group's committed offsets: {err}"
                ));
                return;
            }
            Err(err) => {
                // At least once, an older plain checkpoint is as good a place to resume.
                tracing::warn!(error = %err, "cannot read the group's committed offsets; restoring the latest plain checkpoints");
                BTreeMap::new()
            }
        };
        for p in assigned {
            let earliest = || match consumer.fetch_watermarks(topic, p as i32, WATERMARK_TIMEOUT) {
                Ok((low, _)) => u64::try_from(low).ok(),
                Err(err) => {
                    tracing::warn!(partition = p, error = %err, "cannot read the partition's earliest offset; not checking for lost records");
                    None
                }
            };
            match parts.assign(p, committed.get(&p).map(String::as_str), earliest) {
                Ok(offset) => {
                    let _ = tpl.set_partition_offset(topic, p as i32, offset);
                }
                Err(err) => {
                    tracing::error!(partition = p, error = %err, "cannot take over a partition");
                    parts.fatal.get_or_insert(err.to_string());
                }
            }
        }
    }

    /// Checkpoints and drops the revoked partitions; the offsets to commit, unless lost.
    fn on_revoke(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &TopicPartitionList,
        lost: bool,
    ) -> Option<TopicPartitionList> {
        let mut parts = self.partitions.lock().ok()?;
        let topic = parts.topic.clone();
        let revoked: Vec<u32> = tpl
            .elements_for_topic(&topic)
            .iter()
            .map(|e| e.partition() as u32)
            .filter(|p| parts.owned.contains_key(p))
            .collect();
        let commits = if lost {
            tracing::warn!(partitions = ?revoked, "partitions lost: dropping them without a checkpoint");
            if parts.tentative_writer.is_some() && !revoked.is_empty() {
                parts.fatal.get_or_insert(
                    "partitions were lost (the group moved them while this worker did not \
                     answer): the open transaction is aborted and the worker restarts from the \
                     committed checkpoints"
                        .into(),
                );
            }
            None
        } else {
            match parts.checkpoint(&revoked, consumer.group_metadata().as_ref()) {
                Ok(commits) => Some(commit_list(&topic, &commits)),
                Err(err) => {
                    // The successor restores the previous checkpoint and replays from there.
                    tracing::error!(error = %err, partitions = ?revoked, "cannot checkpoint revoked partitions");
                    None
                }
            }
        };
        for p in revoked {
            parts.release(p);
        }
        tracing::info!(partitions = ?tpl.elements_for_topic(&topic).iter().map(|e| e.partition()).collect::<Vec<_>>(), lost, "partitions revoked");
        commits
    }
}

fn log_failure(what: &str, result: KafkaResult<()>) {
    if let Err(err) = result {
        tracing::error!(error = %err, "{what} failed");
    }
}

impl ConsumerContext for AssignmentContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                tracing::info!(
                    partitions = ?tpl.elements().iter().map(|e| e.partition()).collect::<Vec<_>>(),
                    protocol = if cooperative { "cooperative" } else { "eager" },
                    "partitions assigned by the group"
                );
                self.on_assign(consumer, tpl);
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                log_failure("assign", result);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                if let Some(commits) = self.on_revoke(consumer, tpl, lost) {
                    if commits.count() > 0 {
                        log_failure("offset commit", consumer.commit(&commits, CommitMode::Sync));
                    }
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                log_failure("unassign", result);
            }
            other => {
                tracing::error!(error = ?other, "rebalance error: dropping every partition");
                let all = consumer.assignment().unwrap_or_default();
                let _ = self.on_revoke(consumer, &all, true);
                log_failure("unassign", consumer.unassign());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_offsets_are_awaited_past_a_transaction_timeout_within_the_poll_interval() {
        let s = Duration::from_secs;
        // At least once: one read.
        assert_eq!(committed_wait(false, s(60), s(300)), s(30));
        // The transaction timeout, the broker's sweep and a margin.
        assert_eq!(committed_wait(true, s(60), s(300)), s(90));
        // Never past the poll interval, never under one read.
        assert_eq!(committed_wait(true, s(900), s(300)), s(270));
        assert_eq!(committed_wait(true, s(60), s(40)), s(30));
    }
}
