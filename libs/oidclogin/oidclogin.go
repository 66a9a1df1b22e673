// Package oidclogin is a scripted user agent for the OpenID Connect
// authorization code flow with PKCE (RFC 7636) against Strata's auth
// service: it follows the redirects to the login page, fills in the form's
// `username` and `password` inputs, stops at the redirect to the client's
// loopback URI (RFC 8252) and redeems the code. The load generator signs its
// users in with it, exactly as a browser and a native app would.
package oidclogin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// Client signs users in for one OAuth client.
type Client struct {
	Issuer      string // "https://localhost:8441"
	ClientID    string // "strata-cli"
	RedirectURI string // "http://127.0.0.1:8765/callback"
	Scope       string // default "openid profile offline_access"
	// Resources are RFC 8707 resource parameters: the audiences the tokens
	// are for. None: the client's default set, which leaves out auth's
	// admin API ("auth").
	Resources []string
	// HTTP is the transport (TLS trusting the CA). A cookie jar per login is
	// added, so each login is its own browser.
	HTTP *http.Client
}

// Tokens is the token endpoint's answer.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	ErrorDesc    string `json:"error_description"`
}

// PKCE is a verifier and its S256 challenge.
type PKCE struct{ Verifier, Challenge string }

// NewPKCE makes a fresh 256-bit verifier.
func NewPKCE() PKCE {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	s := sha256.Sum256([]byte(v))
	return PKCE{v, base64.RawURLEncoding.EncodeToString(s[:])}
}

// ErrNoForm is returned when the login page has no username/password form.
var ErrNoForm = errors.New("oidclogin: no login form with username and password inputs")

// Login runs the whole flow for one user and returns their tokens.
func (c *Client) Login(ctx context.Context, user, password string) (Tokens, error) {
	p := NewPKCE()
	state := NewState()
	loc, err := SignIn(ctx, c.HTTP, c.AuthorizeURL(state, p), user, password)
	if err != nil {
		return Tokens{}, err
	}
	code, err := Code(loc, state)
	if err != nil {
		return Tokens{}, err
	}
	return c.Redeem(ctx, code, p)
}

// NewState returns a random state (and nonce) value.
func NewState() string {
	var st [12]byte
	_, _ = rand.Read(st[:])
	return base64.RawURLEncoding.EncodeToString(st[:])
}

// AuthorizeURL is the authorization request a person opens in a browser
// (code flow, PKCE S256, the client's redirect URI).
func (c *Client) AuthorizeURL(state string, p PKCE) string {
	scope := c.Scope
	if scope == "" {
		scope = "openid profile offline_access"
	}
	q := url.Values{"client_id": {c.ClientID}, "redirect_uri": {c.RedirectURI}, "response_type": {"code"}, "scope": {scope},
		"state": {state}, "nonce": {"n" + state}, "code_challenge": {p.Challenge}, "code_challenge_method": {"S256"}}
	if len(c.Resources) > 0 {
		q["resource"] = c.Resources
	}
	return c.Issuer + "/oauth2/authorize?" + q.Encode()
}

// SignIn plays the browser: it opens authorizeURL with a fresh cookie jar,
// fills in the login form's username and password, and returns the
// redirect to the client's loopback URI without following it.
func SignIn(ctx context.Context, hc *http.Client, authorizeURL, user, password string) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	browser := *hc
	browser.Jar = jar
	browser.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme == "http" { // the loopback redirect to the app: stop, read the code
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := get(ctx, &browser, authorizeURL)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK { // the login page
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		action, fields, err := ParseForm(string(body))
		if err != nil {
			return nil, err
		}
		fields.Set("username", user)
		fields.Set("password", password)
		target, err := resp.Request.URL.Parse(action)
		if err != nil {
			return nil, err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", target.Scheme+"://"+target.Host)
		if resp, err = browser.Do(req); err != nil {
			return nil, err
		}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil, fmt.Errorf("oidclogin: sign-in of %s answered %d, not a redirect", user, resp.StatusCode)
	}
	return url.Parse(resp.Header.Get("Location"))
}

// Code reads the authorization code from the redirect to the client,
// checking its state.
func Code(redirect *url.URL, state string) (string, error) {
	back := redirect.Query()
	if back.Get("state") != state {
		return "", fmt.Errorf("oidclogin: state mismatch in redirect %q", redirect.Redacted())
	}
	if back.Get("code") == "" {
		return "", fmt.Errorf("oidclogin: no code (error %q: %s)", back.Get("error"), back.Get("error_description"))
	}
	return back.Get("code"), nil
}

// Redeem trades an authorization code and its PKCE verifier for tokens.
func (c *Client) Redeem(ctx context.Context, code string, p PKCE) (Tokens, error) {
	return c.token(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {c.RedirectURI}, "client_id": {c.ClientID}, "code_verifier": {p.Verifier}})
}

// Refresh trades a refresh token for a new pair (the old one is spent).
func (c *Client) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	return c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {c.ClientID}})
}

func (c *Client) token(ctx context.Context, form url.Values) (Tokens, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.Issuer+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Tokens{}, err
	}
	defer resp.Body.Close()
	var t Tokens
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&t); err != nil {
		return Tokens{}, fmt.Errorf("oidclogin: token response %d: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || t.AccessToken == "" {
		return t, fmt.Errorf("oidclogin: token endpoint %d: %s %s", resp.StatusCode, t.Error, t.ErrorDesc)
	}
	return t, nil
}

func get(ctx context.Context, c *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// ParseForm finds the login form (the one holding username and password
// inputs) and returns its action and hidden fields.
func ParseForm(body string) (action string, fields url.Values, err error) {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	fields = url.Values{}
	inputs := map[string]bool{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
			}
			switch n.Data {
			case "form":
				action = attrs["action"]
			case "input":
				inputs[attrs["name"]] = true
				if attrs["type"] == "hidden" {
					fields.Set(attrs["name"], attrs["value"])
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	if !inputs["username"] || !inputs["password"] {
		return "", nil, ErrNoForm
	}
	return action, fields, nil
}
