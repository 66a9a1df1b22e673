package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/services/auth/api"
	"github.com/strata-ref/strata/services/auth/internal/postgres"
)

func TestBoot(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	env := st.Env("auth")
	env["STRATA_PG_URL"] = st.PGURL("auth", "auth_test")
	testenv.CheckBoot(t, st, "auth", run, env)
}

// harness is the auth service booted in-process next to the real session
// service (its own process), both against the native stack.
type harness struct {
	st      *testenv.Stack
	svc     *testenv.Service
	env     map[string]string
	issuer  string
	session *testenv.Process
	store   *postgres.Store
	pool    *pgxpool.Pool
}

// freePort picks a port for the public listener: the issuer must be known
// (and exact) before the service starts.
func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// start boots the pair for one top-level test (or benchmark); both stop
// in its cleanup. kv are extra environment variables for auth (name,
// value, ...).
func start(t testing.TB, kv ...string) *harness {
	t.Helper()
	st := testenv.StartStack(t, "postgres", "redis")
	// Both listeners of auth are fixed before anything starts: the issuer
	// must be exact, and the session service validates auth's tokens.
	port, internalPort := freePort(t), freePort(t)
	issuer := "https://127.0.0.1:" + port
	senv := st.Env("session")
	senv["STRATA_AUTH_ISSUER"] = issuer
	senv["STRATA_AUTH_JWKS_URL"] = "https://127.0.0.1:" + internalPort + "/.well-known/jwks.json"
	senv["STRATA_PG_URL"] = st.PGURL("session", "session_test")
	senv["STRATA_REDIS_ADDR"] = "127.0.0.1:" + strconv.Itoa(st.RedisPort)
	sess := testenv.StartProcess(t, st, "session", senv)

	env := st.Env("auth")
	env["STRATA_PG_URL"] = st.PGURL("auth", "auth_test")
	env["STRATA_PUBLIC_ADDR"] = "127.0.0.1:" + port
	env["STRATA_INTERNAL_ADDR"] = "127.0.0.1:" + internalPort
	env["STRATA_AUTH_ISSUER"] = issuer
	env["STRATA_SESSION_URL"] = "https://" + sess.Internal
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	svc := testenv.StartService(t, run, env)
	// The OpenID Connect endpoints follow their specifications, not the
	// document.
	st.Check(t, api.Document, svc.Public, svc.Internal, "/.well-known/", "/oauth2/", "/userinfo", "/logout", "/login", "/logged-out")

	pool, err := pgstore.Open(context.Background(), pgstore.Config{URL: env["STRATA_PG_URL"], TLS: st.Source(t, "auth")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Seeding keeps a disabled demo user disabled; a test elsewhere that
	// disabled one in this shared test database must not fail these.
	if _, err := pool.Exec(context.Background(), `UPDATE users SET disabled = false WHERE username = ANY($1) AND disabled`,
		[]string{"alice", "bob", "carol", "dave", "admin"}); err != nil {
		t.Fatal(err)
	}
	return &harness{st: st, svc: svc, env: env, issuer: env["STRATA_AUTH_ISSUER"], session: sess, store: postgres.New(pool, nil), pool: pool}
}

// browser is a client with a cookie jar that stops at the loopback
// redirect (nobody listens on 127.0.0.1:8765 in a test).
func (h *harness) browser(t testing.TB) *http.Client {
	c := h.st.PublicClient(t)
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme == "http" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return c
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	v := base64.RawURLEncoding.EncodeToString(b)
	s := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(s[:])}
}

const cliRedirect = "http://127.0.0.1:8765/callback"

func authorizeURL(issuer, clientID, redirect, state string, p pkce, extra url.Values) string {
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid profile offline_access"}, "state": {state}, "nonce": {"n-" + state},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return issuer + "/oauth2/authorize?" + q.Encode()
}

// loginForm is the parsed sign-in form.
type loginForm struct {
	action string
	fields url.Values
}

// parseForm parses the page with the same parser the load generator uses
// and fails the test unless it holds the username/password form.
func parseForm(t testing.TB, body string) loginForm {
	t.Helper()
	action, fields, err := oidclogin.ParseForm(body)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, body)
	}
	return loginForm{action: action, fields: fields}
}

