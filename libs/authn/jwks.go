package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS fetches and caches the issuer's JSON Web Key Set. An unknown kid
// triggers a refresh, at most once per MinRefresh, so rotated keys are
// picked up quickly and a stream of tokens with made-up kids cannot turn
// into a stream of requests to the issuer.
type JWKS struct {
	urls       []string
	last       atomic.Int64 // index of the URL that answered last
	client     Doer
	minRefresh time.Duration
	now        func() time.Time

	mu      sync.RWMutex
	keys    map[string]jose.JSONWebKey
	fetched time.Time
	flight  singleflight.Group
}

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
	return &JWKS{urls: splitURLs(urls), client: client, minRefresh: minRefresh, now: time.Now, keys: map[string]jose.JSONWebKey{}}
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

// Key returns the key kid, refreshing the set once if it is unknown.
func (j *JWKS) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	if k, ok := j.lookup(kid); ok {
		return k, nil
	}
	j.mu.RLock()
	recent := !j.fetched.IsZero() && j.now().Sub(j.fetched) < j.minRefresh
	j.mu.RUnlock()
	if recent {
		return nil, ErrUnknownKey
	}
	if _, err, _ := j.flight.Do("refresh", func() (any, error) { return nil, j.Refresh(ctx) }); err != nil {
		return nil, err
	}
	if k, ok := j.lookup(kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (j *JWKS) lookup(kid string) (*jose.JSONWebKey, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	k, ok := j.keys[kid]
	return &k, ok
}

// Refresh fetches the set now, from the first auth replica that answers.
func (j *JWKS) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var set jose.JSONWebKeySet
	err := eachURL(j.urls, &j.last, func(url string) error {
		s, err := j.fetch(ctx, url)
		set = s
		return err
	})
	if err != nil {
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
	j.keys, j.fetched = keys, j.now()
	j.mu.Unlock()
	return nil
}

func (j *JWKS) fetch(ctx context.Context, url string) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return set, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return set, fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return set, fmt.Errorf("fetch JWKS from %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return set, fmt.Errorf("decode JWKS from %s: %w", url, err)
	}
	return set, nil
}
