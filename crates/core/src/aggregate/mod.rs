//! Aggregates: what a window computes over the values it holds.
//!
//! [`Accumulator`] is the mergeable partial state (one per window slice or session);
//! [`AggregateKind`] names the aggregates a job may ask for. count, sum, min, max and mean are
//! always computed (they are nearly free); the others are computed when a window lists them.

mod accumulator;
mod extra;
mod kept_quantiles;
mod kind;

pub use accumulator::Accumulator;
pub use extra::ExtraValues;
pub use kind::AggregateKind;
