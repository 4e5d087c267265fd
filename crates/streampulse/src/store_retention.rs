//! The store's retention sweeper: every `store.retention.check_interval`, one
//! [`ResultStore::expire`] with the wall clock, on a blocking thread of the API's tokio runtime.
//!
//! What goes and why (event time, bounded batches) is `streampulse_store`'s retention; this module
//! only keeps time and logs: at info when a sweep deleted rows, at debug when it had nothing to
//! do. It must never panic or stop the process: a failed sweep is logged and the next tick tries
//! again, and a panic inside a sweep ends only that sweep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use streampulse_store::{ExpiryTotals, ResultStore, RetentionPolicy};
use tokio::runtime::Handle;
use tokio::time::MissedTickBehavior;

/// Sweeps `store` every `every` (the first time at once) on `runtime`, until the runtime shuts
/// down; does nothing when `policy` keeps everything.
pub fn spawn(
    runtime: &Handle,
    store: Arc<dyn ResultStore>,
    policy: RetentionPolicy,
    every: Duration,
    totals: Arc<ExpiryTotals>,
) {
    if policy.keeps_everything() {
        tracing::info!("store retention off: every row is kept");
        return;
    }
    tracing::info!(
        results = %ttl(policy.results),
        late_events = %ttl(policy.late_events),
        alerts = %ttl(policy.alerts),
        raw_events = %ttl(policy.raw_events),
        check_interval = %humantime::format_duration(every),
        "store retention on"
    );
    // `interval` panics on zero.
    let every = every.max(Duration::from_millis(1));
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        // A slow sweep delays the next one rather than causing a burst.
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let store = store.clone();
            let totals = totals.clone();
            if let Err(err) =
                tokio::task::spawn_blocking(move || sweep(&*store, &policy, &totals)).await
            {
                tracing::error!(error = %err, "store retention sweep panicked; trying again at the next check");
            }
        }
    });
}

/// One sweep with the wall clock, logged.
fn sweep(store: &dyn ResultStore, policy: &RetentionPolicy, totals: &ExpiryTotals) {
    let now = streampulse_core::clock::now_ms();
    if now == 0 {
        tracing::warn!("store retention: the system clock is before 1970; nothing expired");
        return;
    }
    let started = Instant::now();
    let expired = store.expire(policy, now);
    totals.record(expired.as_ref().map_err(|_| ()));
    match expired {
        Ok(report) if report.deleted() > 0 => tracing::info!(
            results = report.results,
            late_events = report.late_events,
            alerts = report.alerts,
            raw_events = report.raw_events,
            batches = report.batches,
            elapsed = ?started.elapsed(),
            "store retention: deleted rows past their TTL"
        ),
        Ok(_) => tracing::debug!(
            elapsed = ?started.elapsed(),
            "store retention: nothing past its TTL"
        ),
        Err(err) => tracing::warn!(
            error = %err,
            "store retention sweep failed; trying again at the next check"
        ),
    }
}

fn ttl(d: Option<Duration>) -> String {
    match d {
        Some(d) => humantime::format_duration(d).to_string(),
        None => "forever".into(),
    }
}
