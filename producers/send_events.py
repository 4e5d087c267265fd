#!/usr/bin/env python3
"""Live synthetic event producer for StreamPulse (Python 3 standard library only over HTTP).

Sends metric events to a running platform at a steady wall-clock rate, as NDJSON batches POSTed
to {target}/events, the same stream as `streampulse produce`:

  python3 producers/send_events.py --rate 1000 [--metrics 100] [--target http://127.0.0.1:8080]
      [--duration 60] [--count N] [--batch-size 200] [--seed N] [--late-fraction 0.005]
      [--spike-probability 0.1] [--out-of-order-ms 3000] [--dry-run]

  python3 producers/send_events.py --dry-run --rate 5000 --count 20000 > events.ndjson

  python3 producers/send_events.py --bootstrap-servers 127.0.0.1:9092 [--topic events] --rate 1000

Each event looks like

  {"metric_id": "metric_00042", "ts": 1700000012345, "value": 123.456, "tags": {"host": "host-007"}}

with ts = event time in epoch ms. The value model is that of the reference generator
(gen_events.py): per-metric baseline (a few negative) + slow sinusoid + gaussian noise; some
metrics are sparse or periodically silent ("gappy"); spike episodes multiply one metric's values
by 5-20 for 1-5 s. Event times trail the wall clock by up to --out-of-order-ms, and a fraction
--late-fraction of events are very late (30-120 s behind).

Every batch carries an Idempotency-Key header, reused when the batch is retried (connection
errors, 408, 429, 5xx such as 503 when the platform is overloaded), so a retried batch is never
stored twice. Progress goes to stderr every 5 s, a summary at the end (also on Ctrl-C). The exit
status is non-zero when the target cannot be reached at start or accepted nothing.

With --bootstrap-servers HOST:PORT[,HOST:PORT...] the events go to the Kafka topic --topic
(default: events) instead, as `streampulse produce --kafka` sends them: one JSON event per record,
keyed by metric_id (librdkafka's default partitioner, so all events of a metric land in one
partition), through an idempotent producer. That mode needs confluent-kafka
(pip install confluent-kafka), imported only then; HTTP and --dry-run need nothing beyond the
standard library. Delivery reports are counted: the summary says how many records the broker
acknowledged (produced) and how many it did not (failed), after a final flush.

With --trace-ratio R (Kafka only) a fraction R of the events each start a trace: a "send <topic>"
span (producer kind) exported over OTLP/HTTP to --otlp-endpoint (default $OTEL_EXPORTER_OTLP_ENDPOINT,
else http://127.0.0.1:4318, where `deploy/local/services.sh start jaeger` listens), its W3C context
in the record's traceparent header, where a StreamPulse worker with tracing on continues the trace
(its processing of the record, the window results of its event). Needs opentelemetry-sdk and
opentelemetry-exporter-otlp-proto-http, imported only then. The summary names the first trace id.

Sinks: HttpSink (default), StdoutSink (--dry-run) and KafkaSink (--bootstrap-servers); each has
send(batch) -> SendResult and close() -> SendResult or None; see make_sink().
"""
import argparse
import http.client
import json
import math
import os
import random
import re
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid

LATE_MIN_MS = 30000
LATE_MAX_MS = 120000
PROGRESS_EVERY_S = 5.0
MAX_ATTEMPTS = 8            # about 11 s of retrying with the backoff below
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
MAX_REPORTED_PROBLEMS = 10  # printed one by one; after that only counted
KAFKA_CONNECT_TIMEOUT_S = 10.0   # to fetch metadata at start
KAFKA_MESSAGE_TIMEOUT_MS = 30000  # a record not acknowledged by then is reported failed
KAFKA_FLUSH_TIMEOUT_S = 60.0     # the final flush; what is still queued after it is unconfirmed
TWO_PI = 2.0 * math.pi
DEFAULT_TARGET = "http://127.0.0.1:8080"
DEFAULT_TOPIC = "events"
DEFAULT_OTLP_ENDPOINT = "http://127.0.0.1:4318"


