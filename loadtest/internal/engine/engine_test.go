package engine_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/engine"
)

func TestOfferedLoadDoesNotWaitForTheServer(t *testing.T) {
	// A server that handles one request at a time, 10 ms each: 100/s.
	var mu sync.Mutex
	slow := func(ctx context.Context) engine.Result {
		mu.Lock()
		defer mu.Unlock()
		time.Sleep(10 * time.Millisecond)
		return engine.Result{Status: 200}
	}
	sum := engine.Run(context.Background(), engine.Config{
		Steps:  []engine.Step{{Rate: 200, Duration: 2 * time.Second, Label: "2x"}},
		Target: slow,
	})
	// Open model: twice the capacity is offered regardless of the backlog.
	if sum.Offered < 390 || sum.Offered > 410 {
		t.Fatalf("offered %d, want about 400", sum.Offered)
	}
	// The queue grows, and latency measured from the due time shows it: by
	// the last second requests wait over a second behind a 10 ms service
	// time, and more than they did in the first.
	last := sum.Seconds[len(sum.Seconds)-1]
	first := sum.Seconds[0]
	if last.P50 < 1.5*first.P50 || last.P99 < 1000 {
		t.Fatalf("latency did not show the backlog: first p50 %.1f ms, last p99 %.1f ms", first.P50, last.P99)
	}
	if sum.Served != sum.Offered {
		t.Fatalf("served %d of %d", sum.Served, sum.Offered)
	}
}

func TestOutcomesAndRetryAfter(t *testing.T) {
	var n atomic.Int64
	target := func(ctx context.Context) engine.Result {
		switch i := n.Add(1); {
		case i%4 == 0:
			return engine.Result{Status: 429, RetryAfter: 100 * time.Millisecond, Kind: "read"}
		case i%4 == 1:
			return engine.Result{Status: 503, Kind: "read"}
		case i%4 == 2:
			return engine.Result{Status: 500, Kind: "read", Detail: "boom"}
		default:
			return engine.Result{Status: 201, Kind: "read"}
		}
	}
	sum := engine.Run(context.Background(), engine.Config{
		Steps: []engine.Step{{Rate: 100, Duration: time.Second}}, Target: target, RetryOn429: true,
	})
	if sum.Retried == 0 || sum.Shed == 0 || sum.Unavailable == 0 || sum.Failed == 0 || sum.Served == 0 {
		t.Fatalf("summary %+v", sum)
	}
	total := sum.Served + sum.Shed + sum.Unavailable + sum.Failed
	if total != sum.Offered+sum.Retried {
		t.Fatalf("outcomes %d != offered %d + retried %d", total, sum.Offered, sum.Retried)
	}
	if sum.ByKind["read"][engine.Served] != sum.Served {
		t.Fatalf("by kind %v", sum.ByKind)
	}
	// What clients saw: failures and 503s, never 429s or successes, capped.
	if want := min(sum.Failed+sum.Unavailable, engine.MaxFailures); int64(len(sum.Failures)) != want {
		t.Fatalf("%d failures kept, want %d", len(sum.Failures), want)
	}
	var boom bool
	for _, f := range sum.Failures {
		if f.Status != 500 && f.Status != 503 {
			t.Fatalf("failure sample %v", f)
		}
		boom = boom || f.Detail == "boom"
	}
	if !boom {
		t.Fatalf("no failure kept its detail: %v", sum.Failures)
	}
	var b strings.Builder
	sum.WriteFailures(&b, "  ", 2)
	if lines := strings.Split(strings.TrimSpace(b.String()), "\n"); len(lines) != 3 ||
		!strings.Contains(lines[0], "client saw at ") || !strings.Contains(lines[2], "more kept") {
		t.Fatalf("printed failures:\n%s", b.String())
	}
}

