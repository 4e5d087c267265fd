//! The partitions this worker owns right now: their pipelines, the offsets they resume from, and
//! how they are restored from and saved to the shared per-partition checkpoints.
//!
//! Everything here runs on the driver thread (rebalance callbacks run inside its `poll`), so the
//! state is never shared across threads while it is used; the mutex around it only lets the
//! consumer context reach it.
//!
//! Under `kafka.exactly_once` a checkpoint is a two-step commit whose deciding step is Kafka's:
//! every owned partition's state is written as a *tentative* checkpoint, then one transaction
//! commits the outputs produced since the last checkpoint together with the offsets, each offset
//! carrying the name of its partition's checkpoint in its metadata. Whatever happens between the
//! two steps, the group's committed offsets name the state that belongs to them: a successor
//! restores exactly that checkpoint ([`Partitions::assign`]), and the outputs of a transaction
//! that did not commit are replayed into a new one. Because one transaction holds the outputs of
//! every owned partition, a checkpoint always covers all of them.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use streampulse_core::clock::now_ms;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::{Offset, TopicPartitionList};
use streampulse_core::job::Job;
use streampulse_core::pipeline::PartitionPipeline;
use streampulse_engine::checkpoint::PartitionCheckpointStore;
use streampulse_engine::emit::{Emitter, RetryDecision};
use streampulse_engine::status::CheckpointInfo;
use streampulse_engine::task::PartitionTask;
use streampulse_engine::telemetry::OutputTally;
use streampulse_engine::EngineError;

use crate::config::{OnDataLoss, StartPosition};
use crate::sink::OutputTopics;
use crate::traces::TraceWatch;
use crate::KafkaError;

pub struct OwnedPartition {
    pub task: PartitionTask,
    /// Id of the partition's latest checkpoint (0: none yet).
    pub checkpoint_id: u64,
}

pub struct Partitions {
    pub job: Job,
    pub topic: String,
    pub start: StartPosition,
    pub on_data_loss: OnDataLoss,
    pub owned: BTreeMap<u32, OwnedPartition>,
    pub emitter: Emitter,
    pub tally: OutputTally,
    pub checkpoints: PartitionCheckpointStore,
    pub topics: Arc<OutputTopics>,
    /// Set when the worker cannot go on safely (a partition cannot be restored, a delivery was
    /// lost); the driver stops and the process exits non-zero.
    pub fatal: Option<String>,
    /// The store's [`streampulse_store::ResultStore::generation`] the applied outputs belong to.
    pub store_generation: u64,
    /// Under `kafka.exactly_once`: the token, unique to this process, in the names of its
    /// tentative checkpoints (see the module docs). `None`: at-least-once outputs.
    pub tentative_writer: Option<String>,
    /// Traced records waiting for their window results.
    pub traces: TraceWatch,
}

/// What the metadata of an offset committed in a transaction starts with; the rest names the
/// partition's checkpoint.
const CHECKPOINT_METADATA: &str = "streampulse-checkpoint:";

/// The checkpoint reference in the metadata of a committed offset, if it holds one.
pub fn committed_checkpoint(metadata: &str) -> Option<&str> {
    metadata
        .strip_prefix(CHECKPOINT_METADATA)
        .filter(|r| !r.is_empty())
}

/// A token no other process writing the same checkpoints uses: the process id and the start
/// time in nanoseconds.
pub fn writer_token() -> String {
    format!(
        "{:x}{:x}",
        std::process::id(),
        streampulse_core::clock::since_epoch().as_nanos()
    )
}

