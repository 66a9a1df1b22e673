package oidc

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

	"github.com/strata-ref/strata/libs/resilience"
)

// Sessions is what the provider needs from the session service, which
// holds the SSO sessions (internal API over mTLS).
type Sessions interface {
	Create(ctx context.Context, s NewSession) (sid string, err error)
	// Get returns a live session; an unknown, revoked or expired one is
	// (_, false, nil), an unreachable service an error.
	Get(ctx context.Context, sid string) (Session, bool, error)
	Delete(ctx context.Context, sid string) error
}

// NewSession is the body of POST /internal/sessions.
type NewSession struct {
	UserID    string    `json:"user_id"`
	FamilyID  string    `json:"family_id"`
	AuthTime  time.Time `json:"auth_time"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Session is a live SSO session as the session service returns it.
type Session struct {
	SID       string    `json:"sid"`
	UserID    string    `json:"user_id"`
	FamilyID  string    `json:"family_id"`
	AuthTime  time.Time `json:"auth_time"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ErrSessionsUnavailable: the session service cannot be reached (or its
// breaker is open); the caller answers 503, never a hang.
var ErrSessionsUnavailable = errors.New("session service unavailable")

// Doer sends one request to the session service: resilience.Client, which
// adds mTLS, trace context, a timeout shorter than the caller's deadline, a
// circuit breaker and retries for idempotent calls (GET, DELETE).
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// SessionClient calls the session service's internal API.
type SessionClient struct{ http Doer }

// NewSessionClient returns a client over d (whose base URL is the session
// service's internal listener).
func NewSessionClient(d Doer) *SessionClient { return &SessionClient{http: d} }

// do sends one request. route is the path's template (never the path:
// /internal/sessions/<sid> would put session ids into error messages and
// from there into logs, and into the client span).
func (c *SessionClient) do(ctx context.Context, method, path, route string, body any) (*http.Response, []byte, error) {
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(resilience.WithRoute(ctx, route), method, path, payload)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // *url.Error repeats the URL, and with it the sid
		}
		return nil, nil, fmt.Errorf("%w: %s %s: %v", ErrSessionsUnavailable, method, route, err)
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrSessionsUnavailable, err)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return nil, nil, fmt.Errorf("%w: %s %s: status %d", ErrSessionsUnavailable, method, route, resp.StatusCode)
	}
	return resp, respBody, nil
}

// Create opens a session and returns its sid.
func (c *SessionClient) Create(ctx context.Context, s NewSession) (string, error) {
	resp, body, err := c.do(ctx, http.MethodPost, "/internal/sessions", "/internal/sessions", s)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create session: status %d", resp.StatusCode)
	}
	var out struct {
		SID string `json:"sid"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.SID == "" {
		return "", fmt.Errorf("create session: bad response")
	}
	return out.SID, nil
}

const sessionRoute = "/internal/sessions/:sid"

// Get returns the session if it lives.
func (c *SessionClient) Get(ctx context.Context, sid string) (Session, bool, error) {
	var s Session
	resp, body, err := c.do(ctx, http.MethodGet, "/internal/sessions/"+url.PathEscape(sid), sessionRoute, nil)
	if err != nil {
		return s, false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if err := json.Unmarshal(body, &s); err != nil {
			return s, false, fmt.Errorf("get session: %w", err)
		}
		return s, time.Now().Before(s.ExpiresAt), nil
	case http.StatusNotFound, http.StatusBadRequest:
		return s, false, nil
	default:
		return s, false, fmt.Errorf("get session: status %d", resp.StatusCode)
	}
}

// Delete ends a session; deleting one already gone is not an error.
func (c *SessionClient) Delete(ctx context.Context, sid string) error {
	resp, _, err := c.do(ctx, http.MethodDelete, "/internal/sessions/"+url.PathEscape(sid), sessionRoute, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("delete session: status %d", resp.StatusCode)
	}
	return nil
}
