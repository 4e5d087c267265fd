// Command producer sends synthetic metric events to StreamPulse: the Go twin of
// producers/send_events.py, with the same flags, event shape and summary.
//
//	go run . --rate 1000 [--metrics 100] [--target http://127.0.0.1:8080] [--duration 60s]
//	    [--count N] [--batch-size 200] [--seed N] [--late-fraction 0.005]
//	    [--spike-probability 0.1] [--out-of-order-ms 3000] [--dry-run]
//	go run . --bootstrap-servers 127.0.0.1:9092 [--topic events] --rate 1000
//
// Each event is {"metric_id":"metric_00042","ts":1700000012345,"value":123.456,"tags":{"host":"host-007"}}
// with ts the event time in epoch ms, trailing the wall clock by up to --out-of-order-ms (a
// fraction --late-fraction of events 30-120 s). Over HTTP, batches are POSTed as NDJSON to
// {target}/events with an Idempotency-Key reused on retry; with --bootstrap-servers every event is
// a Kafka record keyed by metric_id. Progress goes to stderr every 5 s and a summary at the end
// (also on Ctrl-C or SIGTERM); the exit status is 1 when the target cannot be reached at start or
// accepted nothing.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	defaultTarget       = "http://127.0.0.1:8080"
	defaultTopic        = "events"
	progressEvery       = 5 * time.Second
	maxReportedProblems = 10 // printed one by one; after that only counted
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "producer: "+format+"\n", args...)
}

// problems prints the first few problems and counts the rest.
type problems struct {
	mu    sync.Mutex
	count int
}

func (p *problems) add(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if p.count <= maxReportedProblems {
		logf(format, args...)
		if p.count == maxReportedProblems {
			logf("(further problems are only counted)")
		}
	}
}

// Options are the command line, validated.
type Options struct {
	Rate             float64
	Metrics          int
	Target           string
	Brokers          []string
	Topic            string
	Duration         time.Duration // 0: until interrupted
	Count            int64         // 0: no limit
	BatchSize        int
	Seed             uint64
	LateFraction     float64
	SpikeProbability float64
	OutOfOrderMs     int64
	DryRun           bool
	TraceRatio       float64 // Kafka only: fraction of events whose send is traced
	OTLPEndpoint     string
}

