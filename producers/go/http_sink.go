package main

// The HTTP sink: POST {target}/events as NDJSON with an Idempotency-Key per batch, reused when the
// batch is retried (connection errors, 408, 429, 5xx), so a retried batch is never stored twice.

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"
)

const (
	maxAttempts  = 8 // about 11 s of retrying with the backoff below
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 5 * time.Second
)

// SendResult is what a sink did with one batch.
type SendResult struct {
	Accepted, Rejected int64
	Errors, Retries    int64 // failed attempts (connection errors, 408/429/5xx), and retries
	Lost               int64 // events of a batch given up after the last attempt (Kafka: failed)
	Duplicates         int64 // batches the platform had already stored
}

func (r *SendResult) add(o SendResult) {
	r.Accepted += o.Accepted
	r.Rejected += o.Rejected
	r.Errors += o.Errors
	r.Retries += o.Retries
	r.Lost += o.Lost
	r.Duplicates += o.Duplicates
}

// Sink is where batches go.
type Sink interface {
	Name() string
	Send(ctx context.Context, batch []Event) (SendResult, error)
	// Close waits for what is still in flight and returns what it reports.
	Close() SendResult
}

// ErrUnreachable means the target could not be reached (or refused everything) before it ever
// answered: a start-up error, not a transient one.
var ErrUnreachable = errors.New("target unreachable")

// HTTPSink posts to a running platform.
type HTTPSink struct {
	url      string
	client   *http.Client
	answered bool
	problems *problems
	sleep    func(context.Context, time.Duration) error
}

// NewHTTPSink posts to {target}/events.
func NewHTTPSink(target string, p *problems) *HTTPSink {
	return &HTTPSink{
		url:      strings.TrimRight(target, "/") + "/events",
		client:   &http.Client{Timeout: 30 * time.Second},
		problems: p,
		sleep:    sleepCtx,
	}
}

func (s *HTTPSink) Name() string { return "http" }

func (s *HTTPSink) Close() SendResult { return SendResult{} }

func (s *HTTPSink) Send(ctx context.Context, batch []Event) (SendResult, error) {
	body := ndjson(batch)
	// Random, never derived from --seed: the platform dedupes by it.
	key := uuid4()
	n := int64(len(batch))
	var result SendResult
	backoff := firstBackoff
	for attempt := 1; ; attempt++ {
		kind, report, why := s.post(ctx, body, key)
		switch {
		case kind == stored:
			s.answered = true
			result.Accepted = report.Accepted
			result.Rejected = int64(len(report.Rejected))
			if report.Duplicate {
				result.Duplicates = 1
			}
			for _, r := range report.Rejected {
				s.problems.add("event %d of a batch was rejected: %s", r.Line, r.Reason)
			}
			return result, nil
		case kind == refused && !s.answered:
			return result, fmt.Errorf("%w: %s refused the events: %s", ErrUnreachable, s.url, why)
		case kind == refused:
			result.Rejected = n
			s.problems.add("a batch of %d events was refused: %s", n, why)
			return result, nil
		case kind == unreachable && !s.answered:
			return result, fmt.Errorf("%w: cannot reach %s: %s; is 'streampulse run' running?", ErrUnreachable, s.url, why)
		}
		s.answered = true
		result.Errors++
		if attempt == maxAttempts {
			result.Lost = n
			s.problems.add("gave up on a batch of %d events after %d attempts: %s", n, attempt, why)
			return result, nil
		}
		result.Retries++
		// Jitter keeps several producers from retrying in lockstep against a busy platform.
		if err := s.sleep(ctx, time.Duration(float64(backoff)*(1+0.5*rand.Float64()))); err != nil {
			result.Lost = n
			return result, err
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

type outcome int

const (
	stored outcome = iota
	failed
	unreachable
	refused
)

type report struct {
	Accepted  int64 `json:"accepted"`
	Duplicate bool  `json:"duplicate"`
	Rejected  []struct {
		Line   int64  `json:"line"`
		Reason string `json:"reason"`
	} `json:"rejected"`
	Detail *string `json:"detail"`
}

// post is one attempt.
func (s *HTTPSink) post(ctx context.Context, body []byte, key string) (outcome, report, string) {
	var rep report
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return refused, rep, err.Error()
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", key)
	resp, err := s.client.Do(req)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return unreachable, rep, err.Error()
		}
		// Reset, closed early or timed out after connecting: the target exists, retry.
		return failed, rep, err.Error()
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	status := resp.StatusCode
	var fields map[string]json.RawMessage
	isObject := json.Unmarshal(text, &fields) == nil
	_, hasAccepted := fields["accepted"]
	if isObject {
		_ = json.Unmarshal(text, &rep)
	}
	// A 200, or a 400 that stored part of the batch: both say how many were accepted.
	if hasAccepted && (status/100 == 2 || status/100 == 4) {
		return stored, rep, ""
	}
	why := fmt.Sprintf("%d: %s", status, detail(rep, string(text)))
	switch {
	case status/100 == 2:
		return failed, rep, "unexpected answer to a stored batch (" + why + ")"
	case status == 408 || status == 429 || status >= 500:
		return failed, rep, why
	default:
		return refused, rep, why
	}
}

// detail is the `detail` of an RFC 9457 problem body, or the start of whatever else the body is.
func detail(rep report, text string) string {
	if rep.Detail != nil {
		return *rep.Detail
	}
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return "(empty answer)"
	case len(text) > 200:
		return text[:200] + "..."
	}
	return text
}

func ndjson(batch []Event) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // one object and a newline per event
	for i := range batch {
		_ = enc.Encode(&batch[i]) // plain strings, numbers and maps cannot fail to encode
	}
	return buf.Bytes()
}

func uuid4() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
