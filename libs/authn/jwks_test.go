package authn_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
)

// issuerSet serves a key set the test changes, with a Cache-Control header,
// and counts fetches.
type issuerSet struct {
	mu           sync.Mutex
	keys         []jose.JSONWebKey
	cacheControl string
	fetches      atomic.Int64
}

func (s *issuerSet) set(cc string, keys ...jose.JSONWebKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys, s.cacheControl = keys, cc
}

func (s *issuerSet) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cacheControl != "" {
			w.Header().Set("Cache-Control", s.cacheControl)
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: s.keys})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// clock is a fake time source the test advances.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// A key the issuer stops publishing (removed after a compromise) must stop
// verifying tokens within the set's max-age, even a token that was already
// verified and cached, and even though its kid is known.
func TestRemovedKeyStopsVerifyingWithinMaxAge(t *testing.T) {
	compromised, next := authntest.NewIssuer(t), authntest.NewIssuer(t)
	set := &issuerSet{}
	set.set("public, max-age=60", compromised.Public, next.Public)
	srv := set.serve(t)
	clk := &clock{t: time.Now()}
	jwks := authn.NewJWKS(srv.URL, srv.Client(), time.Second).WithClock(clk.now)
	v, err := authn.NewValidator(authn.Config{Issuer: authntest.IssuerURL, Audience: "ledger", Keys: jwks})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stolen := compromised.Token(t, claims(nil))
	if _, err := v.Validate(ctx, stolen); err != nil {
		t.Fatalf("token before removal: %v", err)
	}
	set.set("public, max-age=60", next.Public) // the operator removes the key
	clk.add(30 * time.Second)
	if _, err := v.Validate(ctx, stolen); err != nil {
		t.Fatalf("within max-age the cached set is used: %v", err)
	}
	if set.fetches.Load() != 1 {
		t.Fatalf("fetches = %d within max-age, want 1", set.fetches.Load())
	}
	clk.add(31 * time.Second) // past max-age
	if _, err := v.Validate(ctx, stolen); err == nil {
		t.Fatal("a token signed by a removed key still verifies after max-age")
	}
	if _, err := v.Validate(ctx, compromised.Token(t, claims(nil))); err == nil {
		t.Fatal("a fresh token signed by the removed key verifies")
	}
	if _, err := v.Validate(ctx, next.Token(t, claims(nil))); err != nil {
		t.Fatalf("the remaining key: %v", err)
	}
}

// Cache-Control decides how long a set is fresh: no-store means fetch again
// at the minimum interval; a huge max-age is capped, so a removed key is
// never trusted for more than MaxJWKSMaxAge.
func TestJWKSHonoursCacheControl(t *testing.T) {
	iss := authntest.NewIssuer(t)
	for _, tt := range []struct {
		cacheControl string
		after        time.Duration // since the first fetch
		refetch      bool
	}{
		{"", authn.DefaultJWKSMaxAge - time.Second, false},
		{"", authn.DefaultJWKSMaxAge, true},
		{"max-age=120", 119 * time.Second, false},
		{"max-age=120", 120 * time.Second, true},
		{"no-store", 2 * time.Second, true},
		{"max-age=86400", authn.MaxJWKSMaxAge, true},
	} {
		set := &issuerSet{}
		set.set(tt.cacheControl, iss.Public)
		srv := set.serve(t)
		clk := &clock{t: time.Now()}
		jwks := authn.NewJWKS(srv.URL, srv.Client(), time.Second).WithClock(clk.now)
		if _, err := jwks.Key(context.Background(), iss.Public.KeyID); err != nil {
			t.Fatal(err)
		}
		clk.add(tt.after)
		if _, err := jwks.Key(context.Background(), iss.Public.KeyID); err != nil {
			t.Fatal(err)
		}
		if got := set.fetches.Load() == 2; got != tt.refetch {
			t.Errorf("Cache-Control %q, %s later: refetched = %v, want %v", tt.cacheControl, tt.after, got, tt.refetch)
		}
	}
}

// When the issuer is unreachable, the keys already fetched keep verifying
// (a down auth service must not log everybody out), and retries are spaced
// by the minimum interval.
func TestStaleSetKeepsVerifyingWhileIssuerIsDown(t *testing.T) {
	iss := authntest.NewIssuer(t)
	set := &issuerSet{}
	set.set("max-age=60", iss.Public)
	srv := set.serve(t)
	clk := &clock{t: time.Now()}
	jwks := authn.NewJWKS(srv.URL, srv.Client(), 10*time.Second).WithClock(clk.now)
	if _, err := jwks.Key(context.Background(), iss.Public.KeyID); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	clk.add(2 * time.Minute)
	for range 3 {
		if _, err := jwks.Key(context.Background(), iss.Public.KeyID); err != nil {
			t.Fatalf("known key with the issuer down: %v", err)
		}
	}
}

// Run refreshes the set on its schedule with no token asking: a key the
// issuer stopped publishing is gone before any token names it, and Run ends
// with its context.
func TestJWKSRunRefreshesOnSchedule(t *testing.T) {
	removed, kept := authntest.NewIssuer(t), authntest.NewIssuer(t)
	set := &issuerSet{}
	set.set("no-store", removed.Public, kept.Public)
	srv := set.serve(t)
	jwks := authn.NewJWKS(srv.URL, srv.Client(), 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); jwks.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for set.fetches.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := set.fetches.Load(); n < 2 {
		t.Fatalf("%d fetches in 5 s with no token: Run does not refresh", n)
	}
	set.set("no-store", kept.Public) // the operator removes a key
	before := set.fetches.Load()
	for set.fetches.Load() < before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	// No request since the removal named the key; Run alone dropped it. The
	// lookup below finds the set fresh or throttled, so it fetches nothing.
	fetches := set.fetches.Load()
	if _, err := jwks.Key(context.Background(), removed.Public.KeyID); err == nil {
		t.Fatal("the removed key is still known after Run refreshed the set")
	}
	if _, err := jwks.Key(context.Background(), kept.Public.KeyID); err != nil {
		t.Fatalf("the remaining key: %v", err)
	}
	t.Logf("%d fetches by Run, %d by the lookups", fetches, set.fetches.Load()-fetches)
}

// Tokens that arrive together while the first fetch is in flight (a burst
// of sign-ins right after a service starts) all wait for that fetch and
// verify: none is refused with an unknown kid because a fetch had started.
func TestConcurrentFirstLookupsShareTheFetch(t *testing.T) {
	iss := authntest.NewIssuer(t)
	set := &issuerSet{}
	set.set("", iss.Public)
	inner := set.serve(t)
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		resp, err := inner.Client().Get(inner.URL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Cache-Control", resp.Header.Get("Cache-Control"))
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(slow.Close)
	jwks := authn.NewJWKS(slow.URL, slow.Client(), 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 5 * time.Millisecond) // some during the fetch, not at its start
			if _, err := jwks.Key(context.Background(), iss.Public.KeyID); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a lookup during the first fetch: %v", err)
	}
	if n := set.fetches.Load(); n != 1 {
		t.Errorf("%d fetches for 16 concurrent lookups, want 1", n)
	}
}
