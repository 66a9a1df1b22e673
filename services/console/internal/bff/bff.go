// Package bff is the console's sign-in as a backend for frontend (IETF
// "OAuth 2.0 for Browser-Based Applications", section 6.1): the console is
// a confidential OpenID Connect client of the auth service, it runs the
// authorization code flow with PKCE, state and nonce itself, and keeps the
// tokens on the server. The browser holds only an opaque session cookie
// (__Host-, HttpOnly, Secure, SameSite=Lax) that names a server-side
// session; JavaScript never sees a token, so an injected script cannot
// steal one.
//
// The protocol work is coreos/go-oidc (discovery, ID token verification)
// and golang.org/x/oauth2 (authorization URL, PKCE, code exchange,
// refresh). The console authenticates at the token endpoint with its mTLS
// certificate (RFC 8705 tls_client_auth): it posts to auth's internal
// listener, where the handshake proves its SPIFFE ID
// spiffe://strata.local/console, so there is no client secret to leak.
package bff

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Cookie names. __Host- makes the browser insist on Secure, Path=/ and no
// Domain, so no other host (or a subdomain) can plant or read them.
const (
	SessionCookie = "__Host-strata_console"
	loginCookie   = "__Host-strata_console_login"
)

// Config is the client registration and where the provider is.
type Config struct {
	Issuer        string // exact "iss"
	ClientID      string // strata-console
	RedirectURL   string // https://127.0.0.1:8445/callback
	PostLogoutURL string // where the provider sends the browser after sign-out
	// TokenURL overrides the discovered token endpoint: auth's internal
	// (mTLS) listener, where the console's certificate authenticates it.
	TokenURL string
	// BackChannel, when set, is where the console itself reaches the
	// provider (in containers the issuer is the host's address, which only
	// the browser can use): discovery, keys and userinfo are fetched there,
	// and the issuer is still checked against Issuer.
	BackChannel string
	// HTTP makes every call to the provider; its TLS presents the
	// console's certificate.
	HTTP *http.Client
	// SessionTTL bounds a console session [8 h]; the provider's refresh
	// token bounds it as well.
	SessionTTL time.Duration
	Log        *slog.Logger
	Now        func() time.Time
}

// User is who is signed in, from the verified ID token.
type User struct {
	Subject string
	Name    string
	Roles   []string
	Region  string
}

// HasRole reports whether the user has role.
func (u User) HasRole(role string) bool {
	for _, r := range u.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Session is one signed-in browser. Its tokens never leave the server.
type Session struct {
	id      string
	CSRF    string // sent in every form; a POST without it is refused
	User    User
	Created time.Time
	expires time.Time
	idToken string
	sid     string             // the SSO session at the provider
	tokens  oauth2.TokenSource // refreshes (and rotates) the refresh token, one caller at a time
	// Values holds what the pages remember for this session (the
	// measured delays of its transfers).
	Values sync.Map
}

// AccessToken returns a valid access token, refreshed at the provider when
// the current one is about to expire.
func (s *Session) AccessToken() (string, error) {
	t, err := s.tokens.Token()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrSignedOut, err)
	}
	return t.AccessToken, nil
}

// SID is the provider's SSO session this console session belongs to (the
// session service's id; the sessions page marks it).
func (s *Session) SID() string { return s.sid }

// sidOf reads the sid claim of an access token the console just received
// from the provider over mTLS (the services verify the token; the console
// only needs to know which session it names).
func sidOf(accessToken string) string {
	parts := strings.Split(accessToken, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		SID string `json:"sid"`
	}
	_ = json.Unmarshal(raw, &c)
	return c.SID
}

// ErrSignedOut: the session's tokens are gone (revoked, expired); the
// person must sign in again.
var ErrSignedOut = errors.New("the sign-in has ended")

// pending is a started sign-in, keyed by its state.
type pending struct {
	verifier, nonce, returnTo string
	expires                   time.Time
}

// BFF runs sign-in, sign-out and the session store.
type BFF struct {
	cfg Config

	mu         sync.Mutex
	discovered *oidc.Provider
	endSession string
	oauth      *oauth2.Config
	verifier   *oidc.IDTokenVerifier
	sessions   map[string]*Session
	pending    map[string]pending
}

// New returns the BFF; the provider is discovered on first use, so the
// console can start before auth.
func New(cfg Config) *BFF {
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &BFF{cfg: cfg, sessions: map[string]*Session{}, pending: map[string]pending{}}
}

// ctx carries the client go-oidc and x/oauth2 use for the provider.
func (b *BFF) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, b.cfg.HTTP)
}

