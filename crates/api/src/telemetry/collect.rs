//! Reads every job's counters at scrape time and writes every metric family. Each family's name,
//! type and labels are specified in `docs/instrumentation.md`; a test checks that the document and
//! this file list the same families with the same labels.
//!
//! A process runs several jobs, so most families are per job: they carry a `job_name` label and
//! one sample set per job that ran in this process. The text format wants all samples of a family
//! under its one `# HELP`/`# TYPE` header, which is why each writer below loops over the jobs
//! inside its family instead of rendering job after job. The label is `job_name`, not `job`:
//! Prometheus sets `job` (and `instance`) on every scraped series itself, and would rename ours to
//! `exported_job`.
//!
//! Process-wide families have no `job_name`: build info and start time, the API's request timings,
//! the ingest counters (HTTP ingest appends to the one shared log, whichever jobs read it; the
//! configured job's runtime keeps those counters), and the shared log's size.

use std::time::Duration;

use streampulse_engine::jobs::{JobEntry, JobManager};
use streampulse_engine::status::JobStatus;
use streampulse_engine::telemetry::{AlertCounters, RejectReason};
use streampulse_engine::Runtime;
use streampulse_store::ExpiryTotals;

use super::http::HttpMetrics;
use super::text::{Encoder, Kind};

/// The label naming a job on every per-job family.
const JOB: &str = "job_name";

/// Wall-clock seconds since the epoch.
fn now_seconds() -> f64 {
    streampulse_core::clock::since_epoch().as_secs_f64()
}

/// A job that ran in this process (running, or stopped since), read once per scrape so that
/// every family shows the same snapshot of it.
struct Live<'a> {
    name: &'a str,
    runtime: &'a Runtime,
    status: JobStatus,
}

/// The whole exposition of `jobs` (and of the API's request timings).
pub fn render(
    jobs: &JobManager,
    http: &HttpMetrics,
    expiry: &ExpiryTotals,
    started: Duration,
) -> String {
    let entries = jobs.list();
    // A dormant job (stopped before this process started) has no counters: it only shows in
    // `streampulse_job_running`, as 0.
    let live: Vec<Live<'_>> = entries
        .iter()
        .filter_map(JobEntry::runtime)
        .map(|runtime| Live {
            name: &runtime.job().name,
            runtime,
            status: runtime.status(),
        })
        .collect();
    let configured = jobs.configured();
    let mut e = Encoder::default();
    build(&mut e, started);
    running(&mut e, &entries);
    ingest(&mut e, configured);
    partitions(&mut e, &live);
    windows(&mut e, &live);
    alerts(&mut e, &live);
    checkpoints(&mut e, &live);
    log(&mut e, configured);
    store_retention(&mut e, expiry);
    api(&mut e, http);
    websocket(&mut e, &live);
    webhooks(&mut e, &live);
    e.finish()
}

fn build(e: &mut Encoder, started: Duration) {
    e.family(
        "streampulse_build_info",
        Kind::Gauge,
        "Always 1; the version of the running binary is in the labels.",
    );
    e.int(
        "streampulse_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    e.family(
        "streampulse_start_time_seconds",
        Kind::Gauge,
        "When this process started, seconds since the epoch.",
    );
    e.float("streampulse_start_time_seconds", &[], started.as_secs_f64());
}

fn running(e: &mut Encoder, entries: &[JobEntry]) {
    let name = "streampulse_job_running";
    e.family(
        name,
        Kind::Gauge,
        "1 while the job takes input, 0 once it is stopped (in this process or before it started).",
    );
    for entry in entries {
        e.int(
            name,
            &[(JOB, &entry.job().name)],
            u64::from(entry.is_running()),
        );
    }
}

/// `runtime` is the configured job's: HTTP ingest counts there, though the events it appends go to
/// the log every job reads, so these counters belong to the process, not to that job.
fn ingest(e: &mut Encoder, runtime: &Runtime) {
    let c = runtime.counters();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    for (name, help, value) in [
        (
            "streampulse_events_received_total",
            "Events in ingest requests (lines or array elements): accepted + rejected + duplicate.",
            load(&c.ingest_received),
        ),
        (
            "streampulse_events_accepted_total",
            "Events validated and durably appended to the log.",
            load(&c.ingest_accepted),
        ),
        (
            "streampulse_events_duplicate_total",
            "Valid events of requests repeating a stored Idempotency-Key (not appended again).",
            load(&c.ingest_duplicate),
        ),
    ] {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], value);
    }
    let name = "streampulse_events_rejected_total";
    e.family(
        name,
        Kind::Counter,
        "Events rejected by ingest validation, by reason.",
    );
    for reason in RejectReason::ALL {
        e.int(
            name,
            &[("reason", reason.name())],
            c.metrics.rejected(reason),
        );
    }
}

