package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/analytics/api"
)

// testKeyspace keeps the tests away from the real "analytics" keyspace.
const testKeyspace = "analytics_test"

// testEnv starts Cassandra, a JWKS endpoint for a test issuer, served
// over mTLS with the auth service's SVID exactly as the real one is
// (testenv.ServeJWKS), and a stand-in for the session service's liveness
// route (testenv.ServeSessions), and returns the service environment
// pointing at them.
func testEnv(t testing.TB) (*testenv.Stack, map[string]string, *authntest.Issuer) {
	st, env, iss, _ := testEnvSessions(t)
	return st, env, iss
}

func testEnvSessions(t testing.TB) (*testenv.Stack, map[string]string, *authntest.Issuer, *testenv.Sessions) {
	st := testenv.StartStack(t, "cassandra")
	iss := authntest.NewIssuer(t)
	env := st.Env("analytics")
	env["STRATA_CASSANDRA_HOSTS"] = "127.0.0.1"
	env["STRATA_CASSANDRA_PORT"] = strconv.Itoa(st.CassandraPort)
	env["STRATA_CASSANDRA_KEYSPACE"] = testKeyspace
	env["STRATA_AUTH_ISSUER"] = authntest.IssuerURL
	env["STRATA_AUTH_JWKS_URL"] = testenv.ServeJWKS(t, st, iss)
	sessions := testenv.ServeSessions(t, st)
	env["STRATA_SESSION_URL"] = sessions.URL
	return st, env, iss, sessions
}

func TestBoot(t *testing.T) {
	st, env, _ := testEnv(t)
	testenv.CheckBoot(t, st, "analytics", run, env)
}

// harness is one booted analytics service with clients for it.
type harness struct {
	t        testing.TB
	st       *testenv.Stack
	svc      *testenv.Service
	iss      *authntest.Issuer
	public   *http.Client
	ledger   *http.Client // mTLS as spiffe://strata.local/ledger
	ledgerTk string       // token exchanged by the ledger
	sessions *testenv.Sessions
}

func start(t testing.TB, extra map[string]string) *harness {
	st, env, iss, sessions := testEnvSessions(t)
	for k, v := range extra {
		env[k] = v
	}
	h := &harness{t: t, st: st, iss: iss, sessions: sessions, svc: testenv.StartService(t, run, env),
		public: st.PublicClient(t), ledger: st.InternalClient(t, "ledger", mtls.ID("analytics"))}
	h.ledgerTk = h.token("ledger-relay", nil, mtls.ID("ledger").String())
	st.Check(t, api.Document, h.svc.Public, h.svc.Internal)
	return h
}

func (h *harness) token(sub string, roles []string, actor string) string {
	// A user's token carries its session ("sid-<sub>", alive until
	// h.sessions.End); the ledger's exchanged token carries the user's.
	c := authn.Claims{Claims: jwt.Claims{Subject: sub, Audience: jwt.Audience{"analytics"}}, Roles: roles, SessionID: "sid-" + sub}
	if actor != "" {
		c.Act = &authn.Actor{Sub: actor}
	}
	return h.iss.Token(h.t, c)
}

type response struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (h *harness) do(c *http.Client, method, url, token string, body any) response {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(t0)}
}

func (h *harness) pub(path string) string { return "https://" + h.svc.Public + path }
func (h *harness) int(path string) string { return "https://" + h.svc.Internal + path }

// postLedger delivers events as the ledger's outbox relay does.
func (h *harness) postLedger(events ...map[string]any) response {
	h.t.Helper()
	return h.do(h.ledger, "POST", h.int("/internal/events"), h.ledgerTk, map[string]any{"events": events})
}

func mustStatus(t testing.TB, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
}

func randID(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

func opened(account, owner string, at time.Time) map[string]any {
	return map[string]any{"event_id": uuid.NewString(), "type": "account.opened", "occurred_at": at.Format(time.RFC3339Nano),
		"account_id": account, "owner": owner, "currency": "EUR"}
}

func posted(id, transfer, from, to, fromOwner, toOwner string, amount int64, at time.Time) map[string]any {
	return map[string]any{"event_id": id, "type": "transfer.posted", "occurred_at": at.Format(time.RFC3339Nano),
		"transfer_id": transfer, "from_account_id": from, "to_account_id": to, "amount": amount, "currency": "EUR",
		"from_owner": fromOwner, "to_owner": toOwner}
}

type activityEvent struct {
	EventID      string    `json:"event_id"`
	Type         string    `json:"type"`
	OccurredAt   time.Time `json:"occurred_at"`
	TransferID   string    `json:"transfer_id"`
	AccountID    string    `json:"account_id"`
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"`
	Counterparty string    `json:"counterparty"`
	Direction    string    `json:"direction"`
}

type activityPage struct {
	Events   []activityEvent `json:"events"`
	NextPage string          `json:"next_page"`
}

func (h *harness) activity(token, account, query string) (response, activityPage) {
	h.t.Helper()
	r := h.do(h.public, "GET", h.pub("/v1/accounts/"+account+"/activity"+query), token, nil)
	var p activityPage
	if r.status == http.StatusOK {
		r.decode(h.t, &p)
	}
	return r, p
}
