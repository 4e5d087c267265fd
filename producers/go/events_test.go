package main

import (
	"math"
	"reflect"
	"strings"
	"testing"
)

func generator(seed uint64, late, spikes float64) *Generator {
	return NewGenerator(GeneratorConfig{
		Metrics: 40, Seed: seed, OutOfOrderMs: 3000, LateFraction: late, SpikeProbability: spikes,
	})
}

func TestTheSameSeedAndInstantsGiveTheSameEvents(t *testing.T) {
	a, b, c := generator(7, 0.01, 0.5), generator(7, 0.01, 0.5), generator(8, 0.01, 0.5)
	for i := range 20 {
		now := int64(1_700_000_000_000 + i*100)
		x, y, z := a.NextBatch(now, 50), b.NextBatch(now, 50), c.NextBatch(now, 50)
		if !reflect.DeepEqual(x, y) {
			t.Fatalf("batch %d differs for one seed", i)
		}
		if reflect.DeepEqual(x, z) {
			t.Fatalf("batch %d is the same for two seeds", i)
		}
	}
}

func TestEventsTrailTheClockWithinTheBoundsAndCarryTheirHost(t *testing.T) {
	g := generator(1, 0.02, 0)
	now := int64(1_700_000_000_000)
	hosts := map[string]string{}
	var late int
	for range 100 {
		now += 100
		for _, e := range g.NextBatch(now, 100) {
			behind := now - e.TS
			switch {
			case behind >= 0 && behind <= 3000:
			case behind >= lateMinMs && behind <= lateMaxMs:
				late++
			default:
				t.Fatalf("ts %d is %d ms behind the clock", e.TS, behind)
			}
			if !strings.HasPrefix(e.MetricID, "metric_000") || math.IsNaN(e.Value) || math.IsInf(e.Value, 0) {
				t.Fatalf("bad event %+v", e)
			}
			if h, ok := hosts[e.MetricID]; ok && h != e.Tags["host"] {
				t.Fatalf("%s on hosts %s and %s", e.MetricID, h, e.Tags["host"])
			}
			hosts[e.MetricID] = e.Tags["host"]
		}
	}
	if int64(late) != g.Stats.Late || late < 100 || late > 300 {
		t.Fatalf("%d late events of 10000 at 2 %% (stats say %d)", late, g.Stats.Late)
	}
	if len(hosts) < 30 {
		t.Fatalf("only %d of 40 metrics drawn", len(hosts))
	}
}

func TestASpikeMultipliesItsMetricsValuesDuringTheEpisode(t *testing.T) {
	g := NewGenerator(GeneratorConfig{Metrics: 1, Seed: 3, SpikeProbability: 1})
	now := int64(1_700_000_000_000)
	before := g.NextBatch(now, 200)
	now += 1000
	during := g.NextBatch(now, 200)
	if g.Latest == nil || g.Stats.Episodes != 1 {
		t.Fatalf("a spike starts within a second at probability 1: %+v", g.Stats)
	}
	mean := func(es []Event) float64 {
		s := 0.0
		for _, e := range es {
			s += math.Abs(e.Value)
		}
		return s / float64(len(es))
	}
	spiked := 0
	for _, e := range during {
		if e.TS >= g.Latest.Start {
			spiked++
		}
	}
	if int64(spiked) != g.Stats.Spiked || spiked == 0 {
		t.Fatalf("%d events in the episode, %d counted spiked", spiked, g.Stats.Spiked)
	}
	if ratio := mean(during) / mean(before); ratio < 1.5 {
		t.Fatalf("values rose only %.2fx during a 5-20x spike", ratio)
	}
}
