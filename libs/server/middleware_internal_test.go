package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/problem"
)

// listener is a server's request path without TLS: the net/http middleware
// in front of an engine built as New builds them.
func listener(t *testing.T, routes func(e *gin.Engine)) http.Handler {
	t.Helper()
	s := New(Config{Name: "test", Logger: slog.New(slog.DiscardHandler), MaxBodyBytes: 64})
	routes(s.Public)
	return s.handler(s.Public)
}

func serve(h http.Handler, req *http.Request) (*httptest.ResponseRecorder, problem.Problem) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var p problem.Problem
	_ = json.Unmarshal(w.Body.Bytes(), &p)
	return w, p
}

// TestRequestID: every answer carries an X-Request-ID, the caller's when it
// is well formed; handlers find it in the context (RequestID) and every
// problem quotes it, with the path as its instance.
func TestRequestID(t *testing.T) {
	var seen string
	h := listener(t, func(e *gin.Engine) {
		e.GET("/v1/things/:id", func(c *gin.Context) {
			seen = RequestID(c.Request.Context())
			Abort(c, problem.New(http.StatusNotFound, "no such thing"))
		})
	})
	for _, tc := range []struct{ name, sent string }{{"minted", ""}, {"kept", "client-id-12345"}, {"malformed replaced", "bad id!"}} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/things/7", nil)
			if tc.sent != "" {
				req.Header.Set(problem.RequestIDHeader, tc.sent)
			}
			w, p := serve(h, req)
			id := w.Header().Get(problem.RequestIDHeader)
			if !validRequestID.MatchString(id) || (tc.name == "kept") != (id == tc.sent) {
				t.Fatalf("X-Request-ID %q for %q", id, tc.sent)
			}
			if w.Code != http.StatusNotFound || p.RequestID != id || p.Instance != "/v1/things/7" || seen != id {
				t.Fatalf("status %d, problem %+v, handler saw %q, header %q", w.Code, p, seen, id)
			}
		})
	}
	w, p := serve(h, httptest.NewRequest(http.MethodGet, "/nowhere", nil))
	if w.Code != http.StatusNotFound || p.RequestID == "" || p.RequestID != w.Header().Get(problem.RequestIDHeader) {
		t.Fatalf("unrouted: status %d, problem %+v", w.Code, p)
	}
	if RequestID(context.Background()) != "" {
		t.Fatal("a request id outside a request")
	}
}

// TestRecovery: a panic is a 500 problem with the request id and no detail
// of the panic; http.ErrAbortHandler is left to net/http.
func TestRecovery(t *testing.T) {
	h := listener(t, func(e *gin.Engine) {
		e.GET("/boom", func(*gin.Context) { panic("secret detail") })
		e.GET("/abort", func(*gin.Context) { panic(http.ErrAbortHandler) })
	})
	w, p := serve(h, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if w.Code != http.StatusInternalServerError || w.Header().Get("Content-Type") != problem.ContentType ||
		p.RequestID != w.Header().Get(problem.RequestIDHeader) || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("status %d, body %s", w.Code, w.Body)
	}
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler passed on", v)
		}
	}()
	serve(h, httptest.NewRequest(http.MethodGet, "/abort", nil))
}

// TestBodyLimit: a declared body over the limit is refused before the
// router; an undeclared one is cut at the limit when read.
func TestBodyLimit(t *testing.T) {
	h := listener(t, func(e *gin.Engine) {
		e.POST("/v1/things", func(c *gin.Context) {
			var v map[string]any
			if DecodeJSON(c.Writer, c.Request, &v) {
				c.Status(http.StatusNoContent)
			}
		})
	})
	big := `{"name":"` + strings.Repeat("a", 100) + `"}`
	for _, tc := range []struct {
		name   string
		length int64
		want   int
	}{{"small", -1, http.StatusNoContent}, {"declared", int64(len(big)), http.StatusRequestEntityTooLarge}, {"undeclared", -1, http.StatusRequestEntityTooLarge}} {
		t.Run(tc.name, func(t *testing.T) {
			body := big
			if tc.name == "small" {
				body = `{"name":"a"}`
			}
			req := httptest.NewRequest(http.MethodPost, "/v1/things", io.NopCloser(strings.NewReader(body)))
			req.ContentLength = tc.length
			req.Header.Set("Content-Type", "application/json")
			w, p := serve(h, req)
			if w.Code != tc.want || (tc.want >= 400 && p.RequestID == "") {
				t.Fatalf("status %d, want %d; problem %+v", w.Code, tc.want, p)
			}
		})
	}
}

type ctxKey struct{}

// TestAdapt: net/http middleware mounted on a gin route passes its request
// on to the rest of the chain, or answers and stops it.
func TestAdapt(t *testing.T) {
	pass := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "from the middleware")))
		})
	}
	refuse := func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			problem.New(http.StatusForbidden, "no").Send(w, r)
		})
	}
	ran := false
	h := listener(t, func(e *gin.Engine) {
		e.GET("/pass", Adapt(pass), func(c *gin.Context) {
			v, _ := c.Request.Context().Value(ctxKey{}).(string)
			c.String(http.StatusOK, v)
		})
		e.GET("/refuse", Adapt(refuse), func(*gin.Context) { ran = true })
	})
	if w, _ := serve(h, httptest.NewRequest(http.MethodGet, "/pass", nil)); w.Code != http.StatusOK || w.Body.String() != "from the middleware" {
		t.Fatalf("pass: %d %q", w.Code, w.Body)
	}
	w, p := serve(h, httptest.NewRequest(http.MethodGet, "/refuse", nil))
	if w.Code != http.StatusForbidden || ran || p.RequestID == "" {
		t.Fatalf("refuse: %d, handler ran %v, problem %+v", w.Code, ran, p)
	}
}
