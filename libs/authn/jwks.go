package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS fetches and caches the issuer's JSON Web Key Set.
//
// The set is fetched again when it is older than its max-age (the
// response's Cache-Control max-age, DefaultJWKSMaxAge without one, never
// more than MaxJWKSMaxAge), and when a token names an unknown kid; either
// way at most once per minRefresh, so a stream of tokens with made-up kids
// cannot turn into a stream of requests to the issuer. Each fetch replaces
// the whole set: a key the issuer no longer publishes (removed after a
// compromise, or retired) stops verifying within one max-age. When the
// issuer cannot be reached, the keys already fetched keep verifying.
type JWKS struct {
	urls       []string
	last       atomic.Int64 // index of the URL that answered last
	client     Doer
	minRefresh time.Duration
	now        func() time.Time

	mu        sync.RWMutex
	keys      map[string]jose.JSONWebKey
	fetched   time.Time     // last successful fetch
	maxAge    time.Duration // how long that fetch is fresh
	attempted time.Time     // last fetch attempt, successful or not
	flight    singleflight.Group
}

// DefaultJWKSMaxAge is how long a fetched key set is used when the
// response carries no Cache-Control max-age; MaxJWKSMaxAge caps what a
// response may ask for, and so bounds how long a removed key is trusted.
const (
	DefaultJWKSMaxAge = 5 * time.Minute
	MaxJWKSMaxAge     = 15 * time.Minute
)

// Doer sends HTTP requests: an *http.Client, or the resilience.Client every
// service uses for calls to another service.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// NewJWKS returns a key source for urls, one URL or a comma-separated list
// of the auth replicas' (each is tried in turn until one answers); client
// reaches the auth service's internal listener over mTLS.
func NewJWKS(urls string, client Doer, minRefresh time.Duration) *JWKS {
	if minRefresh == 0 {
		minRefresh = 30 * time.Second
	}
	return &JWKS{urls: splitURLs(urls), client: client, minRefresh: minRefresh, now: time.Now, keys: map[string]jose.JSONWebKey{},
		maxAge: DefaultJWKSMaxAge}
}

// WithClock makes j read time from now (tests); it returns j.
func (j *JWKS) WithClock(now func() time.Time) *JWKS {
	j.now = now
	return j
}

// splitURLs parses a comma-separated list of URLs.
func splitURLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// eachURL calls try with the URLs, starting with the one that answered
// last, until one succeeds; it returns the errors of all when none does.
func eachURL(urls []string, last *atomic.Int64, try func(url string) error) error {
	if len(urls) == 0 {
		return errors.New("no URL configured")
	}
	start := int(last.Load())
	var errs []error
	for i := range urls {
		n := (start + i) % len(urls)
		err := try(urls[n])
		if err == nil {
			last.Store(int64(n))
			return nil
		}
		errs = append(errs, err)
		if errors.Is(err, errFinal) {
			break
		}
	}
	return errors.Join(errs...)
}

// errFinal marks an answer another replica would give as well (a 4xx):
// eachURL stops there.
var errFinal = errors.New("refused by auth")

// ErrUnknownKey is returned for a kid that is not in the current set.
var ErrUnknownKey = errors.New("unknown key id")

// Key returns the key kid. An unknown kid, or a set past its max-age,
// fetches the set again first (at most once per minRefresh).
func (j *JWKS) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	k, known := j.lookup(kid)
	j.mu.RLock()
	now := j.now()
	fresh := !j.fetched.IsZero() && now.Sub(j.fetched) < j.maxAge
	throttled := !j.attempted.IsZero() && now.Sub(j.attempted) < j.minRefresh
	j.mu.RUnlock()
	if (known && fresh) || throttled {
		if known {
			return k, nil
		}
		return nil, ErrUnknownKey
	}
	_, err, _ := j.flight.Do("refresh", func() (any, error) { return nil, j.Refresh(ctx) })
	if k, ok := j.lookup(kid); ok {
		return k, nil // refreshed, or the issuer is unreachable and kid was known
	}
	if err != nil {
		return nil, err
	}
	return nil, ErrUnknownKey
}

func (j *JWKS) lookup(kid string) (*jose.JSONWebKey, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	k, ok := j.keys[kid]
	return &k, ok
}

// Run refreshes the set in the background until ctx ends: each time the
// last fetch reaches its max-age (or minRefresh after a failed attempt), so a
// key the issuer stops publishing is dropped on schedule even while no token
// names it, and a rotated key is known before the first token signed with it
// arrives. Key still refreshes on demand (an unknown kid); the two share one
// flight, so they never fetch twice at once.
func (j *JWKS) Run(ctx context.Context) {
	for {
		j.mu.RLock()
		wait := j.minRefresh
		if !j.fetched.IsZero() && !j.attempted.After(j.fetched) {
			wait = max(j.fetched.Add(j.maxAge).Sub(j.now()), j.minRefresh)
		}
		j.mu.RUnlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		_, _, _ = j.flight.Do("refresh", func() (any, error) { return nil, j.Refresh(ctx) })
	}
}

// Refresh fetches the set now, from the first auth replica that answers.
func (j *JWKS) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var (
		set    jose.JSONWebKeySet
		maxAge time.Duration
	)
	err := eachURL(j.urls, &j.last, func(url string) error {
		s, age, err := j.fetch(ctx, url)
		set, maxAge = s, age
		return err
	})
	// An attempt counts from its end: callers that arrive while a fetch is
	// in flight are not throttled by it, they join it (Key's singleflight)
	// and see its keys. Counted from the start, every request that came
	// during the first fetch was refused with an unknown kid for minRefresh.
	if err != nil {
		j.mu.Lock()
		j.attempted = j.now()
		j.mu.Unlock()
		return err
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys[k.KeyID] = k
	}
	j.mu.Lock()
	j.fetched = j.now()
	j.keys, j.attempted, j.maxAge = keys, j.fetched, min(max(maxAge, j.minRefresh), MaxJWKSMaxAge)
	j.mu.Unlock()
	return nil
}

func (j *JWKS) fetch(ctx context.Context, url string) (jose.JSONWebKeySet, time.Duration, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return set, 0, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return set, 0, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, 0, fmt.Errorf("fetch JWKS from %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return set, 0, fmt.Errorf("decode JWKS from %s: %w", url, err)
	}
	return set, cacheMaxAge(resp.Header.Values("Cache-Control")), nil
}

// cacheMaxAge reads max-age from Cache-Control (RFC 9111 5.2.2.1):
// DefaultJWKSMaxAge when absent or malformed, 0 for no-store or no-cache
// (the caller raises 0 to its minimum interval).
func cacheMaxAge(values []string) time.Duration {
	age := DefaultJWKSMaxAge
	for _, v := range values {
		for _, d := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				if n, err := strconv.ParseUint(strings.Trim(arg, `"`), 10, 32); err == nil {
					age = time.Duration(n) * time.Second
				}
			}
		}
	}
	return age
}
