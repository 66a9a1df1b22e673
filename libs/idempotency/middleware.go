package idempotency

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/problem"
)

type ctxKey struct{}

// FromContext returns the keyed request the middleware admitted.
func FromContext(ctx context.Context) *Request {
	r, _ := ctx.Value(ctxKey{}).(*Request)
	return r
}

// WithRequest returns ctx carrying r (for callers outside gin).
func WithRequest(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// Middleware guards a POST route:
//  1. a missing or malformed Idempotency-Key is 400;
//  2. the body is read once and fingerprinted with method and path;
//  3. with Config.DB set, a key this principal already completed is
//     answered here: the stored response with Idempotent-Replayed: true,
//     or 422 for another body;
//  4. otherwise the Request goes into the context for the store to claim
//     (the claim answers replays and 422s as well: see Claimed).
//
// Config configures Middleware.
type Config struct {
	// DB, if set, serves the read-only fast path of step 3: one more
	// query before every first request, in exchange for replays that never
	// reach the handler. Nil leaves replays to the claim in the store's
	// transaction, which needs no query of its own (it rides in the
	// transaction's first batch). The ledger runs without it.
	DB Querier
	// Scope names the principal (the middleware runs after authentication);
	// ok=false is 401.
	Scope func(*gin.Context) (string, bool)
	// OnReplay, if set, is called for every replayed response (a metric).
	OnReplay func()
	// Cipher, if set, seals stored response bodies.
	Cipher Cipher
}

func (cfg Config) replayed() {
	if cfg.OnReplay != nil {
		cfg.OnReplay()
	}
}

// Middleware returns the guard for keyed POST routes.
func Middleware(cfg Config) gin.HandlerFunc {
	db, scope := cfg.DB, cfg.Scope
	return func(c *gin.Context) {
		key, err := ParseKey(c.Request.Header.Values(Header))
		if err != nil {
			problem.Abort(c, problem.New(http.StatusBadRequest, err.Error()))
			return
		}
		who, ok := scope(c)
		if !ok {
			problem.Abort(c, problem.New(http.StatusUnauthorized, "a valid access token is required"))
			return
		}
		body, err := io.ReadAll(c.Request.Body)
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				problem.Abort(c, problem.New(http.StatusRequestEntityTooLarge, "body too large"))
				return
			}
			problem.Abort(c, problem.New(http.StatusBadRequest, "unreadable body"))
			return
		}
		c.Request.Body = io.NopCloser(bytes.NewReader(body))
		r := &Request{Scope: who, Key: key, Fingerprint: Fingerprint(c.Request.Method, c.Request.URL.Path, body), Cipher: cfg.Cipher}
		ctx := c.Request.Context()
		if db == nil {
			c.Request = c.Request.WithContext(WithRequest(ctx, r))
			c.Next()
			return
		}
		resp, found, err := Lookup(ctx, db, r)
		switch {
		case errors.Is(err, ErrMismatch):
			Fail(c, err)
			return
		case err != nil:
			_ = c.Error(err)
			problem.Abort(c, problem.New(http.StatusServiceUnavailable, "idempotency store unavailable").WithRetryAfter(time.Second))
			return
		case found:
			cfg.replayed()
			Write(c, resp, true)
			c.Abort()
			return
		}
		c.Request = c.Request.WithContext(WithRequest(ctx, r))
		c.Next()
	}
}

// Write sends a stored response exactly as stored.
func Write(c *gin.Context, resp Response, replayed bool) {
	if replayed {
		c.Header(ReplayedHeader, "true")
	}
	c.Data(resp.Status, resp.ContentType, resp.Body)
}

// Fail answers the errors of this package: 400, 409, 422 or the replay.
// It reports false for any other error, which the caller maps itself.
func Fail(c *gin.Context, err error) bool {
	var replay *Replay
	switch {
	case errors.As(err, &replay):
		Write(c, replay.Response, true)
		c.Abort()
	case errors.Is(err, ErrMissingKey), errors.Is(err, ErrMalformedKey):
		problem.Abort(c, problem.New(http.StatusBadRequest, err.Error()))
	case errors.Is(err, ErrInFlight):
		problem.Abort(c, problem.New(http.StatusConflict, err.Error()).WithRetryAfter(time.Second))
	case errors.Is(err, ErrMismatch):
		problem.Abort(c, problem.New(http.StatusUnprocessableEntity, err.Error()))
	default:
		return false
	}
	return true
}
