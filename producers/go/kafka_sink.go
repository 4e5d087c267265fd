package main

// The Kafka sink: one JSON event per record, keyed by metric_id, through franz-go's idempotent
// producer (a record retried after a lost acknowledgement is not written twice).
//
// Records are partitioned as librdkafka's default partitioner does (CRC-32 of the key modulo the
// partition count), the one `streampulse produce --kafka` and producers/send_events.py use: all
// events of a metric land in the same partition whichever of the three producers sent them. (The
// Java client's murmur2 would put a metric elsewhere, and its events in two partitions.)

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	kafkaConnectTimeout = 10 * time.Second // to fetch metadata at start
	kafkaRecordTimeout  = 30 * time.Second // a record not acknowledged by then is reported failed
	kafkaFlushTimeout   = 60 * time.Second // the final flush; what is still queued after it is unconfirmed
)

// KafkaSink produces to a topic. Produce only queues; the broker's acknowledgements arrive later,
// and each Send returns those that arrived since the previous one.
type KafkaSink struct {
	client   *kgo.Client
	topic    string
	problems *problems
	tracer   *Tracer // nil: no traced sends

	mu        sync.Mutex // the counters are updated from the client's goroutines
	delivered int64
	failed    int64
	lastError string
}

// RdkafkaHasher is librdkafka's consistent partitioner: CRC-32 (IEEE) of the key, modulo the
// partition count.
func RdkafkaHasher(key []byte, partitions int) int {
	return int(crc32.ChecksumIEEE(key) % uint32(partitions))
}

// NewKafkaSink connects to the brokers and checks the topic; ErrUnreachable when no broker
// answers.
func NewKafkaSink(ctx context.Context, brokers []string, topic string, p *problems, tracer *Tracer) (*KafkaSink, error) {
	client, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(kgo.PartitionerHasher(RdkafkaHasher))),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordDeliveryTimeout(kafkaRecordTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: kafka client for %v: %v", ErrUnreachable, brokers, err)
	}
	s := &KafkaSink{client: client, topic: topic, problems: p, tracer: tracer}
	ctx, cancel := context.WithTimeout(ctx, kafkaConnectTimeout)
	defer cancel()
	topics, err := kadm.NewClient(client).ListTopics(ctx, topic)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("%w: cannot reach Kafka at %v: %v; is the broker running?", ErrUnreachable, brokers, err)
	}
	detail, ok := topics[topic]
	switch {
	case !ok || detail.Err != nil:
		why := "does not exist"
		if ok {
			why = detail.Err.Error()
		}
		logf("topic %q on %v: %s; producing anyway (the broker may create it on first use; "+
			"'streampulse topics create' creates the configured topics)", topic, brokers, why)
	default:
		logf("producing to topic %q (%d partitions) on %v", topic, len(detail.Partitions), brokers)
	}
	return s, nil
}

func (s *KafkaSink) Name() string { return "kafka" }

func (s *KafkaSink) Send(ctx context.Context, batch []Event) (SendResult, error) {
	for i := range batch {
		value, _ := json.Marshal(&batch[i]) // plain strings, numbers and maps cannot fail to encode
		record := &kgo.Record{Topic: s.topic, Key: []byte(batch[i].MetricID), Value: value}
		if s.tracer.Sample() {
			s.tracer.StartSend(ctx, record, &batch[i])
		}
		// Blocks while the client's buffer is full: the broker sets the pace.
		s.client.Produce(ctx, record, s.onDelivery)
	}
	return s.takeReports(), ctx.Err()
}

func (s *KafkaSink) onDelivery(r *kgo.Record, err error) {
	EndSend(r, err)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.delivered++
		return
	}
	s.failed++
	// A broker that is down fails every record the same way: one line says it.
	if text := err.Error(); text != s.lastError {
		s.lastError = text
		s.problems.add("a record of %s was not delivered: %s", r.Key, text)
	}
}

func (s *KafkaSink) takeReports() SendResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	result := SendResult{Accepted: s.delivered, Lost: s.failed}
	s.delivered, s.failed = 0, 0
	return result
}

// Close is the final flush: it waits for the acknowledgements still due and returns them.
func (s *KafkaSink) Close() SendResult {
	ctx, cancel := context.WithTimeout(context.Background(), kafkaFlushTimeout)
	defer cancel()
	if err := s.client.Flush(ctx); err != nil {
		logf("%d records still unacknowledged after the final flush (counted neither produced nor failed)",
			s.client.BufferedProduceRecords())
	}
	result := s.takeReports()
	s.client.Close()
	return result
}