class SyntheticEvents:
    """The seeded event stream: no clock and no I/O, the caller passes now_ms.

    The same seed and the same sequence of now_ms give the same events.
    """

    def __init__(self, metrics=100, seed=1, out_of_order_ms=3000, late_fraction=0.005,
                 spike_probability=0.1, hosts=50, sparse_fraction=0.1, gappy_fraction=0.1):
        self.rng = random.Random(seed)
        r = self.rng.random
        self.out_of_order_ms = max(0, int(out_of_order_ms))
        self.late_fraction = late_fraction
        self.spike_probability = spike_probability
        self.metrics = []
        self.cumulative = []   # cumulative pick weights: sparse metrics weigh 0.02, others 1
        total = 0.0
        for i in range(max(1, metrics)):
            host = "host-%03d" % int(r() * hosts)
            u = r()
            gap = None  # (cycle_ms, off_ms, phase_ms): silent while (t + phase) % cycle < off
            if u < sparse_fraction:
                kind = "sparse"
            elif u < sparse_fraction + gappy_fraction:
                kind = "gappy"
                cycle = 20000 + int(r() * 40000)
                gap = (cycle, 6000 + int(r() * 14000), int(r() * cycle))
            else:
                kind = "regular"
            base = 10.0 + r() * 990.0
            if r() < 0.05:
                base = -base
            self.metrics.append({
                "name": "metric_%05d" % i, "host": host, "kind": kind, "gap": gap,
                "base": base,
                "amp": abs(base) * 0.1 * r(),
                "period": 60000.0 + r() * 540000.0,
                "phase": r() * TWO_PI,   # so metrics do not all peak together
                "sigma": abs(base) * 0.02 + 0.5,
            })
            total += 0.02 if kind == "sparse" else 1.0
            self.cumulative.append(total)
        self.episodes = []   # [metric index, start_ms, end_ms, factor], those that can still apply
        self.latest_episode = None   # (metric_id, start_ms, end_ms, factor); at most one per batch
        self.last_now_ms = None
        self.stats = {"events": 0, "late": 0, "spiked": 0, "episodes": 0}

    def next_batch(self, now_ms, n):
        """The next n events as seen at now_ms (epoch ms)."""
        self._maybe_start_episode(now_ms)
        r = self.rng.random
        batch = []
        for _ in range(n):
            m = self._pick_metric(now_ms)
            if r() < self.late_fraction:
                ts = now_ms - LATE_MIN_MS - self._draw_ms(LATE_MAX_MS - LATE_MIN_MS)
                self.stats["late"] += 1
            else:
                ts = now_ms - self._draw_ms(self.out_of_order_ms)
            met = self.metrics[m]
            v = met["base"] + met["amp"] * math.sin(TWO_PI * ts / met["period"] + met["phase"])
            # Box-Muller; 1 - u1 is in (0, 1], so the logarithm is finite.
            u1 = r()
            u2 = r()
            v += met["sigma"] * math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(TWO_PI * u2)
            for (em, start, end, factor) in self.episodes:
                if em == m and start <= ts < end:
                    v *= factor
                    self.stats["spiked"] += 1
                    break
            batch.append({"metric_id": met["name"], "ts": ts, "value": round(v, 3),
                          "tags": {"host": met["host"]}})
        self.stats["events"] += n
        return batch

    def _maybe_start_episode(self, now_ms):
        # Chance 1 - (1 - p)^seconds, so episodes per second do not depend on the batch rate; a
        # long stall counts as one minute at most, not as a burst of episodes.
        elapsed = 0 if self.last_now_ms is None else min(max(now_ms - self.last_now_ms, 0), 60000)
        self.last_now_ms = now_ms
        chance = 1.0 - (1.0 - self.spike_probability) ** (elapsed / 1000.0)
        r = self.rng.random
        if r() < chance:
            m = self._pick_metric(now_ms)
            length = 1000 + int(r() * 4000)
            episode = [m, now_ms, now_ms + length, 5.0 + r() * 15.0]
            self.episodes.append(episode)
            self.latest_episode = (self.metrics[m]["name"], episode[1], episode[2], episode[3])
            self.stats["episodes"] += 1
        # No event is older than the late bound, so older episodes can no longer apply.
        horizon = now_ms - LATE_MAX_MS - self.out_of_order_ms
        self.episodes = [e for e in self.episodes if e[2] >= horizon]

    def _pick_metric(self, now_ms):
        """Weighted draw of a metric that is not silent at now_ms (bounded rejection sampling)."""
        total = self.cumulative[-1]
        last = len(self.metrics) - 1
        m = 0
        for _ in range(64):
            x = self.rng.random() * total
            m = min(_bisect_left(self.cumulative, x), last)
            gap = self.metrics[m]["gap"]
            if gap is None or (now_ms + gap[2]) % gap[0] >= gap[1]:
                break
        return m

    def _draw_ms(self, max_ms):
        """Whole milliseconds uniformly in [0, max_ms]."""
        return min(int(self.rng.random() * (max_ms + 1)), max_ms)


