//! The keyspace and tables of the Cassandra store, versioned: created by `streampulse store init`
//! (or at start with `create_schema: true`), checked at every start.
//!
//! `docs/cassandra.md` explains each table (partition keys, buckets, compaction, TTLs). The
//! statements here are that document's CQL; this module must never drop or alter a table that
//! holds data: a newer version adds tables and columns only.

/// The version this build writes and reads. Recorded in `schema_info`.
pub const SCHEMA_VERSION: i32 = 1;

/// Time-window compaction for tables whose rows are written close to their event time and then
/// expire by TTL: whole SSTables drop at once, no tombstones to compact.
const TWCS: &str = "compaction = {'class': 'TimeWindowCompactionStrategy', \
                    'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}";

/// The CQL that creates the keyspace.
pub fn keyspace_cql(keyspace: &str, replication: &str) -> String {
    format!("CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {replication}")
}

/// The CQL that creates every table, in order.
pub fn tables_cql(ks: &str) -> Vec<String> {
    vec![
        format!("CREATE TABLE IF NOT EXISTS {ks}.schema_info (key text PRIMARY KEY, value text)"),
        // One partition per (job, metric, window, bucket of metric_bucket): a metric's history
        // of one window is a few partitions, read in window_start order.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.results_by_metric (
                job text, metric_id text, window text, bucket bigint, window_start bigint,
                window_end bigint, count bigint, sum double, min double, max double, mean double,
                extra blob, revision bigint,
                PRIMARY KEY ((job, metric_id, window, bucket), window_start)
            ) WITH {TWCS}"
        ),
        // Every metric's results of one time_bucket: "all metrics between start and end" reads
        // the buckets of the range, found in result_buckets, not the cluster.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.results_by_time (
                job text, bucket bigint, window_start bigint, metric_id text, window text,
                window_end bigint, count bigint, sum double, min double, max double, mean double,
                extra blob, revision bigint,
                PRIMARY KEY ((job, bucket), window_start, metric_id, window)
            ) WITH {TWCS}"
        ),
        // Which buckets of a bucketed table hold rows, so that a range, however long, reads only
        // the partitions that exist: kind `time` (results_by_time), `series` (results_by_metric,
        // key metric_id NUL window), `late`, `raw` (key metric_id), `alerts` (days of first_ts).
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.buckets (
                job text, kind text, key text, bucket bigint,
                PRIMARY KEY ((job, kind, key), bucket)
            )"
        ),
        // The (metric, window) series of a job that have results: the windows of one metric,
        // and the metrics under a prefix, are found here without touching the results.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.result_series (
                job text, metric_id text, window text, PRIMARY KEY ((job), metric_id, window)
            )"
        ),
        // The metric catalog: tags of each metric's first event; prefix scans by metric_id.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.metrics (
                job text, metric_id text, tags map<text, text>,
                PRIMARY KEY ((job), metric_id)
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.alerts (
                job text, id text, body blob, PRIMARY KEY ((job, id))
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.alerts_by_time (
                job text, day bigint, first_ts bigint, id text, last_ts bigint, body blob,
                PRIMARY KEY ((job, day), first_ts, id)
            ) WITH CLUSTERING ORDER BY (first_ts DESC, id DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.alerts_by_metric (
                job text, metric_id text, first_ts bigint, id text, last_ts bigint, body blob,
                PRIMARY KEY ((job, metric_id), first_ts, id)
            ) WITH CLUSTERING ORDER BY (first_ts DESC, id DESC)"
        ),
        // The longest alert episodes of a job: bounds how far before a range an overlapping
        // alert can start.
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.alert_spans (
                job text, span bigint, PRIMARY KEY ((job), span)
            ) WITH CLUSTERING ORDER BY (span DESC)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.late_events (
                job text, day bigint, ts bigint, partition int, window text, offset bigint,
                metric_id text, value double, watermark bigint,
                PRIMARY KEY ((job, day), ts, partition, window, offset)
            ) WITH {TWCS}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.raw_events (
                job text, metric_id text, day bigint, ts bigint, partition int, offset bigint,
                value double, tags map<text, text>,
                PRIMARY KEY ((job, metric_id, day), ts, partition, offset)
            ) WITH {TWCS}"
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalize(s: &str) -> String {
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn docs_show_the_cql_that_runs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cassandra.md");
        let doc = normalize(&std::fs::read_to_string(path).expect("docs/cassandra.md"));
        for cql in tables_cql("streampulse") {
            let cql = normalize(&cql);
            assert!(doc.contains(&cql), "docs/cassandra.md lacks: {cql}");
        }
    }
}
