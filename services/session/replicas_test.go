package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/testenv"
)

// TestCallerKeepsSucceedingWhileAReplicaStops runs two session replicas
// and calls them as auth does, through the resilient client over both
// (STRATA_SESSION_URL with two URLs): creating sessions (a POST without
// Idempotency-Key, never retried) and reading them back. One replica is
// stopped mid-run; no call fails, and the client marks it down.
func TestCallerKeepsSucceedingWhileAReplicaStops(t *testing.T) {
	st, env, _ := testEnv(t)
	a := testenv.StartService(t, run, env)
	b := testenv.StartService(t, run, env)
	m := resilience.NewMetrics(prometheus.NewRegistry())
	c := resilience.NewClient(resilience.ClientConfig{Dependency: "session", BaseURL: testenv.URL(a.Internal) + "," + testenv.URL(b.Internal),
		TLS: st.Source(t, "auth").ClientConfig(mtls.ID("session")), Timeout: 2 * time.Second,
		// Short ejections, so the stopped replica keeps being tried and
		// every refused connection must be failed over.
		Ejection: resilience.EjectionConfig{BaseEjection: 50 * time.Millisecond, MaxEjection: 50 * time.Millisecond}}, m, slog.New(slog.NewJSONHandler(io.Discard, nil)))

	var call func(method, path string, body any, want int) error
	call = func(method, path string, body any, want int) error {
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequestWithContext(context.Background(), method, path, rd)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return &statusError{resp.StatusCode, string(b)}
		}
		if method == http.MethodPost {
			var s struct{ SID string }
			if err := json.Unmarshal(b, &s); err != nil || s.SID == "" {
				return &statusError{resp.StatusCode, string(b)}
			}
			return call(http.MethodGet, "/internal/sessions/"+s.SID, nil, http.StatusOK)
		}
		return nil
	}

	var calls, failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := map[string]any{"user_id": "lb-user", "family_id": "fam-lb", "expires_at": time.Now().Add(time.Hour)}
				if err := call(http.MethodPost, "/internal/sessions", body, http.StatusCreated); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				calls.Add(1)
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	before := calls.Load()
	if err := b.Stop(); err != nil {
		t.Fatalf("stop replica b: %v", err)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of %d calls failed while a replica stopped; first: %v", failures.Load(), calls.Load(), firstErr.Load())
	}
	if before < 10 || calls.Load()-before < 10 {
		t.Fatalf("too few calls to judge: %d before the stop, %d after", before, calls.Load()-before)
	}
	if up := testutil.ToFloat64(m.EndpointUp("session", b.Internal)); up != 0 {
		t.Fatalf("strata_endpoint_up of the stopped replica = %v", up)
	}
	if st := c.State().String(); st != "closed" {
		t.Fatalf("the dependency breaker is %s with one replica of two up", st)
	}
}

type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string { return http.StatusText(e.status) + ": " + e.body }
