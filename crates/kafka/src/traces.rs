//! Traces across Kafka: a record whose headers carry a W3C `traceparent` (a producer that traces
//! its sends sets it: `producers/go --trace`, `producers/send_events.py --trace`) continues the
//! producer's trace in the worker. Its processing is a `process <topic>` span (consumer kind),
//! child of the record's context; each window result its event went into, when the window emits
//! it, is a `window_result` span, child of that processing span. One trace then shows the send,
//! the processing and the results, across processes.
//!
//! Bounded, because a producer may trace every record: at most [`MAX_SPANS_PER_BATCH`] records
//! of a polled batch get a span, at most [`MAX_WATCHED`] records wait for their results, each for
//! at most [`WATCH_FOR`]; past that, records are processed the same, untraced. A record without
//! headers costs one check. Tracing never changes what is processed: a malformed or unsampled
//! `traceparent` is ignored, and nothing here is checkpointed (a replay after a crash does not
//! trace again what it re-processes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use streampulse_core::output::Output;
use streampulse_core::time::Millis;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Most records of one polled batch that get a processing span.
pub const MAX_SPANS_PER_BATCH: usize = 64;
/// Most records waiting for their window results at once.
pub const MAX_WATCHED: usize = 1024;
/// How long a record waits for its window results (processing time). Longer windows, or a
/// watermark held back by an idle partition, emit after this: their results are not traced.
pub const WATCH_FOR: Duration = Duration::from_secs(600);

/// The headers of a record, as the propagator reads them (keys compared without case, as W3C
/// trace context asks of HTTP headers; values that are not UTF-8 are absent).
struct RecordHeaders<'a>(&'a BorrowedMessage<'a>);

impl Extractor for RecordHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .headers()?
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .headers()
            .map(|h| h.iter().map(|h| h.key).collect())
            .unwrap_or_default()
    }
}

/// Whether a propagator is installed (traces are exported): without one no record carries a
/// context worth reading, and reading every record's headers costs about 2 % of a worker.
pub fn propagating() -> bool {
    opentelemetry::global::get_text_map_propagator(|p| p.fields().next().is_some())
}

/// The sampled trace context a record carries, if any. Without a propagator installed (traces
/// are not exported) there is none.
pub fn record_context(msg: &BorrowedMessage<'_>) -> Option<Context> {
    msg.headers()?;
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&RecordHeaders(msg)));
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| cx.clone())
}

