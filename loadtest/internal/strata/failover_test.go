package strata

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

type replica struct {
	srv  *httptest.Server
	hits atomic.Int64
}

// replicas starts n TLS replicas; handle(i, w, r) answers (nil: 200).
func replicas(t *testing.T, n int, handle func(i int, w http.ResponseWriter, r *http.Request)) ([]*replica, *API) {
	t.Helper()
	rs := make([]*replica, n)
	urls := make([]string, n)
	for i := range n {
		rs[i] = &replica{}
		rs[i].srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rs[i].hits.Add(1)
			if handle != nil {
				handle(i, w, r)
			}
		}))
		t.Cleanup(rs[i].srv.Close)
		urls[i] = rs[i].srv.URL
	}
	tlsCfg := rs[0].srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	return rs, New(Endpoints{Auth: "https://localhost:1", Ledger: strings.Join(urls, ",")}, &tls.Config{RootCAs: tlsCfg.RootCAs}, 8)
}

func TestEndpointsKeepTheFirstReplicaAsTheServiceURL(t *testing.T) {
	rs, api := replicas(t, 2, nil)
	if api.E.Ledger != rs[0].srv.URL {
		t.Fatalf("E.Ledger = %q, want the first replica", api.E.Ledger)
	}
	for range 10 {
		if r := api.Do(context.Background(), "", http.MethodGet, api.E.Ledger+"/v1/accounts/x", nil, ""); r.Err != nil || r.Status != 200 {
			t.Fatalf("%+v", r)
		}
	}
	if rs[0].hits.Load() != 5 || rs[1].hits.Load() != 5 {
		t.Fatalf("hits %d and %d, want 5 and 5", rs[0].hits.Load(), rs[1].hits.Load())
	}
}

// A killed replica refuses connections: every request, a POST included,
// reaches the other one.
func TestDeadReplicaIsSkipped(t *testing.T) {
	rs, api := replicas(t, 2, nil)
	rs[1].srv.Close()
	for i := range 20 {
		r := api.Do(context.Background(), "tok", http.MethodPost, api.E.Ledger+"/v1/transfers", map[string]int{"amount": i}, NewKey())
		if r.Err != nil || r.Status != 200 {
			t.Fatalf("request %d with one replica dead: %+v", i, r)
		}
	}
	if rs[0].hits.Load() != 20 {
		t.Fatalf("live replica served %d of 20", rs[0].hits.Load())
	}
}

// A replica that dies mid-request: a request with an Idempotency-Key (or a
// GET) is repeated on the other one; a POST without one is not, it may
// have been applied.
func TestBrokenConnectionRetriedOnlyWhenSafe(t *testing.T) {
	rs, api := replicas(t, 2, func(i int, w http.ResponseWriter, r *http.Request) {
		if i == 0 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}
	})
	for i := range 6 {
		r := api.Do(context.Background(), "", http.MethodPost, api.E.Ledger+"/v1/transfers", map[string]int{"a": 1}, NewKey())
		if r.Err != nil || r.Status != 200 {
			t.Fatalf("keyed POST %d: %+v", i, r)
		}
	}
	failed := 0
	for range 6 {
		if r := api.Do(context.Background(), "", http.MethodPost, api.E.Ledger+"/v1/things", map[string]int{"a": 1}, ""); r.Err != nil {
			failed++
		}
	}
	if failed == 0 {
		t.Fatal("POSTs without a key were repeated after a broken connection")
	}
	if rs[1].hits.Load() != 6+int64(6-failed) {
		t.Fatalf("second replica hits %d", rs[1].hits.Load())
	}
}

func TestTopology(t *testing.T) {
	if got := Topology(1, 8441); got != (Endpoints{Auth: "https://localhost:8441", Ledger: "https://127.0.0.1:8442",
		Analytics: "https://127.0.0.1:8443", Session: "https://127.0.0.1:8444"}) {
		t.Fatalf("single: %+v", got)
	}
	if got := Topology(2, 8541); got.Auth != "https://localhost:8541" || got.Ledger != "https://127.0.0.1:8542,https://127.0.0.1:8552" ||
		got.Session != "https://127.0.0.1:8544,https://127.0.0.1:8554" {
		t.Fatalf("HA: %+v", got)
	}
}
