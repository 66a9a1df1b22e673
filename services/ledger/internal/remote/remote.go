// Package remote holds the ledger's outbound calls to other services: the
// session liveness check before every write, and the outbox relay's
// delivery to analytics. Both go through the shared resilience.Client
// (kit.Client): mTLS pinned to the callee's SPIFFE ID, trace context, a
// per-attempt timeout inside a per-dependency circuit breaker, so a slow or
// dead peer costs at most the timeout, and nothing while the breaker is open.
package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

// Sessions asks the session service whether a session is alive:
// GET /internal/sessions/{sid}, 200 alive, 404 gone.
type Sessions struct {
	client *resilience.Client
	m      *resilience.Metrics
	log    *slog.Logger
}

var _ ledger.Sessions = (*Sessions)(nil)

// NewSessions returns the client over kit.Client("session", ...).
func NewSessions(client *resilience.Client, m *resilience.Metrics, log *slog.Logger) *Sessions {
	return &Sessions{client: client, m: m, log: log}
}

// Alive implements ledger.Sessions. Its fallback fails closed: when the
// session service cannot answer, the write is refused with 503, never
// allowed on a session nobody could check.
func (s *Sessions) Alive(ctx context.Context, sid string) error {
	_, err := resilience.Fallback(s.m, "ledger.session_check", func() (int, error) {
		req, err := http.NewRequestWithContext(resilience.WithRoute(ctx, "/internal/sessions/:sid"), http.MethodGet,
			"/internal/sessions/"+url.PathEscape(sid), nil)
		if err != nil {
			return 0, err
		}
		resp, err := s.client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		switch resp.StatusCode {
		case http.StatusOK:
			return 0, nil
		case http.StatusNotFound:
			return 0, ledger.ErrSessionEnded // an answer, not a failure
		default:
			return 0, fmt.Errorf("session service: status %d", resp.StatusCode)
		}
	}, func(err error) (int, error) {
		if err == ledger.ErrSessionEnded {
			return 0, err
		}
		s.log.WarnContext(ctx, "session check failed; refusing the write", "err", err)
		return 0, fmt.Errorf("session check: %w", ledger.ErrUnavailable)
	})
	return err
}

// TokenSource supplies the bearer token the relay presents to analytics:
// the ledger's own token exchanged (RFC 8693) for audience analytics, so it
// carries act = the ledger (authn.TokenClient).
type TokenSource interface {
	Token(ctx context.Context, audience string) (string, error)
}

// Analytics delivers outbox events to analytics' internal ingestion
// endpoint: POST /internal/events {"events":[...]} -> 202.
type Analytics struct {
	client *resilience.Client
	tokens TokenSource
}

var _ ledger.Sink = (*Analytics)(nil)

// NewAnalytics returns the sink over kit.Client("analytics", ...).
func NewAnalytics(client *resilience.Client, tokens TokenSource) *Analytics {
	return &Analytics{client: client, tokens: tokens}
}

// Deliver implements ledger.Sink. A failure leaves the events in the
// outbox; the relay retries with backoff (docs/outbox.md).
func (a *Analytics) Deliver(ctx context.Context, events []json.RawMessage) error {
	body, err := json.Marshal(map[string][]json.RawMessage{"events": events})
	if err != nil {
		return err
	}
	tok, err := a.tokens.Token(ctx, "analytics")
	if err != nil {
		return fmt.Errorf("token for analytics: %w", err)
	}
	req, err := http.NewRequestWithContext(resilience.WithRoute(ctx, "/internal/events"), http.MethodPost, "/internal/events", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
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
}
