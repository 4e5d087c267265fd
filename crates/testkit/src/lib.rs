//! What the tests of every crate share, so that each rule is written once:
//!
//! - [`env`]: the gate of a test that needs a server or a tool: it runs when an environment
//!   variable names one, skips locally with a printed reason otherwise, and fails under `CI`
//!   (where a silent skip would hide a missing service);
//! - [`oracle`]: window results computed by brute force over the whole input, the reference the
//!   property, crash and outage tests compare the platform with.
//!
//! A dev-dependency only: nothing here is part of the product, and nothing here may depend on the
//! code it checks beyond `core`'s types (an oracle that called the pipeline would agree with it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test helper: a panic is a failed test

pub mod env;
pub mod oracle;
