package resilience_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/strata-ref/strata/libs/resilience"
)

// replicas starts n TLS replicas answering with handle and a client over
// all of them (comma-separated BaseURL, as the services' env vars give it).
func replicas(t *testing.T, n int, cfg resilience.ClientConfig, handle func(i int, w http.ResponseWriter)) ([]*dependency, *resilience.Client, *resilience.Metrics) {
	t.Helper()
	deps := make([]*dependency, n)
	urls := make([]string, n)
	for i := range n {
		deps[i] = newDependency(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
			io.Copy(io.Discard, r.Body)
			handle(i, w)
		})
		urls[i] = deps[i].srv.URL
	}
	m := resilience.NewMetrics(prometheus.NewRegistry())
	cfg.Dependency = "dep"
	cfg.BaseURL = strings.Join(urls, ",")
	cfg.TLS = deps[0].srv.Client().Transport.(*http.Transport).TLSClientConfig
	return deps, resilience.NewClient(cfg, m, slog.New(slog.NewJSONHandler(io.Discard, nil))), m
}

func host(d *dependency) string {
	u, _ := url.Parse(d.srv.URL)
	return u.Host
}

func TestCallsAreSpreadOverReplicas(t *testing.T) {
	deps, c, _ := replicas(t, 2, resilience.ClientConfig{}, func(int, http.ResponseWriter) {})
	for range 20 {
		if resp, err := send(t, c, context.Background(), http.MethodGet, ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("resp %v err %v", resp, err)
		}
	}
	if a, b := deps[0].hits.Load(), deps[1].hits.Load(); a != 10 || b != 10 {
		t.Fatalf("round-robin gave %d and %d calls, want 10 and 10", a, b)
	}
}

// A replica that is gone refuses connections: every call, a POST without
// Idempotency-Key included, is sent to the other replica, and the
// dependency's breaker does not notice. The dead replica's ejection is made
// to last 1 ms here, so calls keep finding it dead rather than skipping it.
func TestOneReplicaDownAllCallsSucceed(t *testing.T) {
	deps, c, m := replicas(t, 2, resilience.ClientConfig{Breaker: resilience.BreakerConfig{MinExecutions: 5},
		Ejection: resilience.EjectionConfig{BaseEjection: time.Millisecond, MaxEjection: time.Millisecond}},
		func(int, http.ResponseWriter) {})
	for range 4 { // pooled connections to both
		send(t, c, context.Background(), http.MethodGet, "")
	}
	deps[1].srv.Close()
	time.Sleep(50 * time.Millisecond) // the client's pool sees the closed connections
	before := deps[0].hits.Load()
	for i := range 40 {
		method := http.MethodPost // no key: never retried, only failed over on a refused connection
		if i%4 == 3 {
			method = http.MethodGet
		}
		resp, err := send(t, c, context.Background(), method, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("call %d (%s) with one replica down: resp %v, err %v", i, method, resp, err)
		}
		time.Sleep(2 * time.Millisecond) // past the ejection
	}
	if got := deps[0].hits.Load() - before; got != 40 {
		t.Fatalf("the live replica served %d of 40 calls", got)
	}
	if st := c.State().String(); st != "closed" {
		t.Fatalf("one dead replica of two opened the dependency breaker: %s", st)
	}
	if up := testutil.ToFloat64(m.EndpointUp("dep", host(deps[1]))); up != 0 {
		t.Fatalf("strata_endpoint_up of the dead replica = %v", up)
	}
	if up := testutil.ToFloat64(m.EndpointUp("dep", host(deps[0]))); up != 1 {
		t.Fatalf("strata_endpoint_up of the live replica = %v", up)
	}
}

