// Package backend is the console's client of Strata's public APIs
// (ledger, analytics, session). Every call carries the signed-in person's
// access token, so each service decides what that person may do exactly as
// it would for any other client: the console has no privileges of its own.
// Calls go through libs/resilience (timeouts, breaker per dependency).
package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Doer is one dependency's resilient client (resilience.Client).
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client calls the three services.
type Client struct {
	Ledger, Analytics, Session Doer
}

// Problem is an error answer (application/problem+json) of a service.
type Problem struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// Reason is the ledger's policy explanation, when it sends one.
	Reason string `json:"reason"`
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// Result is a write's outcome.
type Result struct {
	Status   int
	Replayed bool // Idempotent-Replayed: true, the stored first answer
}

// call sends one request; out (when not nil) receives a 2xx JSON body; a
// non-2xx answer becomes a *Problem.
func call(ctx context.Context, d Doer, token, method, path string, in, out any, hdr http.Header) (Result, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return Result{}, err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return Result{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.Do(req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	res := Result{Status: resp.StatusCode, Replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return res, err
	}
	if resp.StatusCode >= 300 {
		p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
		_ = json.Unmarshal(raw, p)
		p.Status = resp.StatusCode
		return res, p
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return res, nil
}

// StatusOf returns the HTTP status of a *Problem error, or 0.
func StatusOf(err error) int {
	var p *Problem
	if errors.As(err, &p) {
		return p.Status
	}
	return 0
}

// Account is a ledger account.
type Account struct {
	ID        string    `json:"id"`
	Owner     string    `json:"owner"`
	Name      string    `json:"name"`
	Currency  string    `json:"currency"`
	Balance   int64     `json:"balance"`
	Region    string    `json:"region"`
	CreatedAt time.Time `json:"created_at"`
}

// Accounts lists the caller's accounts.
func (c *Client) Accounts(ctx context.Context, token string) ([]Account, error) {
	var out struct {
		Accounts []Account `json:"accounts"`
	}
	_, err := call(ctx, c.Ledger, token, http.MethodGet, "/v1/accounts", nil, &out, nil)
	return out.Accounts, err
}

// OpenAccount opens an account for the caller.
func (c *Client) OpenAccount(ctx context.Context, token, key, name, currency string) (Account, Result, error) {
	var a Account
	res, err := call(ctx, c.Ledger, token, http.MethodPost, "/v1/accounts",
		map[string]string{"name": name, "currency": currency}, &a, http.Header{"Idempotency-Key": {key}})
	return a, res, err
}

// Transfer is a posted transfer.
type Transfer struct {
	ID            string    `json:"id"`
	FromAccountID string    `json:"from_account_id"`
	ToAccountID   string    `json:"to_account_id"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	Memo          string    `json:"memo"`
	CreatedAt     time.Time `json:"created_at"`
}

// TransferInput is the transfer form.
type TransferInput struct {
	From     string `json:"from_account_id"`
	To       string `json:"to_account_id"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	Memo     string `json:"memo,omitempty"`
}

// Transfer posts a transfer under key.
func (c *Client) Transfer(ctx context.Context, token, key string, in TransferInput) (Transfer, Result, error) {
	var t Transfer
	res, err := call(ctx, c.Ledger, token, http.MethodPost, "/v1/transfers", in, &t, http.Header{"Idempotency-Key": {key}})
	return t, res, err
}

// DepositInput is the teller's deposit form.
type DepositInput struct {
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
}

// Deposit posts a deposit under key (tellers and admins).
func (c *Client) Deposit(ctx context.Context, token, key string, in DepositInput) (Transfer, Result, error) {
	var t Transfer
	res, err := call(ctx, c.Ledger, token, http.MethodPost, "/v1/deposits", in, &t, http.Header{"Idempotency-Key": {key}})
	return t, res, err
}

// Event is one activity entry.
type Event struct {
	EventID      string    `json:"event_id"`
	Type         string    `json:"type"`
	OccurredAt   time.Time `json:"occurred_at"`
	TransferID   string    `json:"transfer_id"`
	AccountID    string    `json:"account_id"`
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"`
	Counterparty string    `json:"counterparty"`
	Direction    string    `json:"direction"`
}

// Activity is an account's feed from analytics (eventually consistent).
func (c *Client) Activity(ctx context.Context, token, accountID string) ([]Event, error) {
	var out struct {
		Events []Event `json:"events"`
	}
	_, err := call(ctx, c.Analytics, token, http.MethodGet, "/v1/accounts/"+url.PathEscape(accountID)+"/activity", nil, &out, nil)
	return out.Events, err
}

// Stats are the auditor's transfer statistics, passed through as JSON.
func (c *Client) Stats(ctx context.Context, token string) (map[string]any, error) {
	out := map[string]any{}
	_, err := call(ctx, c.Analytics, token, http.MethodGet, "/v1/stats/transfers", nil, &out, nil)
	return out, err
}

// SessionInfo is one of the caller's SSO sessions.
type SessionInfo struct {
	SID        string    `json:"sid"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
}

// Sessions lists the caller's sessions.
func (c *Client) Sessions(ctx context.Context, token string) ([]SessionInfo, error) {
	var out struct {
		Sessions []SessionInfo `json:"sessions"`
	}
	_, err := call(ctx, c.Session, token, http.MethodGet, "/v1/sessions", nil, &out, nil)
	return out.Sessions, err
}

// RevokeSession ends one of the caller's sessions.
func (c *Client) RevokeSession(ctx context.Context, token, sid string) error {
	_, err := call(ctx, c.Session, token, http.MethodDelete, "/v1/sessions/"+url.PathEscape(sid), nil, nil, nil)
	return err
}
