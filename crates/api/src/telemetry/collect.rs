//! Reads the running job's counters at scrape time and writes every metric family. Each family's
//! name, type and labels are specified in `docs/instrumentation.md`; a test checks that the
//! document and this file list the same families.

use std::time::{SystemTime, UNIX_EPOCH};

use streampulse_engine::status::JobStatus;
use streampulse_engine::telemetry::{AlertCounters, RejectReason};
use streampulse_engine::Runtime;

use super::http::HttpMetrics;
use super::text::{Encoder, Kind};

/// Wall-clock seconds since the epoch.
fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The whole exposition of `runtime` (and of the API's request timings).
pub fn render(runtime: &Runtime, http: &HttpMetrics, started: SystemTime) -> String {
    let mut e = Encoder::default();
    let status = runtime.status();
    build(&mut e, started);
    ingest(&mut e, runtime);
    partitions(&mut e, &status);
    windows(&mut e, runtime);
    alerts(&mut e, runtime);
    checkpoints(&mut e, runtime, &status);
    log(&mut e, runtime);
    api(&mut e, http);
    websocket(&mut e, runtime);
    webhooks(&mut e, &status);
    e.finish()
}

fn build(e: &mut Encoder, started: SystemTime) {
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
    let started = started
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    e.float("streampulse_start_time_seconds", &[], started);
}

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

fn partitions(e: &mut Encoder, status: &JobStatus) {
    let now = now_seconds();
    let labels: Vec<String> = status
        .partitions
        .iter()
        .map(|p| p.partition.to_string())
        .collect();
    let each = |e: &mut Encoder,
                name: &str,
                kind: Kind,
                help: &str,
                value: &dyn Fn(usize) -> Option<f64>| {
        e.family(name, kind, help);
        for (i, label) in labels.iter().enumerate() {
            if let Some(v) = value(i) {
                e.float(name, &[("partition", label)], v);
            }
        }
    };
    let p = &status.partitions;
    each(
        e,
        "streampulse_records_processed_total",
        Kind::Counter,
        "Log records processed by the partition's worker (replays after a restart included).",
        &|i| Some(p[i].events as f64),
    );
    each(
        e,
        "streampulse_watermark_seconds",
        Kind::Gauge,
        "The partition's event-time watermark, seconds since the epoch (absent before its first event).",
        &|i| p[i].watermark.map(|w| w as f64 / 1000.0),
    );
    each(
        e,
        "streampulse_watermark_lag_seconds",
        Kind::Gauge,
        "Wall-clock time minus the partition's watermark (negative when event times run ahead of the clock).",
        &|i| p[i].watermark.map(|w| now - w as f64 / 1000.0),
    );
    each(
        e,
        "streampulse_consumer_lag_records",
        Kind::Gauge,
        "Records in the partition's source not yet processed (log end offset minus next offset).",
        &|i| Some(p[i].log_end_offset.saturating_sub(p[i].next_offset) as f64),
    );
    each(
        e,
        "streampulse_open_windows",
        Kind::Gauge,
        "Windows and sessions holding state in the partition.",
        &|i| Some(p[i].open_windows as f64),
    );
    each(
        e,
        "streampulse_idle_flushes_total",
        Kind::Counter,
        "Idle flushes that closed windows of a silent partition.",
        &|i| Some(p[i].idle_flushes as f64),
    );
    each(
        e,
        "streampulse_state_bytes",
        Kind::Gauge,
        "Encoded bytes of the partition's operator state (windows, detectors) at its last checkpoint.",
        &|i| Some(p[i].state_bytes as f64),
    );
}

fn windows(e: &mut Encoder, runtime: &Runtime) {
    use std::sync::atomic::Ordering::Relaxed;
    let windows = &runtime.counters().metrics.windows;
    let name = "streampulse_window_results_total";
    e.family(
        name,
        Kind::Counter,
        "Window results emitted: kind=final for a first emission, kind=update for a re-emission caused by an event within allowed_lateness, kind=partial for an early-firing view of a window not fired yet (pushed to live subscribers, never stored).",
    );
    for w in windows {
        e.int(
            name,
            &[("window", &w.name), ("kind", "final")],
            w.results_final.load(Relaxed),
        );
        e.int(
            name,
            &[("window", &w.name), ("kind", "update")],
            w.results_update.load(Relaxed),
        );
        e.int(
            name,
            &[("window", &w.name), ("kind", "partial")],
            w.results_partial.load(Relaxed),
        );
    }
    let name = "streampulse_late_events_total";
    e.family(
        name,
        Kind::Counter,
        "Events later than the window's end plus allowed_lateness, sent to the late output, per window they missed.",
    );
    for w in windows {
        e.int(name, &[("window", &w.name)], w.late.load(Relaxed));
    }
    let name = "streampulse_window_emit_delay_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Wall-clock time of a window's first emission minus the window's end.",
    );
    for w in windows {
        e.histogram(name, &[("window", &w.name)], &w.emit_delay.snapshot());
    }
}

