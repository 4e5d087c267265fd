//! Connecting, the schema check, the prepared statements, and the [`ResultStore`] impl that hands
//! each call to [`crate::write`] or [`crate::read`] on the store's runtime.

use std::future::Future;
use std::sync::{Arc, Mutex};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use streampulse_core::detect::Alert;
use streampulse_core::output::{LateEvent, Output};
use streampulse_core::time::Millis;
use streampulse_store::{
    tag_walk, AlertQuery, CatalogPage, CatalogQuery, ExpiryReport, LateQuery, RawQuery, RawRow,
    ResultPage, ResultQuery, ResultStore, RetentionPolicy, StoreCounts, StoreError,
};

use crate::config::CassandraConfig;
use crate::error::CassandraError;
use crate::schema;

/// Prepared statements, one per access.
pub(crate) struct Statements {
    pub ins_result_metric: PreparedStatement,
    pub ins_result_time: PreparedStatement,
    pub del_result_metric: PreparedStatement,
    pub del_result_time: PreparedStatement,
    pub ins_bucket: PreparedStatement,
    pub ins_series: PreparedStatement,
    pub ins_metric: PreparedStatement,
    pub ins_alert: PreparedStatement,
    pub ins_alert_time: PreparedStatement,
    pub ins_alert_metric: PreparedStatement,
    pub ins_alert_span: PreparedStatement,
    pub ins_late: PreparedStatement,
    pub ins_raw: PreparedStatement,
    pub sel_metric_results: PreparedStatement,
    pub sel_metric_results_after: PreparedStatement,
    pub sel_time_results: PreparedStatement,
    pub sel_time_results_after: PreparedStatement,
    pub sel_buckets: PreparedStatement,
    pub sel_buckets_desc: PreparedStatement,
    pub sel_series_of: PreparedStatement,
    pub sel_series_from: PreparedStatement,
    pub sel_catalog: PreparedStatement,
    pub sel_catalog_from: PreparedStatement,
    pub sel_alert: PreparedStatement,
    pub sel_alerts_time: PreparedStatement,
    pub sel_alerts_metric: PreparedStatement,
    pub sel_span: PreparedStatement,
    pub sel_late: PreparedStatement,
    pub sel_raw: PreparedStatement,
}

const RESULT_COLUMNS: &str = "window_end, count, sum, min, max, mean, extra, revision";

/// What the writes and reads share.
pub(crate) struct Inner {
    pub session: Session,
    pub st: Statements,
    pub config: CassandraConfig,
    pub retention: RetentionPolicy,
    /// Index rows this process has written (bucket index, series) and the longest alert span
    /// written per job: each is written once, not once per row; remembered only once the batch
    /// that wrote it succeeded. Cleared when large.
    pub written: Mutex<Written>,
    /// Requests in flight, all partitions' batches together (`max_in_flight`): more only queue
    /// up in the nodes and cost them CPU.
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
pub(crate) struct Written {
    pub buckets: std::collections::HashSet<(String, &'static str, String, i64)>,
    pub series: std::collections::HashSet<(String, String, String)>,
    pub spans: std::collections::HashMap<String, i64>,
}

/// The result store on a Cassandra (or ScyllaDB) cluster.
pub struct CassandraStore {
    inner: Arc<Inner>,
    runtime: tokio::runtime::Runtime,
}

impl CassandraStore {
    /// Connects, creates or checks the schema, and prepares every statement. `retention` gives
    /// each row its TTL at write time.
    pub fn connect(
        config: &CassandraConfig,
        retention: RetentionPolicy,
    ) -> Result<Self, CassandraError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cassandra")
            .enable_all()
            .build()
            .map_err(CassandraError::Runtime)?;
        let inner = runtime.block_on(async {
            let session = open(config).await?;
            if config.create_schema {
                create_schema(&session, config).await?;
            }
            check_schema(&session, config).await?;
            let st = prepare(&session, config).await?;
            Ok::<_, CassandraError>(Inner {
                session,
                st,
                config: config.clone(),
                retention,
                written: Mutex::new(Written::default()),
                in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
            })
        })?;
        Ok(Self {
            inner: Arc::new(inner),
            runtime,
        })
    }

    /// `streampulse store init`: creates the keyspace and tables (if missing) and records the
    /// schema version and bucket sizes. Idempotent.
    pub fn init(config: &CassandraConfig) -> Result<(), CassandraError> {
        config.validate()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(CassandraError::Runtime)?;
        runtime.block_on(async {
            let session = open(config).await?;
            create_schema(&session, config).await?;
            check_schema(&session, config).await
        })
    }

