//! The Cassandra store's errors: connecting (naming the contact points), the schema, requests.
//! Each keeps its driver error as its source.

use streampulse_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    #[error(transparent)]
    Config(#[from] streampulse_core::config::ConfigError),

    #[error("cannot connect to Cassandra at {contact_points}: {source}")]
    Connect {
        contact_points: String,
        #[source]
        source: Box<scylla::errors::NewSessionError>,
    },

    #[error("store.cassandra.tls.ca_file {ca_file}: {source}")]
    Tls {
        ca_file: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("Cassandra schema: {what}: {source}")]
    Schema {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "keyspace {keyspace} holds schema version {found}, and this build reads version \
         {expected}; run `streampulse store init` of a matching version"
    )]
    Version {
        keyspace: String,
        found: String,
        expected: i32,
    },

    #[error(
        "keyspace {keyspace} has no StreamPulse schema; run `streampulse store init --config \
         FILE`, or set store.cassandra.create_schema: true"
    )]
    NoSchema { keyspace: String },

    #[error(
        "store.cassandra.{key} is {configured} but keyspace {keyspace} was created with {stored}: \
         it is fixed once data exists"
    )]
    Fixed {
        keyspace: String,
        key: &'static str,
        configured: i64,
        stored: i64,
    },

    #[error("cannot start the Cassandra store's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// A failed request as the store trait reports it.
pub(crate) fn request(
    op: impl Into<String>,
    source: impl std::error::Error + Send + Sync + 'static,
) -> StoreError {
    StoreError::Backend {
        backend: "cassandra",
        op: op.into(),
        source: Box::new(source),
    }
}
