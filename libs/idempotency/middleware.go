package idempotency

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/strata-ref/strata/libs/problem"
)

type ctxKey struct{}

// FromContext returns the keyed request the middleware admitted. A handler
// takes it once and passes it down (see Keyed); nothing below reads it from
// the context.
func FromContext(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(ctxKey{}).(Request)
	return r, ok
}

// WithRequest returns ctx carrying r (for callers outside Middleware).
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// Config configures Middleware.
type Config struct {
	// Scope names the principal (the middleware runs after authentication);
	// ok=false is 401.
	Scope func(*http.Request) (string, bool)
}

// Middleware guards a POST route:
//  1. a missing or malformed Idempotency-Key is 400;
//  2. a request without a principal is 401;
//  3. the body is read once and fingerprinted with method and path;
//  4. the Request (scope, key, fingerprint) goes into the context, for the
//     handler to pass down to the store, which claims the key in the
//     transaction that does the work: the claim answers replays, 409s and
//     422s (see Claim.Err and Fail).
//
// It is net/http middleware (a Handler wrapping a Handler); a gin route
// mounts it with server.Adapt.
func Middleware(cfg Config) func(http.Handler) http.Handler {
	scope := cfg.Scope
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			key, err := ParseKey(req.Header.Values(Header))
			if err != nil {
				problem.New(http.StatusBadRequest, err.Error()).Send(w, req)
				return
			}
			who, ok := scope(req)
			if !ok {
				problem.New(http.StatusUnauthorized, "a valid access token is required").Send(w, req)
				return
			}
			body, err := io.ReadAll(req.Body)
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					problem.New(http.StatusRequestEntityTooLarge, "body too large").Send(w, req)
					return
				}
				problem.New(http.StatusBadRequest, "unreadable body").Send(w, req)
				return
			}
			req.Body = io.NopCloser(bytes.NewReader(body))
			r := Request{Scope: who, Key: key, Fingerprint: Fingerprint(req.Method, req.URL.Path, body)}
			next.ServeHTTP(w, req.WithContext(WithRequest(req.Context(), r)))
		})
	}
}

// Write sends a stored response exactly as stored.
func Write(w http.ResponseWriter, resp Response, replayed bool) {
	if replayed {
		w.Header().Set(ReplayedHeader, "true")
	}
	w.Header().Set("Content-Type", resp.ContentType)
	w.WriteHeader(resp.Status)
	_, _ = w.Write(resp.Body)
}

// Fail answers the errors of this package on w: the replay, 400, 409 or
// 422. It reports false for any other error, which the caller maps itself.
func Fail(w http.ResponseWriter, r *http.Request, err error) bool {
	var replay *Replay
	switch {
	case errors.As(err, &replay):
		Write(w, replay.Response, true)
	case errors.Is(err, ErrMissingKey), errors.Is(err, ErrMalformedKey):
		problem.New(http.StatusBadRequest, err.Error()).Send(w, r)
	case errors.Is(err, ErrInFlight):
		problem.New(http.StatusConflict, err.Error()).WithRetryAfter(time.Second).Send(w, r)
	case errors.Is(err, ErrMismatch):
		problem.New(http.StatusUnprocessableEntity, err.Error()).Send(w, r)
	default:
		return false
	}
	return true
}
