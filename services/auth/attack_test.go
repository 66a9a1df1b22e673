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

	// Login CSRF: the attacker starts an auth request of their own and makes
	// the victim's browser post the attacker's credentials into it; the
	// victim then holds the attacker's SSO session and later sign-ins
	// complete silently as the attacker. A sandboxed frame or a redirect
	// chain sends Origin: null, which used to pass.
	t.Run("ASVS_v5_3.5.1/login_CSRF", func(t *testing.T) {
		// The attacker's own form, fetched with the attacker's own browser.
		form := func(c *http.Client) loginForm {
			resp, err := c.Get(authorizeURL(h.issuer, "strata-cli", cliRedirect, "csrf", newPKCE(), nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			f := parseForm(t, string(body))
			f.fields.Set("username", "bob")
			f.fields.Set("password", "strata-demo")
			return f
		}
		refused := func(t *testing.T, c *http.Client, f loginForm, hdr ...string) {
			t.Helper()
			resp, err := h.postLogin(c, h.issuer+f.action, f.fields, hdr...)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("%v: %d (Location %q), want 403", hdr, resp.StatusCode, resp.Header.Get("Location"))
			}
			for _, ck := range resp.Cookies() {
				if ck.Name == oidc.SSOCookie && ck.Value != "" {
					t.Fatalf("%v: an SSO cookie was set", hdr)
				}
			}
		}
		attacker := h.browser(t)
		f := form(attacker)
		// The origin check, with the attacker's own (valid) form token.
		t.Run("origin_null", func(t *testing.T) { refused(t, attacker, f, "Origin", "null") })
		t.Run("foreign_origin", func(t *testing.T) { refused(t, attacker, f, "Origin", "https://evil.example") })
		t.Run("no_origin_cross_site", func(t *testing.T) { refused(t, attacker, f, "Origin", "", "Sec-Fetch-Site", "cross-site") })
		t.Run("no_origin_no_fetch_metadata", func(t *testing.T) { refused(t, attacker, f, "Origin", "") })
		// The form token: the victim's browser does not hold the cookie the
		// attacker's form token was made for, even when the origin check
		// is somehow passed.
		victim := h.browser(t)
		form(victim) // the victim has a login cookie of its own
		t.Run("attackers_form_token_in_victims_browser", func(t *testing.T) { refused(t, victim, f) })
		noToken := form(h.browser(t))
		noToken.fields.Del("csrf")
		t.Run("no_form_token", func(t *testing.T) { refused(t, victim, noToken) })
		// Control: the attacker's own browser, same-origin, signs in.
		resp, err := h.postLogin(attacker, h.issuer+f.action, f.fields, "Origin", "", "Sec-Fetch-Site", "same-origin")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if q := redirectParams(t, resp); q.Get("code") == "" {
			t.Fatalf("same-origin sign-in: %v", q)
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
