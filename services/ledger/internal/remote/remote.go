// Package remote holds the ledger's outbound calls to other services over
// mTLS: the session liveness check before every write, and the outbox
// relay's delivery to analytics. Each call runs inside a timeout inside a
// circuit breaker (failsafe-go, libs/resilience), so a slow or dead peer
// costs at most the timeout, and then nothing at all while the breaker is
// open.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/timeout"

	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

// Sessions asks the session service whether a session is alive:
// GET {base}/internal/sessions/{sid}, 200 alive, 404 gone.
type Sessions struct {
	base   string
	client *http.Client
	calls  failsafe.Executor[bool]
	log    *slog.Logger
}

var _ ledger.Sessions = (*Sessions)(nil)

// errGone is "the session does not exist": an answer, not a failure, so it
// must not count against the breaker.
var errGone = errors.New("session gone")

// NewSessions returns the client; client is the mTLS client that accepts
// only the session service's SPIFFE ID.
func NewSessions(base string, client *http.Client, m *resilience.Metrics, log *slog.Logger) *Sessions {
	cb := resilience.NewBreaker[bool](resilience.BreakerConfig{Dependency: "session",
		IsFailure: func(err error) bool { return resilience.DefaultIsFailure(err) && !errors.Is(err, errGone) }}, m, log)
	return &Sessions{base: base, client: client, log: log,
		calls: failsafe.With[bool](cb, timeout.New[bool](500*time.Millisecond))}
}

// Alive implements ledger.Sessions. It fails closed: any failure to get an
// answer is ErrUnavailable (503), never "alive".
func (s *Sessions) Alive(ctx context.Context, sid string) error {
	_, err := s.calls.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[bool]) (bool, error) {
		req, err := http.NewRequestWithContext(e.Context(), http.MethodGet, s.base+"/internal/sessions/"+url.PathEscape(sid), nil)
		if err != nil {
			return false, err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		switch resp.StatusCode {
		case http.StatusOK:
			return true, nil
		case http.StatusNotFound:
			return false, errGone
		default:
			return false, fmt.Errorf("session service: status %d", resp.StatusCode)
		}
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errGone):
		return ledger.ErrSessionEnded
	default:
		s.log.WarnContext(ctx, "session check failed; refusing the write", "err", err)
		return fmt.Errorf("session check: %w", ledger.ErrUnavailable)
	}
}

// TokenSource supplies the bearer token the relay presents to analytics:
// a token obtained by token exchange (RFC 8693) with audience analytics and
// act ledger. Until the auth service offers the exchange, StaticToken
// (configured, or empty for none) fills the seam; see docs/outbox.md.
type TokenSource interface {
	Token(ctx context.Context, audience string) (string, error)
}

// StaticToken is a fixed token (empty: no Authorization header).
type StaticToken string

// Token implements TokenSource.
func (t StaticToken) Token(context.Context, string) (string, error) { return string(t), nil }

// Analytics delivers outbox events to analytics' internal ingestion
// endpoint: POST {base}/internal/events {"events":[...]} -> 202.
type Analytics struct {
	base   string
	client *http.Client
	tokens TokenSource
	calls  failsafe.Executor[any]
}

var _ ledger.Sink = (*Analytics)(nil)

// NewAnalytics returns the sink; client is the mTLS client that accepts
// only analytics' SPIFFE ID.
func NewAnalytics(base string, client *http.Client, tokens TokenSource, m *resilience.Metrics, log *slog.Logger) *Analytics {
	cb := resilience.NewBreaker[any](resilience.BreakerConfig{Dependency: "analytics", MinExecutions: 3}, m, log)
	return &Analytics{base: base, client: client, tokens: tokens,
		calls: failsafe.With[any](cb, timeout.New[any](5*time.Second))}
}

// Deliver implements ledger.Sink.
func (a *Analytics) Deliver(ctx context.Context, events []json.RawMessage) error {
	body, err := json.Marshal(map[string][]json.RawMessage{"events": events})
	if err != nil {
		return err
	}
	return a.calls.WithContext(ctx).RunWithExecution(func(e failsafe.Execution[any]) error {
		req, err := http.NewRequestWithContext(e.Context(), http.MethodPost, a.base+"/internal/events", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		tok, err := a.tokens.Token(e.Context(), "analytics")
		if err != nil {
			return fmt.Errorf("token for analytics: %w", err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := a.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("analytics: status %d", resp.StatusCode)
		}
		return nil
	})
}
