//! Ingest: validated events into the log, acknowledged only once durably appended.
//!
//! The HTTP layer splits and parses a request body with the job's
//! [`EventFormat`](streampulse_core::event::EventFormat) ([`streampulse_core::batch`]); this
//! module refuses events further ahead of the wall clock than `job.max_future`, routes the valid
//! ones to their partition by metric id, and appends them in one group commit. Invalid lines are
//! reported back with their reason; they never prevent the valid lines of the same request from
//! being stored.

use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;
use streampulse_core::batch::ItemRef;
use streampulse_core::event::check_future;
use streampulse_log::LogError;
use tracing::field::Empty;
use tracing::Instrument;

use crate::record;
use crate::runtime::Runtime;
use crate::telemetry::RejectReason;

/// Why one input line was rejected.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// 1-based position of the event in the request (line for NDJSON, element for arrays).
    pub line: usize,
    pub reason: String,
}

/// Why a batch of events was not stored (nothing of it was).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The job reads another source (Kafka): events go there, not through this process.
    #[error("job '{job}' does not read the embedded log; send its events to its source")]
    NotTheEmbeddedLog { job: String },
    #[error("an event cannot be encoded as a log record: {0}")]
    Encode(#[from] record::RecordError),
    #[error("events could not be stored, retry later: {0}")]
    Log(#[from] LogError),
}

/// The answer to one ingest request.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub accepted: usize,
    pub rejected: Vec<Rejection>,
    /// True when this request repeated an `Idempotency-Key` already stored: nothing was appended.
    pub duplicate: bool,
}

/// The events of one request judged and encoded, ready to append (see [`Runtime::prepare_ingest`]).
#[derive(Debug)]
pub struct PreparedIngest {
    received: usize,
    records: Vec<(u32, Vec<u8>)>,
    rejected: Vec<Rejection>,
    per_reason: [u64; RejectReason::ALL.len()],
}

impl Runtime {
    /// Judges the events of one request (the future guard) and encodes the accepted ones as log
    /// records, by partition. CPU work only, no I/O: callers run it off the async threads (the
    /// HTTP handler does it in the blocking pool, together with the parsing).
    pub fn prepare_ingest(
        &self,
        candidates: Vec<ItemRef<'_>>,
    ) -> Result<PreparedIngest, IngestError> {
        let Some(log) = self.ingest_log() else {
            return Err(IngestError::NotTheEmbeddedLog {
                job: self.job().name.clone(),
            });
        };
        let max_future = self.job().max_future;
        let now = streampulse_core::clock::now_ms();
        let received = candidates.len();
        let mut records = Vec::with_capacity(candidates.len());
        let mut rejected = Vec::new();
        let mut per_reason = [0u64; RejectReason::ALL.len()];
        for (line, candidate) in candidates {
            let parsed = candidate
                .and_then(|event| match max_future {
                    Some(max) => check_future(event.ts, now, max).map(|()| event),
                    None => Ok(event),
                })
                .map_err(|e| (RejectReason::of(&e), e.to_string()));
            match parsed {
                Ok(event) => records.push((
                    log.partition_for(&event.metric_id),
                    record::encode_event_ref(&event)?,
                )),
                Err((kind, reason)) => {
                    per_reason[kind as usize] += 1;
                    rejected.push(Rejection { line, reason });
                }
            }
        }
        Ok(PreparedIngest {
            received,
            records,
            rejected,
            per_reason,
        })
    }

    /// Appends what [`prepare_ingest`](Self::prepare_ingest) accepted; resolves once it is
    /// durable. Runs in an `ingest` span (events received, accepted, rejected; partitions
    /// written), a child of the request's.
    pub async fn ingest(
        &self,
        prepared: PreparedIngest,
        idempotency_key: Option<String>,
    ) -> Result<IngestReport, IngestError> {
        let span = tracing::info_span!(
            "ingest",
            events.received = prepared.received as i64,
            events.accepted = Empty,
            events.rejected = Empty,
            partitions = Empty,
            duplicate = Empty,
        );
        let report = self
            .ingest_in_span(prepared, idempotency_key, &span)
            .instrument(span.clone())
            .await?;
        span.record("events.accepted", report.accepted as i64);
        span.record("events.rejected", report.rejected.len() as i64);
        span.record("duplicate", report.duplicate);
        Ok(report)
    }

    async fn ingest_in_span(
        &self,
        prepared: PreparedIngest,
        idempotency_key: Option<String>,
        span: &tracing::Span,
    ) -> Result<IngestReport, IngestError> {
        let Some(log) = self.ingest_log() else {
            return Err(IngestError::NotTheEmbeddedLog {
                job: self.job().name.clone(),
            });
        };
        let PreparedIngest {
            received,
            records,
            rejected,
            per_reason,
        } = prepared;
        let counters = self.counters();
        counters.ingest_received.fetch_add(received as u64, Relaxed);
        let accepted = records.len();
        if !span.is_disabled() {
            let mut written: Vec<u32> = records.iter().map(|(p, _)| *p).collect();
            written.sort_unstable();
            written.dedup();
            span.record("partitions", tracing::field::debug(&written));
        }
        let mut duplicate = false;
        if accepted > 0 {
            // The key is bound to the content: a corrected retry under the same key is a new
            // request, not a duplicate of the one it replaces.
            let key = idempotency_key.map(|k| format!("{k}#{:016x}", content_hash(&records)));
            let receipt = log.append(records, key).await?;
            duplicate = receipt.duplicate;
        }
        let valid = if duplicate {
            &counters.ingest_duplicate
        } else {
            &counters.ingest_accepted
        };
        valid.fetch_add(accepted as u64, Relaxed);
        counters
            .ingest_rejected
            .fetch_add(rejected.len() as u64, Relaxed);
        counters.metrics.add_rejected(&per_reason);
        Ok(IngestReport {
            accepted,
            rejected,
            duplicate,
        })
    }
}

/// FNV-1a over the partition and bytes of every record: stable across versions and processes.
fn content_hash(records: &[(u32, Vec<u8>)]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (partition, payload) in records {
        for &b in partition.to_le_bytes().iter().chain(payload) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests;