def _bisect_left(a, x):
    lo, hi = 0, len(a)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def to_ndjson(batch):
    return "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in batch).encode("utf-8")


class SendResult:
    """What a sink did with one batch."""

    def __init__(self, accepted=0, rejected=0, errors=0, retries=0, lost=0, duplicates=0):
        self.accepted = accepted
        self.rejected = rejected
        self.errors = errors        # failed attempts (connection errors, 408/429/5xx)
        self.retries = retries
        self.lost = lost            # events of a batch given up after the last attempt
        self.duplicates = duplicates


class TargetUnreachable(Exception):
    pass


class MissingDependency(Exception):
    pass


class OutputClosed(Exception):
    """stdout went away (e.g. piped into head): stop quietly."""


class StdoutSink:
    """--dry-run: the batches as NDJSON on stdout."""

    name = "stdout"

    def send(self, batch):
        try:
            sys.stdout.buffer.write(to_ndjson(batch))
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise OutputClosed()
        return SendResult(accepted=len(batch))

    def close(self):
        pass


class HttpSink:
    """POST {target}/events, NDJSON, with an Idempotency-Key per batch reused on retry."""

    name = "http"

    def __init__(self, target, timeout=30.0):
        self.url = target.rstrip("/") + "/events"
        self.timeout = timeout
        self.answered = False   # before the first answer, a connection error is a startup error
        self.problems = 0
        self.jitter = random.Random()   # not --seed: must not repeat across runs

    def send(self, batch):
        body = to_ndjson(batch)
        key = str(uuid.uuid4())   # random, never derived from --seed: the server dedupes by it
        n = len(batch)
        result = SendResult()
        backoff = FIRST_BACKOFF_S
        for attempt in range(1, MAX_ATTEMPTS + 1):
            kind, info = self._post(body, key)
            if kind == "stored":
                self.answered = True
                result.accepted = int(info.get("accepted", 0))
                rejected = info.get("rejected") or []
                result.rejected = len(rejected)
                result.duplicates = 1 if info.get("duplicate") else 0
                for rej in rejected:
                    self._problem("event %s of a batch was rejected: %s" % (rej.get("line"), rej.get("reason")))
                return result
            if kind == "refused":
                if not self.answered:
                    raise TargetUnreachable("%s refused the events: %s" % (self.url, info))
                result.rejected = n
                self._problem("a batch of %d events was refused: %s" % (n, info))
                return result
            if kind == "unreachable" and not self.answered:
                raise TargetUnreachable("cannot reach %s: %s; is 'streampulse run' running?" % (self.url, info))
            self.answered = True
            result.errors += 1
            if attempt == MAX_ATTEMPTS:
                result.lost = n
                self._problem("gave up on a batch of %d events after %d attempts: %s" % (n, attempt, info))
                return result
            result.retries += 1
            # Jitter keeps several producers from retrying in lockstep against a busy platform.
            time.sleep(backoff * (1.0 + 0.5 * self.jitter.random()))
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        return result

    def _post(self, body, key):
        """One attempt: ("stored", report) | ("failed", why) | ("unreachable", why) | ("refused", why)."""
        req = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": key,
        })
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            status = e.code
            try:
                text = e.read().decode("utf-8", "replace")
            except OSError:
                text = ""
        except urllib.error.URLError as e:
            return "unreachable", str(e.reason)
        except (OSError, http.client.HTTPException) as e:
            # Reset, closed early or timed out after connecting: the target exists, retry.
            return "failed", "%s: %s" % (type(e).__name__, e)
        report = _json_object(text)
        # A 200, or a 400 that stored part of the batch: both say how many were accepted.
        if report is not None and "accepted" in report and (200 <= status < 300 or 400 <= status < 500):
            return "stored", report
        why = "%d: %s" % (status, _detail(report, text))
        if 200 <= status < 300:
            return "failed", "unexpected answer to a stored batch (%s)" % why
        if status in (408, 429) or status >= 500:
            return "failed", why
        return "refused", why

    def _problem(self, message):
        self.problems += 1
        if self.problems <= MAX_REPORTED_PROBLEMS:
            log(message)
            if self.problems == MAX_REPORTED_PROBLEMS:
                log("(further problems are only counted)")

    def close(self):
        pass