fn partitions(e: &mut Encoder, live: &[Live<'_>]) {
    let now = now_seconds();
    // (job, partition label, index into that job's partitions), in the order of `live`.
    let series: Vec<(&Live<'_>, String, usize)> = live
        .iter()
        .flat_map(|job| {
            job.status
                .partitions
                .iter()
                .enumerate()
                .map(move |(i, p)| (job, p.partition.to_string(), i))
        })
        .collect();
    type Value = fn(&streampulse_engine::status::PartitionStatus, f64) -> Option<f64>;
    let families: [(&str, Kind, &str, Value); 9] = [
        (
            "streampulse_records_processed_total",
            Kind::Counter,
            "Log records processed by the partition's worker (replays after a restart included).",
            |p, _| Some(p.events as f64),
        ),
        (
            "streampulse_watermark_seconds",
            Kind::Gauge,
            "The partition's event-time watermark, seconds since the epoch (absent before its first event).",
            |p, _| p.watermark.map(|w| w as f64 / 1000.0),
        ),
        (
            "streampulse_watermark_lag_seconds",
            Kind::Gauge,
            "Wall-clock time minus the partition's watermark (negative when event times run ahead of the clock).",
            |p, now| p.watermark.map(|w| now - w as f64 / 1000.0),
        ),
        (
            "streampulse_consumer_lag_records",
            Kind::Gauge,
            "Records in the partition's source not yet processed (log end offset minus next offset).",
            |p, _| Some(p.log_end_offset.saturating_sub(p.next_offset) as f64),
        ),
        (
            "streampulse_open_windows",
            Kind::Gauge,
            "Windows and sessions holding state in the partition.",
            |p, _| Some(p.open_windows as f64),
        ),
        (
            "streampulse_idle_flushes_total",
            Kind::Counter,
            "Idle flushes that closed windows of a silent partition.",
            |p, _| Some(p.idle_flushes as f64),
        ),
        (
            "streampulse_skipped_records_total",
            Kind::Counter,
            "Log records that could not be decoded and were stepped over.",
            |p, _| Some(p.skipped_records as f64),
        ),
        (
            "streampulse_lost_records_total",
            Kind::Counter,
            "Records the source no longer held when the partition resumed from its checkpoint (kafka.on_data_loss: skip).",
            |p, _| Some(p.lost_records as f64),
        ),
        (
            "streampulse_state_bytes",
            Kind::Gauge,
            "Encoded bytes of the partition's operator state (windows, detectors) at its last checkpoint.",
            |p, _| Some(p.state_bytes as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        e.family(name, kind, help);
        for (job, partition, i) in &series {
            if let Some(v) = value(&job.status.partitions[*i], now) {
                e.float(name, &[(JOB, job.name), ("partition", partition)], v);
            }
        }
    }
}

fn windows(e: &mut Encoder, live: &[Live<'_>]) {
    use std::sync::atomic::Ordering::Relaxed;
    let windows = || {
        live.iter().flat_map(|job| {
            job.runtime
                .counters()
                .metrics
                .windows
                .iter()
                .map(move |w| (job.name, w))
        })
    };
    let name = "streampulse_window_results_total";
    e.family(
        name,
        Kind::Counter,
        "Window results emitted: kind=final for a first emission, kind=update for a re-emission caused by an event within allowed_lateness, kind=partial for an early-firing view of a window not fired yet (pushed to live subscribers, never stored).",
    );
    for (job, w) in windows() {
        for (kind, count) in [
            ("final", &w.results_final),
            ("update", &w.results_update),
            ("partial", &w.results_partial),
        ] {
            e.int(
                name,
                &[(JOB, job), ("window", &w.name), ("kind", kind)],
                count.load(Relaxed),
            );
        }
    }
    let name = "streampulse_late_events_total";
    e.family(
        name,
        Kind::Counter,
        "Events later than the window's end plus allowed_lateness, sent to the late output, per window they missed.",
    );
    for (job, w) in windows() {
        e.int(
            name,
            &[(JOB, job), ("window", &w.name)],
            w.late.load(Relaxed),
        );
    }
    let name = "streampulse_window_emit_delay_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Wall-clock time of a window's first emission minus the window's end.",
    );
    for (job, w) in windows() {
        e.histogram(
            name,
            &[(JOB, job), ("window", &w.name)],
            &w.emit_delay.snapshot(),
        );
    }
}

fn alerts(e: &mut Encoder, live: &[Live<'_>]) {
    let name = "streampulse_alert_transitions_total";
    e.family(
        name,
        Kind::Counter,
        "Alert transitions emitted (fired, escalated, re-opened: state=firing; resolved), by detector and severity.",
    );
    for job in live {
        for d in &job.runtime.counters().metrics.alerts {
            for severity in AlertCounters::SEVERITIES {
                for state in AlertCounters::STATES {
                    e.int(
                        name,
                        &[
                            (JOB, job.name),
                            ("detector", &d.detector),
                            ("severity", severity.name()),
                            ("state", state.name()),
                        ],
                        d.get(severity, state),
                    );
                }
            }
        }
    }
}

fn checkpoints(e: &mut Encoder, live: &[Live<'_>]) {
    type Count = fn(&JobStatus) -> u64;
    let counters: [(&str, &str, Count); 3] = [
        (
            "streampulse_store_errors_total",
            "Failed attempts to write outputs to the result store (each batch is retried until it is written).",
            |s| s.store_errors,
        ),
        (
            "streampulse_checkpoints_completed_total",
            "Checkpoints (and savepoints) completed.",
            |s| s.checkpoints_completed,
        ),
        (
            "streampulse_checkpoints_failed_total",
            "Checkpoints (and savepoints) that failed.",
            |s| s.checkpoints_failed,
        ),
    ];
    for (name, help, value) in counters {
        e.family(name, Kind::Counter, help);
        for job in live {
            e.int(name, &[(JOB, job.name)], value(&job.status));
        }
    }
    let name = "streampulse_checkpoint_duration_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Time to take a checkpoint: snapshots, store flush, durable write.",
    );
    for job in live {
        e.histogram(
            name,
            &[(JOB, job.name)],
            &job.runtime
                .counters()
                .metrics
                .checkpoint_duration
                .snapshot(),
        );
    }
    let name = "streampulse_result_publish_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Batches that fired windows: from the start of the batch to its results being in the \
         store and on the live feed.",
    );
    for job in live {
        e.histogram(
            name,
            &[(JOB, job.name)],
            &job.runtime.counters().metrics.result_publish.snapshot(),
        );
    }
    let now = now_seconds();
    type Last = fn(&streampulse_engine::status::CheckpointInfo, f64) -> f64;
    let gauges: [(&str, &str, Last); 3] = [
        (
            "streampulse_checkpoint_last_size_bytes",
            "Size of the last completed checkpoint: the job's serialized state.",
            |c, _| c.bytes as f64,
        ),
        (
            "streampulse_checkpoint_last_completed_timestamp_seconds",
            "When the last checkpoint completed, seconds since the epoch.",
            |c, _| c.completed_ms as f64 / 1000.0,
        ),
        (
            "streampulse_checkpoint_last_age_seconds",
            "Seconds since the last checkpoint completed.",
            |c, now| now - c.completed_ms as f64 / 1000.0,
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        for job in live {
            // Absent until the job's first checkpoint: there is no size or age to report yet.
            if let Some(last) = &job.status.last_checkpoint {
                e.float(name, &[(JOB, job.name)], value(last, now));
            }
        }
    }
}

/// The log is shared by every job; the configured job's handle on it is as good as any.
fn log(e: &mut Encoder, runtime: &Runtime) {
    let name = "streampulse_log_size_bytes";
    e.family(
        name,
        Kind::Gauge,
        "Payload bytes retained by the embedded log, all partitions.",
    );
    if let Some(log) = runtime.ingest_log() {
        e.int(name, &[], log.size_bytes());
    }
}

fn store_retention(e: &mut Encoder, expiry: &ExpiryTotals) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let name = "streampulse_store_rows_expired_total";
    e.family(
        name,
        Kind::Counter,
        "Stored rows deleted by retention (store.retention) because their event time passed their table's TTL.",
    );
    for (table, value) in [
        ("results", &expiry.results),
        ("late_events", &expiry.late_events),
        ("alerts", &expiry.alerts),
        ("raw_events", &expiry.raw_events),
    ] {
        e.int(name, &[("table", table)], load(value));
    }
    let name = "streampulse_store_retention_sweeps_total";
    e.family(
        name,
        Kind::Counter,
        "Store retention sweeps, by outcome (a failed one is retried at the next check).",
    );
    e.int(name, &[("outcome", "ok")], load(&expiry.sweeps_ok));
    e.int(name, &[("outcome", "failed")], load(&expiry.sweeps_failed));
}

fn api(e: &mut Encoder, http: &HttpMetrics) {
    let name = "streampulse_http_request_duration_seconds";
    e.family(
        name,
        Kind::Histogram,
        "API request durations by matched route, method and status.",
    );
    for s in http.snapshot() {
        let status = s.status.to_string();
        e.histogram(
            name,
            &[
                ("route", &s.route),
                ("method", s.method),
                ("status", &status),
            ],
            &s.duration,
        );
    }
}

fn websocket(e: &mut Encoder, live: &[Live<'_>]) {
    let name = "streampulse_websocket_clients";
    e.family(
        name,
        Kind::Gauge,
        "WebSocket clients subscribed to the job's live feed.",
    );
    for job in live {
        e.int(
            name,
            &[(JOB, job.name)],
            job.runtime.feed().subscribers() as u64,
        );
    }
    let name = "streampulse_websocket_lagged_messages_total";
    e.family(
        name,
        Kind::Counter,
        "Live-feed messages WebSocket clients of the job missed because they read too slowly.",
    );
    for job in live {
        e.int(name, &[(JOB, job.name)], job.runtime.feed().lagged());
    }
}

/// A webhook's URL as a label: without credentials, query or fragment, which may hold secrets.
fn webhook_label(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

fn webhooks(e: &mut Encoder, live: &[Live<'_>]) {
    // Every job delivers to the configured webhooks through a dispatcher of its own, so the same
    // URL appears once per job.
    let hooks: Vec<_> = live
        .iter()
        .flat_map(|job| {
            job.status
                .webhooks
                .iter()
                .map(move |w| (job.name, webhook_label(&w.url), w))
        })
        .collect();
    type Get = fn(&streampulse_engine::webhook::WebhookStatus) -> u64;
    let counters: [(&str, &str, Get); 3] = [
        (
            "streampulse_webhook_deliveries_total",
            "Alert transitions delivered (2xx) to the webhook.",
            |w| w.delivered,
        ),
        (
            "streampulse_webhook_failed_attempts_total",
            "Delivery attempts that failed (error, timeout or non-2xx), retried or not.",
            |w| w.failed_attempts,
        ),
        (
            "streampulse_webhook_given_up_total",
            "Alert transitions given up after max_attempts or a non-retryable status.",
            |w| w.given_up,
        ),
    ];
    for (name, help, get) in counters {
        e.family(name, Kind::Counter, help);
        for (job, label, w) in &hooks {
            e.int(name, &[(JOB, job), ("webhook", label)], get(w));
        }
    }
    let name = "streampulse_webhook_dropped_total";
    e.family(
        name,
        Kind::Counter,
        "Alert transitions not sent to the webhook: reason=queue_full or shutdown.",
    );
    for (job, label, w) in &hooks {
        for (reason, count) in [
            ("queue_full", w.dropped_queue_full),
            ("shutdown", w.dropped_at_shutdown),
        ] {
            e.int(
                name,
                &[(JOB, job), ("webhook", label), ("reason", reason)],
                count,
            );
        }
    }
    let name = "streampulse_webhook_queued_transitions";
    e.family(
        name,
        Kind::Gauge,
        "Alert transitions waiting in the webhook's queue.",
    );
    for (job, label, w) in &hooks {
        e.int(name, &[(JOB, job), ("webhook", label)], w.queued);
    }
}

#[cfg(test)]
mod tests {
    use super::webhook_label;

    #[test]
    fn webhook_labels_drop_secrets() {
        assert_eq!(
            webhook_label("http://user:pw@h:9000/a/b?token=x#f"),
            "http://h:9000/a/b"
        );
        assert_eq!(webhook_label("http://h"), "http://h");
    }
}
