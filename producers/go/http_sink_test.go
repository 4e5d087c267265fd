package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// platform answers each POST with the next of `answers` (status, body), repeating the last, and
// records the requests.
type platform struct {
	mu      sync.Mutex
	answers [][2]string
	keys    []string
	bodies  []string
}

func (p *platform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	p.keys = append(p.keys, r.Header.Get("Idempotency-Key"))
	p.bodies = append(p.bodies, string(body))
	answer := p.answers[min(len(p.keys)-1, len(p.answers)-1)]
	if r.URL.Path != "/events" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		answer = [2]string{"404", `{"detail":"wrong path or type"}`}
	}
	var status int
	for _, c := range answer[0] {
		status = status*10 + int(c-'0')
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer[1])
}

func sink(url string) *HTTPSink {
	s := NewHTTPSink(url, &problems{})
	s.sleep = func(context.Context, time.Duration) error { return nil }
	return s
}

func events(n int) []Event {
	return generator(1, 0, 0).NextBatch(1_700_000_000_000, n)
}

func TestARetriedBatchKeepsItsIdempotencyKey(t *testing.T) {
	p := &platform{answers: [][2]string{
		{"503", `{"detail":"overloaded"}`},
		{"429", ``},
		{"200", `{"accepted":3,"rejected":[]}`},
	}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	got, err := sink(srv.URL).Send(context.Background(), events(3))
	if err != nil {
		t.Fatal(err)
	}
	want := SendResult{Accepted: 3, Errors: 2, Retries: 2}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if len(p.keys) != 3 || p.keys[0] == "" || p.keys[0] != p.keys[1] || p.keys[1] != p.keys[2] {
		t.Fatalf("keys %q: one key, reused by every retry", p.keys)
	}
	if p.bodies[0] != p.bodies[2] || strings.Count(p.bodies[0], "\n") != 3 {
		t.Fatalf("the same NDJSON body each time: %q", p.bodies)
	}
}

func TestRejectedEventsAndDuplicatesAreCounted(t *testing.T) {
	p := &platform{answers: [][2]string{
		{"400", `{"accepted":2,"rejected":[{"line":3,"reason":"value: not a number"}]}`},
		{"200", `{"accepted":3,"rejected":[],"duplicate":true}`},
	}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := sink(srv.URL)
	got, _ := s.Send(context.Background(), events(3))
	if got != (SendResult{Accepted: 2, Rejected: 1}) {
		t.Fatalf("partly stored batch: %+v", got)
	}
	got, _ = s.Send(context.Background(), events(3))
	if got != (SendResult{Accepted: 3, Duplicates: 1}) {
		t.Fatalf("already stored batch: %+v", got)
	}
	if p.keys[0] == p.keys[1] {
		t.Fatal("two batches share a key")
	}
}

func TestAnUnreachableOrRefusingTargetIsAStartupErrorThenATransientOne(t *testing.T) {
	// Nothing listens on a port just closed.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if _, err := sink("http://"+addr).Send(context.Background(), events(1)); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}

	p := &platform{answers: [][2]string{{"401", `{"detail":"a token is required"}`}}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	_, err = sink(srv.URL).Send(context.Background(), events(1))
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "a token is required") {
		t.Fatalf("got %v, want the refusal's detail", err)
	}

	// Once the platform has answered, a refused batch is counted, not fatal, and a platform that
	// keeps failing loses the batch after the last attempt.
	p2 := &platform{answers: [][2]string{{"200", `{"accepted":1}`}, {"413", `{"detail":"too big"}`}, {"500", ``}}}
	srv2 := httptest.NewServer(p2)
	defer srv2.Close()
	s := sink(srv2.URL)
	_, _ = s.Send(context.Background(), events(1))
	got, err := s.Send(context.Background(), events(2))
	if err != nil || got != (SendResult{Rejected: 2}) {
		t.Fatalf("refused after answering: %+v %v", got, err)
	}
	got, err = s.Send(context.Background(), events(2))
	if err != nil || got != (SendResult{Errors: maxAttempts, Retries: maxAttempts - 1, Lost: 2}) {
		t.Fatalf("failing platform: %+v %v", got, err)
	}
}
