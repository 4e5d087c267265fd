//! `streampulse produce`: live synthetic events, for a first run, demos and load tests.
//!
//! The events come from [`generator::SyntheticEvents`] (per-metric baselines, noise, spike
//! episodes, out-of-order and very late events); this half paces them on the wall clock and POSTs
//! them as NDJSON batches to `{target}/events`, or prints them with `--dry-run`. Every batch
//! carries an `Idempotency-Key` that is reused when the batch is retried (after a transport error,
//! a 408/429 or a 5xx such as the 503 of an overloaded platform), so retrying a batch the platform
//! did store does not store it twice. Progress goes to stderr every 5 s, a summary at the end.

mod generator;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

use generator::{GeneratorConfig, SpikeEpisode, SyntheticEvent, SyntheticEvents};

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// Events per second (wall clock).
    #[arg(long, default_value_t = 1000.0, allow_negative_numbers = true)]
    rate: f64,
    /// Number of distinct metrics (metric_00000, metric_00001, …).
    #[arg(long, default_value_t = 100)]
    metrics: usize,
    /// Base URL of the running platform; events go to {target}/events.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Produce to Kafka instead of HTTP: bootstrap servers (host:port,…). Records are keyed by
    /// metric id, so one metric lives in one partition.
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// The events topic, with --kafka.
    #[arg(long, default_value = "events", requires = "kafka")]
    topic: String,
    /// Stop after this long (e.g. 60s, 5m); default: run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Most events per request; default: a tenth of a second's worth (rate / 10).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of the event generator, for a reproducible value stream; default: random (printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Fraction of events that are very late (event time 30-120 s behind the wall clock).
    #[arg(long, default_value_t = 0.005, allow_negative_numbers = true)]
    late_fraction: f64,
    /// Chance per second that a spike episode starts (one metric's values x5-20 for 1-5 s).
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    spike_probability: f64,
    /// Regular events have an event time up to this many milliseconds behind the wall clock.
    #[arg(long, default_value_t = 3000)]
    out_of_order_ms: u64,
    /// Print the events as NDJSON on stdout instead of sending them.
    #[arg(long)]
    dry_run: bool,
}

const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Attempts per batch before it is given up (counted as lost); with the backoff below that is
/// about 11 s of retrying, enough to ride out a platform restart or a burst of 503s.
const MAX_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Rejection reasons and failures printed individually before the producer falls silent about
/// them (the counts stay exact); a misconfigured job would otherwise flood the terminal.
const MAX_REPORTED_PROBLEMS: u64 = 10;
/// Longest sleep between two looks at the Ctrl-C flag.
const SLEEP_SLICE: Duration = Duration::from_millis(100);
/// `--out-of-order-ms` beyond this is surely a typo (and would let timestamps underflow).
const MAX_OUT_OF_ORDER_MS: u64 = 86_400_000;

/// The validated arguments the loop needs.
struct Plan {
    rate: f64,
    batch_size: usize,
    /// How often a batch is due: a batch's worth of time, within 10 ms..1 s.
    tick: Duration,
    duration: Option<Duration>,
    count: Option<u64>,
}

