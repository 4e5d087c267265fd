package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// brokers is the Go side of the tests' one rule for servers (crates/testkit/src/env.rs): without
// STREAMPULSE_TEST_KAFKA_BROKERS the test skips saying what to set, unless CI is set: then it
// fails, so a broker that did not start never passes as a skipped test.
func brokers(t *testing.T) []string {
	const env = "STREAMPULSE_TEST_KAFKA_BROKERS"
	value := strings.TrimSpace(os.Getenv(env))
	if value == "" {
		reason := env + " is not set; set it to a Kafka broker (host:port; deploy/local/services.sh start kafka prints one) to run this test"
		if _, ci := os.LookupEnv("CI"); ci {
			t.Fatalf("CI must run this test, but %s", reason)
		}
		t.Skip(reason)
	}
	return strings.Split(value, ",")
}

// A fixed number of events to a fresh 3-partition topic through the producer's Kafka sink: read
// back, the topic holds exactly the records the sink reported produced, each a valid event keyed
// by its metric_id, every metric in the partition librdkafka's partitioner gives it.
func TestKafkaSinkKeysEveryEventByMetricAndCountsWhatWasProduced(t *testing.T) {
	seeds := brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := fmt.Sprintf("go-producer-%d", time.Now().UnixNano())
	const partitions = 3
	created, err := kadm.NewClient(admin).CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil || created.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, created.Err)
	}

	sink, err := NewKafkaSink(ctx, seeds, topic, &problems{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g := generator(7, 0.01, 0.5)
	const count = 3000
	var result SendResult
	for i := range count / 100 {
		r, err := sink.Send(ctx, g.NextBatch(time.Now().UnixMilli()+int64(i), 100))
		if err != nil {
			t.Fatal(err)
		}
		result.add(r)
	}
	result.add(sink.Close())
	if result.Accepted != count || result.Lost != 0 {
		t.Fatalf("produced %d, failed %d, of %d", result.Accepted, result.Lost, count)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	partitionOf := map[string]int32{}
	read := 0
	for read < count {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", read, count, err)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			read++
			var e Event
			if err := json.Unmarshal(r.Value, &e); err != nil || e.MetricID == "" || e.Tags["host"] == "" {
				t.Fatalf("record %d@%d is not an event (%v): %s", r.Partition, r.Offset, err, r.Value)
			}
			if string(r.Key) != e.MetricID {
				t.Fatalf("key %q of an event of %s", r.Key, e.MetricID)
			}
			if want := int32(RdkafkaHasher(r.Key, partitions)); r.Partition != want {
				t.Fatalf("%s in partition %d, librdkafka's partitioner gives %d", e.MetricID, r.Partition, want)
			}
			partitionOf[e.MetricID] = r.Partition
		})
	}
	if read != count {
		t.Fatalf("the topic holds %d records, %d were produced", read, count)
	}
	used := map[int32]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	if len(used) < 2 {
		t.Fatalf("40 metrics all in one partition: %v", partitionOf)
	}
}
