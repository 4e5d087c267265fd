//! `store.cassandra`: where the cluster is, how the keyspace is replicated, at what consistency
//! the store writes and reads, and how long a request may take.
//!
//! Validation lives here so that `run`, `store init` and `check-config` refuse the same mistakes
//! with the same messages. Nothing here connects to anything.

use std::collections::BTreeMap;
use std::time::Duration;
use streampulse_core::config::ConfigError;

use serde::{Deserialize, Serialize};

/// Environment variables that set the credentials, so they can come from a secret store.
pub const USERNAME_ENV: &str = "STREAMPULSE_CASSANDRA_USERNAME";
pub const PASSWORD_ENV: &str = "STREAMPULSE_CASSANDRA_PASSWORD";

/// A consistency level of reads or writes (CQL's names, in snake case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    One,
    Two,
    Three,
    Quorum,
    All,
    LocalQuorum,
    EachQuorum,
    LocalOne,
}

impl Consistency {
    pub(crate) fn to_driver(self) -> scylla::frame::types::Consistency {
        use scylla::frame::types::Consistency as C;
        match self {
            Self::One => C::One,
            Self::Two => C::Two,
            Self::Three => C::Three,
            Self::Quorum => C::Quorum,
            Self::All => C::All,
            Self::LocalQuorum => C::LocalQuorum,
            Self::EachQuorum => C::EachQuorum,
            Self::LocalOne => C::LocalOne,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CassandraConfig {
    /// `host:port` of one or more nodes; the driver discovers the rest.
    pub contact_points: Vec<String>,
    pub keyspace: String,
    /// The datacenter this process prefers for its requests (`LOCAL_*` consistencies count
    /// replicas there). Empty: no preference.
    pub local_datacenter: String,
    /// The keyspace's replication, as CQL takes it: `{class: SimpleStrategy, replication_factor:
    /// 1}` for one node, `{class: NetworkTopologyStrategy, dc1: 3}` for production.
    pub replication: BTreeMap<String, serde_json::Value>,
    pub write_consistency: Consistency,
    pub read_consistency: Consistency,
    /// Credentials (PasswordAuthenticator); the environment variables
    /// `STREAMPULSE_CASSANDRA_USERNAME` and `STREAMPULSE_CASSANDRA_PASSWORD` win over these.
    pub username: String,
    pub password: String,
    /// One request (a write, one page of a read) that takes longer fails; the engine retries.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connecting to the contact points at start gives up after this.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Create the keyspace and tables (if missing) at start; otherwise `streampulse store init`
    /// must have run.
    pub create_schema: bool,
    /// Write requests in flight at once, all partitions together.
    pub max_in_flight: usize,
    /// Time span of one partition of `results_by_metric` (one metric, one window): small enough
    /// that a partition stays well under 100 MB for the job's shortest window. Fixed once the
    /// schema exists (recorded in `schema_info`).
    #[serde(with = "humantime_serde")]
    pub metric_bucket: Duration,
    /// Time span of one partition of `results_by_time` (every metric's results of that span).
    /// Fixed once the schema exists.
    #[serde(with = "humantime_serde")]
    pub time_bucket: Duration,
    /// TLS to the nodes (their `client_encryption_options`).
    pub tls: TlsConfig,
}

/// `store.cassandra.tls`: encrypt every connection and verify the nodes' certificates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM file of the CA certificate(s) that signed the nodes' certificates (for a public CA,
    /// the system bundle, e.g. /etc/ssl/certs/ca-certificates.crt). Each node is verified
    /// against the IP address the driver connects to, so node certificates must name their
    /// addresses (`subjectAltName = IP:...`).
    pub ca_file: String,
}

impl Default for CassandraConfig {
    fn default() -> Self {
        Self {
            contact_points: vec!["127.0.0.1:9042".into()],
            keyspace: "streampulse".into(),
            local_datacenter: String::new(),
            replication: BTreeMap::from([
                ("class".into(), "SimpleStrategy".into()),
                ("replication_factor".into(), 1.into()),
            ]),
            write_consistency: Consistency::LocalQuorum,
            read_consistency: Consistency::LocalQuorum,
            username: String::new(),
            password: String::new(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            create_schema: true,
            max_in_flight: 256,
            metric_bucket: Duration::from_secs(24 * 3600),
            time_bucket: Duration::from_secs(60),
            tls: TlsConfig::default(),
        }
    }
}

/// A key of `store.cassandra` that is wrong (the key is given in full: this section is always
/// there), and why.
fn bad(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(key, reason).within("store.cassandra")
}

impl CassandraConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.contact_points.is_empty() || self.contact_points.len() > 64 {
            return Err(bad("contact_points", "list 1 to 64 nodes as host:port"));
        }
        for point in &self.contact_points {
            let ok = point
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(bad(
                    "contact_points",
                    format!("'{point}' is not host:port (e.g. 127.0.0.1:9042)"),
                ));
            }
        }
        if !streampulse_core::name::CASSANDRA_KEYSPACE.allows(&self.keyspace) {
            return Err(bad(
                "keyspace",
                "1 to 48 letters, digits or '_', starting with a letter",
            ));
        }
        self.replication_cql()?;
        for (key, d, min, max) in [
            ("request_timeout", self.request_timeout, 100, 600_000),
            ("connect_timeout", self.connect_timeout, 100, 600_000),
        ] {
            let ms = d.as_millis();
            if ms < min || ms > max {
                return Err(bad(key, "must be between 100ms and 10m"));
            }
        }
        if !(1..=10_000).contains(&self.max_in_flight) {
            return Err(bad("max_in_flight", "must be between 1 and 10000"));
        }
        let hour = Duration::from_secs(3600);
        if self.metric_bucket < hour || self.metric_bucket > Duration::from_secs(366 * 86_400) {
            return Err(bad("metric_bucket", "must be between 1h and 366d"));
        }
        if !self.metric_bucket.as_millis().is_multiple_of(1000)
            || !self.time_bucket.as_millis().is_multiple_of(1000)
        {
            return Err(bad("metric_bucket", "buckets must be whole seconds"));
        }
        if self.time_bucket < Duration::from_secs(1) || self.time_bucket > hour {
            return Err(bad("time_bucket", "must be between 1s and 1h"));
        }
        match (self.tls.enabled, self.tls.ca_file.is_empty()) {
            (true, true) => Err(bad(
                "tls.ca_file",
                "name the PEM file of the CA that signed the nodes' certificates",
            )),
            (false, false) => Err(bad(
                "tls.enabled",
                "a CA file is set but TLS is off: set tls.enabled: true (or remove tls.ca_file)",
            )),
            _ => Ok(()),
        }
    }

