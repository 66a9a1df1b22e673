package resilience_test

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-ref/strata/libs/resilience"
)

var errDown = errors.New("dependency down")

// TestBreakerLifecycle walks closed -> open -> (fast fallback) -> half-open
// -> closed on a fake clock: synctest's time only moves when every goroutine
// in the bubble is blocked, so the delays are exact and the test is instant.
func TestBreakerLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m := resilience.NewMetrics(reg)
		cb := resilience.NewBreaker[string](resilience.BreakerConfig{
			Dependency: "analytics", FailureRate: 0.5, MinExecutions: 4, Period: 10 * time.Second,
			Delay: 5 * time.Second, SuccessThreshold: 2,
		}, m, slog.New(slog.NewJSONHandler(io.Discard, nil)))
		exec := failsafe.With[string](cb)
		calls := 0
		healthy := false
		dependency := func() (string, error) {
			calls++
			if healthy {
				return "fresh", nil
			}
			return "", errDown
		}
		call := func() (string, error) {
			return resilience.Fallback(m, "analytics.stats", func() (string, error) { return exec.Get(dependency) },
				func(error) (string, error) { return "cached", nil })
		}
		state := func() float64 { return testutil.ToFloat64(m.StateGauge("analytics")) }

		// Closed: failures below the execution threshold keep it closed.
		for range 3 {
			if v, _ := call(); v != "cached" {
				t.Fatalf("fallback not used: %q", v)
			}
		}
		if !cb.IsClosed() || state() != 0 {
			t.Fatalf("open after 3 of 4 required executions: %s", cb.State())
		}
		// The fourth failure reaches 4 executions at 100 % failures: open.
		call()
		if !cb.IsOpen() || state() != 2 {
			t.Fatalf("state after threshold = %s", cb.State())
		}
		// Open: calls fail fast, the dependency is not touched, the fallback answers.
		before := calls
		start := time.Now()
		v, err := call()
		if v != "cached" || err != nil || calls != before || time.Since(start) != 0 {
			t.Fatalf("open breaker: %q %v, dependency called %d times, took %s", v, err, calls-before, time.Since(start))
		}
		if _, err := exec.Get(dependency); !errors.Is(err, circuitbreaker.ErrOpen) {
			t.Fatalf("open breaker error = %v", err)
		}
		// After the delay one trial call is let through: half-open.
		time.Sleep(5 * time.Second)
		healthy = true
		if v, _ := call(); v != "fresh" || !cb.IsHalfOpen() || state() != 1 {
			t.Fatalf("after the delay: %q, state %s", v, cb.State())
		}
		// SuccessThreshold trial successes close it.
		if v, _ := call(); v != "fresh" || !cb.IsClosed() || state() != 0 {
			t.Fatalf("after successes: %q, state %s", v, cb.State())
		}
		if got := testutil.ToFloat64(m.FallbackCounter("analytics.stats")); got != 5 {
			t.Fatalf("fallbacks counted = %v, want 5", got)
		}
	})
}

func TestRejectionsNeverTripTheBreaker(t *testing.T) {
	m := resilience.NewMetrics(prometheus.NewRegistry())
	cb := resilience.NewBreaker[any](resilience.BreakerConfig{Dependency: "x", MinExecutions: 2}, m, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	exec := failsafe.With[any](cb)
	for range 20 {
		_ = exec.Run(func() error { return resilience.ErrRejected })
	}
	if !cb.IsClosed() {
		t.Fatal("limiter rejections opened the breaker")
	}
}
