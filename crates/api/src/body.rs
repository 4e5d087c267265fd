//! Reading a request body within its limits: at most `max_body_bytes`, within `body_read_timeout`,
//! and out of a server-wide budget of bytes held in flight.
//!
//! The budget is what bounds ingest memory: a request holds a reservation for every byte it has
//! read until it has been answered, and a request that would exceed the budget is answered 503
//! at once (it never waits holding part of the budget, so slow clients cannot starve the others).
//! This module must never buffer a byte it has not reserved.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Problem;

/// Limits of one body.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
    /// Bytes that all requests together may hold; one permit per byte.
    pub budget: Arc<Semaphore>,
}

/// A body read in full, with its reservation (released when dropped).
pub struct Held {
    pub bytes: Bytes,
    _reservation: Option<OwnedSemaphorePermit>,
}

/// Reads `body` within `limits`: 413 past `max_bytes`, 408 past `read_timeout`, 503 when the
/// budget is spent.
pub async fn read(mut body: Body, limits: &BodyLimits) -> Result<Held, Problem> {
    let deadline = tokio::time::Instant::now() + limits.read_timeout;
    // A declared length (Content-Length) past the limit is refused before a byte is read.
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    if declared > limits.max_bytes {
        return Err(too_large(limits));
    }
    // The buffer is allocated at the declared length once (up to `AHEAD`): the body arrives in
    // frames of a few KiB, and growing to its length by doubling copied it about once more. Its
    // pages take memory only as bytes arrive, and the budget is taken as they arrive too, so a
    // client that declares a length and sends nothing holds none of the budget.
    let mut buf: Vec<u8> = Vec::with_capacity(declared.min(AHEAD));
    let mut reservation: Option<OwnedSemaphorePermit> = None;
    let mut reserved = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        let frame = match tokio::time::timeout_at(deadline, frame).await {
            Err(_) => {
                return Err(Problem::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the body did not arrive within {} (server.body_read_timeout)",
                        humantime::format_duration(limits.read_timeout)
                    ),
                ))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(Problem::bad_request(format!(
                    "the body could not be read: {e}"
                )))
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limits.max_bytes {
            return Err(too_large(limits));
        }
        let needed = buf.len() + data.len();
        if needed > reserved {
            // Doubling (bounded by the body limit): few reservations, and never less than
            // what the buffer holds.
            let target = needed.max(reserved.saturating_mul(2)).min(limits.max_bytes);
            reserve(&mut reservation, target - reserved, limits)?;
            reserved = target;
        }
        // Past the declared length (or without one) the vector grows by doubling; the pages it
        // has not written hold no memory.
        buf.extend_from_slice(&data);
    }
    Ok(Held {
        bytes: Bytes::from(buf),
        _reservation: reservation,
    })
}

/// The most a body's buffer is allocated ahead of its bytes: an ingest body of thousands of
/// events fits, and a client that declares a length and stalls costs at most this much address
/// space per connection (1 GiB at the default connection cap), none of it touched.
const AHEAD: usize = 1 << 20;

fn too_large(limits: &BodyLimits) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body exceeds {} bytes (server.max_body_bytes); split it into smaller requests",
            limits.max_bytes
        ),
    )
}

/// Adds `bytes` of the budget to `reservation`, or refuses (503) without waiting.
fn reserve(
    reservation: &mut Option<OwnedSemaphorePermit>,
    bytes: usize,
    limits: &BodyLimits,
) -> Result<(), Problem> {
    let more = u32::try_from(bytes)
        .ok()
        .and_then(|n| limits.budget.clone().try_acquire_many_owned(n).ok())
        .ok_or_else(|| {
            Problem::unavailable(
                "the server holds as many request bytes as it may \
                 (server.max_inflight_bytes); retry with backoff",
            )
        })?;
    match reservation.as_mut() {
        Some(held) => held.merge(more),
        None => *reservation = Some(more),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, budget: usize) -> BodyLimits {
        BodyLimits {
            max_bytes: max,
            read_timeout: Duration::from_millis(200),
            budget: Arc::new(Semaphore::new(budget)),
        }
    }

    #[tokio::test]
    async fn a_body_holds_its_bytes_of_the_budget_until_dropped() {
        let l = limits(100, 150);
        let held = read(Body::from(vec![b'x'; 100]), &l).await.unwrap();
        assert_eq!(held.bytes.len(), 100);
        assert_eq!(l.budget.available_permits(), 50);
        let refused = read(Body::from(vec![b'x'; 60]), &l).await.err().unwrap();
        assert_eq!(refused.status, 503);
        assert_eq!(
            l.budget.available_permits(),
            50,
            "a refused body holds nothing"
        );
        drop(held);
        assert_eq!(l.budget.available_permits(), 150);
    }

    /// A body that declares its length and then sends nothing.
    struct Declared(u64);

    impl HttpBody for Declared {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
        fn size_hint(&self) -> hyper::body::SizeHint {
            hyper::body::SizeHint::with_exact(self.0)
        }
    }

    #[tokio::test]
    async fn a_declared_length_past_the_limit_is_refused_and_one_within_it_holds_no_budget() {
        let l = limits(10, 1000);
        let big = read(Body::new(Declared(11)), &l).await.err().unwrap();
        assert_eq!(big.status, 413, "refused without waiting for the body");
        let budget = Arc::clone(&l.budget);
        let waiting = tokio::spawn(async move { read(Body::new(Declared(10)), &l).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            budget.available_permits(),
            1000,
            "a client that declares a length and sends nothing holds nothing"
        );
        let late = waiting.await.unwrap().err().unwrap();
        assert_eq!(late.status, 408);
    }

    #[tokio::test]
    async fn a_body_past_the_size_limit_is_refused() {
        let l = limits(10, 1000);
        let big = read(Body::from(vec![b'x'; 11]), &l).await.err().unwrap();
        assert_eq!(big.status, 413);
        assert_eq!(l.budget.available_permits(), 1000);
    }
}
