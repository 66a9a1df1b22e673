package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// BenchmarkRejection is the cost of one 429 in the shedding middleware
// while the limiter and its queue are full, in the handler in front of the
// router: it must stay far below a served request's.
func BenchmarkRejection(b *testing.B) {
	s := newShedder(ShedConfig{MinLimit: 1, MaxLimit: 1, InitialLimit: 1, MaxWait: time.Hour}, 0, "public", prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	permit, err := s.limiter.AcquirePermitWithMaxWait(context.Background(), 0)
	if err != nil {
		b.Fatal(err)
	}
	defer permit.Drop()
	// Fill the queue (twice the limit) with waiters that leave at the end.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p, err := s.limiter.AcquirePermitWithMaxWait(ctx, time.Hour); err == nil {
				p.Drop()
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	for s.limiter.Queued() < 2 {
		time.Sleep(time.Millisecond)
	}
	h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusTooManyRequests {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// A request that waited the whole MaxWait for a permit is counted as a
// queue_timeout, not as limit, and gets the precomputed 429.
func TestShedReasons(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newShedder(ShedConfig{MinLimit: 1, MaxLimit: 1, InitialLimit: 1, MaxWait: 30 * time.Millisecond}, 0, "public", reg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	permit, err := s.limiter.AcquirePermitWithMaxWait(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer permit.Drop()
	// The queue takes one waiter beside the permit holder: this one waits.
	h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	start := time.Now()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/v1/x", nil))
	if w.Code != http.StatusTooManyRequests || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("status %d after %s; want 429 after the 30 ms wait", w.Code, time.Since(start))
	}
	if w.Header().Get("Retry-After") != "1" || w.Header().Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(w.Body.String(), `"status":429`) {
		t.Fatalf("429 headers %v body %s", w.Header(), w.Body)
	}
	if got := testutil.ToFloat64(s.shedTimeout); got != 1 {
		t.Fatalf("queue_timeout %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.shedLimit); got != 0 {
		t.Fatalf("limit %v, want 0", got)
	}
}

// A server-sent event stream holds its permit while it runs, but its
// length is not latency: it is neither recorded in the limiter nor in the
// admitted histogram.
func TestStreamsAreNotLatency(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newShedder(ShedConfig{}, 0, "public", reg, slog.New(slog.DiscardHandler))
	h := s.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		time.Sleep(20 * time.Millisecond)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/v1/events", nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "strata_admitted_duration_seconds" && mf.GetMetric()[0].GetHistogram().GetSampleCount() != 0 {
			t.Fatalf("the stream was observed as admitted latency: %v", mf)
		}
	}
	if s.limiter.Inflight() != 0 {
		t.Fatalf("permit still held: %d", s.limiter.Inflight())
	}
}
