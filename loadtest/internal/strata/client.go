// Package strata is the load generator's client of Strata's public API (the
// routes in README.md and docs/): it signs users in through the real OIDC flow and
// calls the ledger, analytics and session services as a user would, with an
// Idempotency-Key on every POST.
package strata

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/problem"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/loadtest/internal/engine"
)

// Endpoints are the public base URLs. Each may be a comma-separated list
// of a service's replicas ("https://127.0.0.1:8542,https://127.0.0.1:8552"):
// New keeps the first as the service's URL (callers append paths to it)
// and API.Do spreads requests over all of them. Auth is the issuer, one URL.
type Endpoints struct {
	Auth, Ledger, Analytics, Session string
}

// Native are the endpoints of `make run`, or of the replicas services.sh
// lays out when STRATA_SERVICE_REPLICAS and STRATA_SERVICE_PORT_BASE are
// set (deploy/native/ha.env).
var Native = Topology(EnvInt("STRATA_SERVICE_REPLICAS", 1), EnvInt("STRATA_SERVICE_PORT_BASE", 8441))

// Topology returns the public endpoints of replicas replicas per service
// laid out from port base as services.sh does: base + offset (auth 0,
// ledger 1, analytics 2, session 3) + 10 per replica. The issuer is auth
// replica a, at localhost.
func Topology(replicas, base int) Endpoints {
	list := func(offset int) string {
		urls := make([]string, 0, replicas)
		for r := range max(replicas, 1) {
			urls = append(urls, "https://127.0.0.1:"+strconv.Itoa(base+offset+10*r))
		}
		return strings.Join(urls, ",")
	}
	return Endpoints{Auth: "https://localhost:" + strconv.Itoa(base), Ledger: list(1), Analytics: list(2), Session: list(3)}
}

// API is a shared HTTP client for many users.
type API struct {
	E    Endpoints // the first URL of each service
	HTTP *http.Client
	// replicas of each service, by its first URL.
	replicas map[string]*replicaSet
}

// New returns an API client trusting tlsCfg's roots, with enough idle
// connections that a load run does not churn TLS handshakes.
func New(e Endpoints, tlsCfg *tls.Config, conns int) *API {
	a := &API{HTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tlsCfg, MaxIdleConns: conns * 4, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		ForceAttemptHTTP2: true}}, // HTTP/2: many requests per connection, few handshakes
		replicas: map[string]*replicaSet{}}
	for _, f := range []*string{&e.Auth, &e.Ledger, &e.Analytics, &e.Session} {
		urls := resilience.SplitURLs(*f)
		if len(urls) == 0 {
			continue
		}
		*f = urls[0]
		if len(urls) > 1 {
			rs, err := newReplicaSet(urls)
			if err != nil { // a malformed -ledger/-session/... list: a start-up error
				panic(fmt.Sprintf("strata.New: %v", err))
			}
			a.replicas[urls[0]] = rs
		}
	}
	a.E = e
	return a
}

// User is a signed-in user.
type User struct {
	Name    string
	Tokens  oidclogin.Tokens
	Account Account
}

