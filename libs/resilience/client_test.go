package resilience_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/resilience"
)

type dependency struct {
	srv      *httptest.Server
	hits     atomic.Int64
	canceled atomic.Int64
	handle   func(w http.ResponseWriter, r *http.Request, hit int64)
}

func newDependency(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, hit int64)) *dependency {
	d := &dependency{handle: handle}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.handle(w, r, d.hits.Add(1))
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func client(t *testing.T, d *dependency, cfg resilience.ClientConfig) *resilience.Client {
	cfg.Dependency = "dep"
	cfg.BaseURL = d.srv.URL
	cfg.TLS = d.srv.Client().Transport.(*http.Transport).TLSClientConfig
	return resilience.NewClient(cfg, resilience.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewJSONHandler(io.Discard, nil)))
}

func send(t *testing.T, c *resilience.Client, ctx context.Context, method string, key string) (*http.Response, error) {
	req, _ := http.NewRequestWithContext(ctx, method, "/thing", strings.NewReader(`{"a":1}`))
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.Do(req)
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestSlowDependencyAnswersWithinCallerDeadlineAndCancelsCallee(t *testing.T) {
	d := newDependency(t, nil)
	d.handle = func(w http.ResponseWriter, r *http.Request, _ int64) {
		io.ReadAll(r.Body) // a server notices a closed connection once the body is read
		select {
		case <-r.Context().Done():
			d.canceled.Add(1)
		case <-time.After(5 * time.Second):
		}
	}
	c := client(t, d, resilience.ClientConfig{Timeout: 2 * time.Second})
	m := resilience.NewMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	got, err := resilience.Fallback(m, "dep.read", func() (string, error) {
		_, err := send(t, c, ctx, http.MethodPost, "") // not retried: no key
		return "live", err
	}, func(error) (string, error) { return "fallback", nil })
	took := time.Since(start)
	if got != "fallback" || err != nil {
		t.Fatalf("got %q, %v", got, err)
	}
	if took > 300*time.Millisecond {
		t.Fatalf("answered after %s, past the caller's 300 ms deadline", took)
	}
	deadline := time.Now().Add(2 * time.Second)
	for d.canceled.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the callee never saw the cancellation")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRetriesOnlyWhenSafe(t *testing.T) {
	cases := []struct {
		name, method, key string
		wantHits          int64
	}{
		{"POST without key is sent once", http.MethodPost, "", 1},
		{"POST with Idempotency-Key is retried", http.MethodPost, "k-1", 3},
		{"GET is retried", http.MethodGet, "", 3},
		{"DELETE is retried", http.MethodDelete, "", 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := newDependency(t, func(w http.ResponseWriter, r *http.Request, _ int64) { w.WriteHeader(http.StatusBadGateway) })
			c := client(t, d, resilience.ClientConfig{RetryBudget: 1, Breaker: resilience.BreakerConfig{MinExecutions: 100}})
			resp, err := send(t, c, context.Background(), tc.method, tc.key)
			if err != nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("resp %v, err %v", resp, err)
			}
			if got := d.hits.Load(); got != tc.wantHits {
				t.Fatalf("dependency hit %d times, want %d", got, tc.wantHits)
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for name, header := range map[string]func() string{
		"seconds":   func() string { return "1" },
		"HTTP-date": func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) },
	} {
		t.Run(name, func(t *testing.T) {
			var first time.Time
			var gap time.Duration
			d := newDependency(t, nil)
			d.handle = func(w http.ResponseWriter, r *http.Request, hit int64) {
				if hit == 1 {
					first = time.Now()
					w.Header().Set("Retry-After", header())
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				gap = time.Since(first)
				w.WriteHeader(http.StatusOK)
			}
			c := client(t, d, resilience.ClientConfig{})
			resp, err := send(t, c, context.Background(), http.MethodGet, "")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("resp %v err %v", resp, err)
			}
			if gap < 900*time.Millisecond {
				t.Fatalf("retried after %s, before Retry-After", gap)
			}
		})
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{"0", 0, true},
		{"Sat, 28 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Sat, 28 Nov 2026 11:00:00 GMT", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"", 0, false},
	} {
		h := http.Header{}
		if tc.v != "" {
			h.Set("Retry-After", tc.v)
		}
		got, ok := resilience.RetryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfter(%q) = %s, %v; want %s, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBreakerOpensOn5xxButNotOn429(t *testing.T) {
	status := http.StatusTooManyRequests
	d := newDependency(t, func(w http.ResponseWriter, r *http.Request, _ int64) { w.WriteHeader(status) })
	c := client(t, d, resilience.ClientConfig{Breaker: resilience.BreakerConfig{MinExecutions: 5, Delay: time.Minute}})
	for range 10 {
		send(t, c, context.Background(), http.MethodPost, "")
	}
	if st := c.State().String(); st != "closed" {
		t.Fatalf("429s opened the breaker: %s", st)
	}
	// 503s count: once they are more than half of the window's calls, it opens.
	status = http.StatusServiceUnavailable
	for i := 0; c.State().String() != "open"; i++ {
		if i == 12 {
			t.Fatalf("still %s after 12 x 503 following 10 x 429", c.State())
		}
		send(t, c, context.Background(), http.MethodPost, "")
	}
	hits := d.hits.Load()
	start := time.Now()
	_, err := send(t, c, context.Background(), http.MethodPost, "")
	if !errors.Is(err, resilience.ErrOpen) || d.hits.Load() != hits || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("open breaker: err %v, extra hits %d, took %s", err, d.hits.Load()-hits, time.Since(start))
	}
}

func TestFaultInjection(t *testing.T) {
	if resilience.NewFaults("production") != nil {
		t.Fatal("faults available outside dev")
	}
	f := resilience.NewFaults("dev")
	d := newDependency(t, func(w http.ResponseWriter, r *http.Request, _ int64) { w.WriteHeader(http.StatusOK) })
	c := client(t, d, resilience.ClientConfig{Faults: f, Breaker: resilience.BreakerConfig{MinExecutions: 3, Delay: time.Minute}})
	f.Set("dep", resilience.Fault{ErrorRate: 1})
	for range 3 {
		send(t, c, context.Background(), http.MethodPost, "")
	}
	if d.hits.Load() != 0 || c.State().String() != "open" {
		t.Fatalf("hits %d, state %s", d.hits.Load(), c.State())
	}
	f.Set("dep", resilience.Fault{})
	if err := f.Inject(context.Background(), "dep"); err != nil {
		t.Fatal(err)
	}
}