class SendTracer:
    """--trace-ratio: samples events and traces their sends (see the module's docstring)."""

    def __init__(self, endpoint, ratio):
        try:   # only this option needs them
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError as e:
            raise MissingDependency(
                "--trace-ratio needs the opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http "
                "packages (%s): pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http" % e)
        self.trace = trace
        self.ratio = ratio
        # Random, never derived from --seed.
        self.rng = random.Random()
        self.provider = TracerProvider(resource=Resource.create({"service.name": "streampulse-producer"}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint + "/v1/traces")))
        self.tracer = self.provider.get_tracer("streampulse.producers.python")
        self.propagator = TraceContextTextMapPropagator()
        self.traced = 0
        self.first = None

    def sample(self):
        return self.rng.random() < self.ratio

    def start_send(self, topic, event):
        """Opens the send span of one event; returns it and the record headers carrying it."""
        span = self.tracer.start_span("send " + topic, kind=self.trace.SpanKind.PRODUCER, attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.kafka.message.key": event["metric_id"],
            "event.ts": event["ts"],
        })
        carrier = {}
        self.propagator.inject(carrier, context=self.trace.set_span_in_context(span))
        self.traced += 1
        if self.first is None:
            self.first = format(span.get_span_context().trace_id, "032x")
        return span, [(k, v.encode("ascii")) for k, v in carrier.items()]

    def end_send(self, span, err, msg):
        if err is not None:
            span.set_status(self.trace.Status(self.trace.StatusCode.ERROR, str(err)))
        else:
            span.set_attribute("messaging.destination.partition.id", msg.partition())
            span.set_attribute("messaging.kafka.offset", msg.offset())
        span.end()

    def close(self):
        """Exports what is left and says what was traced."""
        self.provider.shutdown()
        if self.traced:
            log("traced %d events; the first in trace %s" % (self.traced, self.first))


