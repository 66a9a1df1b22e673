package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/services/auth/internal/identity"
)

// TestOIDC runs the provider's flows over HTTP against one running auth
// service and a real session service.
func TestOIDC(t *testing.T) {
	h := start(t)
	ctx := context.Background()

	t.Run("discovery says exactly what is offered", func(t *testing.T) {
		resp, err := h.st.PublicClient(t).Get(h.issuer + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var d map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			t.Fatal(err)
		}
		if d["issuer"] != h.issuer {
			t.Fatalf("issuer %v, want exactly %s", d["issuer"], h.issuer)
		}
		for k, want := range map[string]string{"authorization_endpoint": "/oauth2/authorize", "token_endpoint": "/oauth2/token",
			"revocation_endpoint": "/oauth2/revoke", "userinfo_endpoint": "/userinfo", "end_session_endpoint": "/logout",
			"jwks_uri": "/.well-known/jwks.json"} {
			if d[k] != h.issuer+want {
				t.Errorf("%s = %v", k, d[k])
			}
		}
		if got := toStrings(d["response_types_supported"]); !slices.Equal(got, []string{"code"}) {
			t.Errorf("response types %v: implicit must not be offered", got)
		}
		grants := toStrings(d["grant_types_supported"])
		if slices.Contains(grants, "password") || slices.Contains(grants, "implicit") || !slices.Contains(grants, "urn:ietf:params:oauth:grant-type:token-exchange") {
			t.Errorf("grant types %v", grants)
		}
		if got := toStrings(d["code_challenge_methods_supported"]); !slices.Equal(got, []string{"S256"}) {
			t.Errorf("PKCE methods %v", got)
		}
	})

	t.Run("code flow with PKCE gives an RFC 9068 access token", func(t *testing.T) {
		c := h.browser(t)
		q, p, formShown := h.signIn(t, c, "strata-cli", cliRedirect, "alice", "strata-demo", nil)
		if !formShown {
			t.Fatal("a fresh browser must see the login form")
		}
		tr := h.redeem(t, c, "strata-cli", cliRedirect, q.Get("code"), p)
		if tr.RefreshToken == "" || tr.IDToken == "" || tr.TokenType != "Bearer" || tr.ExpiresIn < 300 || tr.ExpiresIn > 900 {
			t.Fatalf("token response %+v", tr)
		}
		pr, err := h.validator(t, "ledger").Validate(ctx, tr.AccessToken)
		if err != nil {
			t.Fatalf("ledger refuses the access token: %v", err)
		}
		if pr.SessionID == "" || !pr.HasRole("customer") || pr.Region != "eu" || pr.ClientID != "strata-cli" {
			t.Fatalf("principal %+v", pr)
		}
		hdr := header(t, tr.AccessToken)
		if hdr["typ"] != "at+jwt" || hdr["alg"] != "ES256" || hdr["kid"] == "" {
			t.Fatalf("access token header %v", hdr)
		}
		// The ID token is a different thing (typ JWT) whose at_hash binds the access token.
		idc := claims(t, tr.IDToken)
		sum := sha256.Sum256([]byte(tr.AccessToken))
		if idc["at_hash"] != base64.RawURLEncoding.EncodeToString(sum[:16]) || idc["nonce"] == "" || idc["aud"] != "strata-cli" && !slices.Contains(toStrings(idc["aud"]), "strata-cli") {
			t.Fatalf("id token claims %v", idc)
		}
		if _, err := h.validator(t, "ledger").Validate(ctx, tr.IDToken); err == nil {
			t.Fatal("an ID token passed as an access token")
		}
		if got := h.userinfo(t, tr.AccessToken); got != 200 {
			t.Fatalf("userinfo %d", got)
		}
		// The code is single use.
		status, again := postToken(t, c, h.issuer+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
			"redirect_uri": {cliRedirect}, "client_id": {"strata-cli"}, "code_verifier": {p.verifier}})
		if status != 400 || again.Error != "invalid_grant" {
			t.Fatalf("second redemption: %d %+v", status, again)
		}
	})

	t.Run("loopback redirect accepts any port (RFC 8252)", func(t *testing.T) {
		q, _, _ := h.signIn(t, h.browser(t), "strata-cli", "http://127.0.0.1:51234/callback", "bob", "strata-demo", nil)
		if q.Get("code") == "" {
			t.Fatalf("no code: %v", q)
		}
	})

	t.Run("PKCE S256 is required and checked", func(t *testing.T) {
		c := h.browser(t)
		resp, err := c.Get(authorizeURL(h.issuer, "strata-cli", cliRedirect, "s1", pkce{}, url.Values{"code_challenge": nil, "code_challenge_method": nil}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if q := redirectParams(t, resp); q.Get("error") != "invalid_request" {
			t.Fatalf("no PKCE: %v", q)
		}
		resp, err = c.Get(authorizeURL(h.issuer, "strata-cli", cliRedirect, "s2", pkce{challenge: "abc"}, url.Values{"code_challenge_method": {"plain"}}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if q := redirectParams(t, resp); q.Get("error") != "invalid_request" {
			t.Fatalf("plain PKCE: %v", q)
		}
		q, _, _ := h.signIn(t, c, "strata-cli", cliRedirect, "alice", "strata-demo", nil)
		status, tr := postToken(t, c, h.issuer+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
			"redirect_uri": {cliRedirect}, "client_id": {"strata-cli"}, "code_verifier": {newPKCE().verifier}})
		if status != 400 || tr.Error != "invalid_grant" {
			t.Fatalf("wrong verifier: %d %+v", status, tr)
		}
	})

	t.Run("no password grant, no implicit flow", func(t *testing.T) {
		status, tr := postToken(t, h.st.PublicClient(t), h.issuer+"/oauth2/token", url.Values{"grant_type": {"password"},
			"username": {"alice"}, "password": {"strata-demo"}, "client_id": {"strata-cli"}})
		if status != 400 || tr.Error != "unsupported_grant_type" {
			t.Fatalf("password grant: %d %+v", status, tr)
		}
		resp, err := h.browser(t).Get(authorizeURL(h.issuer, "strata-cli", cliRedirect, "s3", newPKCE(), url.Values{"response_type": {"token"}}))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if q := redirectParams(t, resp); q.Get("error") != "unauthorized_client" && q.Get("error") != "unsupported_response_type" {
			t.Fatalf("implicit: %v", q)
		}
	})

	t.Run("SSO: a second client signs in without the password form", func(t *testing.T) {
		second := identity.Client{ID: "strata-test-web", Kind: identity.PublicClient, AuthMethod: identity.AuthNone,
			RedirectURIs: []string{"http://127.0.0.1:8766/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"},
			Audiences: []string{"ledger"}}
		if err := h.store.UpsertClient(ctx, second); err != nil {
			t.Fatal(err)
		}
		c := h.browser(t)
		first := h.login(t, c, "carol")
		q, p, formShown := h.signIn(t, c, second.ID, second.RedirectURIs[0], "", "", nil)
		if formShown {
			t.Fatal("the second client was shown the password form while the SSO session lives")
		}
		tr := h.redeem(t, c, second.ID, second.RedirectURIs[0], q.Get("code"), p)
		a, _ := h.validator(t, "ledger").Validate(ctx, first.AccessToken)
		b, err := h.validator(t, "ledger").Validate(ctx, tr.AccessToken)
		if err != nil || a.SessionID != b.SessionID || b.ClientID != second.ID || b.Subject != a.Subject {
			t.Fatalf("second client's token %+v (%v), first %+v", b, err, a)
		}
		// prompt=login forces the form even so.
		if _, _, shown := h.signIn(t, c, second.ID, second.RedirectURIs[0], "carol", "strata-demo", url.Values{"prompt": {"login"}}); !shown {
			t.Fatal("prompt=login skipped the form")
		}
	})

	t.Run("refresh rotation and reuse detection", func(t *testing.T) {
		c := h.browser(t)
		first := h.login(t, c, "bob")
		refresh := func(rt string) (int, tokenResponse) {
			return postToken(t, c, h.issuer+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"strata-cli"}})
		}
		status, second := refresh(first.RefreshToken)
		if status != 200 || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("rotation: %d %+v", status, second)
		}
		if _, err := h.validator(t, "ledger").Validate(ctx, second.AccessToken); err != nil {
			t.Fatal(err)
		}
		// The old one again: reuse. Refused, and the whole family with it.
		if status, tr := refresh(first.RefreshToken); status != 400 || tr.Error != "invalid_grant" {
			t.Fatalf("reused token: %d %+v", status, tr)
		}
		if status, tr := refresh(second.RefreshToken); status != 400 || tr.Error != "invalid_grant" {
			t.Fatalf("the family's newest token after reuse: %d %+v", status, tr)
		}
		// ... and the session it belonged to: stateful checks refuse its tokens.
		if got := h.userinfo(t, second.AccessToken); got == 200 {
			t.Fatal("userinfo still answers for a session revoked by reuse detection")
		}
	})

	t.Run("client credentials with the service's certificate", func(t *testing.T) {
		endpoint := "https://" + h.svc.Internal + "/oauth2/token"
		ledger := h.st.InternalClient(t, "ledger", mtls.ID("auth"))
		status, tr := postToken(t, ledger, endpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {"ledger"}})
		if status != 200 {
			t.Fatalf("ledger: %d %+v", status, tr)
		}
		pr, err := h.validator(t, "analytics").Validate(ctx, tr.AccessToken)
		if err != nil || pr.Subject != "ledger" || pr.SessionID != "" {
			t.Fatalf("service token %+v %v", pr, err)
		}
		// client_id may be left out: the certificate names the client.
		if status, tr := postToken(t, ledger, endpoint, url.Values{"grant_type": {"client_credentials"}}); status != 200 {
			t.Fatalf("without client_id: %d %+v", status, tr)
		}
		// The wrong certificate: loadtest cannot be ledger.
		wrong := h.st.InternalClient(t, "loadtest", mtls.ID("auth"))
		if status, tr := postToken(t, wrong, endpoint, url.Values{"grant_type": {"client_credentials"}, "client_id": {"ledger"}}); status != 401 || tr.Error != "invalid_client" {
			t.Fatalf("loadtest's certificate as ledger: %d %+v", status, tr)
		}
		// No certificate at all (public listener).
		if status, tr := postToken(t, h.st.PublicClient(t), h.issuer+"/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {"ledger"}}); status != 401 {
			t.Fatalf("no certificate: %d %+v", status, tr)
		}
	})

	t.Run("client credentials with private_key_jwt", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		pub := jose.JSONWebKey{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}
		set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
		if err := h.store.UpsertClient(ctx, identity.Client{ID: "strata-test-reporter", Kind: identity.ServiceClient, AuthMethod: identity.AuthPrivateKeyJWT,
			GrantTypes: []string{"client_credentials"}, Audiences: []string{"analytics"}, JWKS: set}); err != nil {
			t.Fatal(err)
		}
		assertion := func(k *ecdsa.PrivateKey) string {
			s, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: k, KeyID: "k1"}}, nil)
			now := time.Now()
			tok, _ := jwt.Signed(s).Claims(jwt.Claims{Issuer: "strata-test-reporter", Subject: "strata-test-reporter", Audience: jwt.Audience{h.issuer},
				IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute)), ID: newPKCE().verifier}).Serialize()
			return tok
		}
		form := func(a string) url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
		}
		status, tr := postToken(t, h.st.PublicClient(t), h.issuer+"/oauth2/token", form(assertion(key)))
		if status != 200 {
			t.Fatalf("private_key_jwt: %d %+v", status, tr)
		}
		if pr, err := h.validator(t, "analytics").Validate(ctx, tr.AccessToken); err != nil || pr.Subject != "strata-test-reporter" {
			t.Fatalf("%+v %v", pr, err)
		}
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if status, _ := postToken(t, h.st.PublicClient(t), h.issuer+"/oauth2/token", form(assertion(other))); status != 401 {
			t.Fatalf("assertion signed by another key: %d", status)
		}
	})

	t.Run("token exchange narrows the audience and records the actor", func(t *testing.T) {
		user := h.login(t, h.browser(t), "alice")
		endpoint := "https://" + h.svc.Internal + "/oauth2/token"
		exchange := func(c *http.Client, audience string) (int, tokenResponse) {
			return postToken(t, c, endpoint, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
				"subject_token": {user.AccessToken}, "subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
				"audience": {audience}})
		}
		ledger := h.st.InternalClient(t, "ledger", mtls.ID("auth"))
		status, tr := exchange(ledger, "analytics")
		if status != 200 || tr.IssuedType != "urn:ietf:params:oauth:token-type:access_token" {
			t.Fatalf("exchange: %d %+v", status, tr)
		}
		orig, _ := h.validator(t, "ledger").Validate(ctx, user.AccessToken)
		pr, err := h.validator(t, "analytics").Validate(ctx, tr.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if pr.Subject != orig.Subject || pr.Actor != "spiffe://strata.local/ledger" || !slices.Equal(pr.Audience, []string{"analytics"}) ||
			pr.SessionID != orig.SessionID || !pr.HasRole("customer") || pr.ExpiresAt.After(orig.ExpiresAt) {
			t.Fatalf("exchanged %+v from %+v", pr, orig)
		}
		if _, err := h.validator(t, "ledger").Validate(ctx, tr.AccessToken); err == nil {
			t.Fatal("the narrowed token still works at the ledger")
		}
		if status, tr := exchange(ledger, "session"); status != 400 || tr.Error != "invalid_target" {
			t.Fatalf("exchange to a forbidden audience: %d %+v", status, tr)
		}
		if status, _ := exchange(h.st.InternalClient(t, "loadtest", mtls.ID("auth")), "analytics"); status < 400 {
			t.Fatalf("loadtest may not exchange: %d", status)
		}
	})

	t.Run("logout ends the SSO session; its tokens are refused", func(t *testing.T) {
		c := h.browser(t)
		tr := h.login(t, c, "dave")
		resp, err := h.postLogin(c, h.issuer+"/logout", url.Values{}) // the confirmation form: same-origin
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		if got := h.userinfo(t, tr.AccessToken); got == 200 {
			t.Fatal("userinfo (a stateful check) answered for a logged-out session")
		}
		status, rt := postToken(t, c, h.issuer+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {"strata-cli"}})
		if status != 400 || rt.Error != "invalid_grant" {
			t.Fatalf("refresh after logout: %d %+v", status, rt)
		}
		// The session service itself says it is gone.
		pr, _ := h.validator(t, "ledger").Validate(ctx, tr.AccessToken)
		sc := h.st.InternalClient(t, "ledger", mtls.ID("session"))
		r, err := sc.Get("https://" + h.session.Internal + "/internal/sessions/" + pr.SessionID)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 404 {
			t.Fatalf("session after logout: %d", r.StatusCode)
		}
		// And the next authorization asks for the password again.
		if _, _, shown := h.signIn(t, c, "strata-cli", cliRedirect, "dave", "strata-demo", nil); !shown {
			t.Fatal("no password form after logout")
		}
	})

	t.Run("revocation", func(t *testing.T) {
		c := h.browser(t)
		tr := h.login(t, c, "bob")
		resp, err := c.PostForm(h.issuer+"/oauth2/revoke", url.Values{"token": {tr.RefreshToken}, "client_id": {"strata-cli"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("revoke: %d", resp.StatusCode)
		}
		if status, _ := postToken(t, c, h.issuer+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {"strata-cli"}}); status != 400 {
			t.Fatalf("revoked refresh token: %d", status)
		}
		resp, err = c.PostForm(h.issuer+"/oauth2/revoke", url.Values{"token": {tr.AccessToken}, "token_type_hint": {"access_token"}, "client_id": {"strata-cli"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := h.userinfo(t, tr.AccessToken); got == 200 {
			t.Fatal("userinfo answered for a revoked access token")
		}
	})

	t.Run("sign-in failures reveal nothing and are throttled", func(t *testing.T) {
		attempt := func(user, pw string) (int, string, time.Duration) {
			c := h.browser(t)
			resp, err := c.Get(authorizeURL(h.issuer, "strata-cli", cliRedirect, "s", newPKCE(), nil))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			f := parseForm(t, string(body))
			f.fields.Set("username", user)
			f.fields.Set("password", pw)
			began := time.Now()
			resp, err = h.postLogin(c, h.issuer+f.action, f.fields)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			page := strings.NewReplacer(f.fields.Get("authRequestID"), "", f.fields.Get("csrf"), "", user, "").Replace(string(b))
			return resp.StatusCode, page, time.Since(began)
		}
		s1, b1, d1 := attempt("nobody-"+newPKCE().verifier[:8], "wrong-password")
		s2, b2, d2 := attempt("admin", "wrong-password")
		if s1 != 401 || s1 != s2 || b1 != b2 {
			t.Fatalf("unknown user %d vs wrong password %d; bodies equal: %v", s1, s2, b1 == b2)
		}
		t.Logf("unknown user %s, wrong password %s (both run argon2id)", d1, d2)
		// A fresh account name, so the other subtests' users stay unthrottled.
		// Failures slow the account down (a delay, never a refusal).
		victim := "victim-" + strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(newPKCE().verifier[:6]))
		for range 5 {
			attempt(victim, "guess")
		}
		last, _, took := attempt(victim, "guess")
		if last != http.StatusUnauthorized || took < 500*time.Millisecond {
			t.Fatalf("6th failure: %d after %v, want 401 after the 500 ms delay", last, took)
		}
	})

	t.Run("admin API requires the admin role", func(t *testing.T) {
		admin := h.login(t, h.browser(t), "admin", "auth") // the admin API's audience, asked for
		alice := h.login(t, h.browser(t), "alice", "auth")
		create := func(tok, name string) int {
			body := `{"username":"` + name + `","password":"a-long-password","roles":["customer"],"region":"us"}`
			req, _ := http.NewRequest(http.MethodPost, h.issuer+"/v1/users", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := h.st.PublicClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		name := "user-" + strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(newPKCE().verifier[:8]))
		if got := create(admin.AccessToken, name); got != 201 {
			t.Fatalf("admin creates a user: %d", got)
		}
		if got := create(admin.AccessToken, name); got != 409 {
			t.Fatalf("duplicate: %d", got)
		}
		if got := create(alice.AccessToken, name+"x"); got != 403 {
			t.Fatalf("customer creates a user: %d", got)
		}
		if got := create("garbage", name+"y"); got != 401 {
			t.Fatalf("no token: %d", got)
		}
		// The new user can sign in.
		if q, _, _ := h.signIn(t, h.browser(t), "strata-cli", cliRedirect, name, "a-long-password", nil); q.Get("code") == "" {
			t.Fatal("new user cannot sign in")
		}
		// The list's cursor is a username: anything else, such as a NUL
		// byte Postgres cannot hold in text, is a 400, not a 500.
		list := func(query string) int {
			req, _ := http.NewRequest(http.MethodGet, h.issuer+"/v1/users?"+query, nil)
			req.Header.Set("Authorization", "Bearer "+admin.AccessToken)
			resp, err := h.st.PublicClient(t).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if got := list("after=" + url.QueryEscape(name)); got != 200 {
			t.Fatalf("list after a username: %d", got)
		}
		for _, bad := range []string{"a%00b", "%FF%FE", strings.Repeat("a", 64)} {
			if got := list("after=" + bad); got != 400 {
				t.Fatalf("list after %q: %d, want 400", bad, got)
			}
		}
	})

	t.Run("key rotation publishes a key before it signs", func(t *testing.T) {
		kids := func() []string {
			resp, err := h.st.InternalClient(t, "ledger", mtls.ID("auth")).Get("https://" + h.svc.Internal + "/.well-known/jwks.json")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var set jose.JSONWebKeySet
			if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, k := range set.Keys {
				out = append(out, k.KeyID)
			}
			return out
		}
		before := kids()
		old := h.login(t, h.browser(t), "alice").AccessToken
		oldKid := header(t, old)["kid"].(string)
		if !slices.Contains(before, oldKid) || len(before) < 2 {
			t.Fatalf("JWKS %v must hold the signing key %s and the next one", before, oldKid)
		}
		var out strings.Builder
		if err := run(ctx, []string{"rotate-keys"}, func(k string) string { return h.env[k] }, io.Discard); err != nil {
			t.Fatalf("rotate-keys: %v %s", err, out.String())
		}
		after := kids()
		for _, k := range before {
			if !slices.Contains(after, k) {
				t.Fatalf("key %s left JWKS at rotation (before %v, after %v)", k, before, after)
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			tok := h.login(t, h.browser(t), "alice").AccessToken
			kid := header(t, tok)["kid"].(string)
			if kid != oldKid {
				if !slices.Contains(before, kid) {
					t.Fatalf("new signing key %s was not published before it signed (%v)", kid, before)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the service did not pick up the rotated key")
			}
			time.Sleep(500 * time.Millisecond)
		}
		if _, err := h.validator(t, "ledger").Validate(ctx, old); err != nil {
			t.Fatalf("a token of the retired key is refused before it expired: %v", err)
		}
	})

	t.Run("seed creates load-test users quickly", func(t *testing.T) {
		prefix := "seed" + strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(newPKCE().verifier[:6])) + "-"
		var out strings.Builder
		began := time.Now()
		if err := run(ctx, []string{"seed", "-users", "2000", "-prefix", prefix}, func(k string) string { return h.env[k] }, &out); err != nil {
			t.Fatal(err)
		}
		t.Logf("seed -users 2000: %s", time.Since(began))
		if q, _, _ := h.signIn(t, h.browser(t), "strata-cli", cliRedirect, prefix+"001999", "strata-demo", nil); q.Get("code") == "" {
			t.Fatal("a seeded user cannot sign in")
		}
	})
}

func toStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, e.(string))
		}
	case string:
		out = []string{x}
	}
	return out
}

func decodeSegment(t testing.TB, tok string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func header(t testing.TB, tok string) map[string]any { return decodeSegment(t, tok, 0) }
func claims(t testing.TB, tok string) map[string]any { return decodeSegment(t, tok, 1) }