// discover fetches the provider's metadata once.
func (b *BFF) discover(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.discovered != nil {
		return b.oauth, b.verifier, nil
	}
	p, err := b.provider(ctx)
	if err != nil {
		return nil, nil, err
	}
	if b.endSession == "" {
		var meta struct {
			EndSession string `json:"end_session_endpoint"`
		}
		_ = p.Claims(&meta)
		b.endSession = meta.EndSession
	}
	ep := p.Endpoint()
	if b.cfg.TokenURL != "" {
		ep.TokenURL = b.cfg.TokenURL
	}
	// No secret: client_id goes in the form, the certificate proves it.
	ep.AuthStyle = oauth2.AuthStyleInParams
	b.discovered = p
	b.oauth = &oauth2.Config{ClientID: b.cfg.ClientID, Endpoint: ep, RedirectURL: b.cfg.RedirectURL,
		Scopes: []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}}
	b.verifier = p.Verifier(&oidc.Config{ClientID: b.cfg.ClientID, Now: b.cfg.Now})
	return b.oauth, b.verifier, nil
}

// provider discovers the provider, at the back channel when there is one.
func (b *BFF) provider(ctx context.Context) (*oidc.Provider, error) {
	if b.cfg.BackChannel == "" {
		p, err := oidc.NewProvider(b.ctx(ctx), b.cfg.Issuer)
		if err != nil {
			return nil, fmt.Errorf("discover %s: %w", b.cfg.Issuer, err)
		}
		return p, nil
	}
	back, err := url.Parse(b.cfg.BackChannel)
	if err != nil {
		return nil, fmt.Errorf("back channel %q: %w", b.cfg.BackChannel, err)
	}
	p, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(b.ctx(ctx), b.cfg.Issuer), b.cfg.BackChannel)
	if err != nil {
		return nil, fmt.Errorf("discover %s at %s: %w", b.cfg.Issuer, b.cfg.BackChannel, err)
	}
	var m struct {
		Auth       string   `json:"authorization_endpoint"`
		Token      string   `json:"token_endpoint"`
		UserInfo   string   `json:"userinfo_endpoint"`
		JWKS       string   `json:"jwks_uri"`
		EndSession string   `json:"end_session_endpoint"`
		Algs       []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := p.Claims(&m); err != nil {
		return nil, err
	}
	// The browser's endpoints stay as published; the console's own calls
	// go to the back channel.
	rewrite := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return raw
		}
		u.Scheme, u.Host = back.Scheme, back.Host
		return u.String()
	}
	b.endSession = m.EndSession
	return (&oidc.ProviderConfig{IssuerURL: b.cfg.Issuer, AuthURL: m.Auth, TokenURL: rewrite(m.Token),
		UserInfoURL: rewrite(m.UserInfo), JWKSURL: rewrite(m.JWKS), Algorithms: m.Algs}).NewProvider(b.ctx(context.Background())), nil
}

// Ready reports whether the provider's metadata could be fetched.
func (b *BFF) Ready(ctx context.Context) error {
	_, _, err := b.discover(ctx)
	return err
}

func random() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Login starts the authorization code flow: a fresh state, nonce and PKCE
// verifier kept on the server, the state also in a short-lived cookie so
// the callback only completes in the browser that started it (login CSRF).
func (b *BFF) Login(w http.ResponseWriter, r *http.Request, returnTo string) {
	oc, _, err := b.discover(r.Context())
	if err != nil {
		b.cfg.Log.WarnContext(r.Context(), "sign-in unavailable", "err", err)
		http.Error(w, "The sign-in service is unavailable; try again shortly.", http.StatusServiceUnavailable)
		return
	}
	if returnTo == "" || returnTo[0] != '/' || (len(returnTo) > 1 && (returnTo[1] == '/' || returnTo[1] == '\\')) {
		returnTo = "/" // only local paths: no open redirect
	}
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	now := b.cfg.Now()
	b.mu.Lock()
	for k, p := range b.pending {
		if now.After(p.expires) {
			delete(b.pending, k)
		}
	}
	b.pending[state] = pending{verifier: verifier, nonce: nonce, returnTo: returnTo, expires: now.Add(10 * time.Minute)}
	b.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: state, Path: "/", MaxAge: 600, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusFound)
}

