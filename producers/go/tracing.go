// Traced sends (--trace-ratio): a sampled fraction of the events each start a trace of their
// own. The producer's span for the send ("send <topic>", producer kind) is exported over OTLP/HTTP
// (--otlp-endpoint: Jaeger, an OpenTelemetry Collector), and its W3C trace context travels in the
// Kafka record's headers (traceparent), where StreamPulse continues it: one trace shows the send,
// the worker processing the record and the window results its event went into.

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

const (
	defaultOTLPEndpoint = "http://127.0.0.1:4318"
	// How long the end of a run waits for the last spans to be exported.
	traceFlushTimeout = 10 * time.Second
)

// Tracer samples events and traces their sends; a nil *Tracer traces nothing.
type Tracer struct {
	ratio    float64
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
	first    string // the first trace id, for the summary
	traced   int64
}

// NewTracer exports to endpoint (http:// or https://, OTLP/HTTP's /v1/traces is appended). Nil
// when ratio is 0.
func NewTracer(endpoint string, ratio float64) (*Tracer, error) {
	if ratio == 0 {
		return nil, nil
	}
	exporter, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"))
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint %s: %v", endpoint, err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "streampulse-producer"))
	// Every span the producer starts is one it sampled: the SDK keeps them all.
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
	)
	return &Tracer{ratio: ratio, provider: provider, tracer: provider.Tracer("streampulse/producers/go")}, nil
}

// Sample says whether the next event is traced. Random, never derived from --seed.
func (t *Tracer) Sample() bool {
	return t != nil && rand.Float64() < t.ratio
}

// headerCarrier lets the propagator write a record's headers.
type headerCarrier struct{ r *kgo.Record }

func (c headerCarrier) Get(key string) string {
	for _, h := range c.r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (c headerCarrier) Set(key, value string) {
	c.r.Headers = append(c.r.Headers, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

func (c headerCarrier) Keys() []string {
	keys := make([]string, len(c.r.Headers))
	for i, h := range c.r.Headers {
		keys[i] = h.Key
	}
	return keys
}

// StartSend opens the send span of one event's record and writes its context into the record's
// headers; the record's Context carries the span to EndSend.
func (t *Tracer) StartSend(ctx context.Context, r *kgo.Record, e *Event) {
	ctx, span := t.tracer.Start(ctx, "send "+r.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.system", "kafka"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.destination.name", r.Topic),
			attribute.String("messaging.kafka.message.key", e.MetricID),
			attribute.Int64("event.ts", e.TS),
		))
	t.prop.Inject(ctx, headerCarrier{r})
	r.Context = ctx
	t.traced++
	if t.first == "" {
		t.first = span.SpanContext().TraceID().String()
	}
}

// EndSend closes the send span of a record when the broker acknowledged it (or did not).
func EndSend(r *kgo.Record, err error) {
	if r.Context == nil {
		return
	}
	span := trace.SpanFromContext(r.Context)
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	} else {
		span.SetAttributes(
			attribute.Int("messaging.destination.partition.id", int(r.Partition)),
			attribute.Int64("messaging.kafka.offset", r.Offset),
		)
	}
	span.End()
}

// Close exports what is left and says what was traced.
func (t *Tracer) Close() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		logf("exporting the last spans failed: %v", err)
	}
	if t.traced > 0 {
		logf("traced %d events; the first in trace %s", t.traced, t.first)
	}
}

// checkEndpoint accepts an http:// or https:// URL without a path (OTLP/HTTP's base).
func checkEndpoint(text string) error {
	u, err := url.Parse(text)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("--otlp-endpoint must be an http:// or https:// URL without a path (e.g. %s), not %q", defaultOTLPEndpoint, text)
	}
	return nil
}
