//! One module per subcommand of the `streampulse` binary.

pub mod produce;
pub mod replay;
pub mod run;
pub mod savepoint;
