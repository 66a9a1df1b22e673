package authn

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TokenClient obtains tokens for a service from the auth service's token
// endpoint on its internal listener, authenticating by the workload's mTLS
// certificate (RFC 8705 tls_client_auth), so no client secret exists.
//
//   - ServiceToken: the service's own token (client credentials).
//   - Exchange: RFC 8693 token exchange; a token for subject, narrowed to
//     one audience, with act naming this service.
//   - Token(audience): Exchange of the service's own token, what the
//     ledger's outbox relay presents to analytics (aud analytics, act
//     ledger). Asynchronous delivery cannot borrow the user's token: it may
//     have expired, or the user signed out, long before the event leaves.
//
// Tokens are cached until 30 s before they expire.
type TokenClient struct {
	// URL is https://<auth internal>/oauth2/token, or a comma-separated
	// list of the auth replicas' token endpoints, tried in turn.
	URL      string
	ClientID string // this service's OAuth client id ("ledger")
	HTTP     Doer   // mTLS to auth (kit.Client("auth", ...))
	Now      func() time.Time

	mu    sync.Mutex
	cache map[string]cachedToken
	last  atomic.Int64 // index of the URL that answered last
}

type cachedToken struct {
	token string
	until time.Time
}

const (
	grantExchange    = "urn:ietf:params:oauth:grant-type:token-exchange"
	typeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	maxCachedTokens  = 10000
	expiryHeadroom   = 30 * time.Second
	defaultTokenLife = time.Minute
)

func (c *TokenClient) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *TokenClient) cached(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.cache[key]
	if !ok || !c.now().Before(t.until) {
		return "", false
	}
	return t.token, true
}

func (c *TokenClient) store(key, token string, expiresIn int) {
	life := time.Duration(expiresIn) * time.Second
	if life <= 0 {
		life = defaultTokenLife
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cache == nil || len(c.cache) >= maxCachedTokens {
		c.cache = map[string]cachedToken{}
	}
	c.cache[key] = cachedToken{token: token, until: c.now().Add(life - expiryHeadroom)}
}

// ServiceToken returns this service's own access token.
func (c *TokenClient) ServiceToken(ctx context.Context) (string, error) {
	if t, ok := c.cached("self"); ok {
		return t, nil
	}
	t, exp, err := c.post(ctx, url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}})
	if err != nil {
		return "", fmt.Errorf("client credentials: %w", err)
	}
	c.store("self", t, exp)
	return t, nil
}

// Exchange trades subject for a token valid only at audience.
func (c *TokenClient) Exchange(ctx context.Context, subject, audience string) (string, error) {
	h := sha256.Sum256([]byte(subject))
	key := audience + ":" + string(h[:])
	if t, ok := c.cached(key); ok {
		return t, nil
	}
	t, exp, err := c.post(ctx, url.Values{"grant_type": {grantExchange}, "client_id": {c.ClientID},
		"subject_token": {subject}, "subject_token_type": {typeAccessToken}, "audience": {audience}})
	if err != nil {
		return "", fmt.Errorf("token exchange to %s: %w", audience, err)
	}
	c.store(key, t, exp)
	return t, nil
}

// Token returns the service's own token exchanged for audience.
func (c *TokenClient) Token(ctx context.Context, audience string) (string, error) {
	self, err := c.ServiceToken(ctx)
	if err != nil {
		return "", err
	}
	return c.Exchange(ctx, self, audience)
}

// post asks the token endpoints in turn: a transport error or a 5xx sends
// the request to the next auth replica. Repeating it is harmless (at worst
// a second token is issued); a 4xx is final, another replica would refuse
// it as well.
func (c *TokenClient) post(ctx context.Context, form url.Values) (token string, expiresIn int, err error) {
	err = eachURL(splitURLs(c.URL), &c.last, func(u string) error {
		var err error
		token, expiresIn, err = c.postTo(ctx, u, form)
		return err
	})
	return token, expiresIn, err
}

func (c *TokenClient) postTo(ctx context.Context, endpoint string, form url.Values) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil {
		return "", 0, fmt.Errorf("%s: status %d: %w", endpoint, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		err := fmt.Errorf("status %d: %s %s", resp.StatusCode, body.Error, body.Description)
		if resp.StatusCode < 500 {
			err = fmt.Errorf("%w: %w", errFinal, err)
		}
		return "", 0, err
	}
	return body.AccessToken, body.ExpiresIn, nil
}
