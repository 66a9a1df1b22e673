package oidc

import (
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/strata-ref/strata/services/auth/internal/identity"
)

// The adapters in this file present the domain's records in the shapes the
// op package asks for.

// amrPassword is the authentication method reference of a password sign-in
// (RFC 8176); an SSO sign-in inherits it from the session.
var amrPassword = []string{"pwd"}

// authRequest adapts identity.AuthRequest to op.AuthRequest.
type authRequest struct{ identity.AuthRequest }

var _ op.AuthRequest = authRequest{}

func (a authRequest) GetID() string    { return a.ID }
func (a authRequest) GetACR() string   { return "" }
func (a authRequest) GetAMR() []string { return amrPassword }

// GetAudience is the ID token's audience: the client itself. Access tokens
// get the client's resource audiences instead (accesstoken.go).
func (a authRequest) GetAudience() []string  { return []string{a.ClientID} }
func (a authRequest) GetAuthTime() time.Time { return a.AuthTime }
func (a authRequest) GetClientID() string    { return a.ClientID }
func (a authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.Params.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.Params.CodeChallenge, Method: oidc.CodeChallengeMethod(a.Params.CodeChallengeMethod)}
}
func (a authRequest) GetNonce() string       { return a.Params.Nonce }
func (a authRequest) GetRedirectURI() string { return a.Params.RedirectURI }
func (a authRequest) GetResponseType() oidc.ResponseType {
	return oidc.ResponseType(a.Params.ResponseType)
}
func (a authRequest) GetResponseMode() oidc.ResponseMode {
	return oidc.ResponseMode(a.Params.ResponseMode)
}
func (a authRequest) GetScopes() []string { return a.Params.Scopes }
func (a authRequest) GetState() string    { return a.Params.State }
func (a authRequest) GetSubject() string  { return a.UserID }
func (a authRequest) Done() bool          { return a.AuthRequest.Done }

// refreshRequest adapts a refresh token to op.RefreshTokenRequest.
type refreshRequest struct {
	identity.RefreshToken
	token string // the presented token, rotated on use
}

var _ op.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string            { return r.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.Scopes }
func (r *refreshRequest) GetSubject() string          { return r.UserID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.Scopes = s }

// serviceRequest is a client credentials grant: the client acts for itself.
type serviceRequest struct {
	clientID string
	scopes   []string
}

func (s serviceRequest) GetSubject() string    { return s.clientID }
func (s serviceRequest) GetAudience() []string { return nil }
func (s serviceRequest) GetScopes() []string   { return s.scopes }

// client adapts identity.Client to op.Client.
type client struct{ identity.Client }

var _ op.Client = client{}

// loginPath is where the op sends the browser to authenticate.
const loginPath = "/login"

func (c client) GetID() string                    { return c.ID }
func (c client) RedirectURIs() []string           { return c.Client.RedirectURIs }
func (c client) PostLogoutRedirectURIs() []string { return c.Client.PostLogoutRedirectURIs }

// ApplicationType: a public client is a native app, for which the op
// accepts any port on a loopback redirect URI (RFC 8252 section 7.3).
func (c client) ApplicationType() op.ApplicationType {
	if c.Kind == identity.PublicClient {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c client) AuthMethod() oidc.AuthMethod {
	switch c.Client.AuthMethod {
	case identity.AuthNone:
		return oidc.AuthMethodNone
	case identity.AuthPrivateKeyJWT:
		return oidc.AuthMethodPrivateKeyJWT
	default:
		// tls_client_auth: the op has no name for it; it reaches
		// AuthorizeClientIDSecret, which checks the certificate.
		return oidc.AuthMethodBasic
	}
}

// ResponseTypes: code only. No implicit flow, for any client.
func (c client) ResponseTypes() []oidc.ResponseType {
	if c.HasGrant(string(oidc.GrantTypeCode)) {
		return []oidc.ResponseType{oidc.ResponseTypeCode}
	}
	return nil
}

func (c client) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, 0, len(c.Client.GrantTypes))
	for _, g := range c.Client.GrantTypes {
		out = append(out, oidc.GrantType(g))
	}
	return out
}

func (c client) LoginURL(id string) string            { return loginPath + "?authRequestID=" + id }
func (c client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer } // see accesstoken.go
func (c client) IDTokenLifetime() time.Duration       { return 10 * time.Minute }
func (c client) DevMode() bool                        { return false }
func (c client) IsScopeAllowed(scope string) bool     { return slices.Contains(c.Scopes, scope) }
func (c client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c client) ClockSkew() time.Duration             { return 0 }
func (c client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