// A replica answering 503 costs a retry, which goes to the other replica;
// after Failures of them it is ejected and sees no more calls.
func TestRetryGoesToAnotherReplicaAndFailingOneIsEjected(t *testing.T) {
	deps, c, _ := replicas(t, 2, resilience.ClientConfig{MaxRetries: 1, RetryBudget: 1,
		Ejection: resilience.EjectionConfig{Failures: 3, BaseEjection: time.Minute}},
		func(i int, w http.ResponseWriter) {
			if i == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
	for i := range 20 {
		resp, err := send(t, c, context.Background(), http.MethodGet, "")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("call %d: resp %v, err %v (the one retry went to the failing replica again?)", i, resp, err)
		}
	}
	if bad := deps[0].hits.Load(); bad != 3 {
		t.Fatalf("the failing replica got %d calls, want 3 (then ejected)", bad)
	}
	if good := deps[1].hits.Load(); good != 20 {
		t.Fatalf("the healthy replica got %d calls, want 20", good)
	}
}

// An ejected replica is left alone for its back-off, then tried again and,
// answering, back in the rotation.
func TestEjectedReplicaReturnsAfterItsBackoff(t *testing.T) {
	healthy := make(chan bool, 1)
	healthy <- false
	status := func() bool { h := <-healthy; healthy <- h; return h }
	const backoff = 400 * time.Millisecond
	deps, c, m := replicas(t, 2, resilience.ClientConfig{Ejection: resilience.EjectionConfig{Failures: 1, BaseEjection: backoff}},
		func(i int, w http.ResponseWriter) {
			if i == 0 && !status() {
				w.WriteHeader(http.StatusBadGateway)
			}
		})
	up := func() float64 { return testutil.ToFloat64(m.EndpointUp("dep", host(deps[0]))) }
	ejectedAt := time.Now()
	for up() != 0 {
		if deps[0].hits.Load() > 1 {
			t.Fatal("a failure did not eject the replica (Failures: 1)")
		}
		ejectedAt = time.Now()
		send(t, c, context.Background(), http.MethodGet, "")
	}
	<-healthy
	healthy <- true
	hits := deps[0].hits.Load()
	for time.Since(ejectedAt) < backoff-100*time.Millisecond {
		send(t, c, context.Background(), http.MethodGet, "")
		time.Sleep(10 * time.Millisecond)
	}
	if got := deps[0].hits.Load(); got != hits {
		t.Fatalf("the ejected replica got %d calls during its back-off", got-hits)
	}
	time.Sleep(time.Until(ejectedAt.Add(backoff + 50*time.Millisecond)))
	for range 10 {
		if resp, err := send(t, c, context.Background(), http.MethodGet, ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("resp %v err %v", resp, err)
		}
	}
	if got := deps[0].hits.Load() - hits; got < 4 {
		t.Fatalf("after its back-off the replica got %d of 10 calls", got)
	}
	if up() != 1 {
		t.Fatal("strata_endpoint_up did not return to 1")
	}
}

func TestMalformedReplicaListIsAnError(t *testing.T) {
	c := resilience.NewClient(resilience.ClientConfig{Dependency: "dep", BaseURL: "https://127.0.0.1:1,127.0.0.1:2"},
		resilience.NewMetrics(prometheus.NewRegistry()), slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if _, err := send(t, c, context.Background(), http.MethodGet, ""); err == nil || !strings.Contains(err.Error(), "scheme://host:port") {
		t.Fatalf("err = %v", err)
	}
}

func TestSplitURLs(t *testing.T) {
	got := resilience.SplitURLs(" https://a:1/, https://b:2 ,,")
	if strings.Join(got, "|") != "https://a:1|https://b:2" {
		t.Fatalf("SplitURLs = %q", got)
	}
}

// Active health checking: a replica whose /readyz fails leaves the
// rotation before any call fails on it, and returns as soon as it is
// ready, long before its (one minute) back-off would end.
func TestReadinessProbesEjectAndReturnAReplica(t *testing.T) {
	var ready atomic.Bool
	var calls [2]atomic.Int64
	var deps []*dependency
	urls := make([]string, 2)
	for i := range 2 {
		d := newDependency(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
			if r.URL.Path == "/readyz" {
				if i == 0 && !ready.Load() {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
				return
			}
			calls[i].Add(1)
		})
		deps = append(deps, d)
		urls[i] = d.srv.URL
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := resilience.NewMetrics(prometheus.NewRegistry())
	c := resilience.NewClient(resilience.ClientConfig{Dependency: "dep", BaseURL: strings.Join(urls, ","),
		TLS: deps[0].srv.Client().Transport.(*http.Transport).TLSClientConfig, Probe: 50 * time.Millisecond, ProbeContext: ctx,
		Ejection: resilience.EjectionConfig{BaseEjection: time.Minute}}, m, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	up := func() float64 { return testutil.ToFloat64(m.EndpointUp("dep", host(deps[0]))) }
	deadline := time.Now().Add(5 * time.Second)
	for up() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a replica failing its readiness probe was not ejected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 10 {
		if resp, err := send(t, c, context.Background(), http.MethodGet, ""); err != nil || resp.StatusCode != 200 {
			t.Fatalf("resp %v err %v", resp, err)
		}
	}
	if calls[0].Load() != 0 {
		t.Fatalf("the unready replica got %d calls", calls[0].Load())
	}
	ready.Store(true)
	for up() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a replica ready again did not return before its back-off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 10 {
		send(t, c, context.Background(), http.MethodGet, "")
	}
	if calls[0].Load() != 5 {
		t.Fatalf("the replica back in rotation got %d of 10 calls", calls[0].Load())
	}
}
