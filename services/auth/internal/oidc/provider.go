// Package oidc is the auth service's OpenID Connect provider, built on
// zitadel/oidc's op package (a maintained, certified implementation: the
// protocol parsing, PKCE verification, redirect URI rules, error responses
// and discovery are the library's). This package supplies what the library
// leaves to its user:
//
//   - storage.go: op.Storage over Postgres: clients, auth requests, codes,
//     refresh-token rotation with reuse detection, revocation, userinfo;
//   - accesstoken.go: the op's Crypto, which turns token records into
//     RFC 9068 JWT access tokens (typ at+jwt) signed with libs/authn;
//   - exchange.go: token exchange (RFC 8693) rules;
//   - login.go: the server-rendered login page, the SSO cookie and logout;
//   - clientauth.go: service-client authentication by mTLS certificate
//     (RFC 8705) or private_key_jwt;
//   - sessions.go: the client of the session service, which holds the SSO
//     sessions.
//
// No password grant and no implicit flow: clients are registered with the
// code response type only, and discovery advertises only what is offered.
package oidc

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/rs/cors"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/strata-ref/strata/services/auth/internal/identity"
	"github.com/strata-ref/strata/services/auth/internal/keys"
)

// Paths of the public contract (docs/authentication.md).
const (
	PathDiscovery  = "/.well-known/openid-configuration"
	PathJWKS       = "/.well-known/jwks.json"
	PathAuthorize  = "/oauth2/authorize"
	PathToken      = "/oauth2/token"
	PathRevoke     = "/oauth2/revoke"
	PathUserinfo   = "/userinfo"
	PathLogout     = "/logout"
	pathCallback   = PathAuthorize + "/callback"
	pathLoggedOut  = "/logged-out"
	grantExchange  = string(oidc.GrantTypeTokenExchange)
	grantClientCrd = string(oidc.GrantTypeClientCredentials)
)

// Config is the provider's configuration.
type Config struct {
	Issuer          string        // exact; https
	AccessTokenTTL  time.Duration // 5-15 min [10 min]
	RefreshTokenTTL time.Duration // [24 h]
	SessionTTL      time.Duration // SSO session [8 h]
	// TrustedProxies may name the client in X-Forwarded-For (sign-in
	// throttling by client address); none by default.
	TrustedProxies []netip.Prefix
}

// Deps are the provider's collaborators.
type Deps struct {
	Identities identity.Store
	Tokens     identity.TokenStore
	Keys       *keys.Manager
	Sessions   Sessions
	Auth       *identity.Authenticator
	Log        *slog.Logger
}

// Provider is the mounted OpenID provider.
type Provider struct {
	cfg     Config
	origin  string // the issuer's origin (scheme://host[:port])
	d       Deps
	op      *op.Provider
	storage *Storage
	access  *AccessTokens
}

// New builds the provider.
func New(cfg Config, d Deps) (*Provider, error) {
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = 10 * time.Minute
	}
	if cfg.AccessTokenTTL < 5*time.Minute || cfg.AccessTokenTTL > 15*time.Minute {
		return nil, fmt.Errorf("access token lifetime %s is outside 5-15 minutes", cfg.AccessTokenTTL)
	}
	if cfg.RefreshTokenTTL == 0 {
		cfg.RefreshTokenTTL = 24 * time.Hour
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	access := NewAccessTokens(cfg.Issuer, d.Keys, d.Tokens, cfg.AccessTokenTTL)
	st := &Storage{ids: d.Identities, tokens: d.Tokens, keys: d.Keys, access: access, sessions: d.Sessions,
		log: d.Log, cfg: cfg, now: time.Now}
	opCfg := &op.Config{
		DefaultLogoutRedirectURI: pathLoggedOut,
		CodeMethodS256:           true,
		AuthMethodPost:           false, // there are no client secrets to post
		AuthMethodPrivateKeyJWT:  true,
		GrantTypeRefreshToken:    true,
		RequestObjectSupported:   false,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes:          []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeOfflineAccess},
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "amr", "at_hash", "c_hash",
			"azp", "sid", "preferred_username", "roles", "region"},
	}
	provider, err := op.NewProvider(opCfg, st, op.StaticIssuer(cfg.Issuer),
		op.WithCustomAuthEndpoint(op.NewEndpoint(PathAuthorize)),
		op.WithCustomTokenEndpoint(op.NewEndpoint(PathToken)),
		op.WithCustomRevocationEndpoint(op.NewEndpoint(PathRevoke)),
		op.WithCustomUserinfoEndpoint(op.NewEndpoint(PathUserinfo)),
		op.WithCustomEndSessionEndpoint(op.NewEndpoint(PathLogout)),
		op.WithCustomKeysEndpoint(op.NewEndpoint(PathJWKS)),
		op.WithCrypto(access),
		// No browser app calls these endpoints cross-origin; reflecting any
		// origin with credentials (the library default) would only help an
		// attacker's page.
		op.WithCORSOptions(&cors.Options{AllowOriginFunc: func(string) bool { return false }}),
	)
	if err != nil {
		return nil, fmt.Errorf("openid provider: %w", err)
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || iss.Scheme == "" || iss.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an absolute URL", cfg.Issuer)
	}
	return &Provider{cfg: cfg, origin: iss.Scheme + "://" + iss.Host, d: d, op: provider, storage: st, access: access}, nil
}