class KafkaSink:
    """--bootstrap-servers: one record per event, JSON, keyed by metric_id, to --topic.

    produce() only queues; the broker's delivery reports arrive later, through poll() and the
    final flush, and each send() returns those that arrived since the previous one.
    """

    name = "kafka"

    def __init__(self, bootstrap_servers, topic, tracer=None):
        try:
            import confluent_kafka   # only this mode needs it
        except ImportError as e:
            raise MissingDependency(
                "--bootstrap-servers needs the confluent-kafka package (%s): "
                "pip install confluent-kafka (HTTP mode and --dry-run need nothing beyond the "
                "standard library)" % e)
        self.kafka = confluent_kafka
        self.servers = bootstrap_servers
        self.topic = topic
        self.tracer = tracer
        self.delivered = 0   # reports not yet returned by send() or close()
        self.failed = 0
        self.problems = 0
        self.last_error = None
        self.producer = confluent_kafka.Producer({
            "bootstrap.servers": bootstrap_servers,
            # A record retried after a lost acknowledgement is not written twice.
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": KAFKA_MESSAGE_TIMEOUT_MS,
            "error_cb": self._on_error,
            # librdkafka's own log would print every failed reconnect; errors reach _on_error.
            "log_level": 2,
        })
        self._check_reachable()

    def _check_reachable(self):
        try:
            meta = self.producer.list_topics(timeout=KAFKA_CONNECT_TIMEOUT_S)
        except self.kafka.KafkaException as e:
            raise TargetUnreachable("cannot reach Kafka at %s: %s; is the broker running?"
                                    % (self.servers, _kafka_error(e)))
        topic = meta.topics.get(self.topic)
        if topic is None or topic.error is not None:
            why = "does not exist" if topic is None else _kafka_error(topic.error)
            log("topic %r on %s: %s; producing anyway (the broker may create it on first use; "
                "'streampulse topics create' creates the configured topics)" % (self.topic, self.servers, why))
        else:
            log("producing to topic %r (%d partitions) on %s"
                % (self.topic, len(topic.partitions), self.servers))

    def send(self, batch):
        for event in batch:
            value = json.dumps(event, separators=(",", ":")).encode("utf-8")
            key = event["metric_id"].encode("utf-8")
            on_delivery, headers = self._on_delivery, None
            if self.tracer is not None and self.tracer.sample():
                span, headers = self.tracer.start_send(self.topic, event)

                def on_delivery(err, msg, span=span):
                    self.tracer.end_send(span, err, msg)
                    self._on_delivery(err, msg)
            while True:
                try:
                    self.producer.produce(self.topic, value=value, key=key, headers=headers,
                                          on_delivery=on_delivery)
                    break
                except BufferError:
                    # The local queue is full: serve delivery reports while the broker catches up.
                    self.producer.poll(0.1)
                except self.kafka.KafkaException as e:
                    self.failed += 1
                    self._problem("a record of %s was not produced: %s" % (event["metric_id"], _kafka_error(e)))
                    break
        self.producer.poll(0)
        return self._take_reports()

    def _on_delivery(self, err, msg):
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        key = msg.key()
        self._problem("a record of %s was not delivered: %s"
                      % (key.decode("utf-8", "replace") if key else "?", _kafka_error(err)))

    def _on_error(self, err):
        # Client-level errors (broker down, connection refused...); librdkafka keeps retrying, and
        # records that time out are reported failed by _on_delivery. A repeat is not news.
        text = _kafka_error(err)
        if text != self.last_error:
            self.last_error = text
            self._problem("kafka: %s" % text)

    def _take_reports(self):
        result = SendResult(accepted=self.delivered, lost=self.failed)
        self.delivered = self.failed = 0
        return result

    _problem = HttpSink._problem   # printed one by one, then only counted

    def close(self):
        """The final flush: waits for the delivery reports still due and returns them."""
        try:
            left = self.producer.flush(KAFKA_FLUSH_TIMEOUT_S)
        except KeyboardInterrupt:
            left = len(self.producer)
        if left:
            log("%d records still unacknowledged after the final flush (counted neither produced "
                "nor failed)" % left)
        if self.tracer is not None:
            self.tracer.close()
        return self._take_reports()


