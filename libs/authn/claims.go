package authn

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// TokenType is the JWT "typ" header of access tokens (RFC 9068).
const TokenType = "at+jwt"

// Claims is the payload of a Strata access token.
type Claims struct {
	jwt.Claims
	ClientID  string   `json:"client_id,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	Scope     string   `json:"scope,omitempty"`
	Roles     []string `json:"roles,omitempty"`
	Region    string   `json:"region,omitempty"`
	// Act names the service acting for the subject after a token exchange
	// (RFC 8693 section 4.1).
	Act *Actor `json:"act,omitempty"`
}

// Actor is the "act" claim.
type Actor struct {
	Sub string `json:"sub"`
}

// Principal is the authenticated caller of one request.
type Principal struct {
	Subject   string // user id, or the client id for client credentials
	ClientID  string
	SessionID string // the SSO session the token belongs to (empty for services)
	Roles     []string
	Region    string
	Scopes    []string
	Audience  []string
	Actor     string // act.sub: the service acting for Subject, if exchanged
	ExpiresAt time.Time
	// Token is the raw access token, kept to propagate or exchange it. It is
	// never logged: Principal's LogValue leaves it out.
	Token string
}

// HasRole reports whether p holds role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// HasScope reports whether p was granted scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// String identifies p without the token.
func (p Principal) String() string {
	s := "sub=" + p.Subject
	if p.Actor != "" {
		s += " act=" + p.Actor
	}
	return s
}

func principalFrom(c Claims, raw string) Principal {
	p := Principal{
		Subject: c.Subject, ClientID: c.ClientID, SessionID: c.SessionID, Roles: c.Roles, Region: c.Region,
		Scopes: strings.Fields(c.Scope), Audience: c.Audience, Token: raw,
	}
	if c.Expiry != nil {
		p.ExpiresAt = c.Expiry.Time()
	}
	if c.Act != nil {
		p.Actor = c.Act.Sub
	}
	return p
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the request's principal, if it was authenticated.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