impl Partitions {
    /// Takes `partition` over: restores its checkpoint (or starts empty) and says where the
    /// consumer must start reading it. The checkpoint is the one `committed` names (from the
    /// metadata of the group's committed offset, set by exactly-once transactions), or without
    /// one the latest written outside transactions: never a tentative checkpoint whose
    /// transaction may not have committed, also once a job has turned `exactly_once` off. A
    /// plain checkpoint newer than the named one (an imported savepoint) wins over it.
    /// `earliest` says, when asked, the first offset the topic still holds for the partition
    /// (`None` when it cannot be known: the check is then left to the consumer).
    pub fn assign(
        &mut self,
        partition: u32,
        committed: Option<&str>,
        earliest: impl FnOnce() -> Option<u64>,
    ) -> Result<Offset, KafkaError> {
        let latest_plain = || {
            self.checkpoints
                .latest_committed_outside_transactions(partition)
        };
        let named = match committed {
            Some(reference) => match self.checkpoints.get(partition, reference) {
                Ok(None) if self.tentative_writer.is_some() => {
                    return Err(KafkaError::MissingCheckpoint {
                        partition,
                        reference: reference.to_string(),
                        storage: self.checkpoints.describe(),
                    })
                }
                Ok(None) => {
                    // At least once, an older consistent state is as good a place to resume.
                    tracing::warn!(partition, reference, "the checkpoint the group's committed offset names is gone; restoring the latest plain one");
                    latest_plain()
                }
                other => other,
            },
            None => latest_plain(),
        }
        .map_err(EngineError::from)?;
        // A plain checkpoint numbered above the named one is a savepoint the group was started
        // from (see `PartitionCheckpointStore::import_savepoint`), or one written at least once
        // after it: either is where the group goes on.
        let restored = match (named, committed) {
            (Some(named), Some(_)) => match latest_plain().map_err(EngineError::from)? {
                Some(plain) if plain.0 > named.0 => Some(plain),
                _ => Some(named),
            },
            (named, _) => named,
        };
        let (pipeline, next_offset, checkpoint_id) = match restored {
            Some((id, snapshot)) => {
                let pipeline = snapshot.restore(&self.job).map_err(EngineError::from)?;
                let next = self.resume_offset(partition, snapshot.next_offset, earliest())?;
                tracing::info!(
                    partition,
                    checkpoint = id,
                    offset = next,
                    "partition assigned: restored from its checkpoint"
                );
                (pipeline, Some(next), id)
            }
            None => {
                tracing::info!(partition, start = ?self.start, "partition assigned: no checkpoint, empty state");
                let start = match self.start {
                    StartPosition::Earliest => Some(0),
                    StartPosition::Latest => None,
                };
                (PartitionPipeline::new(&self.job), start, 0)
            }
        };
        let offset = next_offset.map_or(Offset::End, |o| Offset::Offset(o as i64));
        if let Some(c) = self.emitter.counters.partitions.get(partition as usize) {
            c.owned.store(true, Relaxed);
        }
        let task = PartitionTask::new(partition, pipeline, next_offset);
        task.publish(&self.emitter.counters);
        self.owned.insert(
            partition,
            OwnedPartition {
                task,
                checkpoint_id,
            },
        );
        // Offset 0 with `earliest`: the consumer's reset policy finds the first retained record.
        Ok(if offset == Offset::Offset(0) {
            Offset::Beginning
        } else {
            offset
        })
    }

    /// Where an owned partition goes on after a fetch found its position outside the offsets
    /// the topic holds, `earliest..end` (the consumer stops there rather than jump: see
    /// `auto.offset.reset` in the driver): `Some(offset)` to seek to, when records it never
    /// processed were removed and `kafka.on_data_loss` is `skip` (counted as lost); `None` when
    /// this partition is not the one (its position is inside the range, or it has read nothing).
    pub fn out_of_range(
        &mut self,
        partition: u32,
        earliest: u64,
        end: u64,
    ) -> Result<Option<u64>, KafkaError> {
        let Some(next) = self
            .owned
            .get(&partition)
            .and_then(|p| p.task.next_offset())
        else {
            return Ok(None);
        };
        if next > end {
            return Err(KafkaError::TopicRewound {
                topic: self.topic.clone(),
                partition,
                wanted: next,
                end,
            });
        }
        if next >= earliest {
            return Ok(None);
        }
        let to = self.lost_from(partition, next, earliest, "the worker reads at")?;
        if let Some(owned) = self.owned.get_mut(&partition) {
            // The next checkpoint resumes past the gap: it is counted once.
            owned.task.step_over(to - 1);
            owned.task.publish(&self.emitter.counters);
        }
        Ok(Some(to))
    }

