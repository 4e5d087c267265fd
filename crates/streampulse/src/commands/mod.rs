//! One module per subcommand of the `streampulse` binary.

pub mod check_config;
mod client;
pub mod jobs;
pub mod produce;
pub mod query;
pub mod replay;
pub mod run;
pub mod savepoint;
pub mod serve;
pub mod store;
mod table;
pub mod tail;
pub mod topics;
