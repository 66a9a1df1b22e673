package tradeoffs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/strata-ref/strata/loadtest/internal/engine"
)

// Latency is one operation's measured latency under the fixed-rate phase.
type Latency struct {
	P50, P99 float64 // milliseconds
	OK       int64   // answered with the expected status
	Failed   int64   // anything else (429, 5xx, transport error, wrong status)
}

// op is one kind of request of a store: it sends one request and reports
// whether the answer was the expected one.
type op struct {
	name string
	do   func(ctx context.Context) bool
}

// latencies runs ops under one open-model schedule (engine.Run): rate
// arrivals per second for d, each arrival picking the next op in turn, so
// writes and reads (and two consistency levels) share the same moments and
// the same noise. Latency is recorded per op from send to answer in an HDR
// histogram; at a rate far below capacity the generator sends on time, so
// this equals the engine's due-time latency.
func latencies(ctx context.Context, rate float64, d time.Duration, ops []op) map[string]Latency {
	type acc struct {
		mu         sync.Mutex
		h          *hdr.Histogram
		ok, failed int64
	}
	accs := make([]*acc, len(ops))
	for i := range accs {
		accs[i] = &acc{h: hdr.New(1, 60_000_000, 3)}
	}
	var next atomic.Int64
	engine.Run(ctx, engine.Config{Steps: []engine.Step{{Rate: rate, Duration: d, Label: "fixed"}},
		Target: func(ctx context.Context) engine.Result {
			i := int(next.Add(1)-1) % len(ops)
			start := time.Now()
			ok := ops[i].do(ctx)
			us := max(time.Since(start).Microseconds(), 1)
			a := accs[i]
			a.mu.Lock()
			defer a.mu.Unlock()
			if ok {
				a.ok++
				_ = a.h.RecordValue(us)
				return engine.Result{Status: 200, Kind: ops[i].name}
			}
			a.failed++
			return engine.Result{Status: 500, Kind: ops[i].name}
		}})
	out := map[string]Latency{}
	for i, o := range ops {
		a := accs[i]
		l := Latency{OK: a.ok, Failed: a.failed}
		if a.h.TotalCount() > 0 {
			l.P50, l.P99 = float64(a.h.ValueAtQuantile(50))/1000, float64(a.h.ValueAtQuantile(99))/1000
		}
		out[o.name] = l
	}
	return out
}

// Throughput is a closed-loop phase's result.
type Throughput struct {
	PerSec float64 // expected answers per second
	Failed int64   // anything else (a 429 from the limiter counts here)
}

// saturate runs workers callers in a closed loop, each sending the next
// request as soon as the last one answered, for d (or until do reports the
// work is exhausted), and returns the rate of expected answers: the most
// the service sustains at that concurrency on this machine.
func saturate(ctx context.Context, workers int, d time.Duration, do func(ctx context.Context) (ok, more bool)) Throughput {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				good, more := do(ctx)
				if !more {
					cancel()
					return
				}
				if ctx.Err() != nil && !good {
					return // cut off by the end of the phase, not the server's fault
				}
				if good {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	return Throughput{PerSec: float64(ok.Load()) / el, Failed: failed.Load()}
}

// quantile returns the q-th percentile of sorted ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*q/100+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}
