package security_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/pki"
	"github.com/strata-ref/strata/libs/testenv"
)

const password = "strata-demo"

// suite is the running system and what the attacks need from it.
type suite struct {
	st                               *testenv.Stack
	sys                              *testenv.System
	public                           *http.Client
	auth, ledger, analytics, session string

	mu sync.Mutex
	// secrets are every credential the suite used: none may reach a log.
	secrets []string
}

func (s *suite) secret(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v != "" {
		s.secrets = append(s.secrets, v)
	}
}

// user is a signed-in demo user.
type user struct {
	name   string
	tokens oidclogin.Tokens
	claims authn.Claims // of the access token, read without verification
}

func (s *suite) login(t *testing.T, name string) *user {
	t.Helper()
	c := &oidclogin.Client{Issuer: s.sys.Issuer, ClientID: "strata-cli", RedirectURI: "http://127.0.0.1:8765/callback", HTTP: s.public}
	tok, err := c.Login(t.Context(), name, password)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	s.secret(tok.AccessToken)
	s.secret(tok.RefreshToken)
	s.secret(tok.IDToken)
	u := &user{name: name, tokens: tok}
	parsed, err := jwt.ParseSigned(tok.AccessToken, authn.Algorithms)
	if err != nil {
		t.Fatalf("access token of %s: %v", name, err)
	}
	if err := parsed.UnsafeClaimsWithoutVerification(&u.claims); err != nil {
		t.Fatal(err)
	}
	return u
}

// reply is one HTTP exchange's outcome.
type reply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

