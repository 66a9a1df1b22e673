package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/problem"
)

// TestSend: with net/http alone, a problem is application/problem+json,
// never cached, with the path as instance, the response's request id, and
// Retry-After rounded up to whole seconds.
func TestSend(t *testing.T) {
	for _, tc := range []struct {
		name        string
		p           problem.Problem
		retryAfter  string
		wantID      string
		wantPath    string
		presetIDHdr string
	}{
		{"plain", problem.New(http.StatusNotFound, "no such resource"), "", "abc123", "/v1/things/7", "abc123"},
		{"retry after rounds up", problem.New(http.StatusServiceUnavailable, "later").WithRetryAfter(1500 * time.Millisecond), "2", "abc123", "/v1/things/7", "abc123"},
		{"set fields win", problem.Problem{Title: "x", Status: 400, Instance: "/elsewhere", RequestID: "mine"}, "", "mine", "/elsewhere", "abc123"},
		{"no request id on the response", problem.New(http.StatusBadRequest, "bad"), "", "", "/v1/things/7", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if tc.presetIDHdr != "" {
				w.Header().Set(problem.RequestIDHeader, tc.presetIDHdr)
			}
			tc.p.Send(w, httptest.NewRequest(http.MethodGet, "/v1/things/7", nil))
			if w.Code != tc.p.Status || w.Header().Get("Content-Type") != problem.ContentType || w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d, headers %v", w.Code, w.Header())
			}
			if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Fatalf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			var body problem.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if body.RequestID != tc.wantID || body.Instance != tc.wantPath || body.Status != tc.p.Status {
				t.Fatalf("body %+v", body)
			}
		})
	}
}