def _kafka_error(e):
    """The message of a KafkaError, or of the KafkaError a KafkaException carries."""
    if e.args and hasattr(e.args[0], "str"):
        e = e.args[0]
    text = e.str() if hasattr(e, "str") else str(e)
    return text or str(e)


def _json_object(text):
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _detail(obj, text):
    """The `detail` of an RFC 9457 problem body, or the start of whatever else the body is."""
    if obj is not None and isinstance(obj.get("detail"), str):
        return obj["detail"]
    text = text.strip()
    if not text:
        return "(empty answer)"
    return text if len(text) <= 200 else text[:200] + "..."


def make_sink(args):
    if args.dry_run:
        return StdoutSink()
    if args.bootstrap_servers:
        tracer = SendTracer(args.otlp_endpoint, args.trace_ratio) if args.trace_ratio else None
        return KafkaSink(args.bootstrap_servers, args.topic, tracer)
    return HttpSink(args.target)


def log(message):
    sys.stderr.write("send_events: %s\n" % message)
    sys.stderr.flush()


def parse_duration(text):
    """Seconds: '60', '60s', '1.5m', '2h', '500ms'."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError("not a duration: %r (e.g. 60, 60s, 5m, 1h)" % text)
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}[m.group(2)]
    return float(m.group(1)) * scale


def probability(text):
    p = float(text)
    if not 0.0 <= p <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1, not %s" % text)
    return p


def positive(cast):
    def parse(text):
        v = cast(text)
        if not (v > 0 and math.isfinite(v)):
            raise argparse.ArgumentTypeError("must be positive, not %s" % text)
        return v
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=positive(float), default=1000.0, help="events per second (wall clock)")
    p.add_argument("--metrics", type=positive(int), default=100, help="distinct metrics")
    p.add_argument("--target", default=None, help="base URL of the platform (default: %s)" % DEFAULT_TARGET)
    p.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]", default=None,
                   help="produce to Kafka at these brokers instead of POSTing over HTTP "
                        "(needs: pip install confluent-kafka)")
    p.add_argument("--topic", default=None,
                   help="Kafka topic for --bootstrap-servers (default: %s)" % DEFAULT_TOPIC)
    p.add_argument("--duration", type=parse_duration, default=None,
                   help="stop after this long (60, 60s, 5m); default: until Ctrl-C")
    p.add_argument("--count", type=positive(int), default=None, help="stop after this many events")
    p.add_argument("--batch-size", type=positive(int), default=None,
                   help="most events per request; default: rate / 10 (a batch every 100 ms)")
    p.add_argument("--seed", type=int, default=None, help="generator seed; default: random (printed)")
    p.add_argument("--late-fraction", type=probability, default=0.005,
                   help="fraction of very late events (30-120 s behind)")
    p.add_argument("--spike-probability", type=probability, default=0.1,
                   help="chance per second that a spike episode starts")
    p.add_argument("--out-of-order-ms", type=int, default=3000,
                   help="regular events trail the wall clock by up to this many ms")
    p.add_argument("--dry-run", action="store_true", help="print NDJSON on stdout instead of sending")
    p.add_argument("--trace-ratio", type=probability, default=0.0,
                   help="Kafka: fraction of events whose send starts a trace, exported to --otlp-endpoint "
                        "and continued by StreamPulse through the record's traceparent header "
                        "(needs: pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http)")
    p.add_argument("--otlp-endpoint", default=None,
                   help="OTLP/HTTP endpoint for --trace-ratio (default: $OTEL_EXPORTER_OTLP_ENDPOINT, "
                        "else %s)" % DEFAULT_OTLP_ENDPOINT)
    a = p.parse_args(argv)
    if a.trace_ratio and a.bootstrap_servers is None:
        p.error("--trace-ratio needs --bootstrap-servers (traces travel in Kafka record headers)")
    if a.otlp_endpoint is not None and not a.trace_ratio:
        p.error("--otlp-endpoint only applies with --trace-ratio")
    if a.trace_ratio:
        a.otlp_endpoint = (a.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                           or DEFAULT_OTLP_ENDPOINT).rstrip("/")
        m = re.fullmatch(r"https?://[^/\s]+", a.otlp_endpoint)
        if not m:
            p.error("--otlp-endpoint must be an http:// or https:// URL without a path (e.g. %s), not %r"
                    % (DEFAULT_OTLP_ENDPOINT, a.otlp_endpoint))
    if not 0 <= a.out_of_order_ms <= 86400000:
        p.error("--out-of-order-ms must be between 0 and 86400000")
    if a.bootstrap_servers is not None:
        if a.dry_run:
            p.error("--dry-run and --bootstrap-servers exclude each other")
        if a.target is not None:
            p.error("--target (HTTP) and --bootstrap-servers (Kafka) exclude each other")
        servers = [s.strip() for s in a.bootstrap_servers.split(",")]
        for s in servers:
            m = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],/]+):([0-9]{1,5})", s)
            if not m or not 0 < int(m.group(2)) < 65536:
                p.error("--bootstrap-servers must be HOST:PORT[,HOST:PORT...], not %r" % a.bootstrap_servers)
        a.bootstrap_servers = ",".join(servers)
        a.topic = DEFAULT_TOPIC if a.topic is None else a.topic
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", a.topic) or a.topic in (".", ".."):
            p.error("--topic must be 1-249 characters of A-Z a-z 0-9 . _ -, not %r" % a.topic)
    elif a.topic is not None:
        p.error("--topic only applies with --bootstrap-servers")
    if a.target is None:
        a.target = DEFAULT_TARGET
    if not a.dry_run and not a.bootstrap_servers and not a.target.startswith(("http://", "https://")):
        p.error("--target must be an http:// or https:// URL, not %r" % a.target)
    return a


class Totals:
    def __init__(self):
        self.sent = self.accepted = self.rejected = 0
        self.errors = self.retries = self.lost = self.duplicates = 0

    def add(self, n, result):
        self.sent += n
        self.accepted += result.accepted
        self.rejected += result.rejected
        self.errors += result.errors
        self.retries += result.retries
        self.lost += result.lost
        self.duplicates += result.duplicates


def produce(args, events, sink, totals, start):
    """The pacing loop: at every tick, send what the schedule says is due, in batches."""
    rate = args.rate
    batch_size = args.batch_size or max(1, int(math.ceil(rate / 10.0)))
    tick = min(max(batch_size / rate, 0.01), 1.0)
    # The schedule: `rate` events/s from origin, on top of the events generated before it.
    origin, origin_count = start, 0
    generated = 0
    one_second_worth = max(int(math.ceil(rate)), batch_size)
    next_tick = start
    next_progress = start + PROGRESS_EVERY_S
    warned_slow = False
    while True:
        now = time.monotonic()
        if args.duration is not None and now - start >= args.duration:
            return
        remaining = None if args.count is None else args.count - generated
        if remaining is not None and remaining <= 0:
            return
        due = origin_count + int(rate * (now - origin)) - generated
        if due > one_second_worth:
            # More than a second behind: the target is slower than --rate. Catching up would
            # flood it the moment it recovers, so the schedule restarts from here.
            if not warned_slow and sink.name != "stdout":
                log("fell more than 1 s behind --rate %g (target slow or unavailable); "
                    "dropping the backlog instead of flooding it" % rate)
                warned_slow = True
            origin, origin_count = now, generated
            due = batch_size
        if remaining is not None:
            due = min(due, remaining)
        while due > 0:
            n = min(due, batch_size)
            episodes_before = events.stats["episodes"]
            batch = events.next_batch(int(time.time() * 1000), n)
            generated += n
            if events.stats["episodes"] > episodes_before:
                # Say when and where a spike was injected, so what anomaly detection finds can
                # be checked.
                log("spike on %s for event times [%d, %d) ms, values x%.1f" % events.latest_episode)
            due -= n
            totals.add(n, sink.send(batch))
            if time.monotonic() >= next_progress:
                progress(sink, totals, time.monotonic() - start)
                next_progress += PROGRESS_EVERY_S
        if time.monotonic() >= next_progress:
            progress(sink, totals, time.monotonic() - start)
            next_progress += PROGRESS_EVERY_S
        next_tick += tick
        now = time.monotonic()
        if next_tick < now:
            next_tick = now   # sending took longer than a tick: do not replay the lost ticks
        wake = next_tick if args.duration is None else min(next_tick, start + args.duration)
        if wake > now:
            time.sleep(wake - now)


def progress(sink, totals, elapsed):
    rate = totals.sent / max(elapsed, 1e-3)
    if sink.name == "stdout":
        log("%.0f s: wrote %d, %.1f events/s" % (elapsed, totals.sent, rate))
    elif sink.name == "kafka":
        log("%.0f s: sent %d, produced %d, failed %d, %.1f events/s"
            % (elapsed, totals.sent, totals.accepted, totals.lost, rate))
    else:
        log("%.0f s: sent %d, accepted %d, rejected %d, errors %d, lost %d, %.1f events/s"
            % (elapsed, totals.sent, totals.accepted, totals.rejected, totals.errors, totals.lost, rate))


def summary(sink, totals, events, elapsed, seed, how):
    rate = totals.sent / max(elapsed, 1e-3)
    if sink.name == "stdout":
        sent = "wrote %d" % totals.sent
    elif sink.name == "kafka":
        # produced: acknowledged by the broker; failed: reported undeliverable.
        sent = "sent %d, produced %d, failed %d" % (totals.sent, totals.accepted, totals.lost)
        unconfirmed = totals.sent - totals.accepted - totals.lost
        if unconfirmed:
            sent += ", unconfirmed %d" % unconfirmed
    else:
        sent = ("sent %d, accepted %d, rejected %d, errors %d, retries %d (%d already stored), lost %d"
                % (totals.sent, totals.accepted, totals.rejected, totals.errors, totals.retries,
                   totals.duplicates, totals.lost))
    s = events.stats
    log("%s after %.1f s: %s; %.1f events/s; %d very late, %d spike episodes (%d spiked events); seed %d"
        % (how, elapsed, sent, rate, s["late"], s["episodes"], s["spiked"], seed))


def _terminate(signum, frame):
    raise KeyboardInterrupt()


def main(argv=None):
    args = parse_args(argv)
    # `kill` (SIGTERM) stops like Ctrl-C does: with a summary.
    signal.signal(signal.SIGTERM, _terminate)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2 ** 63)
    events = SyntheticEvents(metrics=args.metrics, seed=seed, out_of_order_ms=args.out_of_order_ms,
                             late_fraction=args.late_fraction, spike_probability=args.spike_probability)
    try:
        sink = make_sink(args)
    except (MissingDependency, TargetUnreachable) as e:
        log(str(e))
        return 1
    except KeyboardInterrupt:   # while waiting for the broker's metadata
        log("interrupted before sending anything")
        return 130
    totals = Totals()
    start = time.monotonic()
    how = "done"
    try:
        produce(args, events, sink, totals, start)
    except TargetUnreachable as e:
        log(str(e))
        return 1
    except OutputClosed:
        # Point stdout at /dev/null so the flush at exit does not hit the closed pipe again.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
    except KeyboardInterrupt:
        how = "interrupted"
    finally:
        late = sink.close()
        if late is not None:
            totals.add(0, late)   # delivery reports that arrived during the final flush
    summary(sink, totals, events, time.monotonic() - start, seed, how)
    if sink.name != "stdout" and totals.sent > 0 and totals.accepted == 0:
        log("none of the %d events sent was %s" % (totals.sent, "acknowledged by the broker" if sink.name == "kafka" else "accepted"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
