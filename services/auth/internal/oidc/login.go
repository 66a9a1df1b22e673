package oidc

import (
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/services/auth/internal/identity"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// SSOCookie holds the SSO secret: 256 random bits drawn at sign-in, of
// which only the SHA-256 is stored (on the session's refresh-token family).
// It is not the session id: "sid" travels in every token, log line and
// internal path, so it names a session but never proves one. __Host- makes
// the browser insist on Secure, Path=/ and no Domain; HttpOnly keeps it
// from scripts; SameSite=Lax sends it on the top-level navigation to
// /oauth2/authorize that a second client starts, and not on cross-site
// subrequests.
const SSOCookie = "__Host-strata_sso"

// sessionRef names a session in log lines without its id: a short hash,
// enough to correlate the lines of one session.
func sessionRef(sid string) string {
	if sid == "" {
		return ""
	}
	h := sha256.Sum256([]byte("strata-session-log:" + sid))
	return hex.EncodeToString(h[:6])
}

// ssoFamily is the live session family the browser's SSO cookie proves,
// if any.
func (p *Provider) ssoFamily(c *gin.Context) (identity.Family, bool) {
	secret, err := c.Cookie(SSOCookie)
	if err != nil || secret == "" || len(secret) > 128 {
		return identity.Family{}, false
	}
	f, err := p.d.Tokens.FamilyBySSOHash(c.Request.Context(), hashToken(secret))
	if err != nil {
		if !errors.Is(err, identity.ErrNotFound) {
			p.d.Log.WarnContext(c.Request.Context(), "SSO cookie lookup failed", "err", err)
		}
		return identity.Family{}, false
	}
	return f, true
}

func page(c *gin.Context, status int, name string, data any) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Header("X-Frame-Options", "DENY") // no clickjacking of the password form
	// No form-action: browsers apply it to the redirects after the POST,
	// and those end at the client's redirect URI, another origin.
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	c.Status(status)
	if err := pages.ExecuteTemplate(c.Writer, name, data); err != nil {
		_ = c.Error(err)
	}
}

func message(c *gin.Context, status int, title, msg string) {
	page(c, status, "message.html", gin.H{"Title": title, "Message": msg})
}

type loginData struct {
	AuthRequestID, ClientID, Username, Error, CSRF string
}

// LoginCookie is the browser's login-form secret (random, HttpOnly,
// __Host-): the form's hidden `csrf` field is HMAC-SHA256 of the auth
// request id under it, so a form is valid only in the browser that fetched
// it and only for its own auth request. A page elsewhere can neither read
// the cookie nor set a __Host- cookie, so it cannot forge the field; an
// attacker's own form (for their own auth request) carries a token of
// their cookie, which the victim's browser does not hold.
const LoginCookie = "__Host-strata_login"

// loginCSRF returns the form token for authRequestID in this browser,
// setting the browser's login cookie first if it has none.
func loginCSRF(c *gin.Context, authRequestID string) string {
	key, ok := loginKey(c)
	if !ok {
		secret := randomToken()
		key, _ = base64.RawURLEncoding.DecodeString(secret)
		http.SetCookie(c.Writer, &http.Cookie{Name: LoginCookie, Value: secret, Path: "/", HttpOnly: true, Secure: true,
			SameSite: http.SameSiteLaxMode})
	}
	return csrfToken(key, authRequestID)
}

func loginKey(c *gin.Context) ([]byte, bool) {
	v, err := c.Cookie(LoginCookie)
	if err != nil {
		return nil, false
	}
	key, err := base64.RawURLEncoding.DecodeString(v)
	return key, err == nil && len(key) == 32
}

