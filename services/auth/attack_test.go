package main

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/strata-ref/strata/services/auth/internal/oidc"
)

// TestAttacks replays attacks on the provider's browser surface against one
// running auth service (and a real session service): each must fail.
func TestAttacks(t *testing.T) {
	h := start(t)
	issuerURL, _ := url.Parse(h.issuer)

	// Every token carries the session id in "sid". When the SSO cookie was
	// that same value, anyone who read any token (even an expired one, or
	// the narrowed token a service receives) could send it as the cookie
	// with a PKCE challenge of their own and be signed in as the victim.
	t.Run("ASVS_v5_7.2.3/sid_from_a_token_is_not_an_SSO_cookie", func(t *testing.T) {
		victim := h.browser(t)
		tr := h.login(t, victim, "alice")
		sid, _ := claims(t, tr.AccessToken)["sid"].(string)
		if sid == "" {
			t.Fatal("the access token carries no sid")
		}
		if idSID, _ := claims(t, tr.IDToken)["sid"].(string); idSID != sid {
			t.Fatalf("id token sid %q, access token sid %q", idSID, sid)
		}
		// Control: the victim's own browser still signs in by SSO.
		if _, _, shown := h.signIn(t, victim, "strata-cli", cliRedirect, "", "", nil); shown {
			t.Fatal("the victim's own SSO cookie no longer signs in")
		}
		cookie := victimCookie(t, victim, issuerURL)
		if cookie == sid || strings.Contains(cookie, sid) || len(cookie) < 43 {
			t.Fatalf("SSO cookie %d chars, derived from the sid: %v", len(cookie), strings.Contains(cookie, sid))
		}

		attacker := h.browser(t)
		attacker.Jar.SetCookies(issuerURL, []*http.Cookie{{Name: oidc.SSOCookie, Value: sid, Path: "/", Secure: true}})
		p := newPKCE()
		resp, err := attacker.Get(authorizeURL(h.issuer, "strata-cli", cliRedirect, "attack", p, nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			q := redirectParams(t, resp)
			if code := q.Get("code"); code != "" {
				status, stolen := postToken(t, attacker, h.issuer+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
					"redirect_uri": {cliRedirect}, "client_id": {"strata-cli"}, "code_verifier": {p.verifier}})
				t.Fatalf("the sid as a cookie signed the attacker in: token endpoint %d, refresh token issued: %v", status, stolen.RefreshToken != "")
			}
			t.Fatalf("authorize with the sid as cookie: %d %v", resp.StatusCode, q)
		}
		parseForm(t, string(body)) // the password form: no SSO
		// Neither the sid nor the cookie's secret appears in auth's logs.
		if logs := h.svc.Logs(); strings.Contains(logs, sid) || strings.Contains(logs, cookie) {
			t.Fatal("auth logged the session id or the SSO cookie")
		}
	})
}

// victimCookie is the SSO cookie a browser holds.
func victimCookie(t *testing.T, c *http.Client, issuer *url.URL) string {
	t.Helper()
	for _, ck := range c.Jar.Cookies(issuer) {
		if ck.Name == oidc.SSOCookie {
			return ck.Value
		}
	}
	t.Fatal("no SSO cookie in the browser")
	return ""
}
