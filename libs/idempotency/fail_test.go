package idempotency

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestFail: the package's errors map to their answers with net/http alone;
// a replay is the stored response byte for byte, marked replayed.
func TestFail(t *testing.T) {
	stored := Response{Status: http.StatusCreated, ContentType: "application/json; charset=utf-8", Body: []byte(`{"id":"t1"}`)}
	for _, tc := range []struct {
		name   string
		err    error
		ok     bool
		status int
		body   string
	}{
		{"replay", fmt.Errorf("post: %w", &Replay{Response: stored}), true, http.StatusCreated, `{"id":"t1"}`},
		{"missing key", ErrMissingKey, true, http.StatusBadRequest, ""},
		{"malformed key", ErrMalformedKey, true, http.StatusBadRequest, ""},
		{"in flight", fmt.Errorf("claim: %w", ErrInFlight), true, http.StatusConflict, ""},
		{"another body", ErrMismatch, true, http.StatusUnprocessableEntity, ""},
		{"not ours", errors.New("boom"), false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if ok := Fail(w, httptest.NewRequest(http.MethodPost, "/v1/transfers", nil), tc.err); ok != tc.ok {
				t.Fatalf("handled %v, want %v", ok, tc.ok)
			}
			if !tc.ok {
				return
			}
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.body != "" && (w.Body.String() != tc.body || w.Header().Get(ReplayedHeader) != "true" || w.Header().Get("Content-Type") != stored.ContentType) {
				t.Fatalf("replay %q %v", w.Body.String(), w.Header())
			}
			if tc.status == http.StatusConflict && w.Header().Get("Retry-After") != "1" {
				t.Fatalf("409 without Retry-After: %v", w.Header())
			}
		})
	}
}
