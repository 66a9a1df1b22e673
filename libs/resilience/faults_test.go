package resilience_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/problem"
	"github.com/strata-ref/strata/libs/resilience"
)

func call(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w
}

// TestFaultsHandler: in dev a PUT sets a dependency's fault, which GET
// lists and Inject applies; a body out of range is 400; outside dev both
// routes answer 403.
func TestFaultsHandler(t *testing.T) {
	f := resilience.NewFaults("dev")
	h := f.Handler()
	if w := call(h, http.MethodPut, "/internal/faults/postgres", `{"error_rate": 1}`); w.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	if err := f.Inject(t.Context(), "postgres"); err != resilience.ErrInjected {
		t.Fatalf("Inject after PUT: %v", err)
	}
	w := call(h, http.MethodGet, "/internal/faults", "")
	var set map[string]resilience.Fault
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &set) != nil || set["postgres"].ErrorRate != 1 {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	for _, body := range []string{`{"error_rate": 2}`, `{"latency": -1}`, `{"latency": ` + strconv.FormatInt(int64(time.Hour), 10) + `}`, `{"other": 1}`, `not json`} {
		if w := call(h, http.MethodPut, "/internal/faults/redis", body); w.Code != http.StatusBadRequest || w.Header().Get("Content-Type") != problem.ContentType {
			t.Fatalf("PUT %s: %d", body, w.Code)
		}
	}
	if w := call(h, http.MethodPut, "/internal/faults/postgres", `{}`); w.Code != http.StatusOK || f.Inject(t.Context(), "postgres") != nil {
		t.Fatalf("clearing: %d", w.Code)
	}

	off := (*resilience.Faults)(nil).Handler()
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		path := "/internal/faults"
		if m == http.MethodPut {
			path += "/postgres"
		}
		if w := call(off, m, path, `{}`); w.Code != http.StatusForbidden || w.Header().Get("Content-Type") != problem.ContentType {
			t.Fatalf("%s outside dev: %d", m, w.Code)
		}
	}
}
