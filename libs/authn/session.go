package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ErrSessionEnded: the token's session no longer exists (the user signed
// out, an administrator disabled the user, or a refresh token was reused).
// A write with such a token answers 401, although the JWT itself is valid.
var ErrSessionEnded = errors.New("the session of this token has ended")

// ErrSessionUnknown: the session service could not answer. Writes fail
// closed on it (503), never through.
var ErrSessionUnknown = errors.New("session check unavailable")

// SessionCheck is the stateful half of authentication for writes. An access
// token is valid until its exp (minutes); ending the session (logout,
// disabling the user) must stop writes at once, so before a write a
// resource service asks the session service whether the token's session
// still exists: GET /internal/sessions/{sid} on its internal listener,
// 200 alive, 404 gone. The answer is not cached, so a write never succeeds
// after the session service has deleted the session; reads are not checked
// and keep working until the token expires.
type SessionCheck struct{ client Doer }

// NewSessionCheck asks the session service through client: the service's
// resilient mTLS client for "session" (kit.Client), whose base URL is the
// session service's internal listener.
func NewSessionCheck(client Doer) *SessionCheck { return &SessionCheck{client: client} }

// Alive returns nil when sid is a live session, ErrSessionEnded when it is
// not (or sid is empty: a user's token always carries one), and an error
// wrapping ErrSessionUnknown when the session service cannot say.
func (s *SessionCheck) Alive(ctx context.Context, sid string) error {
	if sid == "" {
		return ErrSessionEnded
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/internal/sessions/"+url.PathEscape(sid), nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSessionUnknown, err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrSessionUnknown, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusNotFound:
		return ErrSessionEnded
	default:
		return fmt.Errorf("%w: session service answered %d", ErrSessionUnknown, resp.StatusCode)
	}
}
