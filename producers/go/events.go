package main

// The seeded synthetic event stream: the value model of testdata/gen_events.py and
// producers/send_events.py (per-metric baseline, a few negative, slow sinusoid, gaussian noise;
// sparse and periodically silent metrics; spike episodes of 5-20x for 1-5 s). No clock and no
// I/O: the caller passes the wall-clock instant, so the same seed and instants give the same events.

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

const (
	lateMinMs = 30_000
	lateMaxMs = 120_000
	twoPi     = 2 * math.Pi
)

// Event is one measurement as StreamPulse reads it.
type Event struct {
	MetricID string            `json:"metric_id"`
	TS       int64             `json:"ts"`
	Value    float64           `json:"value"`
	Tags     map[string]string `json:"tags"`
}

type metric struct {
	name, host        string
	sparse            bool
	gap               *gap
	base, amp, period float64
	phase, sigma      float64
}

// gap makes a metric silent while (t + phase) % cycle < off.
type gap struct{ cycle, off, phase int64 }

// Episode is a spike: the values of one metric with event times in [Start, End) are multiplied by
// Factor.
type Episode struct {
	Metric     int
	Start, End int64
	Factor     float64
}

// GeneratorStats counts what the stream injected.
type GeneratorStats struct {
	Events, Late, Spiked, Episodes int64
}

// Generator produces the events; see the file comment.
type Generator struct {
	rng              *rand.Rand
	metrics          []metric
	cumulative       []float64 // pick weights: sparse metrics 0.02, others 1
	outOfOrderMs     int64
	lateFraction     float64
	spikeProbability float64
	episodes         []Episode
	lastNowMs        *int64
	// Latest is the episode the last NextBatch started, if any.
	Latest *Episode
	Stats  GeneratorStats
}

// GeneratorConfig holds the stream's parameters (the producer's flags).
type GeneratorConfig struct {
	Metrics          int
	Seed             uint64
	OutOfOrderMs     int64
	LateFraction     float64
	SpikeProbability float64
}

// NewGenerator draws every metric's parameters from the seed.
func NewGenerator(c GeneratorConfig) *Generator {
	const hosts, sparseFraction, gappyFraction = 50, 0.1, 0.1
	g := &Generator{
		rng:              rand.New(rand.NewPCG(c.Seed, c.Seed^0x5eed)),
		outOfOrderMs:     max(0, c.OutOfOrderMs),
		lateFraction:     c.LateFraction,
		spikeProbability: c.SpikeProbability,
	}
	r := g.rng.Float64
	total := 0.0
	for i := range max(1, c.Metrics) {
		m := metric{
			name: fmt.Sprintf("metric_%05d", i),
			host: fmt.Sprintf("host-%03d", int(r()*hosts)),
		}
		u := r()
		switch {
		case u < sparseFraction:
			m.sparse = true
		case u < sparseFraction+gappyFraction:
			cycle := 20_000 + int64(r()*40_000)
			m.gap = &gap{cycle: cycle, off: 6_000 + int64(r()*14_000), phase: int64(r() * float64(cycle))}
		}
		m.base = 10 + r()*990
		if r() < 0.05 {
			m.base = -m.base
		}
		m.amp = math.Abs(m.base) * 0.1 * r()
		m.period = 60_000 + r()*540_000
		m.phase = r() * twoPi // so metrics do not all peak together
		m.sigma = math.Abs(m.base)*0.02 + 0.5
		g.metrics = append(g.metrics, m)
		if m.sparse {
			total += 0.02
		} else {
			total += 1
		}
		g.cumulative = append(g.cumulative, total)
	}
	return g
}

// NextBatch returns the next n events as seen at nowMs (epoch ms).
func (g *Generator) NextBatch(nowMs int64, n int) []Event {
	g.maybeStartEpisode(nowMs)
	batch := make([]Event, 0, n)
	for range n {
		i := g.pickMetric(nowMs)
		var ts int64
		if g.rng.Float64() < g.lateFraction {
			ts = nowMs - lateMinMs - g.drawMs(lateMaxMs-lateMinMs)
			g.Stats.Late++
		} else {
			ts = nowMs - g.drawMs(g.outOfOrderMs)
		}
		m := &g.metrics[i]
		v := m.base + m.amp*math.Sin(twoPi*float64(ts)/m.period+m.phase)
		// Box-Muller; 1 - u1 is in (0, 1], so the logarithm is finite.
		u1, u2 := g.rng.Float64(), g.rng.Float64()
		v += m.sigma * math.Sqrt(-2*math.Log(1-u1)) * math.Cos(twoPi*u2)
		for _, e := range g.episodes {
			if e.Metric == i && e.Start <= ts && ts < e.End {
				v *= e.Factor
				g.Stats.Spiked++
				break
			}
		}
		batch = append(batch, Event{
			MetricID: m.name,
			TS:       ts,
			Value:    math.Round(v*1000) / 1000,
			Tags:     map[string]string{"host": m.host},
		})
	}
	g.Stats.Events += int64(n)
	return batch
}

// MetricName is the id of metric i.
func (g *Generator) MetricName(i int) string { return g.metrics[i].name }

func (g *Generator) maybeStartEpisode(nowMs int64) {
	// Chance 1 - (1 - p)^seconds, so episodes per second do not depend on the batch rate; a long
	// stall counts as one minute at most, not as a burst of episodes.
	elapsed := int64(0)
	if g.lastNowMs != nil {
		elapsed = min(max(nowMs-*g.lastNowMs, 0), 60_000)
	}
	g.lastNowMs = &nowMs
	g.Latest = nil
	chance := 1 - math.Pow(1-g.spikeProbability, float64(elapsed)/1000)
	if g.rng.Float64() < chance {
		i := g.pickMetric(nowMs)
		length := 1_000 + int64(g.rng.Float64()*4_000)
		e := Episode{Metric: i, Start: nowMs, End: nowMs + length, Factor: 5 + g.rng.Float64()*15}
		g.episodes = append(g.episodes, e)
		g.Latest = &e
		g.Stats.Episodes++
	}
	// No event is older than the late bound, so older episodes can no longer apply.
	horizon := nowMs - lateMaxMs - g.outOfOrderMs
	kept := g.episodes[:0]
	for _, e := range g.episodes {
		if e.End >= horizon {
			kept = append(kept, e)
		}
	}
	g.episodes = kept
}

// pickMetric is a weighted draw of a metric that is not silent at nowMs (bounded rejection
// sampling).
func (g *Generator) pickMetric(nowMs int64) int {
	total := g.cumulative[len(g.cumulative)-1]
	last := len(g.metrics) - 1
	i := 0
	for range 64 {
		x := g.rng.Float64() * total
		i = min(sort.SearchFloat64s(g.cumulative, x), last)
		gp := g.metrics[i].gap
		if gp == nil || (nowMs+gp.phase)%gp.cycle >= gp.off {
			break
		}
	}
	return i
}

// drawMs is a whole number of milliseconds, uniform in [0, maxMs].
func (g *Generator) drawMs(maxMs int64) int64 {
	return min(int64(g.rng.Float64()*float64(maxMs+1)), maxMs)
}