#[derive(Debug, Default)]
struct Totals {
    /// Events taken from the generator.
    generated: u64,
    /// Events sent (each batch counted once, however often it was retried) or printed.
    sent: u64,
    accepted: u64,
    rejected: u64,
    /// Failed attempts: transport errors, 408/429/5xx, unreadable answers.
    errors: u64,
    retries: u64,
    /// Events of batches given up after the last attempt.
    lost: u64,
    /// Retries answered "already stored" (the earlier attempt had made it).
    duplicates: u64,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let plan = plan(&args)?;
    let seed = args.seed.unwrap_or_else(random_u64);
    // Validated in `plan`: at most a day, so it fits.
    let out_of_order_ms = args.out_of_order_ms as i64;
    let mut events = SyntheticEvents::new(GeneratorConfig {
        metrics: args.metrics,
        seed,
        out_of_order_ms,
        late_fraction: args.late_fraction,
        spike_probability: args.spike_probability,
        ..GeneratorConfig::default()
    });
    let mut sink = if args.dry_run {
        Sink::Stdout(BufWriter::new(io::stdout().lock()))
    } else if let Some(brokers) = &args.kafka {
        let config = streampulse_kafka::KafkaConfig {
            brokers: brokers.clone(),
            ..Default::default()
        };
        Sink::Kafka(
            streampulse_kafka::producer::EventProducer::new(&config, &args.topic)
                .with_context(|| format!("cannot produce to {brokers}"))?,
        )
    } else {
        Sink::Http(HttpSink::new(&args.target)?)
    };
    let stop = stop_on_ctrl_c();
    let mut totals = Totals::default();
    let start = Instant::now();
    let outcome = produce(&plan, &mut events, &mut sink, &mut totals, &stop);
    // The summary is worth having even when the run ended on an error, unless the target never
    // answered (the error says everything then).
    if outcome.is_ok() || totals.accepted + totals.rejected + totals.errors > 0 {
        print_summary(
            &sink,
            &totals,
            &events,
            start.elapsed(),
            seed,
            stop.load(Ordering::SeqCst),
        );
    }
    if let Sink::Kafka(producer) = &sink {
        producer
            .flush(Duration::from_secs(30))
            .context("not every event reached Kafka")?;
    }
    outcome?;
    if !args.dry_run && args.kafka.is_none() && totals.sent > 0 && totals.accepted == 0 {
        bail!("none of the {} events sent was accepted", totals.sent);
    }
    Ok(())
}

fn plan(args: &ProduceArgs) -> anyhow::Result<Plan> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!(
            "--rate must be a positive number of events per second, not {}",
            args.rate
        );
    }
    if args.metrics == 0 {
        bail!("--metrics must be at least 1");
    }
    if args.batch_size == Some(0) {
        bail!("--batch-size must be at least 1");
    }
    for (flag, p) in [
        ("--late-fraction", args.late_fraction),
        ("--spike-probability", args.spike_probability),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{flag} must be between 0 and 1, not {p}");
        }
    }
    if args.out_of_order_ms > MAX_OUT_OF_ORDER_MS {
        bail!("--out-of-order-ms must be at most {MAX_OUT_OF_ORDER_MS} (a day)");
    }
    if !args.dry_run && args.kafka.is_none() && !args.target.starts_with("http://") {
        bail!(
            "--target must be an http:// URL (this build has no TLS), not '{}'",
            args.target
        );
    }
    // The float-to-int cast saturates, so an absurd rate gives a huge batch, not a panic.
    let batch_size = args
        .batch_size
        .unwrap_or_else(|| ((args.rate / 10.0).ceil() as usize).max(1));
    let tick = Duration::from_secs_f64((batch_size as f64 / args.rate).clamp(0.01, 1.0));
    Ok(Plan {
        rate: args.rate,
        batch_size,
        tick,
        duration: args.duration,
        count: args.count,
    })
}