func (r reply) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// call sends one request; a non-nil body is sent as JSON unless the
// Content-Type is overridden in hdr.
func call(c *http.Client, method, url, token string, body any, hdr ...string) reply {
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/json"
	case io.Reader:
		rd, ct = b, "application/json"
	default:
		j, _ := json.Marshal(b)
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{err: err}
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost {
		req.Header.Set("Idempotency-Key", randomHex(16))
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if r, ok := body.(io.Reader); ok && req.ContentLength == 0 {
		req.Body, req.ContentLength = io.NopCloser(r), -1 // streamed: no Content-Length
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// leaks are what must never appear in a response to a client: stack
// traces, driver and SQL errors, tokens.
var leaks = []string{"goroutine ", ".go:", "panic", "runtime.", "SQLSTATE", "pgx", "pgconn", "gocql", "syntax error at or near", "eyJ"}

// expect fails unless r has one of the statuses; an error status must be an
// RFC 9457 problem (ASVS 5.0 16.5.1) whose status matches.
func expect(t *testing.T, r reply, statuses ...int) {
	t.Helper()
	ok := false
	for _, s := range statuses {
		ok = ok || r.status == s
	}
	if r.err != nil || !ok {
		t.Fatalf("got %s; want %v", r, statuses)
	}
	if r.status >= 400 {
		checkProblem(t, r)
	}
}

func checkProblem(t *testing.T, r reply) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("error %d with Content-Type %q, want application/problem+json: %s", r.status, ct, r.body)
	}
	var p struct {
		Status int    `json:"status"`
		Title  string `json:"title"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.status || p.Title == "" {
		t.Fatalf("problem body %q does not describe status %d (%v)", r.body, r.status, err)
	}
	for _, l := range leaks {
		if bytes.Contains(r.body, []byte(l)) {
			t.Fatalf("error response leaks %q: %s", l, r.body)
		}
	}
}

// TestSecurity is the negative security suite against the running system.
func TestSecurity(t *testing.T) {
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	s := &suite{st: st, sys: sys, public: st.PublicClient(t), auth: sys.Issuer, ledger: testenv.URL(sys.Ledger.Public),
		analytics: testenv.URL(sys.Analytics.Public), session: testenv.URL(sys.Session.Public)}
	s.secret(password)

	alice, bob, admin := s.login(t, "alice"), s.login(t, "bob"), s.login(t, "admin")
	dave := s.login(t, "dave")

	// alice owns two accounts and a transfer between them; bob owns one.
	openAccount := func(u *user) string {
		var a struct{ ID string }
		r := call(s.public, http.MethodPost, s.ledger+"/v1/accounts", u.tokens.AccessToken, map[string]string{"currency": "EUR", "name": "sec " + u.name})
		expect(t, r, http.StatusCreated)
		_ = json.Unmarshal(r.body, &a)
		return a.ID
	}
	a1, a2, b1 := openAccount(alice), openAccount(alice), openAccount(bob)
	for _, acct := range []string{a1, b1} { // analytics learns an account's owner from its first ledger event
		expect(t, call(s.public, http.MethodPost, s.ledger+"/v1/deposits", admin.tokens.AccessToken,
			map[string]any{"account_id": acct, "amount": 10000, "currency": "EUR"}), http.StatusCreated)
	}
	r := call(s.public, http.MethodPost, s.ledger+"/v1/transfers", alice.tokens.AccessToken,
		map[string]any{"from_account_id": a1, "to_account_id": a2, "amount": 100, "currency": "EUR", "memo": "sec"})
	expect(t, r, http.StatusCreated)
	var transfer struct{ ID string }
	_ = json.Unmarshal(r.body, &transfer)

	t.Run("API1_2023_BOLA", func(t *testing.T) { s.bola(t, alice, bob, a1, b1, transfer.ID) })
	t.Run("API5_2023_BFLA", func(t *testing.T) { s.functionLevel(t, alice, dave, a1) })
	t.Run("ASVS_v5_8.2.2_ABAC_live", func(t *testing.T) { s.abacLive(t, s.login(t, "carol"), dave, a1, b1) })
	t.Run("ASVS_v5_2.3.4_idempotency_key_per_user", func(t *testing.T) { s.idempotencyPerUser(t, alice, bob, a1, a2, b1) })
	t.Run("API2_2023_BrokenAuthentication", func(t *testing.T) { s.jwtLive(t, alice, bob, a1) })
	t.Run("API2_2023_JWT_trusted_key", func(t *testing.T) { s.jwtTrustedKey(t) })
	t.Run("ASVS_v5_12.3.5_mTLS", func(t *testing.T) { s.mtlsRefusals(t) })
	t.Run("ASVS_v5_12.2.1_public_TLS", func(t *testing.T) { s.publicTLS(t) })
	t.Run("Input", func(t *testing.T) { s.input(t, alice, a1, a2) })
	t.Run("ASVS_v5_1.2.4_injection_in_ids", func(t *testing.T) { s.injection(t, alice, a1) })
	t.Run("ASVS_v5_16.5.1_errors_are_problem_json", func(t *testing.T) { s.errorShape(t, alice) })
	t.Run("API4_2023_resource_consumption", func(t *testing.T) { s.flood(t, alice, a1) })
	t.Run("ASVS_v5_7.4.1_revoked_session", func(t *testing.T) { s.revokedSession(t, a1, a2) })
	t.Run("ASVS_v5_13.2.2_store_access_with_another_workloads_key", func(t *testing.T) { s.storeAccess(t) })
	// Last: every credential above has been used by now.
	t.Run("ASVS_v5_16.2.5_no_secrets_in_logs", func(t *testing.T) { s.logs(t) })
}

// bola: another user's object ids answer 404, exactly like unknown ones,
// and the owner's own request (the control) succeeds.
func (s *suite) bola(t *testing.T, alice, bob *user, a1, b1, transferID string) {
	A, B := alice.tokens.AccessToken, bob.tokens.AccessToken
	for _, c := range []struct{ name, url string }{
		{"ledger_account", s.ledger + "/v1/accounts/" + a1},
		{"ledger_entries", s.ledger + "/v1/accounts/" + a1 + "/entries"},
		{"ledger_transfer", s.ledger + "/v1/transfers/" + transferID},
		{"session_get", s.session + "/v1/sessions/" + alice.claims.SessionID},
	} {
		t.Run(c.name, func(t *testing.T) {
			expect(t, call(s.public, http.MethodGet, c.url, A, nil), http.StatusOK) // control: the owner
			expect(t, call(s.public, http.MethodGet, c.url, B, nil), http.StatusNotFound)
		})
	}
	t.Run("ledger_account_list", func(t *testing.T) {
		r := call(s.public, http.MethodGet, s.ledger+"/v1/accounts", B, nil)
		expect(t, r, http.StatusOK)
		if bytes.Contains(r.body, []byte(a1)) || !bytes.Contains(r.body, []byte(b1)) {
			t.Fatalf("bob's list: %s", r.body)
		}
	})
	t.Run("ledger_transfer_from_other_users_account", func(t *testing.T) {
		r := call(s.public, http.MethodPost, s.ledger+"/v1/transfers", B,
			map[string]any{"from_account_id": a1, "to_account_id": b1, "amount": 1, "currency": "EUR", "memo": "steal"})
		expect(t, r, http.StatusNotFound)
	})
	t.Run("analytics_activity", func(t *testing.T) {
		url := s.analytics + "/v1/accounts/" + a1 + "/activity"
		// The account reaches analytics through the outbox: wait for the
		// owner to see it, so bob's 404 is about ownership.
		deadline := time.Now().Add(30 * time.Second)
		for call(s.public, http.MethodGet, url, A, nil).status != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatal("alice's account never reached analytics")
			}
			time.Sleep(300 * time.Millisecond)
		}
		expect(t, call(s.public, http.MethodGet, url, B, nil), http.StatusNotFound)
	})
	t.Run("analytics_event_on_other_users_account", func(t *testing.T) {
		ev := func(acct string) map[string]any {
			return map[string]any{"events": []any{map[string]any{"event_id": randomUUID(), "type": "account.viewed",
				"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "account_id": acct}}}
		}
		// Control: bob's own account, once the outbox has delivered it.
		deadline := time.Now().Add(30 * time.Second)
		for r := call(s.public, http.MethodPost, s.analytics+"/v1/events", B, ev(b1)); r.status != http.StatusAccepted; r = call(s.public, http.MethodPost, s.analytics+"/v1/events", B, ev(b1)) {
			if time.Now().After(deadline) {
				t.Fatalf("bob's event on his own account: %s", r)
			}
			time.Sleep(300 * time.Millisecond)
		}
		expect(t, call(s.public, http.MethodPost, s.analytics+"/v1/events", B, ev(a1)), http.StatusUnprocessableEntity)
	})
	t.Run("session_delete_other_users_sid", func(t *testing.T) {
		expect(t, call(s.public, http.MethodDelete, s.session+"/v1/sessions/"+alice.claims.SessionID, B, nil), http.StatusNotFound)
		// alice's session survived: her list still shows it.
		r := call(s.public, http.MethodGet, s.session+"/v1/sessions/"+alice.claims.SessionID, A, nil)
		expect(t, r, http.StatusOK)
	})
}

func randomUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// functionLevel: roles gate operations (ASVS 5.0 8.2.1).
func (s *suite) functionLevel(t *testing.T, alice, dave *user, a1 string) {
	t.Run("ASVS_v5_8.2.1/customer_deposits", func(t *testing.T) {
		r := call(s.public, http.MethodPost, s.ledger+"/v1/deposits", alice.tokens.AccessToken,
			map[string]any{"account_id": a1, "amount": 1_000_000, "currency": "EUR"})
		expect(t, r, http.StatusForbidden, http.StatusNotFound)
	})
	t.Run("ASVS_v5_8.2.1/customer_reads_transfer_stats", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, s.analytics+"/v1/stats/transfers", dave.tokens.AccessToken, nil), http.StatusOK) // control
		expect(t, call(s.public, http.MethodGet, s.analytics+"/v1/stats/transfers", alice.tokens.AccessToken, nil), http.StatusForbidden)
	})
	t.Run("ASVS_v5_8.2.1/customer_uses_admin_api", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, s.auth+"/v1/users", alice.tokens.AccessToken, nil), http.StatusForbidden, http.StatusUnauthorized)
	})
}

// abacLive checks the attribute rules on the running ledger, not only in
// the policy tests: carol is a teller in eu, so she may deposit into an eu
// account between 09:00 and 17:00 Berlin time and never into bob's us
// account; dave is an auditor, who reads everything and writes nothing.
func (s *suite) abacLive(t *testing.T, carol, dave *user, euAccount, usAccount string) {
	deposit := func(u *user, account string) reply {
		return call(s.public, http.MethodPost, s.ledger+"/v1/deposits", u.tokens.AccessToken,
			map[string]any{"account_id": account, "amount": 100, "currency": "EUR"})
	}
	t.Run("teller_outside_region", func(t *testing.T) {
		expect(t, deposit(carol, usAccount), http.StatusForbidden, http.StatusNotFound)
	})
	t.Run("teller_in_region_by_the_hour", func(t *testing.T) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now().In(berlin)
		r := deposit(carol, euAccount)
		after := time.Now().In(berlin)
		open := func(at time.Time) bool { return at.Hour() >= 9 && at.Hour() < 17 }
		switch {
		case open(before) != open(after):
			t.Skip("the request straddled 09:00 or 17:00 Berlin time")
		case open(before):
			expect(t, r, http.StatusCreated)
		default:
			expect(t, r, http.StatusForbidden)
		}
		t.Logf("Berlin %s: %d", before.Format("15:04"), r.status)
	})
	t.Run("auditor_writes", func(t *testing.T) {
		expect(t, deposit(dave, euAccount), http.StatusForbidden, http.StatusNotFound)
		expect(t, call(s.public, http.MethodPost, s.ledger+"/v1/accounts", dave.tokens.AccessToken,
			map[string]string{"currency": "EUR", "name": "auditor's"}), http.StatusForbidden)
		expect(t, call(s.public, http.MethodPost, s.ledger+"/v1/transfers", dave.tokens.AccessToken,
			map[string]any{"from_account_id": euAccount, "to_account_id": usAccount, "amount": 1, "currency": "EUR"}),
			http.StatusForbidden, http.StatusNotFound)
		expect(t, call(s.public, http.MethodGet, s.ledger+"/v1/accounts/"+euAccount, dave.tokens.AccessToken, nil), http.StatusOK) // control: he reads
	})
}

// idempotencyPerUser: keys belong to the user who sent them. bob reusing
// alice's key must neither replay alice's stored response (her transfer,
// her account ids) nor be refused as a mismatch of her request: his request
// is his own.
func (s *suite) idempotencyPerUser(t *testing.T, alice, bob *user, a1, a2, b1 string) {
	key := randomHex(16)
	first := call(s.public, http.MethodPost, s.ledger+"/v1/transfers", alice.tokens.AccessToken,
		map[string]any{"from_account_id": a1, "to_account_id": a2, "amount": 7, "currency": "EUR"}, "Idempotency-Key", key)
	expect(t, first, http.StatusCreated)
	var hers struct{ ID string }
	_ = json.Unmarshal(first.body, &hers)
	again := call(s.public, http.MethodPost, s.ledger+"/v1/transfers", alice.tokens.AccessToken,
		map[string]any{"from_account_id": a1, "to_account_id": a2, "amount": 7, "currency": "EUR"}, "Idempotency-Key", key)
	expect(t, again, http.StatusCreated) // control: her own retry is a replay
	if again.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.body, first.body) {
		t.Fatalf("alice's retry is not a byte-for-byte replay: %s", again)
	}
	theirs := call(s.public, http.MethodPost, s.ledger+"/v1/transfers", bob.tokens.AccessToken,
		map[string]any{"from_account_id": b1, "to_account_id": a1, "amount": 7, "currency": "EUR"}, "Idempotency-Key", key)
	expect(t, theirs, http.StatusCreated)
	if theirs.header.Get("Idempotent-Replayed") != "" || bytes.Contains(theirs.body, []byte(hers.ID)) || bytes.Contains(theirs.body, []byte(a2)) {
		t.Fatalf("bob's request with alice's key got her response: %s", theirs)
	}
}

// ---- JWT matrix --------------------------------------------------------

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(v any) string {
	j, _ := json.Marshal(v)
	return b64(j)
}

// payloadOf decodes a JWT's claims as a generic map (no verification).
func payloadOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func headerOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// signES256 signs header.payload with key (any header fields allowed).
func signES256(t *testing.T, key *ecdsa.PrivateKey, header, payload map[string]any) string {
	t.Helper()
	header["alg"] = "ES256"
	input := b64json(header) + "." + b64json(payload)
	h := sha256.Sum256([]byte(input))
	r, sv, err := ecdsa.Sign(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

func signHS256(secret []byte, header, payload map[string]any) string {
	header["alg"] = "HS256"
	input := b64json(header) + "." + b64json(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// jwtLive attacks the ledger with tokens built from the live issuer's real
// tokens and published keys: every one must be refused with 401.
func (s *suite) jwtLive(t *testing.T, alice, bob *user, a1 string) {
	target := s.ledger + "/v1/accounts"
	A := alice.tokens.AccessToken
	hdr, claims := headerOf(t, A), payloadOf(t, A)
	kid, _ := hdr["kid"].(string)
	attacker, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	// The live JWKS: the public key an attacker can fetch.
	var set jose.JSONWebKeySet
	r := call(s.public, http.MethodGet, s.auth+"/.well-known/jwks.json", "", nil)
	if r.status != http.StatusOK || json.Unmarshal(r.body, &set) != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %s", r)
	}
	pubJSON, _ := json.Marshal(set.Key(kid)[0])
	der, _ := x509.MarshalPKIXPublicKey(set.Key(kid)[0].Key)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	// An exchanged token: real signature, audience analytics only.
	tc := &authn.TokenClient{URL: testenv.URL(s.sys.Auth.Internal) + "/oauth2/token", HTTP: s.st.InternalClient(t, "ledger", mtls.ID("auth"))}
	forAnalytics, err := tc.Exchange(t.Context(), A, "analytics")
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	s.secret(forAnalytics)

	t.Run("control_valid_token", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, target, A, nil), http.StatusOK)
	})
	cases := []struct{ id, name, token string }{
		{"ASVS_v5_9.1.2", "alg_none", b64json(map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + b64json(claims) + "."},
		{"ASVS_v5_9.1.2", "alg_none_uppercase", b64json(map[string]any{"alg": "NONE", "typ": "at+jwt", "kid": kid}) + "." + b64json(claims) + "."},
		{"ASVS_v5_9.1.2", "hs256_with_public_jwk", signHS256(pubJSON, clone(hdr), claims)},
		{"ASVS_v5_9.1.2", "hs256_with_public_pem", signHS256(pubPEM, clone(hdr), claims)},
		{"ASVS_v5_9.1.1", "tampered_payload_sub_bob", func() string {
			p := clone(claims)
			p["sub"], p["roles"] = bob.claims.Subject, []string{"admin"}
			parts := strings.Split(A, ".")
			return parts[0] + "." + b64json(p) + "." + parts[2]
		}()},
		{"ASVS_v5_9.1.1", "signature_stripped", strings.Join(strings.Split(A, ".")[:2], ".") + "."},
		{"ASVS_v5_9.1.1", "other_issuer_key_real_kid", signES256(t, attacker, clone(hdr), claims)},
		{"ASVS_v5_9.1.1", "unknown_kid", signES256(t, attacker, map[string]any{"typ": "at+jwt", "kid": "attacker-" + randomHex(4)}, claims)},
		{"ASVS_v5_9.2.2", "id_token_as_access_token", alice.tokens.IDToken},
		{"ASVS_v5_9.2.2", "refresh_token_as_access_token", alice.tokens.RefreshToken},
		{"ASVS_v5_9.2.3", "wrong_audience_exchanged_for_analytics", forAnalytics},
		{"API4_2023", "oversized_token", A + strings.Repeat("A", authn.MaxTokenBytes)},
		{"API2_2023", "garbage", "not.a.jwt"},
		{"API2_2023", "empty_bearer", ""},
	}
	for _, c := range cases {
		t.Run(c.id+"/"+c.name, func(t *testing.T) {
			var r reply
			if c.token == "" {
				r = call(s.public, http.MethodGet, target, "", nil, "Authorization", "Bearer ")
			} else {
				r = call(s.public, http.MethodGet, target, c.token, nil)
			}
			expect(t, r, http.StatusUnauthorized)
		})
	}
	// The exchanged token is real and valid where it belongs: the control
	// that makes wrong_audience a test of aud and nothing else.
	t.Run("ASVS_v5_9.2.3/control_exchanged_token_at_analytics", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, s.analytics+"/v1/accounts/"+a1+"/activity", forAnalytics, nil), http.StatusOK)
	})

	// jku, x5u and jwk name the attacker's key; the validator must neither
	// use it nor fetch it.
	var fetched atomic.Int64
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &attacker.PublicKey, KeyID: kid, Algorithm: "ES256", Use: "sig"}}})
	}))
	defer evil.Close()
	attackerJWK := map[string]any{}
	j, _ := json.Marshal(jose.JSONWebKey{Key: &attacker.PublicKey, KeyID: kid, Algorithm: "ES256"})
	_ = json.Unmarshal(j, &attackerJWK)
	for _, c := range []struct {
		name string
		hdr  map[string]any
	}{
		{"jku", map[string]any{"jku": evil.URL + "/jwks.json"}},
		{"x5u", map[string]any{"x5u": evil.URL + "/cert.pem"}},
		{"jwk", map[string]any{"jwk": attackerJWK}},
		{"jku_unknown_kid", map[string]any{"jku": evil.URL + "/jwks.json", "kid": "evil-" + randomHex(4)}},
	} {
		t.Run("ASVS_v5_9.1.3/"+c.name+"_ignored", func(t *testing.T) {
			h := clone(hdr)
			for k, v := range c.hdr {
				h[k] = v
			}
			expect(t, call(s.public, http.MethodGet, target, signES256(t, attacker, h, claims), nil), http.StatusUnauthorized)
		})
	}
	t.Run("ASVS_v5_9.1.3/attacker_url_never_fetched", func(t *testing.T) {
		if n := fetched.Load(); n != 0 {
			t.Fatalf("the attacker's key URL was fetched %d times", n)
		}
	})
}

// jwtTrustedKey runs a second ledger process (same binary, same database)
// that trusts a key this test holds, so each claim rule can be broken alone
// with an otherwise valid signature: a valid token is accepted (control),
// and each single defect is refused.
func (s *suite) jwtTrustedKey(t *testing.T) {
	iss := authntest.NewIssuer(t)
	env := map[string]string{}
	for _, kv := range s.sys.Ledger.Cmd.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	delete(env, "PATH")
	env["STRATA_PUBLIC_ADDR"] = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	env["STRATA_INTERNAL_ADDR"] = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	env["STRATA_AUTH_ISSUER"] = authntest.IssuerURL
	env["STRATA_AUTH_JWKS_URL"] = testenv.ServeJWKS(t, s.st, iss)
	ledger := testenv.StartProcess(t, s.st, "ledger", env)
	t.Cleanup(func() { s.scan(t, "ledger (trusted-key)", ledger.Logs()) })
	target := testenv.URL(ledger.Public) + "/v1/accounts"

	now := time.Now()
	valid := func() authn.Claims {
		return authn.Claims{Claims: jwt.Claims{Subject: "mallory", Audience: jwt.Audience{"ledger"}}, Roles: []string{"customer"}, Region: "eu"}
	}
	tok := func(mut func(*authn.Claims)) string {
		c := valid()
		if mut != nil {
			mut(&c)
		}
		v := iss.Token(t, c)
		s.secret(v)
		return v
	}
	t.Run("control_valid_token", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, target, tok(nil), nil), http.StatusOK)
	})
	signedWith := func(header map[string]any, payloadMut func(map[string]any)) string {
		p := payloadOf(t, tok(nil))
		if payloadMut != nil {
			payloadMut(p)
		}
		h := map[string]any{"typ": "at+jwt", "kid": iss.Private.KeyID}
		for k, v := range header {
			h[k] = v
		}
		return signES256(t, iss.Private.Key.(*ecdsa.PrivateKey), h, p)
	}
	t.Run("control_hand_signed_token", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, target, signedWith(nil, nil), nil), http.StatusOK)
	})
	cases := []struct{ id, name, token string }{
		{"ASVS_v5_9.2.1", "expired", tok(func(c *authn.Claims) {
			c.IssuedAt, c.NotBefore, c.Expiry = jwt.NewNumericDate(now.Add(-20*time.Minute)), jwt.NewNumericDate(now.Add(-20*time.Minute)), jwt.NewNumericDate(now.Add(-5*time.Minute))
		})},
		{"ASVS_v5_9.2.1", "not_yet_valid_nbf", tok(func(c *authn.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Minute)) })},
		{"ASVS_v5_9.2.1", "no_exp", signedWith(nil, func(p map[string]any) { delete(p, "exp") })},
		{"ASVS_v5_9.2.3", "wrong_audience", tok(func(c *authn.Claims) { c.Audience = jwt.Audience{"analytics"} })},
		{"ASVS_v5_9.2.3", "no_audience", signedWith(nil, func(p map[string]any) { delete(p, "aud") })},
		{"ASVS_v5_9.1.1", "wrong_issuer", tok(func(c *authn.Claims) { c.Issuer = "https://evil.example" })},
		{"ASVS_v5_9.2.2", "typ_JWT_id_token_shape", signedWith(map[string]any{"typ": "JWT"}, nil)},
		{"ASVS_v5_9.2.2", "no_typ", signedWith(map[string]any{"typ": nil}, nil)},
		{"ASVS_v5_9.1.2", "alg_none_trusted_kid", func() string {
			p := payloadOf(t, tok(nil))
			return b64json(map[string]any{"alg": "none", "typ": "at+jwt", "kid": iss.Private.KeyID}) + "." + b64json(p) + "."
		}()},
		{"ASVS_v5_9.1.2", "hs256_with_trusted_public_key", func() string {
			j, _ := json.Marshal(iss.Public)
			return signHS256(j, map[string]any{"typ": "at+jwt", "kid": iss.Private.KeyID}, payloadOf(t, tok(nil)))
		}()},
		{"ASVS_v5_9.1.1", "no_kid", signedWith(map[string]any{"kid": nil}, nil)},
	}
	for _, c := range cases {
		t.Run(c.id+"/"+c.name, func(t *testing.T) {
			expect(t, call(s.public, http.MethodGet, target, c.token, nil), http.StatusUnauthorized)
		})
	}
}

// ---- mTLS --------------------------------------------------------------

// internalClient dials with cfg; no redirects, short timeout.
func internalClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func (s *suite) mtlsRefusals(t *testing.T) {
	roots := s.st.Source(t, "loadtest").Roots()
	// A CA nobody trusts, issuing a perfect-looking SVID for "ledger".
	foreignDir := t.TempDir()
	foreign, err := pki.NewCA(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := foreign.Issue(foreignDir, pki.Leaf{Name: "ledger", TTL: time.Hour, SPIFFE: true}); err != nil {
		t.Fatal(err)
	}
	// Our CA, but an SVID that expired.
	expiredDir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(s.st.Certs, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(expiredDir, pki.Leaf{Name: "ledger", TTL: -30 * time.Second, SPIFFE: true}); err != nil {
		t.Fatal(err)
	}
	withCert := func(dir string) *tls.Config {
		pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ledger.pem"), filepath.Join(dir, "ledger-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}
	}
	services := map[string]*testenv.Process{"auth": s.sys.Auth, "ledger": s.sys.Ledger, "analytics": s.sys.Analytics, "session": s.sys.Session}
	for _, name := range []string{"auth", "ledger", "analytics", "session"} {
		base := testenv.URL(services[name].Internal)
		t.Run(name, func(t *testing.T) {
			t.Run("control_loadtest_svid_readyz", func(t *testing.T) {
				expect(t, call(s.st.InternalClient(t, "loadtest", mtls.ID(name)), http.MethodGet, base+"/readyz", "", nil), http.StatusOK)
			})
			for _, c := range []struct {
				name string
				cfg  *tls.Config
			}{
				{"ASVS_v5_12.3.5/no_client_certificate", &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}},
				{"ASVS_v5_12.1.3/foreign_CA_certificate", withCert(foreignDir)},
				{"ASVS_v5_12.1.3/expired_certificate", withCert(expiredDir)},
			} {
				t.Run(c.name, func(t *testing.T) {
					r := call(internalClient(c.cfg), http.MethodGet, base+"/healthz", "", nil)
					if r.err == nil {
						t.Fatalf("handshake accepted: %s", r)
					}
				})
			}
			t.Run("API5_2023/metrics_only_prometheus_loadtest_console", func(t *testing.T) {
				for _, peer := range []string{"prometheus", "loadtest", "console"} {
					expect(t, call(s.st.InternalClient(t, peer, mtls.ID(name)), http.MethodGet, base+"/metrics", "", nil), http.StatusOK)
				}
				for _, peer := range []string{"auth", "ledger", "analytics", "session"} {
					expect(t, call(s.st.InternalClient(t, peer, mtls.ID(name)), http.MethodGet, base+"/metrics", "", nil), http.StatusForbidden)
				}
			})
			t.Run("API5_2023/fault_toggles_only_loadtest_console", func(t *testing.T) {
				expect(t, call(s.st.InternalClient(t, "loadtest", mtls.ID(name)), http.MethodGet, base+"/internal/faults", "", nil), http.StatusOK)
				expect(t, call(s.st.InternalClient(t, "console", mtls.ID(name)), http.MethodGet, base+"/internal/faults", "", nil), http.StatusOK)
				expect(t, call(s.st.InternalClient(t, "prometheus", mtls.ID(name)), http.MethodGet, base+"/internal/faults", "", nil), http.StatusForbidden)
			})
			t.Run("ASVS_v5_12.2.1/public_port_has_no_internal_routes", func(t *testing.T) {
				expect(t, call(s.public, http.MethodGet, "https://"+publicOf(s, name)+"/metrics", "", nil), http.StatusNotFound)
			})
		})
	}
	// Routes that name their callers: everyone else in the trust domain gets 403.
	sessionInternal := testenv.URL(s.sys.Session.Internal)
	analyticsInternal := testenv.URL(s.sys.Analytics.Internal)
	for _, c := range []struct {
		name, method, url, peer, server string
		allowed                         bool
	}{
		{"session_create_as_ledger", http.MethodPost, sessionInternal + "/internal/sessions", "ledger", "session", false},
		{"session_create_as_loadtest", http.MethodPost, sessionInternal + "/internal/sessions", "loadtest", "session", false},
		{"session_list_as_analytics", http.MethodGet, sessionInternal + "/internal/sessions?user_id=x", "analytics", "session", false},
		{"session_delete_as_ledger", http.MethodDelete, sessionInternal + "/internal/sessions/x", "ledger", "session", false},
		{"session_get_as_prometheus", http.MethodGet, sessionInternal + "/internal/sessions/x", "prometheus", "session", false},
		{"session_get_as_ledger_control", http.MethodGet, sessionInternal + "/internal/sessions/x", "ledger", "session", true},
		{"analytics_ingest_as_session", http.MethodPost, analyticsInternal + "/internal/events", "session", "analytics", false},
		{"analytics_ingest_as_loadtest", http.MethodPost, analyticsInternal + "/internal/events", "loadtest", "analytics", false},
	} {
		t.Run("ASVS_v5_12.3.5/wrong_spiffe_id/"+c.name, func(t *testing.T) {
			r := call(s.st.InternalClient(t, c.peer, mtls.ID(c.server)), c.method, c.url, "", []byte(`{}`))
			if c.allowed {
				if r.err != nil || r.status == http.StatusForbidden {
					t.Fatalf("allowed caller refused: %s", r)
				}
				return
			}
			expect(t, r, http.StatusForbidden)
		})
	}
	// A client pins the server's SPIFFE ID: a workload holding a valid SVID
	// of the wrong name cannot pose as the service.
	t.Run("ASVS_v5_12.3.5/client_pins_server_identity", func(t *testing.T) {
		r := call(s.st.InternalClient(t, "loadtest", mtls.ID("session")), http.MethodGet, testenv.URL(s.sys.Ledger.Internal)+"/readyz", "", nil)
		if r.err == nil {
			t.Fatalf("ledger accepted as session: %s", r)
		}
	})
}

func publicOf(s *suite, name string) string {
	return map[string]string{"auth": s.sys.Auth.Public, "ledger": s.sys.Ledger.Public, "analytics": s.sys.Analytics.Public, "session": s.sys.Session.Public}[name]
}

// publicTLS: the public listeners speak TLS 1.3 only.
func (s *suite) publicTLS(t *testing.T) {
	roots := s.st.Source(t, "loadtest").Roots()
	for _, addr := range []string{s.sys.Auth.Public, s.sys.Ledger.Public, s.sys.Analytics.Public, s.sys.Session.Public} {
		t.Run(addr, func(t *testing.T) {
			c12 := internalClient(&tls.Config{RootCAs: roots, MaxVersion: tls.VersionTLS12})
			if r := call(c12, http.MethodGet, "https://"+addr+"/healthz", "", nil); r.err == nil {
				t.Fatalf("TLS 1.2 accepted: %s", r)
			}
			plain := &http.Client{Timeout: 5 * time.Second}
			if r := call(plain, http.MethodGet, "http://"+addr+"/healthz", "", nil); r.err == nil && r.status == http.StatusOK {
				t.Fatal("plain HTTP served")
			}
			c13 := internalClient(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13})
			expect(t, call(c13, http.MethodGet, "https://"+addr+"/healthz", "", nil), http.StatusOK) // control
		})
	}
}

// ---- input -------------------------------------------------------------

func (s *suite) input(t *testing.T, alice *user, a1, a2 string) {
	A := alice.tokens.AccessToken
	transfers := s.ledger + "/v1/transfers"
	good := func() map[string]any {
		return map[string]any{"from_account_id": a1, "to_account_id": a2, "amount": 1, "currency": "EUR", "memo": "input"}
	}
	big := bytes.Repeat([]byte(" "), 2<<20)
	t.Run("API4_2023/oversize_body_with_length_413", func(t *testing.T) {
		body := append([]byte(`{"memo":"`), append(bytes.Repeat([]byte("x"), 2<<20), []byte(`"}`)...)...)
		expect(t, call(s.public, http.MethodPost, transfers, A, body), http.StatusRequestEntityTooLarge)
	})
	t.Run("API4_2023/oversize_body_streamed_413", func(t *testing.T) {
		j, _ := json.Marshal(good())
		body := io.MultiReader(bytes.NewReader(big), bytes.NewReader(j))
		expect(t, call(s.public, http.MethodPost, transfers, A, body), http.StatusRequestEntityTooLarge)
	})
	t.Run("API4_2023/oversize_event_batch_413", func(t *testing.T) {
		body := append([]byte(`{"events":[`), append(bytes.Repeat([]byte(`{},`), 1<<20), []byte(`{}]}`)...)...)
		expect(t, call(s.public, http.MethodPost, s.analytics+"/v1/events", A, body), http.StatusRequestEntityTooLarge)
	})
	for _, c := range []struct{ name, body string }{
		{"malformed_json", `{"from_account_id": "` + a1 + `", "amount": }`},
		{"truncated_json", `{"from_account_id": "` + a1 + `"`},
		{"trailing_data", `{"from_account_id":"` + a1 + `","to_account_id":"` + a2 + `","amount":1,"currency":"EUR"} {}`},
		{"array_not_object", `[1,2,3]`},
		{"empty_body", ``},
		{"amount_as_string", `{"from_account_id":"` + a1 + `","to_account_id":"` + a2 + `","amount":"1","currency":"EUR"}`},
		{"amount_float", `{"from_account_id":"` + a1 + `","to_account_id":"` + a2 + `","amount":1.5,"currency":"EUR"}`},
		{"amount_negative", `{"from_account_id":"` + a1 + `","to_account_id":"` + a2 + `","amount":-100,"currency":"EUR"}`},
		{"amount_overflow", `{"from_account_id":"` + a1 + `","to_account_id":"` + a2 + `","amount":99999999999999999999999,"currency":"EUR"}`},
	} {
		t.Run("ASVS_v5_2.2.1/"+c.name+"_400", func(t *testing.T) {
			expect(t, call(s.public, http.MethodPost, transfers, A, []byte(c.body)), http.StatusBadRequest, http.StatusUnprocessableEntity)
		})
	}
	// RFC 8259 requires UTF-8; Go's decoder alone would replace invalid
	// bytes with U+FFFD, so server.DecodeJSON refuses them first.
	t.Run("ASVS_v5_2.2.1/invalid_utf8_400", func(t *testing.T) {
		body := "{\"from_account_id\":\"" + a1 + "\",\"to_account_id\":\"" + a2 + "\",\"amount\":1,\"currency\":\"EUR\",\"memo\":\"\xff\xfe\"}"
		r := call(s.public, http.MethodPost, transfers, A, []byte(body))
		expect(t, r, http.StatusBadRequest)
		if !utf8.Valid(r.body) {
			t.Fatalf("response holds invalid UTF-8: %q", r.body)
		}
	})
	for _, c := range []struct{ name, field string }{
		{"owner", `"owner":"someone-else"`},
		{"balance", `"balance":1000000`},
		{"region", `"region":"us"`},
		{"id", `"id":"00000000-0000-0000-0000-000000000001"`},
	} {
		t.Run("API3_2023_mass_assignment/account_"+c.name+"_400", func(t *testing.T) {
			body := `{"currency":"EUR","name":"x",` + c.field + `}`
			expect(t, call(s.public, http.MethodPost, s.ledger+"/v1/accounts", A, []byte(body)), http.StatusBadRequest)
		})
	}
	t.Run("API3_2023_mass_assignment/transfer_unknown_field_400", func(t *testing.T) {
		g := good()
		g["fee"] = 0
		expect(t, call(s.public, http.MethodPost, transfers, A, g), http.StatusBadRequest)
	})
	t.Run("API3_2023_mass_assignment/control_known_fields_201", func(t *testing.T) {
		expect(t, call(s.public, http.MethodPost, transfers, A, good()), http.StatusCreated)
	})
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", "multipart/form-data; boundary=x"} {
		t.Run("ASVS_v5_2.2.1/content_type_"+strings.Fields(strings.ReplaceAll(ct, "/", "_"))[0]+"_415", func(t *testing.T) {
			j, _ := json.Marshal(good())
			expect(t, call(s.public, http.MethodPost, transfers, A, j, "Content-Type", ct), http.StatusUnsupportedMediaType)
		})
	}
	t.Run("ASVS_v5_2.2.1/missing_idempotency_key_400", func(t *testing.T) {
		j, _ := json.Marshal(good())
		expect(t, call(s.public, http.MethodPost, transfers, A, j, "Idempotency-Key", ""), http.StatusBadRequest)
	})
	t.Run("ASVS_v5_2.2.1/malformed_idempotency_key_400", func(t *testing.T) {
		j, _ := json.Marshal(good())
		expect(t, call(s.public, http.MethodPost, transfers, A, j, "Idempotency-Key", strings.Repeat("k", 5000)), http.StatusBadRequest)
	})
}

var preEncoded = regexp.MustCompile(`%[0-9a-fA-F]{2}`)

// injection: SQL/CQL metacharacters, traversal and oversize ids answer
// 400 or 404, never 500, and the data is intact afterwards.
func (s *suite) injection(t *testing.T, alice *user, a1 string) {
	A := alice.tokens.AccessToken
	ids := []string{
		"' OR '1'='1", "1' OR 1=1--", "'; DROP TABLE accounts;--", "1; SELECT pg_sleep(5)--", "\" OR \"\"=\"",
		"' UNION SELECT id,owner,name,currency,balance,region,created_at FROM accounts--", a1 + "'--", a1 + "%00",
		"../../../../etc/passwd", "..%2f..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..\\..\\windows\\win.ini",
		"$ne", `{"$gt":""}`, "*", "%", "_", "\\", "' ALLOW FILTERING --", "%ff%fe", "%0d%0aSet-Cookie:x=y",
		strings.Repeat("9", 4096),
	}
	templates := map[string]string{
		"ledger_account":     s.ledger + "/v1/accounts/%s",
		"ledger_entries":     s.ledger + "/v1/accounts/%s/entries",
		"ledger_transfer":    s.ledger + "/v1/transfers/%s",
		"analytics_activity": s.analytics + "/v1/accounts/%s/activity",
		"session_get":        s.session + "/v1/sessions/%s",
		"session_delete":     s.session + "/v1/sessions/%s",
		"auth_user":          s.auth + "/v1/users/%s",
	}
	for name, tmpl := range templates {
		t.Run(name, func(t *testing.T) {
			method := http.MethodGet
			if name == "session_delete" {
				method = http.MethodDelete
			}
			for _, id := range ids {
				esc := url.PathEscape(id)
				if preEncoded.MatchString(id) {
					esc = id // already percent-encoded: reaches the router as written
				}
				r := call(s.public, method, fmt.Sprintf(tmpl, esc), A, nil)
				if r.err != nil || r.status >= 500 || r.status < 400 {
					t.Errorf("id %q: %s; want 400 or 404", id, r)
					continue
				}
				checkProblem(t, r)
			}
		})
	}
	t.Run("in_json_fields", func(t *testing.T) {
		for _, id := range ids[:8] {
			r := call(s.public, http.MethodPost, s.ledger+"/v1/transfers", A,
				map[string]any{"from_account_id": a1, "to_account_id": id, "amount": 1, "currency": "EUR", "memo": id})
			if r.err != nil || r.status >= 500 || r.status < 400 {
				t.Errorf("to_account_id %q: %s", id, r)
			}
		}
		r := call(s.public, http.MethodPost, s.ledger+"/v1/accounts", A, map[string]string{"currency": "EUR'--", "name": "x"})
		expect(t, r, http.StatusBadRequest, http.StatusUnprocessableEntity)
	})
	t.Run("query_parameters", func(t *testing.T) {
		for _, q := range []string{"before=1%20OR%201=1", "before=-1", "before=99999999999999999999999"} {
			r := call(s.public, http.MethodGet, s.ledger+"/v1/accounts/"+a1+"/entries?"+q, A, nil)
			expect(t, r, http.StatusBadRequest)
		}
		for _, q := range []string{"limit=1%27", "page=%27%20OR%201=1", "limit=-5", "limit=100000000"} {
			r := call(s.public, http.MethodGet, s.analytics+"/v1/accounts/"+a1+"/activity?"+q, A, nil)
			if r.err != nil || r.status >= 500 {
				t.Errorf("activity?%s: %s", q, r)
			}
		}
	})
	t.Run("control_data_intact", func(t *testing.T) {
		expect(t, call(s.public, http.MethodGet, s.ledger+"/v1/accounts/"+a1, A, nil), http.StatusOK)
	})
}

// errorShape: every kind of error the public API produces is a problem
// document without internal details, with the right status.
func (s *suite) errorShape(t *testing.T, alice *user) {
	A := alice.tokens.AccessToken
	for _, c := range []struct {
		name, method, url, token string
		want                     int
	}{
		{"ledger_no_token_401", http.MethodGet, s.ledger + "/v1/accounts", "", http.StatusUnauthorized},
		{"analytics_no_token_401", http.MethodGet, s.analytics + "/v1/stats/transfers", "", http.StatusUnauthorized},
		{"session_no_token_401", http.MethodGet, s.session + "/v1/sessions", "", http.StatusUnauthorized},
		{"auth_admin_no_token_401", http.MethodGet, s.auth + "/v1/users", "", http.StatusUnauthorized},
		{"ledger_unknown_route_404", http.MethodGet, s.ledger + "/v1/nope", A, http.StatusNotFound},
		{"session_unknown_route_404", http.MethodGet, s.session + "/admin", A, http.StatusNotFound},
		{"ledger_wrong_method_405", http.MethodPut, s.ledger + "/v1/accounts", A, http.StatusMethodNotAllowed},
		{"analytics_wrong_method_405", http.MethodDelete, s.analytics + "/v1/events", A, http.StatusMethodNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := call(s.public, c.method, c.url, c.token, nil)
			expect(t, r, c.want)
			if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

// flood: concurrent requests beyond the limiter's limit are shed with 429,
// Retry-After and a problem document, while /healthz keeps answering.
func (s *suite) flood(t *testing.T, alice *user, a1 string) {
	A := alice.tokens.AccessToken
	url := s.ledger + "/v1/accounts/" + a1 + "/entries"
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.st.Source(t, "loadtest").Roots(), MinVersion: tls.VersionTLS13},
		MaxIdleConnsPerHost: 64, ForceAttemptHTTP2: true}}
	var shed reply
	var counts sync.Map
	for round := 0; round < 6 && shed.status == 0; round++ {
		n := 600 * (round + 1)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var once sync.Once
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := call(client, http.MethodGet, url, A, nil)
				v, _ := counts.LoadOrStore(r.status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
				if r.status == http.StatusTooManyRequests {
					once.Do(func() { shed = r })
				}
			}()
		}
		var health reply
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			time.Sleep(20 * time.Millisecond)
			health = call(client, http.MethodGet, s.ledger+"/healthz", "", nil)
		}()
		close(start)
		wg.Wait()
		if health.status != http.StatusOK {
			t.Fatalf("/healthz during the flood: %s", health)
		}
	}
	summary := map[int]int64{}
	counts.Range(func(k, v any) bool { summary[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("flood outcomes by status: %v", summary)
	if shed.status != http.StatusTooManyRequests {
		t.Fatalf("no 429 in the flood: %v", summary)
	}
	for st := range summary {
		if st >= 500 || st == 0 {
			t.Errorf("the flood produced status %d (%d times): overload must be shed, not fail", st, summary[st])
		}
	}
	checkProblem(t, shed)
	if ra, err := strconv.Atoi(shed.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("429 Retry-After %q", shed.header.Get("Retry-After"))
	}
	// Once the flood is over, the service serves again.
	time.Sleep(1500 * time.Millisecond)
	expect(t, call(s.public, http.MethodGet, url, A, nil), http.StatusOK)
}

// revokedSession: after DELETE /v1/sessions/{sid}, a write with a token of
// that session is refused (ASVS 5.0 7.4.1: no further use after termination).
func (s *suite) revokedSession(t *testing.T, a1, a2 string) {
	alice := s.login(t, "alice") // a session of its own, so the rest of the suite is unaffected
	A := alice.tokens.AccessToken
	body := func() map[string]any {
		return map[string]any{"from_account_id": a1, "to_account_id": a2, "amount": 1, "currency": "EUR", "memo": "revoked"}
	}
	event := func() map[string]any {
		return map[string]any{"events": []any{map[string]any{"event_id": randomUUID(), "type": "account.viewed",
			"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "account_id": a1}}}
	}
	expect(t, call(s.public, http.MethodPost, s.ledger+"/v1/transfers", A, body()), http.StatusCreated) // control
	// Control: analytics accepts alice's event once the ledger's relay has
	// told it who owns a1.
	testenv.WaitFor(t, 30*time.Second, "analytics to learn a1's owner", func() bool {
		return call(s.public, http.MethodPost, s.analytics+"/v1/events", A, event()).status == http.StatusAccepted
	})
	expect(t, call(s.public, http.MethodDelete, s.session+"/v1/sessions/"+alice.claims.SessionID, A, nil), http.StatusNoContent)
	expect(t, call(s.public, http.MethodPost, s.ledger+"/v1/transfers", A, body()), http.StatusUnauthorized)
	// Every resource service refuses the ended session's writes, not only the ledger.
	expect(t, call(s.public, http.MethodPost, s.analytics+"/v1/events", A, event()), http.StatusUnauthorized)
	expect(t, call(s.public, http.MethodDelete, s.session+"/v1/sessions/"+alice.claims.SessionID, A, nil), http.StatusUnauthorized)
	// The refresh token of the ended session is dead too.
	c := &oidclogin.Client{Issuer: s.sys.Issuer, ClientID: "strata-cli", RedirectURI: "http://127.0.0.1:8765/callback", HTTP: s.public}
	if tok, err := c.Refresh(context.Background(), alice.tokens.RefreshToken); err == nil && tok.AccessToken != "" {
		s.secret(tok.AccessToken)
		t.Fatal("refresh succeeded after the session was deleted")
	}
}

// logs: no password, token or JWT-looking string in any service's log.
func (s *suite) logs(t *testing.T) {
	for name, p := range map[string]*testenv.Process{"auth": s.sys.Auth, "ledger": s.sys.Ledger, "analytics": s.sys.Analytics, "session": s.sys.Session} {
		t.Run(name, func(t *testing.T) { s.scan(t, name, p.Logs()) })
	}
}

func (s *suite) scan(t *testing.T, name, logs string) {
	t.Helper()
	if len(logs) == 0 {
		t.Fatalf("%s logged nothing: the scan would prove nothing", name)
	}
	s.mu.Lock()
	secrets := append([]string(nil), s.secrets...)
	s.mu.Unlock()
	for _, sec := range secrets {
		if i := strings.Index(logs, sec); i >= 0 {
			t.Errorf("%s's log holds a secret (%d chars) at byte %d", name, len(sec), i)
		}
	}
	if i := strings.Index(logs, "eyJ"); i >= 0 {
		t.Errorf("%s's log holds something JWT-shaped: %q", name, logs[max(0, i-80):min(len(logs), i+40)])
	}
	if strings.Count(logs, "\n") < 10 {
		t.Errorf("%s logged only %d lines", name, strings.Count(logs, "\n"))
	}
}