// Login signs name in with the code + PKCE flow of the strata-cli client.
func (a *API) Login(ctx context.Context, name, password string) (*User, error) {
	c := &oidclogin.Client{Issuer: a.E.Auth, ClientID: "strata-cli", RedirectURI: "http://127.0.0.1:8765/callback", HTTP: a.HTTP}
	t, err := c.Login(ctx, name, password)
	if err != nil {
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	return &User{Name: name, Tokens: t}, nil
}

// Account is the ledger's account representation.
type Account struct {
	ID       string `json:"id"`
	Owner    string `json:"owner"`
	Currency string `json:"currency"`
	Balance  int64  `json:"balance"`
	Region   string `json:"region"`
}

// Transfer is the ledger's transfer representation.
type Transfer struct {
	ID            string `json:"id"`
	FromAccountID string `json:"from_account_id"`
	ToAccountID   string `json:"to_account_id"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
}

// Response is one call's outcome.
type Response struct {
	Status     int
	Body       []byte
	RetryAfter time.Duration
	Err        error
}

// NewKey returns a fresh Idempotency-Key.
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Do sends one request with the user's token; body is JSON-encoded, and
// key (if set) goes in Idempotency-Key. A URL under a service with several
// replicas goes to one of them (failover.go): a replica that refuses the
// connection is skipped, and a request that is safe to repeat is repeated
// on another replica when its connection breaks.
func (a *API) Do(ctx context.Context, token, method, url string, body any, key string) Response {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	send := func(url string) (*http.Response, error) {
		var rd io.Reader
		if raw != nil {
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		return a.HTTP.Do(req)
	}
	var resp *http.Response
	var err error
	if set, rest := a.replicaSet(url); set != nil {
		resp, err = set.do(ctx, rest, method == http.MethodGet || method == http.MethodPut || method == http.MethodDelete || key != "", send)
	} else {
		resp, err = send(url)
	}
	if err != nil {
		return Response{Err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := Response{Status: resp.StatusCode, Body: b}
	if d, ok := resilience.RetryAfter(resp.Header, time.Now()); ok {
		r.RetryAfter = d
	}
	return r
}

// replicaSet returns the replicas url is under and url's path part.
func (a *API) replicaSet(url string) (*replicaSet, string) {
	for base, set := range a.replicas {
		if rest, ok := strings.CutPrefix(url, base); ok && (rest == "" || rest[0] == '/' || rest[0] == '?') {
			return set, rest
		}
	}
	return nil, ""
}

// Detail is what went wrong, in one line: the transport error, or the
// problem+json title and detail of an error status (the body's start when
// it is not one).
func (r Response) Detail() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	var p problem.Problem
	if json.Unmarshal(r.Body, &p) == nil && p.Title != "" {
		if p.Detail == "" {
			return p.Title
		}
		return p.Title + ": " + p.Detail
	}
	const max = 200
	if len(r.Body) > max {
		return string(r.Body[:max]) + "..."
	}
	return string(r.Body)
}

// DoPatient is Do for calls that must not fail because the system is
// busy (set-up, invariant checks): a 429 is sent again, with the same
// Idempotency-Key, after its Retry-After (engine.RetryWait), up to retries times.
// Load traffic uses Do, so that the engine sees every 429.
func (a *API) DoPatient(ctx context.Context, retries int, token, method, url string, body any, key string) Response {
	r := a.Do(ctx, token, method, url, body, key)
	for range retries {
		if r.Status != http.StatusTooManyRequests {
			break
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(engine.RetryWait(r.RetryAfter)):
		}
		r = a.Do(ctx, token, method, url, body, key)
	}
	return r
}

// Decode unmarshals r's body into v, failing on a status other than want.
func (r Response) Decode(want int, v any) error {
	if r.Err != nil {
		return r.Err
	}
	if r.Status != want {
		return fmt.Errorf("status %d: %s", r.Status, r.Body)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(r.Body, v)
}

// OpenAccount opens an EUR account for u.
func (a *API) OpenAccount(ctx context.Context, u *User) error {
	r := a.DoPatient(ctx, 5, u.Tokens.AccessToken, http.MethodPost, a.E.Ledger+"/v1/accounts",
		map[string]string{"currency": "EUR", "name": "load " + u.Name}, NewKey())
	return r.Decode(http.StatusCreated, &u.Account)
}

// Deposit puts amount into account as the (admin or teller) caller.
func (a *API) Deposit(ctx context.Context, caller *User, account string, amount int64) error {
	r := a.DoPatient(ctx, 5, caller.Tokens.AccessToken, http.MethodPost, a.E.Ledger+"/v1/deposits",
		map[string]any{"account_id": account, "amount": amount, "currency": "EUR"}, NewKey())
	return r.Decode(http.StatusCreated, nil)
}

// TransferBody is the body of POST /v1/transfers.
func TransferBody(from, to string, amount int64) map[string]any {
	return map[string]any{"from_account_id": from, "to_account_id": to, "amount": amount, "currency": "EUR", "memo": "load " + strconv.FormatInt(amount, 10)}
}

// GetAccount reads one account.
func (a *API) GetAccount(ctx context.Context, u *User, id string) (Account, error) {
	var acc Account
	err := a.Do(ctx, u.Tokens.AccessToken, http.MethodGet, a.E.Ledger+"/v1/accounts/"+id, nil, "").Decode(http.StatusOK, &acc)
	return acc, err
}