func TestGeneratorSaturationIsReported(t *testing.T) {
	stall := func(ctx context.Context) engine.Result {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
		return engine.Result{Status: 200}
	}
	sum := engine.Run(context.Background(), engine.Config{
		Steps: []engine.Step{{Rate: 100, Duration: 500 * time.Millisecond}}, Target: stall, MaxInFlight: 10,
	})
	if sum.Dropped < 30 || sum.Served != 10 {
		t.Fatalf("dropped %d served %d", sum.Dropped, sum.Served)
	}
}

func TestStepsAndGauges(t *testing.T) {
	ok := func(context.Context) engine.Result { return engine.Result{Status: 200} }
	var lines atomic.Int64
	sum := engine.Run(context.Background(), engine.Config{
		Steps:    []engine.Step{{Rate: 50, Duration: time.Second, Label: "a"}, {Rate: 150, Duration: time.Second, Label: "b"}},
		Target:   ok,
		Sample:   func(context.Context) map[string]float64 { return map[string]float64{"breaker": 2} },
		OnSecond: func(engine.Second) { lines.Add(1) },
	})
	if len(sum.Steps) != 2 || sum.Steps[0].Goodput < 45 || sum.Steps[1].Goodput < 140 {
		t.Fatalf("steps %+v", sum.Steps)
	}
	if lines.Load() != int64(len(sum.Seconds)) || len(sum.Seconds) < 2 || sum.Seconds[1].Gauges["breaker"] != 2 {
		t.Fatalf("seconds %+v", sum.Seconds)
	}
}

func TestSecondsKeepTheirStepAndLateAnswers(t *testing.T) {
	var n atomic.Int64
	target := func(ctx context.Context) engine.Result {
		if n.Add(1) == 1 {
			time.Sleep(2500 * time.Millisecond) // answers after its second was printed
		}
		return engine.Result{Status: 200}
	}
	sum := engine.Run(context.Background(), engine.Config{
		Steps:  []engine.Step{{Rate: 20, Duration: time.Second, Label: "a"}, {Rate: 20, Duration: time.Second, Label: "b"}},
		Target: target,
	})
	if len(sum.Seconds) != 2 || sum.Seconds[0].Step != "a" || sum.Seconds[1].Step != "b" {
		t.Fatalf("seconds %+v", sum.Seconds)
	}
	// The slow answer counts in its second and in the totals.
	if sum.Seconds[0].Served != sum.Seconds[0].Offered || sum.Served != sum.Offered {
		t.Fatalf("served %d of %d (first second %d of %d)", sum.Served, sum.Offered, sum.Seconds[0].Served, sum.Seconds[0].Offered)
	}
	// From the send time is never longer than from the due time.
	if sum.P99Sent > sum.P99 || sum.Seconds[0].SentP99 > sum.Seconds[0].P99 || sum.Seconds[0].P99 < 2000 {
		t.Fatalf("p99 %.1f ms from due, %.1f ms from send", sum.P99, sum.P99Sent)
	}
}

// Requests the client refused itself are counted apart from the server's
// 429s, per second, per step and in the run, and are never retried.
func TestThrottledCountedApart(t *testing.T) {
	var n atomic.Int64
	target := func(ctx context.Context) engine.Result {
		if n.Add(1)%2 == 0 {
			return engine.Result{Throttled: true, Kind: "read"}
		}
		return engine.Result{Status: 200, Kind: "read"}
	}
	sum := engine.Run(context.Background(), engine.Config{Steps: []engine.Step{{Rate: 100, Duration: time.Second}},
		Target: target, RetryOn429: true})
	if sum.Throttled != 50 || sum.Served != 50 || sum.Shed != 0 || sum.Retried != 0 || sum.Failed != 0 {
		t.Fatalf("throttled %d served %d shed %d retried %d failed %d; want 50/50 and nothing else",
			sum.Throttled, sum.Served, sum.Shed, sum.Retried, sum.Failed)
	}
	if sum.Steps[0].ThrottledRate != 50 || sum.ByKind["read"][engine.Throttled] != 50 {
		t.Fatalf("step throttled rate %.0f, by kind %v", sum.Steps[0].ThrottledRate, sum.ByKind)
	}
}
