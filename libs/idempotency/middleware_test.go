package idempotency

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMiddleware: plain net/http middleware; what it refuses never reaches
// the handler, and what it admits carries the Request in its context.
func TestMiddleware(t *testing.T) {
	scope := func(r *http.Request) (string, bool) {
		who := r.Header.Get("X-Test-User")
		return who, who != ""
	}
	for _, tc := range []struct {
		name    string
		key     []string
		user    string
		body    string
		limit   int64
		status  int // 0: admitted
		reached bool
	}{
		{"admitted", []string{"k-1"}, "alice", `{"amount": 5}`, 0, 0, true},
		{"no key: 400", nil, "alice", `{}`, 0, http.StatusBadRequest, false},
		{"two keys: 400", []string{"a", "b"}, "alice", `{}`, 0, http.StatusBadRequest, false},
		{"no principal: 401", []string{"k-1"}, "", `{}`, 0, http.StatusUnauthorized, false},
		{"body past the limit: 413", []string{"k-1"}, "alice", strings.Repeat("x", 100), 10, http.StatusRequestEntityTooLarge, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Request
			reached := false
			h := Middleware(Config{Scope: scope})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = true
				got, _ = FromContext(r.Context())
				var b bytes.Buffer
				_, _ = b.ReadFrom(r.Body)
				if b.String() != tc.body {
					t.Errorf("handler read %q, want the body again", b.String())
				}
				w.WriteHeader(http.StatusCreated)
			}))
			req := httptest.NewRequest(http.MethodPost, "/v1/transfers", strings.NewReader(tc.body))
			for _, k := range tc.key {
				req.Header.Add(Header, k)
			}
			if tc.user != "" {
				req.Header.Set("X-Test-User", tc.user)
			}
			w := httptest.NewRecorder()
			if tc.limit > 0 {
				req.Body = http.MaxBytesReader(w, req.Body, tc.limit)
			}
			h.ServeHTTP(w, req)
			if reached != tc.reached {
				t.Fatalf("handler reached %v, want %v (status %d)", reached, tc.reached, w.Code)
			}
			if tc.status != 0 && (w.Code != tc.status || w.Header().Get("Content-Type") != "application/problem+json") {
				t.Fatalf("status %d %q, want %d problem+json", w.Code, w.Header().Get("Content-Type"), tc.status)
			}
			if tc.reached {
				want := Fingerprint(http.MethodPost, "/v1/transfers", []byte(tc.body))
				if got.Scope != tc.user || got.Key != tc.key[0] || !bytes.Equal(got.Fingerprint, want) {
					t.Fatalf("request in the context %+v", got)
				}
			}
		})
	}
}
