package scenario

import (
	"math"
	"strings"
	"testing"

	"github.com/strata-ref/strata/loadtest/internal/engine"
)

func TestBoundedMemory(t *testing.T) {
	sec := func(step string, rss, goroutines float64) engine.Second {
		return engine.Second{Step: step, Gauges: map[string]float64{"ledger rss": rss, "ledger goroutines": goroutines}}
	}
	run := func(at10, after float64) engine.Summary { // ledger RSS at 10x, goroutines at the end
		return engine.Summary{Seconds: []engine.Second{
			sec("0.7x", 30, 40), sec("0.7x", 31, 42), sec("2.0x", 50, 300), sec("4.0x", 80, 900), sec("4.0x", 90, 950),
			sec("10.0x", at10, 1000), sec("0.7x after", 95, 500), sec("0.7x after", 92, after),
		}}
	}
	for _, tc := range []struct {
		name        string
		at10, after float64
		ok          bool
	}{
		{"under the limit and back", 250, 60, true}, // 60 <= 2*42+50
		{"over the limit", 300, 60, false},
		{"goroutines left behind", 100, 200, false}, // 200 > 134
	} {
		ok, detail, sampled := boundedMemory(run(tc.at10, tc.after))
		if !sampled || ok != tc.ok || !strings.Contains(detail, "ledger RSS 31/90/") {
			t.Errorf("%s: ok=%v sampled=%v detail=%q, want ok=%v", tc.name, ok, sampled, detail, tc.ok)
		}
	}
	if _, _, sampled := boundedMemory(engine.Summary{Seconds: []engine.Second{{Step: "4.0x"}}}); sampled {
		t.Error("a run without memory samples claims a memory check")
	}
}

func TestDurationsQuantile(t *testing.T) {
	before := durations{0.001: 10, 0.01: 10, 0.1: 10, math.Inf(1): 10}
	after := durations{0.001: 10 + 980, 0.01: 10 + 990, 0.1: 10 + 1000, math.Inf(1): 10 + 1000}
	p99, n := after.minus(before).quantile(0.99)
	if n != 1000 || p99 <= 1 || p99 > 10.001 { // the 990th of 1000 is in (1 ms, 10 ms]
		t.Errorf("p99 %.2f ms of %v, want in (1, 10] of 1000", p99, n)
	}
	if p, _ := (durations{}).quantile(0.99); p != 0 {
		t.Errorf("empty: %v", p)
	}
}