fn alerts(e: &mut Encoder, runtime: &Runtime) {
    let name = "streampulse_alert_transitions_total";
    e.family(
        name,
        Kind::Counter,
        "Alert transitions emitted (fired, escalated, re-opened: state=firing; resolved), by detector and severity.",
    );
    for d in &runtime.counters().metrics.alerts {
        for severity in AlertCounters::SEVERITIES {
            for state in AlertCounters::STATES {
                e.int(
                    name,
                    &[
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

fn checkpoints(e: &mut Encoder, runtime: &Runtime, status: &JobStatus) {
    for (name, help, value) in [
        (
            "streampulse_checkpoints_completed_total",
            "Checkpoints (and savepoints) completed.",
            status.checkpoints_completed,
        ),
        (
            "streampulse_checkpoints_failed_total",
            "Checkpoints (and savepoints) that failed.",
            status.checkpoints_failed,
        ),
    ] {
        e.family(name, Kind::Counter, help);
        e.int(name, &[], value);
    }
    let name = "streampulse_checkpoint_duration_seconds";
    e.family(
        name,
        Kind::Histogram,
        "Time to take a checkpoint: snapshots, store flush, durable write.",
    );
    e.histogram(
        name,
        &[],
        &runtime.counters().metrics.checkpoint_duration.snapshot(),
    );
    let last = status.last_checkpoint.as_ref();
    let gauges: [(&str, &str, Option<f64>); 3] = [
        (
            "streampulse_checkpoint_last_size_bytes",
            "Size of the last completed checkpoint: the job's serialized state.",
            last.map(|c| c.bytes as f64),
        ),
        (
            "streampulse_checkpoint_last_completed_timestamp_seconds",
            "When the last checkpoint completed, seconds since the epoch.",
            last.map(|c| c.completed_ms as f64 / 1000.0),
        ),
        (
            "streampulse_checkpoint_last_age_seconds",
            "Seconds since the last checkpoint completed.",
            last.map(|c| now_seconds() - c.completed_ms as f64 / 1000.0),
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help);
        if let Some(v) = value {
            e.float(name, &[], v);
        }
    }
}

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

fn websocket(e: &mut Encoder, runtime: &Runtime) {
    let feed = runtime.feed();
    let name = "streampulse_websocket_clients";
    e.family(
        name,
        Kind::Gauge,
        "WebSocket clients subscribed to the live feed.",
    );
    e.int(name, &[], feed.subscribers() as u64);
    let name = "streampulse_websocket_lagged_messages_total";
    e.family(
        name,
        Kind::Counter,
        "Live-feed messages WebSocket clients missed because they read too slowly.",
    );
    e.int(name, &[], feed.lagged());
}

/// A webhook's URL as a label: without credentials, query or fragment, which may hold secrets.
fn webhook_label(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}{path}")
}

fn webhooks(e: &mut Encoder, status: &JobStatus) {
    let hooks: Vec<_> = status
        .webhooks
        .iter()
        .map(|w| (webhook_label(&w.url), w))
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
        for (label, w) in &hooks {
            e.int(name, &[("webhook", label)], get(w));
        }
    }
    let name = "streampulse_webhook_dropped_total";
    e.family(
        name,
        Kind::Counter,
        "Alert transitions not sent to the webhook: reason=queue_full or shutdown.",
    );
    for (label, w) in &hooks {
        e.int(
            name,
            &[("webhook", label), ("reason", "queue_full")],
            w.dropped_queue_full,
        );
        e.int(
            name,
            &[("webhook", label), ("reason", "shutdown")],
            w.dropped_at_shutdown,
        );
    }
    let name = "streampulse_webhook_queued_transitions";
    e.family(
        name,
        Kind::Gauge,
        "Alert transitions waiting in the webhook's queue.",
    );
    for (label, w) in &hooks {
        e.int(name, &[("webhook", label)], w.queued);
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
