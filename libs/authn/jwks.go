package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// JWKS fetches and caches the issuer's JSON Web Key Set. An unknown kid
// triggers a refresh, at most once per MinRefresh, so rotated keys are
// picked up quickly and a stream of tokens with made-up kids cannot turn
// into a stream of requests to the issuer.
type JWKS struct {
	url        string
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

// NewJWKS returns a key source for url; client reaches the auth service's
// internal listener over mTLS.
func NewJWKS(url string, client Doer, minRefresh time.Duration) *JWKS {
	if minRefresh == 0 {
		minRefresh = 30 * time.Second
	}
	return &JWKS{url: url, client: client, minRefresh: minRefresh, now: time.Now, keys: map[string]jose.JSONWebKey{}}
}

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

// Refresh fetches the set now.
func (j *JWKS) Refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("decode JWKS: %w", err)
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
