package tracecheck_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/tools/tracecheck"
)

const demoPassword = "strata-demo"

// api is a user's view of the public API of a StartSystem system.
type api struct {
	sys  *testenv.System
	http *http.Client
	oidc *oidclogin.Client
}

func newAPI(t testing.TB, sys *testenv.System) *api {
	hc := sys.Stack.PublicClient(t)
	return &api{sys: sys, http: hc, oidc: &oidclogin.Client{Issuer: sys.Issuer, ClientID: "strata-cli",
		RedirectURI: "http://127.0.0.1:8765/callback", HTTP: hc}}
}

func (a *api) login(t testing.TB, user string) oidclogin.Tokens {
	t.Helper()
	tok, err := a.oidc.Login(context.Background(), user, demoPassword)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return tok
}

func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// call sends one request with token; body is JSON, POSTs get an
// Idempotency-Key. It returns the status and body.
func (a *api) call(ctx context.Context, token, method, url string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if method == http.MethodPost {
		req.Header.Set("Idempotency-Key", newKey())
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// must is call that fails the test unless the status is want, decoding
// the body into v (when not nil).
func (a *api) must(t testing.TB, want int, token, method, url string, body, v any) {
	t.Helper()
	status, b, err := a.call(context.Background(), token, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if status != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, want, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
}

func (a *api) ledger(path string) string    { return testenv.URL(a.sys.Ledger.Public) + path }
func (a *api) analytics(path string) string { return testenv.URL(a.sys.Analytics.Public) + path }

type account struct {
	ID string `json:"id"`
}

type transfer struct {
	ID string `json:"id"`
}

// openFunded opens an EUR account for token's user, funded by admin.
func (a *api) openFunded(t testing.TB, token, admin string, amount int64) account {
	t.Helper()
	var acc account
	a.must(t, http.StatusCreated, token, http.MethodPost, a.ledger("/v1/accounts"), map[string]string{"currency": "EUR", "name": "tracecheck"}, &acc)
	if amount > 0 {
		a.must(t, http.StatusCreated, admin, http.MethodPost, a.ledger("/v1/deposits"),
			map[string]any{"account_id": acc.ID, "amount": amount, "currency": "EUR"}, nil)
	}
	return acc
}

// startSystem boots the stack, an OTLP receiver and the four services
// exporting to it, and seeds users load-000001 ... load-<users>.
func startSystem(t testing.TB, discard bool, users int, env map[string]string) (*testenv.System, *tracecheck.Receiver) {
	t.Helper()
	st := testenv.StartStack(t)
	rcv, err := tracecheck.StartReceiver(discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.Close)
	extra := map[string]map[string]string{}
	for _, n := range []string{"auth", "ledger", "analytics", "session"} {
		extra[n] = map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.Addr, "OTEL_EXPORTER_OTLP_INSECURE": "true"}
		for k, v := range env {
			extra[n][k] = v
		}
	}
	sys := testenv.StartSystem(t, st, extra)
	if out, err := sys.Auth.Seed(t, users); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	return sys, rcv
}

// stopAll stops the services with SIGTERM, the ledger first (its relay and
// the calls it makes end while the others still answer); each flushes its
// spans on the way out (kit.Shutdown).
func stopAll(sys *testenv.System) {
	for _, p := range []*testenv.Process{sys.Ledger, sys.Analytics, sys.Auth, sys.Session} {
		_ = p.Stop()
	}
}

func user(i int) string { return fmt.Sprintf("load-%06d", i) }
