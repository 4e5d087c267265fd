package main

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestATracedSendCarriesItsSpanInTheRecordHeaders(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	tr := &Tracer{ratio: 1, provider: provider, tracer: provider.Tracer("test")}
	r := &kgo.Record{Topic: "events", Key: []byte("cpu")}
	tr.StartSend(context.Background(), r, &Event{MetricID: "cpu", TS: 1700000000000, Value: 1})
	r.Partition, r.Offset = 3, 42
	EndSend(r, nil)

	ended := recorder.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	span := ended[0]
	if span.Name() != "send events" || span.SpanKind() != trace.SpanKindProducer {
		t.Fatalf("span %q kind %v", span.Name(), span.SpanKind())
	}
	// What StreamPulse reads back from the header is the send span itself.
	cx := propagation.TraceContext{}.Extract(context.Background(), headerCarrier{r})
	got := trace.SpanContextFromContext(cx)
	if !got.IsValid() || !got.IsSampled() || got.TraceID() != span.SpanContext().TraceID() ||
		got.SpanID() != span.SpanContext().SpanID() {
		t.Fatalf("header %v, span %v", got, span.SpanContext())
	}
	if tr.first != span.SpanContext().TraceID().String() || tr.traced != 1 {
		t.Fatalf("summary: %q %d", tr.first, tr.traced)
	}
	attrs := map[string]any{}
	for _, a := range span.Attributes() {
		attrs[string(a.Key)] = a.Value.AsInterface()
	}
	if attrs["messaging.kafka.offset"] != int64(42) || attrs["event.ts"] != int64(1700000000000) {
		t.Fatalf("attributes %v", attrs)
	}
}

func TestWithoutATracerNothingIsSampled(t *testing.T) {
	var tr *Tracer
	if tr.Sample() {
		t.Fatal("a nil tracer sampled an event")
	}
	tr.Close() // no-op
	r := &kgo.Record{}
	EndSend(r, nil) // a record without a span
	if len(r.Headers) != 0 {
		t.Fatal("headers on an untraced record")
	}
}