func csrfToken(key []byte, authRequestID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("strata-login-form|" + authRequestID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validCSRF checks the posted form token against the browser's cookie.
func validCSRF(c *gin.Context, authRequestID string) bool {
	key, ok := loginKey(c)
	if !ok {
		return false
	}
	return hmac.Equal([]byte(c.PostForm("csrf")), []byte(csrfToken(key, authRequestID)))
}

// sameOrigin reports whether a browser sent this form POST from the
// provider's own pages. Browsers send Origin on every form POST (the value
// "null" for sandboxed frames, redirect chains and privacy-sensitive
// contexts: refused, since it may hide any site); without Origin, the fetch
// metadata header Sec-Fetch-Site must say same-origin. A request with
// neither is not a browser's and is refused too: scripts set Origin.
func (p *Provider) sameOrigin(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" {
		return o == p.origin || o == "https://"+c.Request.Host
	}
	return c.GetHeader("Sec-Fetch-Site") == "same-origin"
}

// callback returns the browser to the op, which answers the client's
// redirect URI with the code and state.
func callback(c *gin.Context, authRequestID string) {
	c.Redirect(http.StatusSeeOther, pathCallback+"?id="+url.QueryEscape(authRequestID))
}

// withSSO lets CreateAuthRequest see whether the browser has an SSO
// cookie (prompt=none needs to know).
// It also hands the request's resource parameters (RFC 8707) to
// CreateAuthRequest, which the op does not parse.
func (p *Provider) withSSO(c *gin.Context) {
	ctx := c.Request.Context()
	if sid, err := c.Cookie(SSOCookie); err == nil && sid != "" {
		ctx = withSSO(ctx, sid)
	}
	if err := c.Request.ParseForm(); err == nil {
		ctx = withResources(ctx, c.Request.Form["resource"])
	}
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// loginForm is where /oauth2/authorize sends the browser. With a live SSO
// session (and no prompt=login, and within max_age) the request completes
// at once: that is single sign-on. Otherwise the form is shown.
func (p *Provider) loginForm(c *gin.Context) {
	ctx := c.Request.Context()
	ar, err := p.d.Tokens.AuthRequestByID(ctx, c.Query("authRequestID"))
	if err != nil {
		message(c, http.StatusBadRequest, "Sign-in expired", "This sign-in link is no longer valid. Start again from the application.")
		return
	}
	if ar.Done {
		callback(c, ar.ID)
		return
	}
	if f, ok := p.ssoFamily(c); ok && !slices.Contains(ar.Params.Prompt, oidc.PromptLogin) {
		done, err := p.completeFromSession(c, ar, f)
		if err != nil {
			p.d.Log.WarnContext(ctx, "SSO check failed; asking for the password", "err", err)
		}
		if done {
			callback(c, ar.ID)
			return
		}
	}
	if slices.Contains(ar.Params.Prompt, oidc.PromptNone) {
		callback(c, ar.ID) // not done: the op answers login_required / interaction_required
		return
	}
	page(c, http.StatusOK, "login.html", loginData{AuthRequestID: ar.ID, ClientID: ar.ClientID, Username: ar.Params.LoginHint,
		CSRF: loginCSRF(c, ar.ID)})
}

// completeFromSession finishes ar with the SSO session of family f (which
// the cookie's secret proved) if it is alive and recent enough.
func (p *Provider) completeFromSession(c *gin.Context, ar identity.AuthRequest, f identity.Family) (bool, error) {
	ctx := c.Request.Context()
	s, ok, err := p.d.Sessions.Get(ctx, f.SID)
	if err != nil || !ok {
		return false, err
	}
	if s.UserID != f.UserID || s.FamilyID != f.ID {
		return false, errors.New("SSO cookie and session disagree")
	}
	if ar.Params.MaxAge != nil && time.Since(s.AuthTime) > time.Duration(*ar.Params.MaxAge)*time.Second {
		return false, nil
	}
	u, err := p.d.Identities.UserByID(ctx, s.UserID)
	if err != nil || u.Disabled {
		return false, err
	}
	if err := p.d.Tokens.CompleteAuthRequest(ctx, ar.ID, u.ID, s.SID, s.FamilyID, s.AuthTime); err != nil {
		return false, err
	}
	p.d.Log.InfoContext(ctx, "signed in by SSO session", "client_id", ar.ClientID, "session", sessionRef(s.SID))
	return true, nil
}

// loginSubmit checks the password, opens the SSO session at the session
// service, starts its refresh-token family and completes the request.
func (p *Provider) loginSubmit(c *gin.Context) {
	ctx := c.Request.Context()
	// Login CSRF: a form posted from another site (or from nowhere a
	// browser will name) must not sign the victim in to the attacker's
	// account; and the form must be the one this browser was served for
	// this auth request.
	if !p.sameOrigin(c) {
		p.d.Log.InfoContext(ctx, "sign-in refused: not same-origin", "origin", c.GetHeader("Origin"), "sec_fetch_site", c.GetHeader("Sec-Fetch-Site"))
		message(c, http.StatusForbidden, "Sign-in refused", "The sign-in form was submitted from another site.")
		return
	}
	if !validCSRF(c, c.PostForm("authRequestID")) {
		p.d.Log.InfoContext(ctx, "sign-in refused: form token missing or wrong")
		message(c, http.StatusForbidden, "Sign-in refused", "This sign-in form is not valid here. Start again from the application.")
		return
	}
	ar, err := p.d.Tokens.AuthRequestByID(ctx, c.PostForm("authRequestID"))
	if err != nil {
		message(c, http.StatusBadRequest, "Sign-in expired", "This sign-in link is no longer valid. Start again from the application.")
		return
	}
	if ar.Done {
		callback(c, ar.ID)
		return
	}
	username := c.PostForm("username")
	form := loginData{AuthRequestID: ar.ID, ClientID: ar.ClientID, Username: username, CSRF: c.PostForm("csrf")}
	u, wait, err := p.d.Auth.Login(ctx, username, c.PostForm("password"),
		clientAddr(c.RemoteIP(), c.Request.Header.Values("X-Forwarded-For"), p.cfg.TrustedProxies))
	switch {
	case errors.Is(err, identity.ErrThrottled):
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		form.Error = "Too many failed sign-ins from your network. Wait a moment and try again."
		page(c, http.StatusTooManyRequests, "login.html", form)
		return
	case errors.Is(err, identity.ErrBusy):
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		form.Error = "Too many people are signing in right now. Try again in a moment."
		page(c, http.StatusTooManyRequests, "login.html", form)
		return
	case errors.Is(err, identity.ErrBadCredentials):
		p.d.Log.InfoContext(ctx, "sign-in failed", "client_id", ar.ClientID) // no username: it may be a mistyped password
		form.Error = "Invalid username or password."
		page(c, http.StatusUnauthorized, "login.html", form)
		return
	case err != nil:
		_ = c.Error(err)
		message(c, http.StatusInternalServerError, "Sign-in failed", "Something went wrong. Try again.")
		return
	}
	now := time.Now().Truncate(time.Second)
	familyID := uuid.NewString()
	exp := now.Add(p.cfg.SessionTTL)
	sid, err := p.d.Sessions.Create(ctx, NewSession{UserID: u.ID, FamilyID: familyID, AuthTime: now, ExpiresAt: exp})
	if err != nil {
		p.d.Log.ErrorContext(ctx, "create session failed", "err", err)
		c.Header("Retry-After", "2")
		message(c, http.StatusServiceUnavailable, "Sign-in unavailable", "Sign-in is briefly unavailable. Try again in a moment.")
		return
	}
	secret := randomToken() // 256 bits from crypto/rand
	if err := p.d.Tokens.CreateFamily(ctx, identity.Family{ID: familyID, SID: sid, UserID: u.ID, SSOHash: hashToken(secret)}); err != nil {
		_ = c.Error(err)
		message(c, http.StatusInternalServerError, "Sign-in failed", "Something went wrong. Try again.")
		return
	}
	if err := p.d.Tokens.CompleteAuthRequest(ctx, ar.ID, u.ID, sid, familyID, now); err != nil {
		message(c, http.StatusBadRequest, "Sign-in expired", "This sign-in link is no longer valid. Start again from the application.")
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: SSOCookie, Value: secret, Path: "/", Expires: exp, HttpOnly: true, Secure: true,
		SameSite: http.SameSiteLaxMode})
	p.d.Log.InfoContext(ctx, "signed in", "client_id", ar.ClientID, "session", sessionRef(sid))
	callback(c, ar.ID)
}

// logout ends SSO sessions, then lets the op finish the OIDC end-session
// request (post_logout_redirect_uri, state). Which sessions:
//
//   - the browser's, proved by its SSO cookie, only when the browser
//     asked for it: a same-origin POST (the confirmation form), or a
//     request carrying a valid id_token_hint for that very session (an
//     RP-initiated logout). A plain GET (any page can make the browser
//     send one, with the Lax cookie) only shows the confirmation form, so
//     a foreign page cannot sign people out;
//   - a session named by a valid Bearer access token (a CLI has no
//     cookie; a browser never attaches one by itself).
//
// An id_token_hint alone ends nothing: ID tokens are handed to clients and
// are no credential.
func (p *Provider) logout(c *gin.Context) {
	ctx := c.Request.Context()
	if err := c.Request.ParseForm(); err != nil {
		message(c, http.StatusBadRequest, "Sign-out failed", "The sign-out request is malformed.")
		return
	}
	form := c.Request.Form
	var hintSID, hintClient string
	if raw := form.Get("id_token_hint"); raw != "" {
		ictx := op.ContextWithIssuer(ctx, p.cfg.Issuer)
		claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ictx, raw, p.op.IDTokenHintVerifier(ictx))
		if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
			message(c, http.StatusBadRequest, "Sign-out failed", "The sign-out request carries an invalid ID token.")
			return
		}
		hintSID, _ = claims.Claims["sid"].(string)
		hintClient = claims.GetAuthorizedParty()
	}
	if uri := form.Get("post_logout_redirect_uri"); uri != "" {
		clientID := form.Get("client_id")
		if clientID == "" {
			clientID = hintClient
		}
		if cl, err := p.d.Identities.ClientByID(ctx, clientID); err == nil && !redirectAllowed(cl.PostLogoutRedirectURIs, uri) {
			message(c, http.StatusBadRequest, "Sign-out failed", "The application's sign-out address is not registered.")
			return
		}
	}
	var sids []string
	if f, ok := p.ssoFamily(c); ok {
		confirmed := c.Request.Method == http.MethodPost && p.sameOrigin(c)
		hinted := hintSID != "" && hintSID == f.SID
		switch {
		case confirmed || hinted:
			sids = append(sids, f.SID)
		case c.Request.Method == http.MethodGet:
			fields := map[string]string{}
			for _, k := range []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state", "ui_locales", "logout_hint"} {
				if v := form.Get(k); v != "" {
					fields[k] = v
				}
			}
			page(c, http.StatusOK, "logout.html", gin.H{"Fields": fields})
			return
		}
	}
	if raw, err := authn.BearerToken(c.GetHeader("Authorization")); err == nil {
		if claims, err := p.access.Verify(ctx, raw); err == nil && claims.SessionID != "" {
			sids = append(sids, claims.SessionID)
		}
	}
	if len(sids) > 0 {
		http.SetCookie(c.Writer, &http.Cookie{Name: SSOCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true,
			SameSite: http.SameSiteLaxMode})
	}
	c.Request = c.Request.WithContext(withLogoutSIDs(ctx, sids))
	p.op.ServeHTTP(c.Writer, c.Request)
}

