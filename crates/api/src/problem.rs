//! RFC 9457 problem details: the one shape of every error the API returns, and the one place
//! each error type of the platform is given its HTTP status ([`HttpError`]).
//!
//! Routes answer errors with `?`: a store error, a job error, a refused batch becomes a problem
//! document through `From`. A route must never pick a status for an error type itself: the same
//! error (a full disk, say) would then be a 503 on one endpoint and a 500 on another.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use streampulse_core::batch::BatchError;
use streampulse_engine::checkpoint::{CheckpointError, SnapshotError};
use streampulse_engine::ingest::IngestError;
use streampulse_engine::jobs::JobsError;
use streampulse_engine::EngineError;
use streampulse_log::LogError;
use streampulse_store::StoreError;
use utoipa::ToSchema;

/// An RFC 9457 problem document (`application/problem+json`); `detail` says what to change.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("error"),
            status: status.as_u16(),
            detail: detail.into(),
            extra: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
}

/// An error the API answers: which status it is (the caller's mistake, a conflict with the
/// state, or trouble on the server's side), and what the caller reads.
pub trait HttpError: std::error::Error {
    fn status(&self) -> StatusCode;

    /// The problem's `detail`; the error's message unless the type has advice to add.
    fn detail(&self) -> String {
        self.to_string()
    }
}

impl<E: HttpError> From<E> for Problem {
    fn from(e: E) -> Self {
        Problem::new(e.status(), e.detail())
    }
}

impl HttpError for StoreError {
    fn status(&self) -> StatusCode {
        match self {
            // Both come back on their own (space freed, the node up again): retry later.
            StoreError::Unavailable(_) | StoreError::Backend { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            StoreError::CreateDir { .. }
            | StoreError::Open { .. }
            | StoreError::Db(_)
            | StoreError::Encode { .. }
            | StoreError::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl HttpError for BatchError {
    fn status(&self) -> StatusCode {
        match self {
            BatchError::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BatchError::NotUtf8 { .. } | BatchError::Empty => StatusCode::BAD_REQUEST,
        }
    }
}

impl HttpError for IngestError {
    fn status(&self) -> StatusCode {
        match self {
            IngestError::NotTheEmbeddedLog { .. } => StatusCode::CONFLICT,
            IngestError::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
            // A retry cannot help; nothing of the batch was stored.
            IngestError::Log(LogError::RecordTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            // Nothing of the batch was stored: the client retries it (with its idempotency key).
            IngestError::Log(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl HttpError for JobsError {
    fn status(&self) -> StatusCode {
        match self {
            JobsError::Invalid(_) => StatusCode::BAD_REQUEST,
            JobsError::NotFound(_) => StatusCode::NOT_FOUND,
            JobsError::Configured(_) | JobsError::Running(_) | JobsError::Unsupported(_) => {
                StatusCode::CONFLICT
            }
            JobsError::Engine { source, .. } => source.status(),
            JobsError::Catalog(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn detail(&self) -> String {
        match self {
            JobsError::NotFound(_) => format!("{self}; GET /jobs lists the jobs of this process"),
            JobsError::Engine { source, job } if matches!(**source, EngineError::Stopping) => {
                format!(
                    "job '{job}' is stopped: its final checkpoint is the latest; resume it \
                     (restart the process, or submit it again), then take a savepoint"
                )
            }
            _ => self.to_string(),
        }
    }
}

impl HttpError for EngineError {
    fn status(&self) -> StatusCode {
        match self {
            // A bad or missing savepoint name is the caller's to fix; storage trouble is not.
            EngineError::Checkpoint(
                CheckpointError::SavepointNotFound(_) | CheckpointError::InvalidName(_),
            ) => StatusCode::BAD_REQUEST,
            // The definition does not fit the state it would resume from.
            EngineError::Snapshot(
                SnapshotError::Decode { .. } | SnapshotError::Incompatible { .. },
            )
            | EngineError::JobMismatch { .. }
            | EngineError::PartitionMismatch { .. }
            | EngineError::OffsetTruncated { .. }
            | EngineError::OffsetBeyondLog { .. }
            | EngineError::Unsupported(_)
            | EngineError::Stopping => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A problem document that failed to encode (it cannot, in practice: plain strings and numbers);
/// still a valid problem document rather than an empty body.
const UNENCODABLE: &[u8] = br#"{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"the error could not be encoded; see the server log"}"#;

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|err| {
            tracing::error!(error = %err, detail = %self.detail, "cannot encode a problem document");
            UNENCODABLE.to_vec()
        });
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_type_has_one_status_whatever_the_route() {
        let full_disk = StoreError::Unavailable(streampulse_dbfile::Unavailable {
            path: "store.redb".into(),
            failure: "No space left on device".into(),
            retry: None,
        });
        let p = Problem::from(full_disk);
        assert_eq!(p.status, 503);
        assert!(p.detail.contains("No space left"), "{}", p.detail);
        let corrupt = StoreError::Corrupt {
            table: "results",
            reason: "short".into(),
        };
        assert_eq!(Problem::from(corrupt).status, 500);
        assert_eq!(Problem::from(BatchError::Empty).status, 400);
        let missing = Problem::from(JobsError::NotFound("nightly".into()));
        assert_eq!(missing.status, 404);
        assert!(missing.detail.contains("GET /jobs"), "{}", missing.detail);
        let stopped = Problem::from(JobsError::engine("nightly", EngineError::Stopping));
        assert_eq!(stopped.status, 409);
        assert!(stopped.detail.contains("resume it"), "{}", stopped.detail);
        let kafka_job = IngestError::NotTheEmbeddedLog { job: "k".into() };
        assert_eq!(Problem::from(kafka_job).status, 409);
        let too_long = IngestError::Log(LogError::RecordTooLarge {
            partition: 0,
            bytes: 2,
            limit: 1,
        });
        assert_eq!(Problem::from(too_long).status, 413);
        assert_eq!(
            Problem::from(IngestError::Log(LogError::Closed)).status,
            503
        );
    }
}