    /// Runs `f` on the store's runtime and waits for it, from any thread (also one inside
    /// another runtime's blocking pool).
    fn run<T, F>(&self, f: impl FnOnce(Arc<Inner>) -> F) -> Result<T, StoreError>
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.inner.clone());
        self.runtime.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|e| crate::error::request("the store's runtime is shutting down", e))?
    }
}

async fn open(config: &CassandraConfig) -> Result<Session, CassandraError> {
    let mut builder = SessionBuilder::new()
        .known_nodes(&config.contact_points)
        .connection_timeout(config.connect_timeout);
    if !config.local_datacenter.is_empty() {
        builder = builder.prefer_datacenter(config.local_datacenter.clone());
    }
    if let Some((user, pass)) = config.credentials() {
        builder = builder.user(user, pass);
    }
    builder
        .tls_context(crate::tls::client_config(&config.tls)?)
        .build()
        .await
        .map_err(|source| CassandraError::Connect {
            contact_points: config.contact_points.join(","),
            source: Box::new(source),
        })
}

fn schema_err(
    what: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> CassandraError {
    let what = what.into();
    move |source| CassandraError::Schema { what, source }
}

async fn ddl(session: &Session, cql: String) -> Result<(), CassandraError> {
    let what = cql.lines().next().unwrap_or_default().trim().to_string();
    session
        .query_unpaged(cql, ())
        .await
        .map_err(|e| schema_err(what)(Box::new(e)))?;
    Ok(())
}

async fn create_schema(session: &Session, config: &CassandraConfig) -> Result<(), CassandraError> {
    let ks = &config.keyspace;
    ddl(
        session,
        schema::keyspace_cql(ks, &config.replication_cql()?),
    )
    .await?;
    for cql in schema::tables_cql(ks) {
        ddl(session, cql).await?;
    }
    // Records what reads depend on; an existing record is kept (and checked next).
    for (key, value) in [
        ("version", schema::SCHEMA_VERSION.to_string()),
        ("metric_bucket_ms", config.metric_bucket_ms().to_string()),
        ("time_bucket_ms", config.time_bucket_ms().to_string()),
    ] {
        session
            .query_unpaged(
                format!("INSERT INTO {ks}.schema_info (key, value) VALUES (?, ?) IF NOT EXISTS"),
                (key, value),
            )
            .await
            .map_err(|e| schema_err("recording schema_info")(Box::new(e)))?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(|e| schema_err("waiting for schema agreement")(Box::new(e)))?;
    Ok(())
}

async fn check_schema(session: &Session, config: &CassandraConfig) -> Result<(), CassandraError> {
    let ks = &config.keyspace;
    let no_schema = || CassandraError::NoSchema {
        keyspace: ks.clone(),
    };
    let rows = session
        .query_unpaged(format!("SELECT key, value FROM {ks}.schema_info"), ())
        .await
        .map_err(|_| no_schema())?
        .into_rows_result()
        .map_err(|e| schema_err("reading schema_info")(Box::new(e)))?;
    let mut info = std::collections::HashMap::new();
    for row in rows
        .rows::<(String, String)>()
        .map_err(|e| schema_err("reading schema_info")(Box::new(e)))?
    {
        let (k, v) = row.map_err(|e| schema_err("reading schema_info")(Box::new(e)))?;
        info.insert(k, v);
    }
    let version = info.get("version").ok_or_else(no_schema)?;
    if version != &schema::SCHEMA_VERSION.to_string() {
        return Err(CassandraError::Version {
            keyspace: ks.clone(),
            found: version.clone(),
            expected: schema::SCHEMA_VERSION,
        });
    }
    for (key, configured) in [
        ("metric_bucket", config.metric_bucket_ms()),
        ("time_bucket", config.time_bucket_ms()),
    ] {
        let stored = info
            .get(&format!("{key}_ms"))
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(no_schema)?;
        if stored != configured {
            return Err(CassandraError::Fixed {
                keyspace: ks.clone(),
                key,
                configured,
                stored,
            });
        }
    }
    Ok(())
}

async fn prepare(
    session: &Session,
    config: &CassandraConfig,
) -> Result<Statements, CassandraError> {
    let ks = &config.keyspace;
    let write = config.write_consistency.to_driver();
    let read = config.read_consistency.to_driver();
    let timeout = Some(config.request_timeout);
    let p = |cql: String, consistency| async move {
        let mut st = session
            .prepare(cql.clone())
            .await
            .map_err(|e| schema_err(format!("preparing {cql}"))(Box::new(e)))?;
        st.set_consistency(consistency);
        st.set_request_timeout(timeout);
        st.set_is_idempotent(true);
        Ok::<_, CassandraError>(st)
    };
    let cols = RESULT_COLUMNS;
    let values = "?, ?, ?, ?, ?, ?, ?, ?";
    Ok(Statements {
        ins_result_metric: p(
            format!(
                "INSERT INTO {ks}.results_by_metric (job, metric_id, window, bucket, window_start, \
                 {cols}) VALUES (?, ?, ?, ?, ?, {values}) USING TTL ? AND TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        ins_result_time: p(
            format!(
                "INSERT INTO {ks}.results_by_time (job, bucket, window_start, metric_id, window, \
                 {cols}) VALUES (?, ?, ?, ?, ?, {values}) USING TTL ? AND TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        del_result_metric: p(
            format!(
                "DELETE FROM {ks}.results_by_metric USING TIMESTAMP ? WHERE job = ? AND \
                 metric_id = ? AND window = ? AND bucket = ? AND window_start = ?"
            ),
            write,
        )
        .await?,
        del_result_time: p(
            format!(
                "DELETE FROM {ks}.results_by_time USING TIMESTAMP ? WHERE job = ? AND bucket = ? \
                 AND window_start = ? AND metric_id = ? AND window = ?"
            ),
            write,
        )
        .await?,
        ins_bucket: p(
            format!(
                "INSERT INTO {ks}.buckets (job, kind, key, bucket) VALUES (?, ?, ?, ?) USING TTL ?"
            ),
            write,
        )
        .await?,
        ins_series: p(
            format!("INSERT INTO {ks}.result_series (job, metric_id, window) VALUES (?, ?, ?)"),
            write,
        )
        .await?,
        ins_metric: p(
            format!("INSERT INTO {ks}.metrics (job, metric_id, tags) VALUES (?, ?, ?)"),
            write,
        )
        .await?,
        ins_alert: p(
            format!(
                "INSERT INTO {ks}.alerts (job, id, body) VALUES (?, ?, ?) USING TTL ? AND \
                 TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        ins_alert_time: p(
            format!(
                "INSERT INTO {ks}.alerts_by_time (job, day, first_ts, id, last_ts, body) VALUES \
                 (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        ins_alert_metric: p(
            format!(
                "INSERT INTO {ks}.alerts_by_metric (job, metric_id, first_ts, id, last_ts, body) \
                 VALUES (?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        ins_alert_span: p(
            format!("INSERT INTO {ks}.alert_spans (job, span) VALUES (?, ?)"),
            write,
        )
        .await?,
        ins_late: p(
            format!(
                "INSERT INTO {ks}.late_events (job, day, ts, partition, window, offset, \
                 metric_id, value, watermark) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND \
                 TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        ins_raw: p(
            format!(
                "INSERT INTO {ks}.raw_events (job, metric_id, day, ts, partition, offset, value, \
                 tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?"
            ),
            write,
        )
        .await?,
        sel_metric_results: p(
            format!(
                "SELECT window_start, {cols} FROM {ks}.results_by_metric WHERE job = ? AND \
                 metric_id = ? AND window = ? AND bucket = ? AND window_start >= ? AND \
                 window_start < ? LIMIT ?"
            ),
            read,
        )
        .await?,
        sel_metric_results_after: p(
            format!(
                "SELECT window_start, {cols} FROM {ks}.results_by_metric WHERE job = ? AND \
                 metric_id = ? AND window = ? AND bucket = ? AND window_start > ? AND \
                 window_start < ? LIMIT ?"
            ),
            read,
        )
        .await?,
        sel_time_results: p(
            format!(
                "SELECT window_start, metric_id, window, {cols} FROM {ks}.results_by_time WHERE \
                 job = ? AND bucket = ? AND (window_start, metric_id, window) >= (?, ?, ?) AND \
                 (window_start) < (?)"
            ),
            read,
        )
        .await?,
        sel_time_results_after: p(
            format!(
                "SELECT window_start, metric_id, window, {cols} FROM {ks}.results_by_time WHERE \
                 job = ? AND bucket = ? AND (window_start, metric_id, window) > (?, ?, ?) AND \
                 (window_start) < (?)"
            ),
            read,
        )
        .await?,
        sel_buckets: p(
            format!(
                "SELECT bucket FROM {ks}.buckets WHERE job = ? AND kind = ? AND key = ? AND \
                 bucket >= ? AND bucket <= ?"
            ),
            read,
        )
        .await?,
        sel_buckets_desc: p(
            format!(
                "SELECT bucket FROM {ks}.buckets WHERE job = ? AND kind = ? AND key = ? AND \
                 bucket >= ? AND bucket <= ? ORDER BY bucket DESC"
            ),
            read,
        )
        .await?,
        sel_series_of: p(
            format!("SELECT window FROM {ks}.result_series WHERE job = ? AND metric_id = ?"),
            read,
        )
        .await?,
        sel_series_from: p(
            format!(
                "SELECT metric_id, window FROM {ks}.result_series WHERE job = ? AND metric_id >= ?"
            ),
            read,
        )
        .await?,
        sel_catalog: p(
            format!("SELECT metric_id, tags FROM {ks}.metrics WHERE job = ?"),
            read,
        )
        .await?,
        sel_catalog_from: p(
            format!("SELECT metric_id, tags FROM {ks}.metrics WHERE job = ? AND metric_id >= ?"),
            read,
        )
        .await?,
        sel_alert: p(
            format!("SELECT body FROM {ks}.alerts WHERE job = ? AND id = ?"),
            read,
        )
        .await?,
        sel_alerts_time: p(
            format!(
                "SELECT body FROM {ks}.alerts_by_time WHERE job = ? AND day = ? AND \
                 (first_ts, id) < (?, ?) AND (first_ts) >= (?)"
            ),
            read,
        )
        .await?,
        sel_alerts_metric: p(
            format!(
                "SELECT body FROM {ks}.alerts_by_metric WHERE job = ? AND metric_id = ? AND \
                 (first_ts, id) < (?, ?) AND (first_ts) >= (?)"
            ),
            read,
        )
        .await?,
        sel_span: p(
            format!("SELECT span FROM {ks}.alert_spans WHERE job = ? LIMIT 1"),
            read,
        )
        .await?,
        sel_late: p(
            format!(
                "SELECT ts, partition, window, offset, metric_id, value, watermark FROM \
                 {ks}.late_events WHERE job = ? AND day = ? AND ts >= ? AND ts < ?"
            ),
            read,
        )
        .await?,
        sel_raw: p(
            format!(
                "SELECT ts, partition, offset, value, tags FROM {ks}.raw_events WHERE job = ? AND \
                 metric_id = ? AND day = ? AND (ts, partition, offset) > (?, ?, ?) AND (ts) < (?) \
                 LIMIT ?"
            ),
            read,
        )
        .await?,
    })
}

impl ResultStore for CassandraStore {
    fn apply(&self, job: &str, partition: u32, outputs: &[Output]) -> Result<(), StoreError> {
        if outputs.is_empty() {
            return Ok(());
        }
        let job = job.to_string();
        let outputs = outputs.to_vec();
        let now = streampulse_core::clock::now_ms();
        self.run(move |inner| async move {
            crate::write::apply(inner, job, partition, outputs, now).await
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // `apply` returned only once every write was acknowledged at the write consistency.
        Ok(())
    }

    fn query_page(&self, q: &ResultQuery) -> Result<ResultPage, StoreError> {
        if !q.tags.is_empty() {
            let (job, tags) = (q.job.clone(), q.tags.clone());
            let wanted = self.run(move |inner| async move {
                crate::read::metrics_tagged(&inner, &job, &tags).await
            })?;
            return tag_walk(q, &wanted, |page| self.query_page(page));
        }
        let q = q.clone();
        self.run(move |inner| async move { crate::read::results(&inner, &q).await })
    }

    fn query_catalog(&self, q: &CatalogQuery) -> Result<CatalogPage, StoreError> {
        let q = q.clone();
        self.run(move |inner| async move { crate::read::catalog(&inner, &q).await })
    }

    fn query_late(&self, q: &LateQuery) -> Result<Vec<LateEvent>, StoreError> {
        let q = q.clone();
        self.run(move |inner| async move { crate::read::late(&inner, &q).await })
    }

    fn query_raw(&self, q: &RawQuery) -> Result<Vec<RawRow>, StoreError> {
        let q = q.clone();
        self.run(move |inner| async move { crate::read::raw(&inner, &q).await })
    }

    fn query_alerts(&self, q: &AlertQuery) -> Result<Vec<Alert>, StoreError> {
        let q = q.clone();
        self.run(move |inner| async move { crate::read::alerts(&inner, &q).await })
    }

    fn get_alert(&self, job: &str, id: &str) -> Result<Option<Alert>, StoreError> {
        let (job, id) = (job.to_string(), id.to_string());
        self.run(move |inner| async move { crate::read::alert(&inner, &job, &id).await })
    }

    fn counts(&self) -> Result<StoreCounts, StoreError> {
        self.run(move |inner| async move { crate::read::counts(&inner).await })
    }

    fn expire(&self, _policy: &RetentionPolicy, _now: Millis) -> Result<ExpiryReport, StoreError> {
        // Rows carry their TTL from the moment they are written; Cassandra drops them itself
        // (and time-window compaction drops whole SSTables), so there is nothing to sweep.
        Ok(ExpiryReport::default())
    }
}
