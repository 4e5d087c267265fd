//! The consumer loop of one worker in a consumer group: polls the events topic, runs each owned
//! partition's pipeline, applies outputs, idles and checkpoints partitions, and answers the API.
//!
//! One thread does all of it, so partition state needs no locking beyond what lets the rebalance
//! callback (which librdkafka runs inside `poll`, on this same thread) reach it. The loop never
//! holds that lock across a `poll`.
//!
//! A record is processed only if its partition is owned and its offset is at or past the
//! partition's resume offset: after a rebalance the consumer may hand over records already
//! covered by the restored state, and those must not count twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use streampulse_core::event::{check_future, EventFormat, EventRef};
use streampulse_core::job::Job;
use streampulse_core::time::Millis;
use streampulse_engine::checkpoint::PartitionCheckpointStore;
use streampulse_engine::emit::Emitter;
use streampulse_engine::feed::{LiveFeed, LIVE_FEED_CAPACITY};
use streampulse_engine::status::JobCounters;
use streampulse_engine::telemetry::{OutputTally, RejectReason};
use streampulse_engine::write_behind::WriteBehind;
use streampulse_engine::{
    start_webhooks, Control, EngineError, Runtime, RuntimeConfig, RuntimeParts,
};
use streampulse_store::ResultStore;

use crate::assignment::{commit_list, committed_wait, AssignmentContext};
use crate::config::KafkaConfig;
use crate::follow::{cluster_feed, OutputFollower};
use crate::partitions::{writer_token, Partitions};
use crate::sink::{transaction_timeout, OutputTopics};
use crate::traces::{process_span, propagating, record_context, TraceWatch, MAX_SPANS_PER_BATCH};
use crate::KafkaError;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How long a poll waits for the first record of a batch.
const POLL: Duration = Duration::from_millis(20);
/// Records taken per batch before outputs are applied and commands looked at.
const BATCH: usize = 8192;
/// Consumer properties the worker sets unless `kafka.properties` does.
const CONSUMER_DEFAULTS: [(&str, &str); 2] = [
    // How often librdkafka reports the partitions' end offsets (for lag and idleness), in ms.
    ("statistics.interval.ms", "1000"),
    // librdkafka stops fetching a partition for this long once its prefetch queue holds
    // `queued.max.messages.kbytes` (64 MiB). Its default of 1 s left a worker catching up on a
    // backlog idle most of the time: 170 k events/s, against 450-570 k at 50 ms (BENCHMARKS (g)).
    ("fetch.queue.backoff.ms", "50"),
];
/// How long metadata and the final commit may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// How long reading a partition's offsets, or moving its position, may take.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KafkaDriver {
    consumer: BaseConsumer<AssignmentContext>,
    partitions: Arc<Mutex<Partitions>>,
    topic: String,
    format: EventFormat,
    max_future: Option<Millis>,
    counters: Arc<JobCounters>,
    /// The high watermark of every partition of the topic, as last seen.
    log_end: Arc<Vec<AtomicU64>>,
    interval: Duration,
    idle_timeout: Duration,
    early_firing: Option<Duration>,
    failure: Arc<Mutex<Option<String>>>,
    /// Partitions of the topic.
    topic_partitions: u32,
    /// Fills the live feed from the output topics; stops with the driver.
    _follower: Option<OutputFollower>,
}

mod savepoints;
use savepoints::{After, GroupSavepoints, Reply};

/// The feed of this worker's WebSocket clients: every partition's results and alerts, followed
/// from the output topics. A worker whose topics cannot be followed serves its own partitions'
/// outputs only, and says so.
fn live_feed(config: &KafkaConfig) -> (LiveFeed, Option<OutputFollower>) {
    let feed = cluster_feed(config);
    match OutputFollower::start(config, feed.clone()) {
        Ok(follower) => (feed, follower),
        Err(err) => {
            tracing::warn!(error = %err, "cannot follow the output topics: WebSocket clients of this worker see the results and alerts of its own partitions only");
            (LiveFeed::new(LIVE_FEED_CAPACITY), None)
        }
    }
}