/// The pacing loop: at every tick, sends what the schedule says is due, in batches.
fn produce(
    plan: &Plan,
    events: &mut SyntheticEvents,
    sink: &mut Sink,
    totals: &mut Totals,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let start = Instant::now();
    // The schedule: `rate` events per second from `origin`, on top of the `origin_count` events
    // generated before it. Restarted when the target cannot keep up (see below).
    let mut origin = start;
    let mut origin_count = 0u64;
    let mut next_tick = start;
    let mut next_progress = start + PROGRESS_EVERY;
    let mut warned_slow = false;
    let one_second_worth = (plan.rate.ceil() as u64).max(plan.batch_size as u64);
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if plan
            .duration
            .is_some_and(|d| now.duration_since(start) >= d)
        {
            break;
        }
        let remaining = plan.count.map(|c| c.saturating_sub(totals.generated));
        if remaining == Some(0) {
            break;
        }
        let scheduled =
            origin_count + (plan.rate * now.duration_since(origin).as_secs_f64()) as u64;
        let mut due = scheduled.saturating_sub(totals.generated);
        if due > one_second_worth {
            // More than a second behind: the target is slow or was away. Catching up would flood
            // it the moment it recovers, so the schedule restarts from here instead.
            if !warned_slow && matches!(sink, Sink::Http(_)) {
                eprintln!(
                    "produce: fell more than 1 s behind --rate {} (target slow or unavailable); dropping the backlog instead of flooding it",
                    plan.rate
                );
                warned_slow = true;
            }
            origin = now;
            origin_count = totals.generated;
            due = plan.batch_size as u64;
        }
        if let Some(remaining) = remaining {
            due = due.min(remaining);
        }
        while due > 0 && !stop.load(Ordering::SeqCst) {
            let n = due.min(plan.batch_size as u64);
            let episodes_before = events.stats().episodes;
            let batch = events.next_batch(streampulse_core::clock::now_ms(), n as usize);
            totals.generated += n;
            if events.stats().episodes > episodes_before {
                announce(events.latest_episode());
            }
            due -= n;
            if sink.send(&batch, totals, stop)? == Flow::Stop {
                return Ok(());
            }
            if Instant::now() >= next_progress {
                print_progress(sink, totals, start.elapsed());
                next_progress += PROGRESS_EVERY;
            }
        }
        if Instant::now() >= next_progress {
            print_progress(sink, totals, start.elapsed());
            next_progress += PROGRESS_EVERY;
        }
        next_tick += plan.tick;
        let now = Instant::now();
        if next_tick < now {
            // Sending took longer than a tick; do not try to make up the lost ticks one by one.
            next_tick = now;
        }
        let wake = match plan.duration {
            Some(d) => next_tick.min(start + d),
            None => next_tick,
        };
        sleep_until(wake, stop);
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Flow {
    Continue,
    /// The output is gone (stdout closed, e.g. piped into `head`): stop quietly.
    Stop,
}

enum Sink {
    Stdout(BufWriter<io::StdoutLock<'static>>),
    Http(HttpSink),
    Kafka(streampulse_kafka::producer::EventProducer),
}

impl Sink {
    fn send(
        &mut self,
        batch: &[SyntheticEvent],
        totals: &mut Totals,
        stop: &AtomicBool,
    ) -> anyhow::Result<Flow> {
        match self {
            Sink::Stdout(out) => {
                let written = write_ndjson(out, batch).and_then(|()| out.flush());
                match written {
                    Ok(()) => {
                        totals.sent += batch.len() as u64;
                        Ok(Flow::Continue)
                    }
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(Flow::Stop),
                    Err(e) => Err(e).context("cannot write to stdout"),
                }
            }
            Sink::Http(http) => {
                http.send(batch, totals, stop)?;
                Ok(Flow::Continue)
            }
            Sink::Kafka(producer) => {
                for event in batch {
                    let payload = serde_json::to_vec(event)?;
                    producer.send(&event.metric_id, &payload)?;
                    totals.sent += 1;
                }
                // Kafka validates nothing: the job's dead-letter topic holds what it rejects.
                totals.accepted = totals.sent;
                Ok(Flow::Continue)
            }
        }
    }
}

fn write_ndjson(out: &mut impl Write, batch: &[SyntheticEvent]) -> io::Result<()> {
    for event in batch {
        serde_json::to_writer(&mut *out, event)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The platform's answer to a stored (or partly stored) request.
#[derive(Debug, Deserialize)]
struct IngestReport {
    accepted: u64,
    #[serde(default)]
    rejected: Vec<Rejection>,
    #[serde(default)]
    duplicate: bool,
}

#[derive(Debug, Deserialize)]
struct Rejection {
    line: u64,
    reason: String,
}

/// What one POST came to.
enum Attempt {
    Stored(IngestReport),
    /// Worth retrying: 408, 429, 5xx, or the connection failed mid-way.
    Failed(String),
    /// Could not talk to the target at all.
    Unreachable(String),
    /// A 4xx without a report: retrying the same bytes would get the same answer.
    Refused(String),
}

struct HttpSink {
    agent: ureq::Agent,
    url: String,
    /// For idempotency keys and backoff jitter; seeded apart from `--seed`, so two runs with the
    /// same seed do not send the same keys (the second run's batches would be dropped as repeats).
    rng: SmallRng,
    /// Set by the first answer: before it, an unreachable target is a startup error, not a
    /// transient one.
    answered: bool,
    problems_reported: u64,
}

impl HttpSink {
    fn new(target: &str) -> anyhow::Result<Self> {
        let config = ureq::Agent::config_builder()
            // 4xx/5xx answers carry a report or a problem detail worth reading.
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Ok(Self {
            agent: config.into(),
            url: format!("{}/events", target.trim_end_matches('/')),
            rng: SmallRng::seed_from_u64(random_u64()),
            answered: false,
            problems_reported: 0,
        })
    }

    /// Sends one batch, retrying with backoff under the same idempotency key. Only a target that
    /// never answered is an error; later failures are counted and the producer carries on.
    fn send(
        &mut self,
        batch: &[SyntheticEvent],
        totals: &mut Totals,
        stop: &AtomicBool,
    ) -> anyhow::Result<()> {
        let n = batch.len() as u64;
        let mut body = Vec::with_capacity(batch.len() * 96);
        write_ndjson(&mut body, batch).context("cannot encode the events")?;
        let key = self.idempotency_key();
        totals.sent += n;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=MAX_ATTEMPTS {
            let reason = match self.post(&body, &key) {
                Attempt::Stored(report) => {
                    self.answered = true;
                    totals.accepted += report.accepted;
                    totals.rejected += report.rejected.len() as u64;
                    totals.duplicates += u64::from(report.duplicate);
                    for r in &report.rejected {
                        self.problem(&format!(
                            "event {} of a batch was rejected: {}",
                            r.line, r.reason
                        ));
                    }
                    return Ok(());
                }
                Attempt::Refused(reason) => {
                    if !self.answered {
                        bail!("{} refused the events: {reason}", self.url);
                    }
                    totals.rejected += n;
                    self.problem(&format!("a batch of {n} events was refused: {reason}"));
                    return Ok(());
                }
                Attempt::Unreachable(reason) if !self.answered => {
                    bail!(
                        "cannot reach {}: {reason}; is 'streampulse run' running?",
                        self.url
                    );
                }
                Attempt::Unreachable(reason) | Attempt::Failed(reason) => reason,
            };
            self.answered = true;
            totals.errors += 1;
            if attempt == MAX_ATTEMPTS || stop.load(Ordering::SeqCst) {
                totals.lost += n;
                self.problem(&format!(
                    "gave up on a batch of {n} events after {attempt} attempts: {reason}"
                ));
                return Ok(());
            }
            totals.retries += 1;
            // Jitter keeps several producers from retrying in lockstep against a busy platform.
            let jitter = backoff.mul_f64(self.rng.random::<f64>() * 0.5);
            sleep_until(Instant::now() + backoff + jitter, stop);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        Ok(())
    }

    fn post(&self, body: &[u8], key: &str) -> Attempt {
        let response = self
            .agent
            .post(&self.url)
            .content_type("application/x-ndjson")
            .header("Idempotency-Key", key)
            .send(body);
        let mut response = match response {
            Ok(response) => response,
            Err(
                e @ (ureq::Error::Io(_)
                | ureq::Error::HostNotFound
                | ureq::Error::ConnectionFailed
                | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)),
            ) => return Attempt::Unreachable(e.to_string()),
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let status = response.status();
        let text = match response.body_mut().read_to_string() {
            Ok(text) => text,
            Err(e) => {
                return Attempt::Failed(format!("{status}, and the answer could not be read: {e}"))
            }
        };
        // A 200, or a 400 that still stored part of the batch: both say what was accepted.
        if let Ok(report) = serde_json::from_str::<IngestReport>(&text) {
            if status.is_success() || status.is_client_error() {
                return Attempt::Stored(report);
            }
        }
        let reason = format!("{status}: {}", problem_detail(&text));
        match status.as_u16() {
            200..=299 => Attempt::Failed(format!("unexpected answer to a stored batch ({reason})")),
            408 | 429 | 500..=599 => Attempt::Failed(reason),
            _ => Attempt::Refused(reason),
        }
    }

    /// UUID-shaped (version 4 layout) so it reads like the keys other clients send.
    fn idempotency_key(&mut self) -> String {
        let bits: u128 =
            (u128::from(self.rng.random::<u64>()) << 64) | u128::from(self.rng.random::<u64>());
        let bits = (bits & !(0xf000 << 64) & !(0xc000 << 48)) | (0x4000 << 64) | (0x8000 << 48);
        let hex = format!("{bits:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    fn problem(&mut self, message: &str) {
        self.problems_reported += 1;
        if self.problems_reported <= MAX_REPORTED_PROBLEMS {
            eprintln!("produce: {message}");
            if self.problems_reported == MAX_REPORTED_PROBLEMS {
                eprintln!("produce: (further problems are only counted)");
            }
        }
    }
}

/// The `detail` of an RFC 9457 problem body, or the start of whatever else the body is.
fn problem_detail(text: &str) -> String {
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) {
        if let Some(serde_json::Value::String(detail)) = map.get("detail") {
            return detail.clone();
        }
    }
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "(empty answer)".to_string(),
        None => text.to_string(),
    }
}

fn print_progress(sink: &Sink, totals: &Totals, elapsed: Duration) {
    let rate = totals.sent as f64 / elapsed.as_secs_f64().max(1e-3);
    match sink {
        Sink::Stdout(_) | Sink::Kafka(_) => eprintln!("produce: {:.0} s: wrote {}, {rate:.1} events/s", elapsed.as_secs_f64(), totals.sent),
        Sink::Http(_) => eprintln!(
            "produce: {:.0} s: sent {}, accepted {}, rejected {}, errors {}, lost {}, {rate:.1} events/s",
            elapsed.as_secs_f64(),
            totals.sent,
            totals.accepted,
            totals.rejected,
            totals.errors,
            totals.lost,
        ),
    }
}

fn print_summary(
    sink: &Sink,
    totals: &Totals,
    events: &SyntheticEvents,
    elapsed: Duration,
    seed: u64,
    interrupted: bool,
) {
    let secs = elapsed.as_secs_f64();
    let rate = totals.sent as f64 / secs.max(1e-3);
    let stats = events.stats();
    let how = if interrupted { "interrupted" } else { "done" };
    let sent = match sink {
        Sink::Stdout(_) | Sink::Kafka(_) => format!("wrote {}", totals.sent),
        Sink::Http(_) => format!(
            "sent {}, accepted {}, rejected {}, errors {}, retries {} ({} already stored), lost {}",
            totals.sent,
            totals.accepted,
            totals.rejected,
            totals.errors,
            totals.retries,
            totals.duplicates,
            totals.lost
        ),
    };
    eprintln!(
        "produce: {how} after {secs:.1} s: {sent}; {rate:.1} events/s; {} very late, {} spike episodes ({} spiked events); seed {seed}",
        stats.late, stats.episodes, stats.spiked
    );
}

/// Says when and where a spike was injected, so what the anomaly detection finds can be checked.
fn announce(episode: Option<SpikeEpisode>) {
    if let Some(e) = episode {
        eprintln!(
            "produce: spike on {} for event times [{}, {}) ms, values x{:.1}",
            e.metric_id, e.start_ms, e.end_ms, e.factor
        );
    }
}

/// Sleeps until `deadline`, waking up regularly to notice Ctrl-C.
fn sleep_until(deadline: Instant, stop: &AtomicBool) {
    loop {
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep((deadline - now).min(SLEEP_SLICE));
    }
}

/// A flag raised by the first Ctrl-C (or SIGTERM), so the producer can stop between batches and
/// print its summary; a second one exits at once. tokio is already a dependency (for `run`), and
/// a one-thread runtime on a side thread is the least code that hears these signals portably.
fn stop_on_ctrl_c() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if !stop_signal().await {
                    return;
                }
                flag.store(true, Ordering::SeqCst);
                eprintln!("produce: stopping after the current batch (Ctrl-C again to quit now)");
                if stop_signal().await {
                    std::process::exit(130);
                }
            });
        });
    if let Err(e) = spawned {
        // Without the thread, Ctrl-C simply kills the process, as for any command.
        tracing::debug!("no signal handler: {e}");
    }
    stop
}

