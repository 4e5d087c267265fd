//! StreamPulse's result store on Apache Cassandra (or ScyllaDB): the one store every worker of a
//! cluster writes and every API process reads, so that any of them answers for every partition.
//!
//! [`CassandraStore`] implements [`streampulse_store::ResultStore`] with the same keys and the
//! same answers as the embedded store (one conformance suite runs against both). What differs:
//!
//! - **Order-free convergence.** Every write carries a timestamp derived from the output, not the
//!   wall clock: a result `window_end·1000 + revision` µs, its retraction `window_end·1000 + 2³²`,
//!   an alert `first_ts·1000 + sequence`. Cassandra keeps the cell with the highest timestamp, so
//!   a replay that re-sends an older revision, or two workers writing one partition during a
//!   rebalance, can never overwrite a newer revision or resurrect a retracted session, in
//!   whatever order the writes land. Timestamps near event time also keep time-window compaction
//!   meaningful.
//! - **Durable at `apply`.** `apply` returns once every write is acknowledged at the configured
//!   write consistency; `flush` has nothing left to do. A failed write fails the batch: the engine
//!   holds its checkpoint back and the replay writes it again (idempotently).
//! - **Retention by TTL.** Rows are written with the TTL that `store.retention` leaves them (by
//!   event time, like the embedded sweeper); `expire` deletes nothing.
//!
//! The trait is synchronous (partition threads call it); requests run on this store's own small
//! tokio runtime, and callers block on a channel, so the store may be called from any thread.

mod config;
mod error;
mod read;
pub mod schema;
mod store;
mod tls;
mod write;

pub use config::{CassandraConfig, Consistency, TlsConfig, PASSWORD_ENV, USERNAME_ENV};
pub use error::CassandraError;
pub use store::CassandraStore;
