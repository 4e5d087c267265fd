//! Where a starting job's partitions resume: the latest checkpoint, a savepoint, or empty state at
//! the configured start position, each offset checked against what the source still holds.
//!
//! Nothing here runs a partition: it only decides pipelines and offsets (and adopts a restored
//! savepoint as the latest checkpoint).

use streampulse_core::clock::now_ms;
use streampulse_core::job::Job;
use streampulse_core::pipeline::PartitionPipeline;
use tracing::field::Empty;

use super::{EngineError, InitialPosition, StartFrom};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::source::EventSource;

/// Each partition's pipeline and the offset it resumes at, and the id of the next checkpoint.
pub(super) struct Restored {
    pub partitions: Vec<(PartitionPipeline, u64)>,
    pub next_id: u64,
}

/// The state a starting job resumes from: the latest checkpoint, a savepoint, or empty state at
/// `initial` when there is no checkpoint. Every offset is checked against what the source still
/// holds. A restored savepoint is written as the latest checkpoint before anything runs, so a
/// crash before the first checkpoint resumes from it, not from the state it was meant to replace.
pub(super) fn restore(
    job: &Job,
    source: &dyn EventSource,
    checkpoints: &CheckpointStore,
    start_from: &StartFrom,
    initial: &InitialPosition,
) -> Result<Restored, EngineError> {
    let partitions = source.partitions();
    let span = tracing::info_span!(
        "restore",
        job = %job.name,
        partitions = i64::from(partitions),
        checkpoint.id = Empty,
        from = ?start_from,
    )
    .entered();
    let restored = match start_from {
        StartFrom::LatestCheckpoint => checkpoints.latest()?,
        StartFrom::Savepoint(name) => Some(checkpoints.savepoint(name)?),
    };
    let Some(chk) = restored else {
        tracing::info!(job = %job.name, position = ?initial, "no checkpoint: starting from empty state");
        let offsets = initial_offsets(source, initial)?;
        return Ok(Restored {
            partitions: offsets
                .into_iter()
                .map(|offset| (PartitionPipeline::new(job), offset))
                .collect(),
            next_id: 1,
        });
    };
    if chk.job != job.name {
        return Err(EngineError::JobMismatch {
            id: chk.id,
            found: chk.job,
            expected: job.name.clone(),
        });
    }
    if chk.partitions.len() != partitions as usize {
        return Err(EngineError::PartitionMismatch {
            id: chk.id,
            found: chk.partitions.len(),
            expected: partitions,
        });
    }
    span.record("checkpoint.id", chk.id as i64);
    let mut next_id = chk.id.max(checkpoints.max_id()?) + 1;
    let mut pipelines = Vec::with_capacity(chk.partitions.len());
    for p in &chk.partitions {
        check_offset(source, p.partition, p.next_offset)?;
        pipelines.push((p.restore(job)?, p.next_offset));
    }
    if matches!(start_from, StartFrom::Savepoint(_)) {
        checkpoints.write(&Checkpoint::new(
            next_id,
            &job.name,
            now_ms(),
            chk.partitions.clone(),
        ))?;
        next_id += 1;
    }
    tracing::info!(job = %job.name, checkpoint = chk.id, from = ?start_from, "restored state; replaying the log from the checkpointed offsets");
    Ok(Restored {
        partitions: pipelines,
        next_id,
    })
}

/// Where each partition starts when there is no checkpoint.
fn initial_offsets(
    source: &dyn EventSource,
    initial: &InitialPosition,
) -> Result<Vec<u64>, EngineError> {
    let partitions = source.partitions();
    match initial {
        InitialPosition::Earliest => Ok((0..partitions).map(|p| source.start_offset(p)).collect()),
        InitialPosition::Latest => Ok((0..partitions).map(|p| source.end_offset(p)).collect()),
        InitialPosition::Offsets(offsets) => {
            if offsets.len() != partitions as usize {
                return Err(EngineError::PartitionMismatch {
                    id: 0,
                    found: offsets.len(),
                    expected: partitions,
                });
            }
            for (p, &offset) in (0..partitions).zip(offsets) {
                check_offset(source, p, offset)?;
            }
            Ok(offsets.clone())
        }
    }
}

/// `offset` of `partition` is one the source can still be read from.
fn check_offset(source: &dyn EventSource, partition: u32, offset: u64) -> Result<(), EngineError> {
    let first = source.start_offset(partition);
    if offset < first {
        return Err(EngineError::OffsetTruncated {
            partition,
            offset,
            first,
        });
    }
    let end = source.end_offset(partition);
    if offset > end {
        return Err(EngineError::OffsetBeyondLog {
            partition,
            offset,
            end,
        });
    }
    Ok(())
}
