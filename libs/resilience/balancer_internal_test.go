package resilience

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func testBalancer(t *testing.T, n int, cfg EjectionConfig) *balancer {
	t.Helper()
	bases := []string{"https://127.0.0.1:1", "https://127.0.0.1:2", "https://127.0.0.1:3"}[:n]
	b, err := newBalancer("dep", bases, cfg, NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A retry never goes back to a replica the call already tried while
// another one is left, whatever the round-robin position.
func TestPickSkipsTriedReplicas(t *testing.T) {
	b := testBalancer(t, 3, EjectionConfig{})
	now := time.Now()
	for i := range 30 {
		tried := map[*endpoint]bool{b.eps[i%3]: true}
		if e := b.pick(tried, now); tried[e] {
			t.Fatalf("pick %d returned the tried replica %s", i, e.label)
		}
		tried = map[*endpoint]bool{b.eps[0]: true, b.eps[1]: true}
		if e := b.pick(tried, now); e != b.eps[2] {
			t.Fatalf("pick %d returned %s, want the one not tried", i, e.label)
		}
	}
	all := map[*endpoint]bool{b.eps[0]: true, b.eps[1]: true, b.eps[2]: true}
	if b.pick(all, now) == nil {
		t.Fatal("no replica once all were tried")
	}
}

// Ejection: a dial error at once, other failures after Failures in a row;
// the back-off doubles per consecutive ejection up to MaxEjection; when
// all are ejected the one back soonest is still tried; a success resets.
func TestEjectionBackoff(t *testing.T) {
	b := testBalancer(t, 2, EjectionConfig{Failures: 2, BaseEjection: time.Second, MaxEjection: 3 * time.Second})
	a, other := b.eps[0], b.eps[1]
	now := time.Now()
	b.failed(a, false, now, nil)
	if !a.until.IsZero() {
		t.Fatal("ejected after one soft failure of two")
	}
	b.failed(a, false, now, nil)
	if got := a.until.Sub(now); got != time.Second {
		t.Fatalf("first ejection %s, want 1s", got)
	}
	for range 10 {
		if b.pick(nil, now) != other {
			t.Fatal("an ejected replica was picked while another is healthy")
		}
	}
	now = now.Add(time.Second)
	b.failed(a, true, now, nil) // back on probation, refused again: 2 s
	if got := a.until.Sub(now); got != 2*time.Second {
		t.Fatalf("second ejection %s, want 2s", got)
	}
	b.failed(a, true, now.Add(time.Second), nil) // still ejected: concurrent failures do not stack
	if got := a.until.Sub(now); got != 2*time.Second {
		t.Fatalf("ejection stacked while already ejected: %s", got)
	}
	now = now.Add(2 * time.Second)
	b.failed(a, true, now, nil)
	if got := a.until.Sub(now); got != 3*time.Second {
		t.Fatalf("third ejection %s, want the 3s cap", got)
	}
	b.failed(other, true, now, nil) // both out: the one back first is tried
	if e := b.pick(nil, now); e != other {
		t.Fatalf("all ejected: picked %s, want the one whose ejection ends first", e.label)
	}
	b.succeeded(a)
	if !a.until.IsZero() || a.ejections != 0 {
		t.Fatal("a success did not reset the replica")
	}
}