/// Waits for Ctrl-C or (on Unix) SIGTERM; false if no handler could be installed.
async fn stop_signal() -> bool {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            return tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                _ = term.recv() => true,
            };
        }
    }
    tokio::signal::ctrl_c().await.is_ok()
}

/// 64 random bits without an OS-randomness feature of `rand`: std's `RandomState` is seeded
/// from the OS once per process (and differs per call), the clock adds the rest.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(streampulse_core::clock::since_epoch().as_nanos());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ProduceArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            produce: ProduceArgs,
        }
        Cli::try_parse_from(std::iter::once("produce").chain(extra.iter().copied()))
            .expect("valid arguments")
            .produce
    }

    #[test]
    fn defaults_send_a_tenth_of_a_second_per_batch() {
        let plan = plan_of(&[]);
        assert_eq!(plan.batch_size, 100);
        assert_eq!(plan.tick, Duration::from_millis(100));
        let plan = plan_of(&["--rate", "5"]);
        assert_eq!(plan.batch_size, 1);
        assert_eq!(plan.tick, Duration::from_millis(200));
        let plan = plan_of(&["--rate", "1000", "--batch-size", "500", "--duration", "5m"]);
        assert_eq!(plan.tick, Duration::from_millis(500));
        assert_eq!(plan.duration, Some(Duration::from_secs(300)));
    }

    fn plan_of(extra: &[&str]) -> Plan {
        plan(&args(extra)).unwrap()
    }

    #[test]
    fn bad_arguments_are_refused_with_the_flag_named() {
        for (extra, flag) in [
            (&["--rate", "0"][..], "--rate"),
            (&["--rate", "-5"][..], "--rate"),
            (&["--rate", "NaN"][..], "--rate"),
            (&["--metrics", "0"][..], "--metrics"),
            (&["--batch-size", "0"][..], "--batch-size"),
            (&["--late-fraction", "1.5"][..], "--late-fraction"),
            (&["--spike-probability", "-0.1"][..], "--spike-probability"),
            (
                &["--out-of-order-ms", "999999999999"][..],
                "--out-of-order-ms",
            ),
            (&["--target", "https://example.com"][..], "--target"),
        ] {
            let error = plan(&args(extra))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(flag), "{extra:?} gave '{error}'");
        }
    }

    #[test]
    fn idempotency_keys_are_uuid_shaped_and_distinct() {
        let mut sink = HttpSink::new("http://127.0.0.1:1").unwrap();
        let a = sink.idempotency_key();
        let b = sink.idempotency_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(&a[14..15], "4");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn an_unreachable_target_is_a_clear_startup_error() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let mut sink = HttpSink::new("http://127.0.0.1:1").unwrap();
        let batch = SyntheticEvents::new(GeneratorConfig::default())
            .next_batch(streampulse_core::clock::now_ms(), 3);
        let error = sink
            .send(&batch, &mut Totals::default(), &AtomicBool::new(false))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot reach http://127.0.0.1:1/events: "),
            "{error}"
        );
        assert!(error.ends_with("is 'streampulse run' running?"), "{error}");
    }

    #[test]
    fn problem_details_are_extracted_or_truncated() {
        assert_eq!(
            problem_detail(r#"{"type":"about:blank","status":503,"detail":"busy"}"#),
            "busy"
        );
        assert_eq!(problem_detail(""), "(empty answer)");
        assert_eq!(problem_detail(&"x".repeat(500)).chars().count(), 201);
    }
}