// redirectParams reads code/state (or error) from a loopback redirect.
func redirectParams(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("expected a redirect to the client, got %d: %s", resp.StatusCode, b)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme != "http" || loc.Hostname() != "127.0.0.1" {
		t.Fatalf("redirect to %q", resp.Header.Get("Location"))
	}
	return loc.Query()
}

// signIn runs /oauth2/authorize; when the form appears, it submits
// username/password. It returns the redirect's query and whether the form
// was shown.
func (h *harness) signIn(t testing.TB, c *http.Client, clientID, redirect, user, password string, extra url.Values) (url.Values, pkce, bool) {
	t.Helper()
	p := newPKCE()
	state := fmt.Sprintf("st-%d", time.Now().UnixNano())
	resp, err := c.Get(authorizeURL(h.issuer, clientID, redirect, state, p, extra))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 { // SSO: no form
		q := redirectParams(t, resp)
		if q.Get("state") != state {
			t.Fatalf("state %q, want %q", q.Get("state"), state)
		}
		return q, p, false
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d %s", resp.StatusCode, body)
	}
	form := parseForm(t, string(body))
	form.fields.Set("username", user)
	form.fields.Set("password", password)
	action, _ := resp.Request.URL.Parse(form.action)
	resp2, err := h.postLogin(c, action.String(), form.fields)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	q := redirectParams(t, resp2)
	if q.Get("state") != state {
		t.Fatalf("state %q, want %q (%v)", q.Get("state"), state, q)
	}
	return q, p, true
}

// postLogin submits the login form as a browser does: a form POST with
// the provider's own Origin.
func (h *harness) postLogin(c *http.Client, action string, fields url.Values, hdr ...string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(fields.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", h.issuer)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	return c.Do(req)
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
	IssuedType   string `json:"issued_token_type"`
}

func postToken(t testing.TB, c *http.Client, endpoint string, form url.Values) (int, tokenResponse) {
	t.Helper()
	return postTokenRaw(t, c, endpoint, form.Encode())
}

func postTokenRaw(t testing.TB, c *http.Client, endpoint, form string) (int, tokenResponse) {
	t.Helper()
	resp, err := c.Post(endpoint, "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("token response %d not JSON: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, tr
}

func (h *harness) redeem(t testing.TB, c *http.Client, clientID, redirect, code string, p pkce) tokenResponse {
	t.Helper()
	status, tr := postToken(t, c, h.issuer+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirect}, "client_id": {clientID}, "code_verifier": {p.verifier}})
	if status != 200 || tr.AccessToken == "" {
		t.Fatalf("code exchange: %d %+v", status, tr)
	}
	return tr
}

// login is the whole code + PKCE flow for the CLI client; resources
// (RFC 8707) pick the access token's audiences ("auth" for the admin API).
func (h *harness) login(t testing.TB, c *http.Client, user string, resources ...string) tokenResponse {
	t.Helper()
	var extra url.Values
	if len(resources) > 0 {
		extra = url.Values{"resource": resources}
	}
	q, p, _ := h.signIn(t, c, "strata-cli", cliRedirect, user, "strata-demo", extra)
	if q.Get("code") == "" {
		t.Fatalf("no code: %v", q)
	}
	return h.redeem(t, c, "strata-cli", cliRedirect, q.Get("code"), p)
}

// validator is what a resource service runs: JWKS from auth's internal
// listener over mTLS, audience = the service's name.
func (h *harness) validator(t testing.TB, audience string) *authn.Validator {
	t.Helper()
	jwks := authn.NewJWKS("https://"+h.svc.Internal+"/.well-known/jwks.json", h.st.InternalClient(t, audience, mtls.ID("auth")), time.Millisecond)
	v, err := authn.NewValidator(authn.Config{Issuer: h.issuer, Audience: audience, Keys: jwks})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (h *harness) userinfo(t testing.TB, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := h.st.PublicClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
