package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/strata-ref/strata/libs/openapi"
	"github.com/strata-ref/strata/libs/openapi/openapitest"
)

// Check makes doc the contract of the service listening at public (its
// public listener's host:port) and internal (its internal one, "" if the
// test never calls it) until t ends: every request a client of this stack
// (PublicClient, InternalClient) sends there is checked, with its answer,
// against the OpenAPI document (kin-openapi's openapi3filter):
//
//   - a request the document does not describe must be refused with 404 or
//     405 (the server agrees there is no such route);
//   - a request the document calls invalid (a missing field, a malformed
//     Idempotency-Key, no bearer token) must be refused with a 4xx;
//   - every answer must be one the document lists for the operation: its
//     status, its headers and its body, problem+json included.
//
// A difference fails t (Errorf), so a drift between a service and its
// document fails the test that met it. exempt lists path prefixes the
// document leaves to other specifications (auth's OpenID Connect
// endpoints). Requests to other hosts pass unchecked; benchmarks are not
// checked, so that validation does not weigh on what they measure.
func (s *Stack) Check(t testing.TB, doc *openapi.Document, public, internal string, exempt ...string) {
	t.Helper()
	if _, bench := t.(*testing.B); bench {
		return
	}
	spec := openapitest.Load(t, doc)
	pub := &openapi3.Server{URL: "https://" + public}
	in := &openapi3.Server{URL: "https://" + internal}
	if internal == "" {
		in.URL = "https://internal.invalid"
	}
	spec.Servers = openapi3.Servers{pub}
	for _, item := range spec.Paths.Map() {
		switch item.Extensions[openapitest.Listener] {
		case "internal":
			item.Servers = openapi3.Servers{in}
		case "both":
			item.Servers = openapi3.Servers{pub, in}
		default:
			item.Servers = nil
		}
	}
	router, err := gorillamux.NewRouter(spec)
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	c := &checker{t: t, router: router, exempt: exempt}
	hosts := []string{public}
	if internal != "" {
		hosts = append(hosts, internal)
	}
	s.contracts.mu.Lock()
	if s.contracts.byHost == nil {
		s.contracts.byHost = map[string]*checker{}
	}
	for _, h := range hosts {
		s.contracts.byHost[h] = c
	}
	s.contracts.mu.Unlock()
	t.Cleanup(func() {
		s.contracts.mu.Lock()
		defer s.contracts.mu.Unlock()
		for _, h := range hosts {
			if s.contracts.byHost[h] == c {
				delete(s.contracts.byHost, h)
			}
		}
	})
}

// contracts are the documents Check registered, by host:port.
type contracts struct {
	mu     sync.RWMutex
	byHost map[string]*checker
}

func (cs *contracts) lookup(host string) *checker {
	cs.mu.RLock()
	defer cs.mu.RUnlock()
	return cs.byHost[host]
}

type checker struct {
	t      testing.TB
	router routers.Router
	exempt []string
}

// HTTPTransport returns the *http.Transport under a client of this
// package, to tune it (connections per host, keep-alives).
func HTTPTransport(c *http.Client) *http.Transport {
	switch t := c.Transport.(type) {
	case *contractTransport:
		return t.next.(*http.Transport)
	default:
		return t.(*http.Transport)
	}
}

// contractTransport checks the requests to hosts with a contract.
type contractTransport struct {
	contracts *contracts
	next      http.RoundTripper
}

// bearerOnly checks that a bearer token is present; whether it is valid
// is the service's to say (401). The mTLS scheme is the TLS layer's.
func bearerOnly(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	switch in.SecurityScheme.Type {
	case "http":
		if !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), "Bearer ") {
			return errors.New("no bearer token")
		}
	}
	return nil
}

func (ct *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ck := ct.contracts.lookup(req.URL.Host)
	if ck == nil || slices.ContainsFunc(ck.exempt, func(p string) bool { return strings.HasPrefix(req.URL.Path, p) }) {
		return ct.next.RoundTrip(req)
	}
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	what := req.Method + " " + req.URL.Path
	route, params, routeErr := ck.router.FindRoute(req)
	var input *openapi3filter.RequestValidationInput
	var reqErr error
	if routeErr == nil {
		// Validate a clone: the validator reads the body and may set defaults.
		clone := req.Clone(req.Context())
		clone.Body = io.NopCloser(bytes.NewReader(reqBody))
		input = &openapi3filter.RequestValidationInput{Request: clone, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: bearerOnly, MultiError: true}}
		reqErr = openapi3filter.ValidateRequest(req.Context(), input)
	}
	resp, err := ct.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return resp, nil // the caller sees the short body; nothing to check
	}
	if routeErr != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			ck.t.Errorf("contract: %s is not in the OpenAPI document (%v) but answered %d", what, routeErr, resp.StatusCode)
		}
		return resp, nil
	}
	if reqErr != nil && resp.StatusCode < 400 {
		ck.t.Errorf("contract: %s is invalid per the OpenAPI document but answered %d:\n%s", what, resp.StatusCode, short(reqErr))
	}
	if reqErr != nil && resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		ck.t.Errorf("contract: %s is invalid per the OpenAPI document and answered %d (want a 4xx)", what, resp.StatusCode)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: input, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(body)), Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		ck.t.Errorf("contract: the answer to %s differs from the OpenAPI document: %s", what, describe(resp.StatusCode, body, err))
	}
	return resp, nil
}

func describe(status int, body []byte, err error) string {
	if len(body) > 512 {
		body = append(body[:512:512], "..."...)
	}
	return fmt.Sprintf("%d %s\n%s", status, body, short(err))
}

var schemaDump = regexp.MustCompile(`(?s)\n\s*Schema:\n.*?\n(\s*Value:)`)

// short leaves the schema out of kin-openapi's messages (the document
// has it); the failing value stays.
func short(err error) string { return schemaDump.ReplaceAllString(err.Error(), "\n$1") }