/// The number of partitions of `topic`, or why it cannot be known.
pub fn topic_partitions(config: &KafkaConfig, topic: &str) -> Result<u32, KafkaError> {
    let probe: BaseConsumer = config.client_config().create()?;
    let metadata = match probe.fetch_metadata(Some(topic), METADATA_TIMEOUT) {
        Ok(metadata) => metadata,
        Err(err) => {
            // librdkafka hands its log lines (the real cause: "certificate verify failed",
            // "connection refused", an authentication error) only to a client that is polled.
            for _ in 0..5 {
                let _ = probe.poll(Duration::from_millis(20));
            }
            return Err(err.into());
        }
    };
    let missing = || KafkaError::NoSuchTopic {
        topic: topic.to_string(),
        brokers: config.brokers.clone(),
    };
    let t = metadata.topics().first().ok_or_else(missing)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return Err(missing());
    }
    Ok(t.partitions().len() as u32)
}

impl KafkaDriver {
    /// Joins the consumer group and starts the driver thread. Partitions arrive through the
    /// rebalance callback, each restored from its latest checkpoint in `checkpoints`.
    pub fn start(
        job: Job,
        config: &KafkaConfig,
        runtime: RuntimeConfig,
        store: Arc<dyn ResultStore>,
        checkpoints: PartitionCheckpointStore,
    ) -> Result<Runtime, KafkaError> {
        let partitions = topic_partitions(config, &config.topic)?;
        let counters = Arc::new(JobCounters::new(&job, partitions));
        for c in &counters.partitions {
            c.owned.store(false, Relaxed);
        }
        let (feed, follower) = live_feed(config);
        let webhooks = start_webhooks(&job.name, &runtime.webhooks)?;
        let writer = WriteBehind::start(&job.name, store.clone(), counters.clone())?;
        let emitter = Emitter {
            job_name: job.name.clone(),
            store,
            counters: counters.clone(),
            webhooks: webhooks.clone(),
            feed: feed.clone(),
            writer: Some(Arc::new(writer)),
        };
        let topics = if config.exactly_once {
            OutputTopics::transactional(
                config,
                &config.transactional_id_for(&job.name),
                runtime.checkpoint_interval,
            )?
        } else {
            OutputTopics::new(config)?
        };
        let tentative_writer = config.exactly_once.then(writer_token);
        let store_generation = emitter.store.generation();
        let shared = Arc::new(Mutex::new(Partitions {
            job: job.clone(),
            topic: config.topic.clone(),
            start: config.start,
            on_data_loss: config.on_data_loss,
            owned: Default::default(),
            tally: OutputTally::new(&counters.metrics),
            emitter,
            checkpoints,
            topics,
            fatal: None,
            store_generation,
            tentative_writer,
            traces: TraceWatch::default(),
        }));
        let group = config.group_for(&job.name);
        let mut client = config.client_config();
        client
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Every assigned partition starts at an explicit position (its checkpoint's offset,
            // or the beginning or end per `kafka.start`), so this only decides what happens when
            // a fetch finds the position outside the topic: stop and report, instead of jumping
            // silently past records retention removed before this worker read them.
            .set("auto.offset.reset", "error");
        if config.exactly_once {
            // Events written by transactional producers count once they commit, as outputs do.
            client.set("isolation.level", "read_committed");
        }
        for (key, value) in CONSUMER_DEFAULTS {
            if !config.properties.contains_key(key) {
                client.set(key, value);
            }
        }
        let log_end: Arc<Vec<AtomicU64>> =
            Arc::new((0..partitions).map(|_| AtomicU64::new(0)).collect());
        let consumer: BaseConsumer<AssignmentContext> =
            client.create_with_context(AssignmentContext {
                partitions: shared.clone(),
                topic: config.topic.clone(),
                committed_wait: committed_wait(
                    config.exactly_once,
                    millis_property(config, "transaction.timeout.ms")
                        .unwrap_or_else(|| transaction_timeout(runtime.checkpoint_interval)),
                    // librdkafka's default.
                    millis_property(config, "max.poll.interval.ms")
                        .unwrap_or(Duration::from_secs(300)),
                ),
                log_end: log_end.clone(),
            })?;
        consumer.subscribe(&[&config.topic])?;
        tracing::info!(topic = %config.topic, partitions, group = %group, brokers = %config.brokers, "joined the consumer group");

        let failure = Arc::new(Mutex::new(None));
        let driver = KafkaDriver {
            consumer,
            partitions: shared,
            topic: config.topic.clone(),
            format: job.event.clone(),
            max_future: job.max_future,
            counters: counters.clone(),
            log_end: log_end.clone(),
            interval: runtime.checkpoint_interval,
            idle_timeout: job.idle_timeout,
            early_firing: job.early_firing,
            failure: failure.clone(),
            topic_partitions: partitions,
            _follower: follower,
        };
        let (control, requests) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("kafka-driver".into())
            .spawn(move || driver.run(requests))
            .map_err(KafkaError::Spawn)?;
        let end = log_end.clone();
        Ok(Runtime::from_parts(RuntimeParts {
            job,
            ingest_log: None,
            counters,
            webhooks,
            feed,
            control,
            driver: handle,
            log_end: Arc::new(move |p| end.get(p as usize).map_or(0, |a| a.load(Relaxed))),
            failure,
        }))
    }

    fn run(self, requests: Receiver<Control>) {
        let _span = tracing::info_span!("kafka", topic = %self.topic).entered();
        let mut next_checkpoint = Instant::now() + self.interval;
        let mut next_partials = Instant::now();
        let mut savepoints = GroupSavepoints::new(self.topic_partitions, self.interval);
        loop {
            match requests.try_recv() {
                Ok(Control::Stop {
                    savepoint: None,
                    reply,
                }) => {
                    let result = self.checkpoint_all(CommitMode::Sync);
                    let _ = reply.send(result.map(|_| None));
                    break;
                }
                Ok(Control::Stop {
                    savepoint: Some(name),
                    reply,
                }) => savepoints.ask(&self, name, Reply::Stop(reply)),
                Ok(Control::Savepoint { name, reply }) => {
                    savepoints.ask(&self, name, Reply::Savepoint(reply))
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            if savepoints.look(&self) == After::Stop {
                break;
            }
            let fatal = self
                .partitions
                .lock()
                .ok()
                .and_then(|p| p.fatal.clone().map(|f| (f, p.topics.clone())));
            if let Some((reason, topics)) = fatal {
                tracing::error!(%reason, "the worker cannot go on; its partitions will be replayed from their checkpoints");
                topics.abort();
                if let Ok(mut f) = self.failure.lock() {
                    *f = Some(reason);
                }
                return;
            }
            let (batch, out_of_range) = self.poll_batch();
            if savepoints.holding() {
                // Held at the group's savepoint: what arrives is past it, for whoever resumes
                // from it (polling keeps this worker in the group, its partitions paused).
                continue;
            }
            if !batch.is_empty() {
                self.process(&batch);
            }
            drop(batch);
            if out_of_range {
                // After the batch: its records were fetched before the position fell behind.
                self.out_of_range();
            }
            let now = Instant::now();
            if let Some(every) = self.early_firing {
                if now >= next_partials {
                    if let Ok(parts) = self.partitions.lock() {
                        for owned in parts.owned.values() {
                            owned.task.publish_partials(&parts.emitter);
                        }
                    }
                    next_partials = now + every;
                }
            }
            self.flush_idle();
            if now >= next_checkpoint {
                if let Err(err) = self.checkpoint_all(CommitMode::Async) {
                    tracing::error!(error = %err, "periodic checkpoint failed");
                }
                next_checkpoint = Instant::now() + self.interval;
            }
        }
        savepoints.abandon();
        // Dropping the consumer leaves the group (the revoke callback checkpoints once more).
        drop(self.consumer);
    }

    /// Up to [`BATCH`] records, waiting at most [`POLL`] for the first, and whether a fetch
    /// found a partition's position outside the topic. Never holds the partitions' lock: a
    /// rebalance may run inside `poll`.
    fn poll_batch(&self) -> (Vec<BorrowedMessage<'_>>, bool) {
        let mut batch = Vec::new();
        let mut wait = POLL;
        while batch.len() < BATCH {
            match self.consumer.poll(wait) {
                None => break,
                Some(Ok(msg)) => batch.push(msg),
                Some(Err(rdkafka::error::KafkaError::MessageConsumption(
                    RDKafkaErrorCode::AutoOffsetReset,
                ))) => return (batch, true),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "kafka consumer error");
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        (batch, false)
    }

    /// Fetches `partition` from `offset` on. A seek is refused once the fetcher stopped at an
    /// offset out of range; assigning the partition again at `offset` is not (it stays this
    /// worker's: the group is not involved).
    fn restart_fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        positions: &BTreeMap<u32, Option<u64>>,
    ) -> KafkaResult<()> {
        let mut positions = positions.clone();
        positions.insert(partition, Some(offset));
        self.refetch(topic, &positions, &[partition])
    }

    /// Assigns `partitions` again, each at its position in `positions` (the next offset its
    /// task wants; `None`: the end), so that what the consumer fetched and nobody processed is
    /// fetched again. Under the eager protocol the whole assignment (every partition of
    /// `positions`) is set again.
    fn refetch(
        &self,
        topic: &str,
        positions: &BTreeMap<u32, Option<u64>>,
        partitions: &[u32],
    ) -> KafkaResult<()> {
        let at = |next: Option<u64>| next.map_or(Offset::End, |o| Offset::Offset(o as i64));
        if matches!(
            self.consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        ) {
            let mut some = TopicPartitionList::new();
            for &p in partitions {
                some.add_partition(topic, p as i32);
            }
            self.consumer.incremental_unassign(&some)?;
            for &p in partitions {
                let next = positions.get(&p).copied().flatten();
                some.set_partition_offset(topic, p as i32, at(next))?;
            }
            return self.consumer.incremental_assign(&some);
        }
        let mut all = TopicPartitionList::with_capacity(positions.len());
        for (&p, &next) in positions {
            all.add_partition_offset(topic, p as i32, at(next))?;
        }
        self.consumer.assign(&all)
    }

    /// Fetches every owned partition again from the next offset its task wants (after records
    /// were polled and not processed).
    fn refetch_owned(&self) -> KafkaResult<()> {
        let (topic, positions) = match self.partitions.lock() {
            Ok(parts) => (
                parts.topic.clone(),
                parts
                    .owned
                    .iter()
                    .map(|(&p, o)| (p, o.task.next_offset()))
                    .collect::<BTreeMap<u32, Option<u64>>>(),
            ),
            Err(_) => return Ok(()),
        };
        let owned: Vec<u32> = positions.keys().copied().collect();
        self.refetch(&topic, &positions, &owned)
    }

    /// A fetch found a partition's position outside the offsets the topic holds (the error does
    /// not say which partition): every owned partition is checked against the topic's offsets,
    /// and one behind them goes on per `kafka.on_data_loss` (seek past the gap, counted) or
    /// stops the worker.
    fn out_of_range(&self) {
        let Ok(mut parts) = self.partitions.lock() else {
            return;
        };
        let topic = parts.topic.clone();
        let owned: Vec<u32> = parts.owned.keys().copied().collect();
        for p in owned {
            let positions: BTreeMap<u32, Option<u64>> = parts
                .owned
                .iter()
                .map(|(&q, o)| (q, o.task.next_offset()))
                .collect();
            let (earliest, end) = match self.consumer.fetch_watermarks(
                &topic,
                p as i32,
                WATERMARK_TIMEOUT,
            ) {
                Ok((low, high)) => (low.max(0) as u64, high.max(0) as u64),
                Err(err) => {
                    tracing::warn!(partition = p, error = %err, "cannot read the partition's offsets after a fetch fell outside them");
                    continue;
                }
            };
            match parts.out_of_range(p, earliest, end) {
                Ok(None) => {}
                Ok(Some(to)) => {
                    if let Err(err) = self.restart_fetch(&topic, p, to, &positions) {
                        parts.fatal.get_or_insert(format!(
                            "cannot move partition {p} past the records the topic lost: {err}"
                        ));
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "stopping");
                    parts.fatal.get_or_insert(err.to_string());
                }
            }
        }
    }

    fn process(&self, batch: &[BorrowedMessage<'_>]) {
        let Ok(mut guard) = self.partitions.lock() else {
            return;
        };
        let parts = &mut *guard;
        // Each partition the batch touched, with its count of records. A batch holds runs of one
        // partition, so this is mostly a look at the last entry, not a set insert per record.
        let mut touched: Vec<(u32, u64)> = Vec::new();
        let (mut received, mut accepted) = (0u64, 0u64);
        let mut per_reason = [0u64; RejectReason::ALL.len()];
        let now = Instant::now();
        // Records are looked at for a trace context only while traces are exported.
        let mut traced = if propagating() {
            0
        } else {
            MAX_SPANS_PER_BATCH
        };
        for msg in batch {
            let partition = msg.partition() as u32;
            let offset = msg.offset().max(0) as u64;
            let Some(owned) = parts.owned.get_mut(&partition) else {
                continue; // revoked since it was fetched
            };
            let task = &mut owned.task;
            if !task.is_new(offset) {
                continue; // already covered by the restored state
            }
            received += 1;
            let span = (traced < MAX_SPANS_PER_BATCH)
                .then(|| record_context(msg))
                .flatten()
                .map(|cx| {
                    traced += 1;
                    process_span(cx, msg)
                });
            let _entered = span.as_ref().map(|s| s.enter());
            match parse(
                &self.format,
                self.max_future,
                msg.payload(),
                msg.timestamp().to_millis(),
            ) {
                Ok(event) => {
                    accepted += 1;
                    let (metric_id, ts) = (event.metric_id.as_ref(), event.ts);
                    if let Some(span) = &span {
                        span.record("metric_id", metric_id);
                        span.record("event.ts", ts);
                        span.record("outcome", "accepted");
                        let context = span.context();
                        parts.traces.watch(partition, metric_id, ts, context, now);
                    }
                    // The tags are copied out of the record only when the metric is new.
                    task.event(offset, metric_id, || event.tags(), ts, event.value);
                }
                Err((reason, message)) => {
                    if let Some(span) = &span {
                        span.record("outcome", "dead_letter");
                    }
                    per_reason[reason as usize] += 1;
                    let origin = format!("{}/{partition}/{offset}", msg.topic());
                    tracing::debug!(%origin, %message, "record sent to the dead-letter topic");
                    parts
                        .topics
                        .dead_letter(msg.key(), msg.payload(), &message, &origin);
                    task.step_over(offset);
                }
            }
            task.arrived(now);
            match touched.iter_mut().rev().find(|(p, _)| *p == partition) {
                Some((_, records)) => *records += 1,
                None => touched.push((partition, 1)),
            }
        }
        let c = &self.counters;
        c.ingest_received.fetch_add(received, Relaxed);
        c.ingest_accepted.fetch_add(accepted, Relaxed);
        c.ingest_rejected
            .fetch_add(per_reason.iter().sum::<u64>(), Relaxed);
        c.metrics.add_rejected(&per_reason);
        touched.sort_unstable();
        for (p, records) in touched {
            if let Some(c) = self.counters.partitions.get(p as usize) {
                c.events.fetch_add(records, Relaxed);
            }
            parts.apply(p, now);
        }
    }

    /// Partitions that received nothing for `idle_timeout` and have nothing left to read advance
    /// their watermark (DESIGN: idle partitions). The flush is checkpointed at once, so a replay
    /// after a crash resumes after it instead of deciding again at another moment.
    fn flush_idle(&self) {
        let Ok(mut guard) = self.partitions.lock() else {
            return;
        };
        let parts = &mut *guard;
        let mut flushed = Vec::new();
        for (&p, owned) in parts.owned.iter_mut() {
            let task = &mut owned.task;
            let caught_up = task
                .next_offset()
                .is_some_and(|next| next >= self.log_end(p));
            if caught_up && task.idle_due(self.idle_timeout) && task.flush_idle(&self.counters) {
                flushed.push(p);
            }
        }
        if flushed.is_empty() {
            return;
        }
        tracing::debug!(partitions = ?flushed, "idle partitions flushed");
        match parts.checkpoint(&flushed, self.consumer.group_metadata().as_ref()) {
            Ok(commits) => self.commit(&commits, CommitMode::Async),
            Err(err) => tracing::error!(error = %err, "checkpoint after an idle flush failed"),
        }
    }

    fn log_end(&self, partition: u32) -> u64 {
        self.log_end
            .get(partition as usize)
            .map_or(0, |a| a.load(Relaxed))
    }

    fn checkpoint_all(&self, mode: CommitMode) -> Result<(), EngineError> {
        let commits = {
            let mut parts = self
                .partitions
                .lock()
                .map_err(|_| EngineError::Poisoned("the owned partitions"))?;
            let owned: Vec<u32> = parts.owned.keys().copied().collect();
            parts.checkpoint(&owned, self.consumer.group_metadata().as_ref())?
        };
        self.commit(&commits, mode);
        Ok(())
    }

    /// Commits checkpointed offsets to the group, so lag tools show the real lag. Best effort:
    /// the checkpoints, not the committed offsets, say where partitions resume.
    fn commit(&self, commits: &[(u32, u64)], mode: CommitMode) {
        if commits.is_empty() {
            return;
        }
        if let Err(err) = self
            .consumer
            .commit(&commit_list(&self.topic, commits), mode)
        {
            tracing::warn!(error = %err, "committing offsets to the consumer group failed");
        }
    }
}

/// A duration property of `kafka.properties`, in ms, when set to a number.
fn millis_property(config: &KafkaConfig, key: &str) -> Option<Duration> {
    let ms = config.properties.get(key)?.trim().parse::<u64>().ok()?;
    Some(Duration::from_millis(ms))
}

/// The event in a record's value, or why it is not one. The future guard compares with the
/// record's own timestamp (not the wall clock), so a replay after a crash judges every record as
/// the first reading did; a record without a timestamp is not guarded.
fn parse<'a>(
    format: &EventFormat,
    max_future: Option<Millis>,
    payload: Option<&'a [u8]>,
    record_ts: Option<Millis>,
) -> Result<EventRef<'a>, (RejectReason, String)> {
    let payload = payload.ok_or((
        RejectReason::InvalidJson,
        "the record has no value".to_string(),
    ))?;
    let text = std::str::from_utf8(payload).map_err(|e| {
        (
            RejectReason::InvalidJson,
            format!("invalid JSON: not UTF-8: {e}"),
        )
    })?;
    let event = format
        .parse_ref(text)
        .map_err(|e| (RejectReason::of(&e), e.to_string()))?;
    if let (Some(max), Some(reference)) = (max_future, record_ts) {
        check_future(event.ts, reference, max)
            .map_err(|e| (RejectReason::of(&e), e.to_string()))?;
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_what_is_wrong() {
        let f = EventFormat::default();
        let p = |payload: Option<&'static [u8]>| parse(&f, Some(3_600_000), payload, Some(0));
        let ok = p(Some(br#"{"metric_id":"cpu","ts":1000,"value":1.5}"#)).unwrap();
        assert_eq!((ok.metric_id.as_ref(), ok.ts, ok.value), ("cpu", 1000, 1.5));
        let (reason, msg) = p(Some(b"{not json")).unwrap_err();
        assert_eq!(reason, RejectReason::InvalidJson);
        assert!(msg.contains("invalid JSON"), "{msg}");
        assert_eq!(p(None).unwrap_err().0, RejectReason::InvalidJson);
        assert_eq!(p(Some(b"\xff")).unwrap_err().0, RejectReason::InvalidJson);
        let (reason, _) = p(Some(br#"{"metric_id":"cpu","ts":1000}"#)).unwrap_err();
        assert_ne!(reason, RejectReason::InvalidJson);
    }

    #[test]
    fn records_far_ahead_of_their_own_timestamp_are_refused() {
        let f = EventFormat::default();
        let record = br#"{"metric_id":"cpu","ts":253402300799999,"value":1}"#;
        let (reason, msg) =
            parse(&f, Some(3_600_000), Some(record), Some(1_700_000_000_000)).unwrap_err();
        assert_eq!(reason, RejectReason::Future);
        assert!(msg.contains("job.max_future"), "{msg}");
        assert!(parse(&f, None, Some(record), Some(1_700_000_000_000)).is_ok());
        assert!(parse(&f, Some(3_600_000), Some(record), None).is_ok());
    }
}