// EndUserSessions ends every session of a user (disabled by an
// administrator): refresh families, SSO, sessions, access-token records.
func (p *Provider) EndUserSessions(ctx context.Context, userID string) error {
	return p.storage.EndUserSessions(ctx, userID, "user disabled")
}

// AccessTokens is the provider's token signer (benchmarks, tests).
func (p *Provider) AccessTokens() *AccessTokens { return p.access }

// RegisterPublic mounts the public endpoints (TLS listener).
func (p *Provider) RegisterPublic(r gin.IRouter) {
	h := gin.WrapH(p.op)
	r.GET(PathDiscovery, p.discovery)
	r.GET(PathJWKS, h)
	r.GET(PathAuthorize, p.checkRedirectURI, p.withSSO, h)
	r.POST(PathAuthorize, p.checkRedirectURI, p.withSSO, h)
	r.GET(pathCallback, h)
	r.POST(PathToken, p.clientAuth, h)
	r.POST(PathRevoke, h)
	r.GET(PathUserinfo, h)
	r.POST(PathUserinfo, h)
	r.GET(PathLogout, p.logout)
	r.POST(PathLogout, p.logout)
	r.GET(loginPath, p.loginForm)
	r.POST(loginPath, p.loginSubmit)
	r.GET(pathLoggedOut, func(c *gin.Context) {
		page(c, http.StatusOK, "message.html", gin.H{"Title": "Signed out", "Message": "You have been signed out of Strata."})
	})
}

// RegisterInternal mounts JWKS (every workload of the trust domain may
// fetch it; the mTLS handshake already admits only those) and the token
// endpoint for service clients authenticated by their certificate.
func (p *Provider) RegisterInternal(r gin.IRouter) {
	h := gin.WrapH(p.op)
	r.GET(PathJWKS, h)
	r.POST(PathToken, p.clientAuth, h)
}

// discovery serves the library's metadata, trimmed and completed to say
// exactly what this provider offers: the code flow only (no implicit
// response types or grant), no introspection or device flow, and the
// client authentication methods Strata accepts.
func (p *Provider) discovery(c *gin.Context) {
	ctx := op.ContextWithIssuer(c.Request.Context(), p.cfg.Issuer)
	d := op.CreateDiscoveryConfig(ctx, p.op, p.storage)
	d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	d.ResponseModesSupported = []string{string(oidc.ResponseModeQuery)}
	grants := []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}
	d.GrantTypesSupported = grants
	d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone, "tls_client_auth", oidc.AuthMethodPrivateKeyJWT}
	d.TokenEndpointAuthSigningAlgValuesSupported = []string{"ES256", "RS256", "PS256"}
	d.RevocationEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodNone}
	d.IntrospectionEndpoint, d.DeviceAuthorizationEndpoint, d.CheckSessionIframe = "", "", ""
	d.IntrospectionEndpointAuthMethodsSupported, d.IntrospectionEndpointAuthSigningAlgValuesSupported = nil, nil
	d.RevocationEndpointAuthSigningAlgValuesSupported = nil
	d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, d)
}

// Verify checks an access token issued here (the admin API uses it through
// authn; exposed for tests).
func (p *Provider) Verify(ctx context.Context, raw string) error {
	_, err := p.access.Verify(ctx, raw)
	return err
}
