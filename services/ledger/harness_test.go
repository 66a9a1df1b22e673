package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/crypto/envelope"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/ledger/api"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
	"github.com/strata-ref/strata/services/ledger/internal/postgres"
	"github.com/strata-ref/strata/services/ledger/internal/remote"
)

// harness is the real ledger (newServer: gin, authn, idempotency, store,
// envelope encryption) on the real test database, with the test issuer's
// validator, a fake session service and an mTLS analytics stand-in.
type harness struct {
	st        *testenv.Stack
	pool      *pgxpool.Pool
	iss       *authntest.Issuer
	app       *app
	public    string
	client    *http.Client
	sessions  *fakeSessions
	analytics *fakeAnalytics
	kms       *switchKMS
	keyset    string
	now       atomic.Pointer[time.Time]
}

// businessHours is 10:00 in Paris: tellers of region eu may deposit.
var businessHours = time.Date(2025, 3, 12, 9, 0, 0, 0, time.UTC)

func newHarness(t testing.TB) *harness {
	t.Helper()
	ctx := context.Background()
	st := testenv.StartStack(t, "postgres")
	env := st.Env("ledger")
	env["STRATA_PG_URL"] = st.PGURL("ledger", "ledger_test")
	h := &harness{st: st, iss: authntest.NewIssuer(t), sessions: &fakeSessions{revoked: map[string]bool{}},
		keyset: filepath.Join(t.TempDir(), "keyset.json")}
	env["STRATA_KMS_KEYSET"] = h.keyset
	var cfg settings
	if err := config.Load(func(k string) string { return env[k] }, &cfg, server.Defaults(Port)); err != nil {
		t.Fatal(err)
	}
	kit, err := server.Setup(ctx, "ledger", cfg.Env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgstore.Open(ctx, pgstore.Config{URL: cfg.PGURL, TLS: kit.TLS, Migrations: postgres.Migrations(), MaxConns: 32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h.pool = pool
	h.exec(t, `TRUNCATE postings, transfers, outbox, idempotency_keys`)
	h.exec(t, `DELETE FROM accounts WHERE kind = 'customer'`)
	h.exec(t, `UPDATE accounts SET balance = 0`)

	local, err := envelope.OpenLocal(h.keyset, true)
	if err != nil {
		t.Fatal(err)
	}
	h.kms = &switchKMS{KMS: local}
	h.analytics = startAnalytics(t, st)
	now := businessHours
	h.now.Store(&now)
	sink := remote.NewAnalytics(kit.Client("analytics", "https://"+h.analytics.addr, resilience.ClientConfig{
		Breaker: resilience.BreakerConfig{MinExecutions: 3}}), staticToken("test-token"))
	h.app, err = newServer(kit, cfg, pool, deps{Validator: h.iss.Validator(t, "ledger"), KMS: h.kms, Sessions: h.sessions,
		Sink: sink, Now: func() time.Time { return *h.now.Load() }})
	if err != nil {
		t.Fatal(err)
	}
	h.app.relay.Idle = 20 * time.Millisecond

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- h.app.srv.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if pub, _ := h.app.srv.Addrs(); pub != nil {
			h.public = pub.String()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ledger did not listen")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.client = st.PublicClient(t)
	_, internal := h.app.srv.Addrs()
	st.Check(t, api.Document, h.public, internal.String())
	testenv.HTTPTransport(h.client).MaxIdleConnsPerHost = 256
	return h
}

func (h *harness) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := h.pool.Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (h *harness) count(t testing.TB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := h.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// user is a principal with a token for the ledger.
type user struct {
	sub, token string
}

func (h *harness) user(t testing.TB, sub, region string, roles ...string) user {
	tok := h.iss.Token(t, authn.Claims{Claims: jwt.Claims{Subject: sub, Audience: jwt.Audience{"ledger"},
		Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))},
		SessionID: "sid-" + sub, Roles: roles, Region: region})
	return user{sub: sub, token: tok}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d, body %q: %v", r.status, r.body, err)
	}
	return m
}

// call sends one request; key "" sends no Idempotency-Key.
func (h *harness) call(t testing.TB, u user, method, path, key string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			raw, _ := json.Marshal(body)
			b = string(raw)
		}
		rd = strings.NewReader(b)
	}
	req, _ := http.NewRequest(method, "https://"+h.public+path, rd)
	req.Header.Set("Authorization", "Bearer "+u.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func key() string { return uuid.NewString() }

func (h *harness) openAccount(t testing.TB, u user, currency, name string) string {
	t.Helper()
	r := h.call(t, u, "POST", "/v1/accounts", key(), map[string]any{"currency": currency, "name": name})
	if r.status != 201 {
		t.Fatalf("open account: %d %s", r.status, r.body)
	}
	return r.json(t)["id"].(string)
}

func (h *harness) deposit(t testing.TB, teller user, id string, amount int64) {
	t.Helper()
	r := h.call(t, teller, "POST", "/v1/deposits", key(), map[string]any{"account_id": id, "amount": amount, "currency": "EUR"})
	if r.status != 201 {
		t.Fatalf("deposit: %d %s", r.status, r.body)
	}
}

func (h *harness) balance(t testing.TB, id string) int64 {
	return h.count(t, `SELECT balance FROM accounts WHERE id = $1`, id)
}

// staticToken stands in for the auth service's token exchange here; the
// system tests (loadtest) run the real exchange.
type staticToken string

func (t staticToken) Token(context.Context, string) (string, error) { return string(t), nil }

// fakeSessions is the session service: every session alive unless revoked.
type fakeSessions struct {
	mu      sync.Mutex
	revoked map[string]bool
	down    atomic.Bool
}

func (f *fakeSessions) Alive(_ context.Context, sid string) error {
	if f.down.Load() {
		return ledger.ErrUnavailable
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.revoked[sid] {
		return ledger.ErrSessionEnded
	}
	return nil
}

// switchKMS is the local KMS with an off switch.
type switchKMS struct {
	envelope.KMS
	down atomic.Bool
}

func (k *switchKMS) Wrap(ctx context.Context, dek, aad []byte) ([]byte, string, error) {
	if k.down.Load() {
		return nil, "", envelope.ErrUnavailable
	}
	return k.KMS.Wrap(ctx, dek, aad)
}

func (k *switchKMS) Unwrap(ctx context.Context, w, aad []byte) ([]byte, error) {
	if k.down.Load() {
		return nil, envelope.ErrUnavailable
	}
	return k.KMS.Unwrap(ctx, w, aad)
}

// fakeAnalytics is analytics' internal listener: mTLS with analytics' SVID,
// only the ledger SPIFFE ID admitted, idempotent by event_id.
type fakeAnalytics struct {
	addr   string
	down   atomic.Bool
	mu     sync.Mutex
	events map[string]map[string]any
	posts  atomic.Int64
	tokens []string
}

func startAnalytics(t testing.TB, st *testenv.Stack) *fakeAnalytics {
	f := &fakeAnalytics{events: map[string]map[string]any{}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.posts.Add(1)
		if id, ok := mtls.PeerID(r); !ok || id != mtls.ID("ledger") || r.URL.Path != "/internal/events" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if f.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Events []map[string]any `json:"events"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.tokens = append(f.tokens, r.Header.Get("Authorization"))
		for _, e := range body.Events {
			f.events[e["event_id"].(string)] = e
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})
	// Not httptest's StartTLS: it would add its own certificate, and the
	// ledger accepts only analytics' SVID.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, TLSConfig: st.Source(t, "analytics").InternalServerConfig()}
	go func() { _ = srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	t.Cleanup(func() { _ = srv.Close() })
	f.addr = ln.Addr().String()
	return f
}

func (f *fakeAnalytics) byTransfer() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for _, e := range f.events {
		out[e["transfer_id"].(string)]++
	}
	return out
}