var (
	durationPattern = regexp.MustCompile(`^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*$`)
	brokerPattern   = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],/]+):([0-9]{1,5})$`)
	topicPattern    = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)
)

// parseDuration reads 60, 60s, 1.5m, 2h, 500ms (a bare number is seconds).
func parseDuration(text string) (time.Duration, error) {
	m := durationPattern.FindStringSubmatch(text)
	if m == nil {
		return 0, fmt.Errorf("not a duration: %q (e.g. 60, 60s, 5m, 1h)", text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, err
	}
	scale := map[string]float64{"ms": 1e-3, "s": 1, "m": 60, "h": 3600, "": 1}[m[2]]
	seconds := v * scale
	if seconds > 366*24*3600 {
		return 0, fmt.Errorf("%q is longer than a year", text)
	}
	return time.Duration(seconds * float64(time.Second)), nil
}

// ParseOptions reads and checks the command line; the error says which flag is wrong.
func ParseOptions(args []string) (Options, error) {
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	var o Options
	var target, brokers, topic, duration string
	var seed int64
	fs.Float64Var(&o.Rate, "rate", 1000, "events per second (wall clock)")
	fs.IntVar(&o.Metrics, "metrics", 100, "distinct metrics")
	fs.StringVar(&target, "target", "", "base URL of the platform (default "+defaultTarget+")")
	fs.StringVar(&brokers, "bootstrap-servers", "", "produce to Kafka at HOST:PORT[,HOST:PORT...] instead of POSTing over HTTP")
	fs.StringVar(&topic, "topic", "", "Kafka topic for --bootstrap-servers (default "+defaultTopic+")")
	fs.StringVar(&duration, "duration", "", "stop after this long (60, 60s, 5m); default: until Ctrl-C")
	fs.Int64Var(&o.Count, "count", 0, "stop after this many events")
	fs.IntVar(&o.BatchSize, "batch-size", 0, "most events per request; default: rate / 10 (a batch every 100 ms)")
	fs.Int64Var(&seed, "seed", -1, "generator seed (>= 0); default: random (printed)")
	fs.Float64Var(&o.LateFraction, "late-fraction", 0.005, "fraction of very late events (30-120 s behind)")
	fs.Float64Var(&o.SpikeProbability, "spike-probability", 0.1, "chance per second that a spike episode starts")
	fs.Int64Var(&o.OutOfOrderMs, "out-of-order-ms", 3000, "regular events trail the wall clock by up to this many ms")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print NDJSON on stdout instead of sending")
	fs.Float64Var(&o.TraceRatio, "trace-ratio", 0, "Kafka: fraction of events whose send starts a trace, exported to --otlp-endpoint and continued by StreamPulse through the record's traceparent header")
	fs.StringVar(&o.OTLPEndpoint, "otlp-endpoint", "", "OTLP/HTTP endpoint for --trace-ratio (default $OTEL_EXPORTER_OTLP_ENDPOINT, else "+defaultOTLPEndpoint+")")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case !(o.Rate > 0) || math.IsInf(o.Rate, 0):
		return o, fmt.Errorf("--rate must be positive, not %g", o.Rate)
	case o.Metrics <= 0 || o.Metrics > 10_000_000:
		return o, fmt.Errorf("--metrics must be between 1 and 10000000, not %d", o.Metrics)
	case o.Count < 0:
		return o, fmt.Errorf("--count must be positive, not %d", o.Count)
	case o.BatchSize < 0 || o.BatchSize > 1_000_000:
		return o, fmt.Errorf("--batch-size must be between 1 and 1000000, not %d", o.BatchSize)
	case !(o.LateFraction >= 0 && o.LateFraction <= 1):
		return o, fmt.Errorf("--late-fraction must be between 0 and 1, not %g", o.LateFraction)
	case !(o.SpikeProbability >= 0 && o.SpikeProbability <= 1):
		return o, fmt.Errorf("--spike-probability must be between 0 and 1, not %g", o.SpikeProbability)
	case o.OutOfOrderMs < 0 || o.OutOfOrderMs > 86_400_000:
		return o, fmt.Errorf("--out-of-order-ms must be between 0 and 86400000")
	case seed < -1:
		return o, fmt.Errorf("--seed must be >= 0")
	case !(o.TraceRatio >= 0 && o.TraceRatio <= 1):
		return o, fmt.Errorf("--trace-ratio must be between 0 and 1, not %g", o.TraceRatio)
	case o.TraceRatio > 0 && brokers == "":
		return o, errors.New("--trace-ratio needs --bootstrap-servers (traces travel in Kafka record headers)")
	case o.OTLPEndpoint != "" && o.TraceRatio == 0:
		return o, errors.New("--otlp-endpoint only applies with --trace-ratio")
	}
	if o.TraceRatio > 0 {
		if o.OTLPEndpoint == "" {
			o.OTLPEndpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
		}
		if o.OTLPEndpoint == "" {
			o.OTLPEndpoint = defaultOTLPEndpoint
		}
		o.OTLPEndpoint = strings.TrimRight(o.OTLPEndpoint, "/")
		if err := checkEndpoint(o.OTLPEndpoint); err != nil {
			return o, err
		}
	}
	if seed >= 0 {
		o.Seed = uint64(seed)
	} else {
		o.Seed = rand.Uint64() >> 1
	}
	if duration != "" {
		d, err := parseDuration(duration)
		if err != nil {
			return o, fmt.Errorf("--duration: %v", err)
		}
		o.Duration = d
	}
	if brokers != "" {
		if o.DryRun {
			return o, errors.New("--dry-run and --bootstrap-servers exclude each other")
		}
		if target != "" {
			return o, errors.New("--target (HTTP) and --bootstrap-servers (Kafka) exclude each other")
		}
		for _, s := range strings.Split(brokers, ",") {
			s = strings.TrimSpace(s)
			m := brokerPattern.FindStringSubmatch(s)
			port := 0
			if m != nil {
				port, _ = strconv.Atoi(m[2])
			}
			if m == nil || port <= 0 || port >= 65536 {
				return o, fmt.Errorf("--bootstrap-servers must be HOST:PORT[,HOST:PORT...], not %q", brokers)
			}
			o.Brokers = append(o.Brokers, s)
		}
		o.Topic = topic
		if o.Topic == "" {
			o.Topic = defaultTopic
		}
		if !topicPattern.MatchString(o.Topic) || o.Topic == "." || o.Topic == ".." {
			return o, fmt.Errorf("--topic must be 1-249 characters of A-Z a-z 0-9 . _ -, not %q", o.Topic)
		}
	} else if topic != "" {
		return o, errors.New("--topic only applies with --bootstrap-servers")
	}
	o.Target = target
	if o.Target == "" {
		o.Target = defaultTarget
	}
	if !o.DryRun && o.Brokers == nil && !strings.HasPrefix(o.Target, "http://") && !strings.HasPrefix(o.Target, "https://") {
		return o, fmt.Errorf("--target must be an http:// or https:// URL, not %q", o.Target)
	}
	return o, nil
}

// StdoutSink is --dry-run: the batches as NDJSON on stdout.
type StdoutSink struct{ out *bufio.Writer }

func (s *StdoutSink) Name() string { return "stdout" }

func (s *StdoutSink) Send(_ context.Context, batch []Event) (SendResult, error) {
	if _, err := s.out.Write(ndjson(batch)); err != nil {
		return SendResult{}, err
	}
	if err := s.out.Flush(); err != nil {
		return SendResult{}, err
	}
	return SendResult{Accepted: int64(len(batch))}, nil
}

func (s *StdoutSink) Close() SendResult { return SendResult{} }

// Totals add up every batch's result.
type Totals struct {
	Sent int64
	SendResult
}

// produce is the pacing loop: at every tick it sends what the schedule says is due, in batches.
func produce(ctx context.Context, o Options, g *Generator, sink Sink, totals *Totals, start time.Time) error {
	batchSize := o.BatchSize
	if batchSize == 0 {
		batchSize = max(1, int(math.Ceil(o.Rate/10)))
	}
	tick := time.Duration(min(max(float64(batchSize)/o.Rate, 0.01), 1) * float64(time.Second))
	// The schedule: `rate` events/s from origin, on top of the events generated before it.
	origin, originCount := start, int64(0)
	var generated int64
	oneSecondWorth := max(int64(math.Ceil(o.Rate)), int64(batchSize))
	nextTick := start
	nextProgress := start.Add(progressEvery)
	warnedSlow := false
	for {
		now := time.Now()
		if o.Duration > 0 && now.Sub(start) >= o.Duration {
			return nil
		}
		if o.Count > 0 && generated >= o.Count {
			return nil
		}
		due := originCount + int64(o.Rate*now.Sub(origin).Seconds()) - generated
		if due > oneSecondWorth {
			// More than a second behind: the target is slower than --rate. Catching up would
			// flood it the moment it recovers, so the schedule restarts from here.
			if !warnedSlow && sink.Name() != "stdout" {
				logf("fell more than 1 s behind --rate %g (target slow or unavailable); dropping the backlog instead of flooding it", o.Rate)
				warnedSlow = true
			}
			origin, originCount = now, generated
			due = int64(batchSize)
		}
		if o.Count > 0 {
			due = min(due, o.Count-generated)
		}
		for due > 0 {
			n := min(due, int64(batchSize))
			batch := g.NextBatch(time.Now().UnixMilli(), int(n))
			generated += n
			if e := g.Latest; e != nil {
				// Say when and where a spike was injected, so what anomaly detection finds can be
				// checked.
				logf("spike on %s for event times [%d, %d) ms, values x%.1f", g.MetricName(e.Metric), e.Start, e.End, e.Factor)
			}
			due -= n
			result, err := sink.Send(ctx, batch)
			totals.Sent += n
			totals.add(result)
			if err != nil {
				return err
			}
			if time.Now().After(nextProgress) {
				progress(sink, totals, time.Since(start))
				nextProgress = nextProgress.Add(progressEvery)
			}
		}
		if time.Now().After(nextProgress) {
			progress(sink, totals, time.Since(start))
			nextProgress = nextProgress.Add(progressEvery)
		}
		nextTick = nextTick.Add(tick)
		now = time.Now()
		if nextTick.Before(now) {
			nextTick = now // sending took longer than a tick: do not replay the lost ticks
		}
		wake := nextTick
		if o.Duration > 0 && start.Add(o.Duration).Before(wake) {
			wake = start.Add(o.Duration)
		}
		if err := sleepCtx(ctx, time.Until(wake)); err != nil {
			return err
		}
	}
}

func progress(sink Sink, t *Totals, elapsed time.Duration) {
	rate := float64(t.Sent) / max(elapsed.Seconds(), 1e-3)
	switch sink.Name() {
	case "stdout":
		logf("%.0f s: wrote %d, %.1f events/s", elapsed.Seconds(), t.Sent, rate)
	case "kafka":
		logf("%.0f s: sent %d, produced %d, failed %d, %.1f events/s", elapsed.Seconds(), t.Sent, t.Accepted, t.Lost, rate)
	default:
		logf("%.0f s: sent %d, accepted %d, rejected %d, errors %d, lost %d, %.1f events/s",
			elapsed.Seconds(), t.Sent, t.Accepted, t.Rejected, t.Errors, t.Lost, rate)
	}
}

func summary(sink Sink, t *Totals, g *Generator, elapsed time.Duration, seed uint64, how string) {
	rate := float64(t.Sent) / max(elapsed.Seconds(), 1e-3)
	var sent string
	switch sink.Name() {
	case "stdout":
		sent = fmt.Sprintf("wrote %d", t.Sent)
	case "kafka":
		// produced: acknowledged by the broker; failed: reported undeliverable.
		sent = fmt.Sprintf("sent %d, produced %d, failed %d", t.Sent, t.Accepted, t.Lost)
		if unconfirmed := t.Sent - t.Accepted - t.Lost; unconfirmed != 0 {
			sent += fmt.Sprintf(", unconfirmed %d", unconfirmed)
		}
	default:
		sent = fmt.Sprintf("sent %d, accepted %d, rejected %d, errors %d, retries %d (%d already stored), lost %d",
			t.Sent, t.Accepted, t.Rejected, t.Errors, t.Retries, t.Duplicates, t.Lost)
	}
	s := g.Stats
	logf("%s after %.1f s: %s; %.1f events/s; %d very late, %d spike episodes (%d spiked events); seed %d",
		how, elapsed.Seconds(), sent, rate, s.Late, s.Episodes, s.Spiked, seed)
}

func run(args []string) int {
	o, err := ParseOptions(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		logf("%v", err)
		return 2
	}
	// Ctrl-C and `kill` (SIGTERM) stop the same way: with a summary.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g := NewGenerator(GeneratorConfig{
		Metrics: o.Metrics, Seed: o.Seed, OutOfOrderMs: o.OutOfOrderMs,
		LateFraction: o.LateFraction, SpikeProbability: o.SpikeProbability,
	})
	p := &problems{}
	var sink Sink
	switch {
	case o.DryRun:
		sink = &StdoutSink{out: bufio.NewWriterSize(os.Stdout, 1<<16)}
	case o.Brokers != nil:
		tracer, err := NewTracer(o.OTLPEndpoint, o.TraceRatio)
		if err != nil {
			logf("%v", err)
			return 2
		}
		defer tracer.Close()
		sink, err = NewKafkaSink(ctx, o.Brokers, o.Topic, p, tracer)
		if err != nil {
			logf("%v", err)
			return 1
		}
	default:
		sink = NewHTTPSink(o.Target, p)
	}
	totals := &Totals{}
	start := time.Now()
	how := "done"
	err = produce(ctx, o, g, sink, totals, start)
	totals.add(sink.Close()) // acknowledgements that arrived during the final flush
	switch {
	case errors.Is(err, ErrUnreachable):
		logf("%v", err)
		return 1
	case errors.Is(err, context.Canceled):
		how = "interrupted"
	case errors.Is(err, syscall.EPIPE):
		// stdout went away (piped into head): stop quietly.
	case err != nil:
		logf("%v", err)
		return 1
	}
	summary(sink, totals, g, time.Since(start), o.Seed, how)
	if sink.Name() != "stdout" && totals.Sent > 0 && totals.Accepted == 0 {
		what := "accepted"
		if sink.Name() == "kafka" {
			what = "acknowledged by the broker"
		}
		logf("none of the %d events sent was %s", totals.Sent, what)
		return 1
	}
	return 0
}

func main() {
	os.Exit(run(os.Args[1:]))
}
