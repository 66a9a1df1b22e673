package testenv

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/strata-ref/strata/libs/openapi"
)

const tinyDoc = `openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /v1/things:
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name]
              properties:
                name: {type: string}
      responses:
        "201":
          description: created
          content:
            application/json:
              schema:
                type: object
                additionalProperties: false
                required: [id]
                properties:
                  id: {type: string}
        "400":
          description: refused
          content:
            application/problem+json:
              schema: {type: object}
`

// recorder is a testing.TB that keeps what Errorf reports.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

// TestContractCatchesDrift serves answers that differ from the document in
// each way the check knows, and one that matches.
func TestContractCatchesDrift(t *testing.T) {
	var answer func(w http.ResponseWriter, r *http.Request)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, r) }))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	post := func(path, body string) []string {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		c := srv.Client()
		st := &Stack{}
		rec := &recorder{TB: t}
		st.Check(rec, openapi.MustLoad([]byte(tinyDoc)), host, "")
		c.Transport = &contractTransport{contracts: &st.contracts, next: c.Transport}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return rec.errs
	}
	json := func(status int, body string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		}
	}
	for _, c := range []struct {
		name, path, body string
		answer           func(http.ResponseWriter, *http.Request)
		want             string // "" when no report is due
	}{
		{"matches", "/v1/things", `{"name":"a"}`, json(201, `{"id":"1"}`), ""},
		{"extra field in the answer", "/v1/things", `{"name":"a"}`, json(201, `{"id":"1","secret":"x"}`), "differs from the OpenAPI document"},
		{"undocumented status", "/v1/things", `{"name":"a"}`, json(500, `{}`), "differs from the OpenAPI document"},
		{"invalid request accepted", "/v1/things", `{}`, json(201, `{"id":"1"}`), "invalid per the OpenAPI document"},
		{"invalid request refused", "/v1/things", `{}`, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"status":400}`))
		}, ""},
		{"undocumented route served", "/v1/other", `{}`, json(200, `{}`), "is not in the OpenAPI document"},
		{"undocumented route refused", "/v1/other", `{}`, json(404, `{}`), ""},
	} {
		answer = c.answer
		got := strings.Join(post(c.path, c.body), "\n")
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: reports %q, want %q", c.name, got, c.want)
		}
	}
}