// Callback completes the flow: the state must match the browser's cookie
// and a pending sign-in, the code is redeemed with the PKCE verifier, the
// ID token is verified (issuer, audience, expiry, signature) and its nonce
// checked. A new session gets a new id (no session fixation).
func (b *BFF) Callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie(loginCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		http.Error(w, "This sign-in was not started in this browser. Start again from the console.", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	b.mu.Lock()
	p, ok := b.pending[state]
	delete(b.pending, state)
	b.mu.Unlock()
	if !ok || b.cfg.Now().After(p.expires) {
		http.Error(w, "This sign-in has expired. Start again from the console.", http.StatusBadRequest)
		return
	}
	if e := q.Get("error"); e != "" {
		http.Error(w, "The sign-in was not completed ("+e+").", http.StatusBadRequest)
		return
	}
	oc, verifier, err := b.discover(ctx)
	if err != nil {
		http.Error(w, "The sign-in service is unavailable; try again shortly.", http.StatusServiceUnavailable)
		return
	}
	tok, err := oc.Exchange(b.ctx(ctx), q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		b.cfg.Log.WarnContext(ctx, "code exchange failed", "err", err)
		http.Error(w, "The sign-in could not be completed. Start again from the console.", http.StatusBadGateway)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	idt, err := verifier.Verify(ctx, rawID)
	if err != nil || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(p.nonce)) != 1 {
		b.cfg.Log.WarnContext(ctx, "ID token refused", "err", err)
		http.Error(w, "The sign-in could not be verified. Start again from the console.", http.StatusBadGateway)
		return
	}
	// The code flow's ID token names the subject; the profile (name,
	// roles, region) comes from the userinfo endpoint, for that subject.
	b.mu.Lock()
	provider := b.discovered
	b.mu.Unlock()
	info, err := provider.UserInfo(b.ctx(ctx), oauth2.StaticTokenSource(tok))
	var claims struct {
		Name   string   `json:"preferred_username"`
		Roles  []string `json:"roles"`
		Region string   `json:"region"`
	}
	if err == nil && info.Subject != idt.Subject {
		err = errors.New("userinfo names another subject")
	}
	if err == nil {
		err = info.Claims(&claims)
	}
	if err != nil {
		b.cfg.Log.WarnContext(ctx, "userinfo failed", "err", err)
		http.Error(w, "The sign-in could not be completed. Start again from the console.", http.StatusBadGateway)
		return
	}
	now := b.cfg.Now()
	s := &Session{id: random(), CSRF: random(), Created: now, expires: now.Add(b.cfg.SessionTTL), idToken: rawID, sid: sidOf(tok.AccessToken),
		User: User{Subject: idt.Subject, Name: claims.Name, Roles: claims.Roles, Region: claims.Region},
		// The refresh runs on a context of its own: it outlives this request.
		tokens: oauth2.ReuseTokenSource(tok, oc.TokenSource(b.ctx(context.Background()), tok))}
	b.mu.Lock()
	for k, old := range b.sessions {
		if now.After(old.expires) {
			delete(b.sessions, k)
		}
	}
	b.sessions[s.id] = s
	b.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: s.id, Path: "/", Expires: s.expires, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode})
	b.cfg.Log.InfoContext(ctx, "signed in", "user", s.User.Name)
	http.Redirect(w, r, p.returnTo, http.StatusSeeOther)
}

// Session returns the request's session, if its cookie names a live one.
func (b *BFF) Session(r *http.Request) (*Session, bool) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.sessions[c.Value]
	if !ok || b.cfg.Now().After(s.expires) {
		delete(b.sessions, c.Value)
		return nil, false
	}
	return s, true
}

// CheckCSRF reports whether token is the session's CSRF token.
func (s *Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// End forgets the session and clears the cookie (a session whose tokens
// were revoked elsewhere).
func (b *BFF) End(w http.ResponseWriter, s *Session) {
	b.mu.Lock()
	delete(b.sessions, s.id)
	b.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

// EndSID forgets every console session of the provider's SSO session sid
// (revoked on the sessions page): their tokens are refused for writes at
// once, and the console stops using them at once too.
func (b *BFF) EndSID(sid string) {
	if sid == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, s := range b.sessions {
		if s.sid == sid {
			delete(b.sessions, k)
		}
	}
}

// Logout ends the console session and sends the browser to the provider's
// end-session endpoint (OpenID Connect RP-Initiated Logout) with the ID
// token as the hint, so the SSO session ends too: the next sign-in, here or
// in another client, asks for the password again.
func (b *BFF) Logout(w http.ResponseWriter, r *http.Request, s *Session) {
	b.End(w, s)
	b.mu.Lock()
	endSession := b.endSession
	b.mu.Unlock()
	if endSession == "" {
		http.Redirect(w, r, b.cfg.PostLogoutURL, http.StatusSeeOther)
		return
	}
	u, err := url.Parse(endSession)
	if err != nil {
		http.Redirect(w, r, b.cfg.PostLogoutURL, http.StatusSeeOther)
		return
	}
	q := u.Query()
	q.Set("id_token_hint", s.idToken)
	q.Set("client_id", b.cfg.ClientID)
	q.Set("post_logout_redirect_uri", b.cfg.PostLogoutURL)
	u.RawQuery = q.Encode()
	b.cfg.Log.InfoContext(r.Context(), "signed out", "user", s.User.Name)
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