// checkRedirectURI refuses, before the op sees it, a redirect_uri that
// only the op's loose loopback rule would accept (it compares path and
// query only, so http://localhost:1/cb, https://127.0.0.1/cb or any
// 127.0.0.0/8 address matched a registered http://127.0.0.1:8765/cb).
// The browser is not sent to an unregistered address: the answer is a
// page here.
func (p *Provider) checkRedirectURI(c *gin.Context) {
	if err := c.Request.ParseForm(); err != nil {
		c.Next()
		return
	}
	clientID, uri := c.Request.Form.Get("client_id"), c.Request.Form.Get("redirect_uri")
	if clientID == "" || uri == "" {
		c.Next() // the op answers
		return
	}
	cl, err := p.d.Identities.ClientByID(c.Request.Context(), clientID)
	if err != nil {
		c.Next()
		return
	}
	if !redirectAllowed(cl.RedirectURIs, uri) {
		message(c, http.StatusBadRequest, "Sign-in refused", "The application's redirect address is not registered.")
		c.Abort()
		return
	}
	c.Next()
}

// redirectAllowed reports whether uri is registered: exactly, or as a
// loopback redirect of a native app that differs from a registered one
// only in its port (RFC 8252 section 7.3): same scheme (http), same host
// literal, same path and query, an explicit port.
func redirectAllowed(registered []string, uri string) bool {
	if slices.Contains(registered, uri) {
		return true
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	ip, err := netip.ParseAddr(u.Hostname())
	if err != nil || !ip.IsLoopback() {
		return false
	}
	if port, err := strconv.Atoi(u.Port()); err != nil || port < 1 || port > 65535 {
		return false
	}
	for _, r := range registered {
		ru, err := url.Parse(r)
		if err == nil && ru.Scheme == u.Scheme && ru.User == nil && ru.Hostname() == u.Hostname() &&
			ru.Path == u.Path && ru.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}
