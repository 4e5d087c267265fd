//! StreamPulse's pure stream-processing logic: events, event time, watermarks, windows and
//! aggregates.
//!
//! Everything here is deterministic and free of I/O: no files, no sockets, no clocks (the
//! platform's one wall-clock reading, [`clock`], lives here for the crates around `core`; nothing
//! in `core` calls it). Processing time enters only as an argument (see
//! [`watermark::WatermarkTracker::on_idle`]), so the same input always gives the same output. That
//! is what lets the engine replay a log from a checkpoint and rewrite identical results, and what
//! lets the tests here compare against brute force.
//!
//! The vocabulary follows Flink and timely-dataflow:
//! - an [`event::Event`] carries a metric id, an event time and a value;
//! - a [`watermark::WatermarkTracker`] says how far event time has surely progressed;
//! - a [`window::WindowSpec`] names a tumbling, sliding or session window; its operator keeps one
//!   [`aggregate::Accumulator`] per key and slice or session;
//! - a [`pipeline::PartitionPipeline`] runs all windows of a [`job::JobSpec`] over one source
//!   partition and yields [`output::Output`]s: window results, retractions and late events.

pub mod aggregate;
pub mod batch;
pub mod clock;
pub mod config;
pub mod detect;
pub mod event;
pub mod glob;
pub mod job;
mod key_index;
pub mod name;
pub mod output;
pub mod pipeline;
pub mod time;
pub mod watermark;
pub mod window;