/// The processing span of one record, child of the context the record carries.
pub fn process_span(parent: Context, msg: &BorrowedMessage<'_>) -> tracing::Span {
    let span = tracing::info_span!(
        "kafka_record",
        otel.name = %format_args!("process {}", msg.topic()),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.destination.name = %msg.topic(),
        messaging.destination.partition.id = msg.partition(),
        messaging.kafka.offset = msg.offset(),
        metric_id = tracing::field::Empty,
        event.ts = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    // Fails only when no OpenTelemetry layer is installed: then nothing is exported anyway.
    let _ = span.set_parent(parent);
    span
}

struct Watched {
    partition: u32,
    ts: Millis,
    context: Context,
    since: Instant,
}

/// Records waiting for the window results their events went into, by metric.
#[derive(Default)]
pub struct TraceWatch {
    by_metric: HashMap<String, Vec<Watched>>,
    len: usize,
}

impl TraceWatch {
    /// Waits for the results of `metric`'s event at `ts`, read from `partition`, to make
    /// `window_result` spans children of `context`. False when the watch is full.
    pub fn watch(
        &mut self,
        partition: u32,
        metric: &str,
        ts: Millis,
        context: Context,
        now: Instant,
    ) -> bool {
        if self.len >= MAX_WATCHED {
            self.expire(now);
        }
        if self.len >= MAX_WATCHED {
            return false;
        }
        self.by_metric
            .entry(metric.to_string())
            .or_default()
            .push(Watched {
                partition,
                ts,
                context,
                since: now,
            });
        self.len += 1;
        true
    }

    /// Records now waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Looks at the outputs `partition` is about to emit: every window result of a watched
    /// metric whose window holds a watched event's time gets a `window_result` span in that
    /// event's trace. Returns how many spans it made. A record keeps waiting after a match
    /// (its event may be in several windows, and late data revises results) until it expires.
    pub fn outputs(&mut self, partition: u32, outputs: &[Output], now: Instant) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.expire(now);
        let mut made = 0;
        for output in outputs {
            let Output::Result(r) = output else { continue };
            let Some(waiting) = self.by_metric.get(&*r.metric_id) else {
                continue;
            };
            for w in waiting.iter().filter(|w| {
                w.partition == partition && r.window_start <= w.ts && w.ts < r.window_end
            }) {
                let span = tracing::info_span!(
                    parent: None,
                    "window_result",
                    otel.name = %format_args!("window_result {}", r.window),
                    metric_id = %r.metric_id,
                    window = %r.window,
                    window.start = r.window_start,
                    window.end = r.window_end,
                    // Signed: the exporter would write an unsigned integer as a string.
                    count = i64::try_from(r.count).unwrap_or(i64::MAX),
                    mean = r.mean,
                    revision = i64::from(r.revision),
                );
                let _ = span.set_parent(w.context.clone());
                made += 1;
            }
        }
        made
    }

    fn expire(&mut self, now: Instant) {
        let mut len = 0;
        self.by_metric.retain(|_, waiting| {
            waiting.retain(|w| now.duration_since(w.since) < WATCH_FOR);
            len += waiting.len();
            !waiting.is_empty()
        });
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use streampulse_core::output::WindowResult;

    fn result(metric: &str, start: Millis, end: Millis) -> Output {
        Output::Result(WindowResult {
            metric_id: metric.into(),
            window: "tumble_10s".into(),
            window_start: start,
            window_end: end,
            count: 1,
            sum: 1.0,
            min: 1.0,
            max: 1.0,
            mean: 1.0,
            extra: Default::default(),
            revision: 0,
        })
    }

    #[test]
    fn a_result_matches_the_watched_events_of_its_metric_partition_and_window() {
        let now = Instant::now();
        let mut watch = TraceWatch::default();
        assert!(watch.watch(0, "cpu", 15_000, Context::new(), now));
        assert!(watch.watch(1, "cpu", 15_000, Context::new(), now));
        let outputs = [
            result("cpu", 10_000, 20_000), // partition 0's event: one span
            result("cpu", 20_000, 30_000), // another window
            result("mem", 10_000, 20_000), // another metric
        ];
        assert_eq!(watch.outputs(0, &outputs, now), 1);
        // Sliding windows: each window holding the event is a result of it.
        let sliding = [result("cpu", 0, 30_000), result("cpu", 10_000, 40_000)];
        assert_eq!(watch.outputs(0, &sliding, now), 2);
        // The window ends before the event (exclusive end), or starts after it.
        let outside = [result("cpu", 5_000, 15_000), result("cpu", 15_001, 25_000)];
        assert_eq!(watch.outputs(0, &outside, now), 0);
        assert_eq!(watch.len(), 2);
    }

    #[test]
    fn records_expire_and_a_full_watch_refuses_more() {
        let start = Instant::now();
        let mut watch = TraceWatch::default();
        for i in 0..MAX_WATCHED {
            assert!(watch.watch(0, &format!("m{i}"), 0, Context::new(), start));
        }
        assert!(!watch.watch(0, "late", 0, Context::new(), start));
        let later = start + WATCH_FOR;
        assert!(watch.watch(0, "late", 0, Context::new(), later));
        assert_eq!(watch.len(), 1);
        assert_eq!(watch.outputs(0, &[result("m0", 0, 10)], later), 0);
        assert_eq!(watch.outputs(0, &[result("late", 0, 10)], later), 1);
        assert!(watch
            .outputs(0, &[result("late", 0, 10)], later + WATCH_FOR)
            .eq(&0));
        assert!(watch.is_empty());
    }
}
