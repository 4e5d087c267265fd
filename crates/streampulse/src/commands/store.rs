//! `streampulse store init`: creates (or checks) the Cassandra keyspace and tables that
//! `store.cassandra` names, so that workers can start with `create_schema: false`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::{AppConfig, StoreBackend};

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Create the keyspace and tables of store.cassandra if missing, and check their version and
    /// bucket sizes. Idempotent.
    Init(InitArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// The config file whose `store:` section to use.
    #[arg(long, env = "STREAMPULSE_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Init(args) => {
            let config = AppConfig::load(args.config.as_deref())?;
            if config.config.store.backend != StoreBackend::Cassandra {
                anyhow::bail!(
                    "store.backend is embedded: the embedded store creates itself; set \
                     store.backend: cassandra to initialise a Cassandra keyspace"
                );
            }
            let c = &config.config.store.cassandra;
            streampulse_cassandra::CassandraStore::init(c)?;
            println!(
                "ok: keyspace {} on {} holds StreamPulse schema version {}",
                c.keyspace,
                c.contact_points.join(","),
                streampulse_cassandra::schema::SCHEMA_VERSION
            );
            Ok(())
        }
    }
}