    /// Where a restored partition resumes: at its checkpoint's offset, unless the topic no longer
    /// holds it (then per `kafka.on_data_loss`).
    fn resume_offset(
        &self,
        partition: u32,
        wanted: u64,
        earliest: Option<u64>,
    ) -> Result<u64, KafkaError> {
        let Some(earliest) = earliest.filter(|&earliest| earliest > wanted) else {
            return Ok(wanted);
        };
        self.lost_from(partition, wanted, earliest, "the checkpoint resumes at")
    }

    /// Records `wanted..earliest` of `partition` are gone: an error, or (`skip`) counted, and
    /// reading goes on at `earliest`.
    fn lost_from(
        &self,
        partition: u32,
        wanted: u64,
        earliest: u64,
        whence: &'static str,
    ) -> Result<u64, KafkaError> {
        let lost = earliest - wanted;
        match self.on_data_loss {
            OnDataLoss::Fail => Err(KafkaError::DataLoss {
                topic: self.topic.clone(),
                partition,
                whence,
                wanted,
                earliest,
                lost,
            }),
            OnDataLoss::Skip => {
                tracing::warn!(
                    topic = %self.topic,
                    partition,
                    wanted,
                    earliest,
                    lost,
                    "the topic no longer holds the checkpointed offset: skipping the records it lost (kafka.on_data_loss: skip)"
                );
                if let Some(c) = self.emitter.counters.partitions.get(partition as usize) {
                    c.lost_records.fetch_add(lost, Relaxed);
                }
                Ok(earliest)
            }
        }
    }

    /// Applies the pending outputs of `partition`: to the store (retried until it succeeds: the
    /// partition is held back, never moved past an output it could not store) and the output
    /// topics. `started`: when the batch of these outputs began processing.
    pub fn apply(&mut self, partition: u32, started: Instant) {
        let Some(p) = self.owned.get_mut(&partition) else {
            return;
        };
        self.topics.send(p.task.pending());
        self.traces
            .outputs(partition, p.task.pending(), Instant::now());
        // Never gives up, so always applied; published after every batch, outputs or not:
        // status and lag follow the offsets read.
        p.task.apply(&self.emitter, &mut self.tally, started, |_| {
            RetryDecision::Retry
        });
    }