    /// The replication map as a CQL map literal.
    pub fn replication_cql(&self) -> Result<String, ConfigError> {
        let class = self
            .replication
            .get("class")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("replication", "needs a class"))?;
        if !matches!(class, "SimpleStrategy" | "NetworkTopologyStrategy") {
            return Err(bad(
                "replication",
                "class must be SimpleStrategy or NetworkTopologyStrategy",
            ));
        }
        let mut parts = vec![format!("'class': '{class}'")];
        for (key, value) in &self.replication {
            if key == "class" {
                continue;
            }
            let factor = value
                .as_u64()
                .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
                .filter(|f| (1..=32).contains(f));
            let key_ok = streampulse_core::name::CASSANDRA_DATACENTER.allows(key);
            match factor {
                Some(f) if key_ok => parts.push(format!("'{key}': '{f}'")),
                _ => {
                    return Err(bad(
                        "replication",
                        format!(
                            "'{key}' must be a datacenter name (or replication_factor) with a \
                             replica count from 1 to 32"
                        ),
                    ))
                }
            }
        }
        if parts.len() == 1 {
            return Err(bad(
                "replication",
                "give replication_factor (SimpleStrategy) or a count per datacenter",
            ));
        }
        Ok(format!("{{{}}}", parts.join(", ")))
    }

    /// The credentials to use: the environment's, else the file's; none when both are empty.
    pub fn credentials(&self) -> Option<(String, String)> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let user = env(USERNAME_ENV).unwrap_or_else(|| self.username.clone());
        let pass = env(PASSWORD_ENV).unwrap_or_else(|| self.password.clone());
        (!user.is_empty()).then_some((user, pass))
    }

    pub(crate) fn metric_bucket_ms(&self) -> i64 {
        self.metric_bucket.as_millis() as i64
    }

    pub(crate) fn time_bucket_ms(&self) -> i64 {
        self.time_bucket.as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_mistakes_name_the_key() {
        let c = CassandraConfig::default();
        c.validate().unwrap();
        assert_eq!(
            c.replication_cql().unwrap(),
            "{'class': 'SimpleStrategy', 'replication_factor': '1'}"
        );
        let with = |f: &dyn Fn(&mut CassandraConfig)| {
            let mut c = CassandraConfig::default();
            f(&mut c);
            c.validate().unwrap_err().key
        };
        assert_eq!(
            with(&|c| c.contact_points = vec!["nohost".into()]),
            "store.cassandra.contact_points"
        );
        assert_eq!(
            with(&|c| c.keyspace = "x; DROP".into()),
            "store.cassandra.keyspace"
        );
        assert_eq!(
            with(&|c| {
                c.replication.insert("class".into(), "Evil".into());
            }),
            "store.cassandra.replication"
        );
        assert_eq!(
            with(&|c| {
                c.replication.insert("dc1'".into(), 3.into());
            }),
            "store.cassandra.replication"
        );
        assert_eq!(
            with(&|c| c.time_bucket = Duration::from_secs(7200)),
            "store.cassandra.time_bucket"
        );
        assert_eq!(
            with(&|c| c.max_in_flight = 0),
            "store.cassandra.max_in_flight"
        );
    }

    #[test]
    fn network_topology_counts_per_datacenter() {
        let c = CassandraConfig {
            replication: BTreeMap::from([
                ("class".into(), "NetworkTopologyStrategy".into()),
                ("dc1".into(), 3.into()),
                ("dc2".into(), "2".into()),
            ]),
            ..CassandraConfig::default()
        };
        assert_eq!(
            c.replication_cql().unwrap(),
            "{'class': 'NetworkTopologyStrategy', 'dc1': '3', 'dc2': '2'}"
        );
    }
}
