package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/problem"
)

// The middleware that needs only the request and the response is net/http
// middleware, composed in front of each listener's gin engine (Server.Run):
// request id, panic recovery and the body limit. What needs the route
// template gin matched (the access log, the RED metrics, the server span's
// url.path) stays gin middleware, inside the engine (newEngine).

// Middleware is net/http's middleware shape: it wraps the next handler.
type Middleware = func(http.Handler) http.Handler

// chain composes mw around h, the first outermost: chain(h, a, b) is a(b(h)).
func chain(h http.Handler, mw ...Middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Adapt mounts net/http middleware on a gin route or group: the rest of the
// gin chain runs as its next handler, with the request the middleware passed
// on (and gin's own writer: the middleware must not replace the
// ResponseWriter); when the middleware answers itself instead, the chain
// stops there.
func Adapt(mw Middleware) gin.HandlerFunc {
	return func(c *gin.Context) {
		called := false
		mw(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			called = true
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
		if !called {
			c.Abort()
		}
	}
}

// Abort answers a gin handler's request with p (problem.Problem.Send: the
// request id and the path fill in) and stops the handler chain.
func Abort(c *gin.Context, p problem.Problem) {
	p.Send(c.Writer, c.Request)
	c.Abort()
}

type requestIDKey struct{}

// RequestID returns the id the server gave the request (the X-Request-ID of
// its response), or "" outside a request the server received.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{8,64}$`)

// requestID keeps a well-formed X-Request-ID from the caller and mints one
// otherwise, so a log line and a client's error report can be matched. The
// id goes on the response before anything else runs (problem.Problem.Send
// reads it from there) and into the request's context (RequestID).
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(problem.RequestIDHeader)
		if !validRequestID.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set(problem.RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// recovery turns a handler's panic into a logged 500 with no details for
// the client. http.ErrAbortHandler is net/http's way to abort a response
// on purpose, so it is passed on.
func recovery(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
						panic(v)
					}
					log.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()),
						"request_id", RequestID(r.Context()))
					problem.New(http.StatusInternalServerError, "internal error").Send(w, r)
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// limitBody refuses a declared body over n bytes (413) and caps the read of
// any other at n (DecodeJSON then answers 413).
func limitBody(n int64) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", n)).Send(w, r)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// RequirePeers admits only internal callers whose SVID names one of the
// given workloads; anyone else in the trust domain gets 403. A gin route
// mounts it with Adapt.
func RequirePeers(names ...string) Middleware {
	allowed := make(map[string]bool, len(names))
	for _, n := range names {
		allowed[mtls.ID(n).String()] = true
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := mtls.PeerID(r)
			if !ok || !allowed[id.String()] {
				problem.New(http.StatusForbidden, "this workload may not call this route").Send(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