    /// Checkpoints the given owned partitions (under exactly-once: every owned partition, as the
    /// consumer group `group`): applies their outputs, makes the store and the output topics
    /// durable, then writes one checkpoint per partition. Returns the offsets the caller commits
    /// to the consumer group (only partitions that have an offset; none under exactly-once,
    /// where the transaction committed them).
    pub fn checkpoint(
        &mut self,
        partitions: &[u32],
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<Vec<(u32, u64)>, EngineError> {
        let started = Instant::now();
        let all: Vec<u32>;
        let partitions = if self.tentative_writer.is_some() {
            all = self.owned.keys().copied().collect();
            &all
        } else {
            partitions
        };
        let result = self.try_checkpoint(partitions, group, started);
        let counters = &self.emitter.counters;
        match &result {
            Ok(_) => {
                counters.checkpoints_completed.fetch_add(1, Relaxed);
                counters
                    .metrics
                    .checkpoint_duration
                    .observe(started.elapsed());
            }
            Err(err) => {
                counters.checkpoints_failed.fetch_add(1, Relaxed);
                tracing::error!(error = %err, "checkpoint failed");
            }
        }
        result
    }

    fn try_checkpoint(
        &mut self,
        partitions: &[u32],
        group: Option<&ConsumerGroupMetadata>,
        started: Instant,
    ) -> Result<Vec<(u32, u64)>, EngineError> {
        let _span = tracing::info_span!("checkpoint", partitions = ?partitions).entered();
        for &p in partitions {
            self.apply(p, Instant::now());
        }
        // Outputs before the checkpointed offsets must be durable before the checkpoint is.
        self.emitter.store.flush()?;
        if self.emitter.store.generation() != self.store_generation {
            // The store was reopened after an I/O failure and may have lost outputs applied since
            // the last checkpoints: the restarted worker replays from them.
            let err = EngineError::StoreReopened {
                from: "the last checkpoints, once the worker restarts".into(),
            };
            self.fatal.get_or_insert_with(|| err.to_string());
            return Err(err);
        }
        if self.tentative_writer.is_none() {
            if let Err(source) = self.topics.flush() {
                return Err(self.sink_failed(source));
            }
        }
        let created = now_ms();
        let mut bytes = 0;
        let mut commits = Vec::with_capacity(partitions.len());
        let mut references = Vec::new();
        for &p in partitions {
            let Some(owned) = self.owned.get_mut(&p) else {
                continue;
            };
            let Some(snapshot) = owned.task.snapshot(&self.emitter.counters)? else {
                continue;
            };
            let next_offset = snapshot.next_offset;
            let id = owned.checkpoint_id + 1;
            match &self.tentative_writer {
                None => bytes += self.checkpoints.write(id, created, snapshot)?,
                Some(writer) => {
                    let (reference, size) = self
                        .checkpoints
                        .write_tentative(id, writer, created, snapshot)?;
                    bytes += size;
                    references.push((p, next_offset, reference));
                }
            }
            owned.checkpoint_id = id;
            commits.push((p, next_offset));
        }
        if self.tentative_writer.is_some() {
            self.commit_transaction(&references, group)?;
            commits.clear();
        }
        let info = CheckpointInfo {
            id: self
                .owned
                .values()
                .map(|o| o.checkpoint_id)
                .max()
                .unwrap_or(0),
            completed_ms: created,
            duration_ms: started.elapsed().as_millis() as u64,
            bytes,
        };
        if let Ok(mut last) = self.emitter.counters.last_checkpoint.lock() {
            *last = Some(info);
        }
        Ok(commits)
    }

    /// Commits the open transaction with each partition's offset and checkpoint reference, then
    /// prunes the checkpoints it superseded. Any failure stops the worker.
    fn commit_transaction(
        &mut self,
        references: &[(u32, u64, String)],
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), EngineError> {
        let Some(group) = group else {
            let err = EngineError::Unsupported(
                "an exactly-once checkpoint without the consumer group's metadata",
            );
            self.fatal.get_or_insert_with(|| err.to_string());
            return Err(err);
        };
        let mut offsets = TopicPartitionList::with_capacity(references.len());
        for (p, next_offset, reference) in references {
            let mut element = offsets.add_partition(&self.topic, *p as i32);
            element.set_metadata(format!("{CHECKPOINT_METADATA}{reference}"));
            // Only logical offsets (end, beginning, …) are refused; a stored offset is never one.
            let _ = element.set_offset(Offset::Offset(*next_offset as i64));
        }
        if let Err(source) = self.topics.commit(&offsets, group) {
            return Err(self.sink_failed(source));
        }
        for (p, _, reference) in references {
            if let Err(err) = self.checkpoints.prune_before(*p, reference) {
                tracing::warn!(partition = p, error = %err, "cannot prune superseded checkpoints");
            }
        }
        Ok(())
    }

    /// The output topics lost a record or a transaction: the worker stops.
    fn sink_failed(&mut self, source: crate::sink::SinkError) -> EngineError {
        let err = EngineError::Sink {
            sink: "output topics",
            source: Box::new(source),
        };
        self.fatal.get_or_insert_with(|| err.to_string());
        err
    }

    /// Lets `partition` go: its state is dropped (its successor restores the last checkpoint).
    pub fn release(&mut self, partition: u32) {
        self.owned.remove(&partition);
        if let Some(c) = self.emitter.counters.partitions.get(partition as usize) {
            c.owned.store(false, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
