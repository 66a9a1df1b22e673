package identity

import (
	"context"
	"errors"
	"time"
)

// AuthRequest is one authorization request, from /oauth2/authorize until
// its code is redeemed.
type AuthRequest struct {
	ID       string
	ClientID string
	Params   AuthParams
	// Set when the user has authenticated (password or SSO session).
	UserID    string
	SID       string // the SSO session at the session service
	FamilyID  string // its refresh-token family
	AuthTime  time.Time
	Done      bool
	ExpiresAt time.Time
}

// AuthParams are the request's OAuth parameters, as the client sent them.
type AuthParams struct {
	RedirectURI         string   `json:"redirect_uri"`
	Scopes              []string `json:"scopes"`
	State               string   `json:"state,omitempty"`
	Nonce               string   `json:"nonce,omitempty"`
	ResponseType        string   `json:"response_type"`
	ResponseMode        string   `json:"response_mode,omitempty"`
	CodeChallenge       string   `json:"code_challenge,omitempty"`
	CodeChallengeMethod string   `json:"code_challenge_method,omitempty"`
	Prompt              []string `json:"prompt,omitempty"`
	MaxAge              *uint    `json:"max_age,omitempty"`
	LoginHint           string   `json:"login_hint,omitempty"`
	// Resources are the audiences asked for with RFC 8707 `resource`;
	// empty: the client's default set.
	Resources []string `json:"resources,omitempty"`
}

// AccessToken is what an issued access token says; the JWT is signed from
// it and it is kept for userinfo, revocation and token exchange.
type AccessToken struct {
	ID        string // jti
	Subject   string
	ClientID  string
	SID       string
	Audiences []string
	Scopes    []string
	Roles     []string
	Region    string
	Actor     string // act.sub after a token exchange
	IssuedAt  time.Time
	ExpiresAt time.Time
	Revoked   bool
}

// Family is the refresh-token family of one sign-in session.
type Family struct {
	ID     string
	SID    string
	UserID string
	// SSOHash is the SHA-256 of the SSO cookie's secret (256 random bits,
	// independent of SID): the cookie itself is never stored.
	SSOHash []byte
}

// RefreshToken is one refresh token; only its SHA-256 is stored.
type RefreshToken struct {
	Hash      []byte
	FamilyID  string
	ClientID  string
	UserID    string
	SID       string
	Scopes    []string
	AMR       []string
	AuthTime  time.Time
	State     string // active, rotated, revoked
	ExpiresAt time.Time
	// FamilyRevoked is set when the whole family was revoked.
	FamilyRevoked bool
	// Resources limit the grant's audiences (RFC 8707), as asked at
	// /oauth2/authorize; empty: any of the client's.
	Resources []string
}

// Refresh-token states.
const (
	TokenActive  = "active"
	TokenRotated = "rotated"
	TokenRevoked = "revoked"
)

// ErrReused: a refresh token that was already rotated, or an
// authorization code already redeemed, was presented again.
var ErrReused = errors.New("refresh token reused")

// TokenStore keeps the OAuth state: auth requests, codes, tokens, families.
type TokenStore interface {
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	AuthRequestByID(ctx context.Context, id string) (AuthRequest, error)
	// AuthRequestByCodeHash gives the request of an unexpired code; for a
	// code already redeemed, the request and ErrReused.
	AuthRequestByCodeHash(ctx context.Context, hash []byte) (AuthRequest, error)
	// ConsumeCode marks the code redeemed; ErrReused if it already was
	// (of two redemptions at once, one wins).
	ConsumeCode(ctx context.Context, hash []byte, tombstone time.Duration) error
	CompleteAuthRequest(ctx context.Context, id, userID, sid, familyID string, authTime time.Time) error
	SaveCodeHash(ctx context.Context, id string, hash []byte) error
	DeleteAuthRequest(ctx context.Context, id string) error

	SaveAccessToken(ctx context.Context, t AccessToken) error
	AccessTokenByID(ctx context.Context, id string) (AccessToken, error)
	RevokeAccessToken(ctx context.Context, id string) error
	RevokeAccessTokensBySID(ctx context.Context, sid string) error

	CreateFamily(ctx context.Context, f Family) error
	// FamilyBySSOHash finds the live family of an SSO cookie; ErrNotFound
	// if none (unknown secret, or the family was revoked).
	FamilyBySSOHash(ctx context.Context, hash []byte) (Family, error)
	InsertRefreshToken(ctx context.Context, t RefreshToken) error
	RefreshTokenByHash(ctx context.Context, hash []byte) (RefreshToken, error)
	// RotateRefreshToken marks old rotated and inserts next, atomically;
	// ErrReused if old was not active any more.
	RotateRefreshToken(ctx context.Context, oldHash []byte, next RefreshToken) error
	RevokeFamily(ctx context.Context, familyID, reason string) error
	RevokeFamiliesBySID(ctx context.Context, sid, reason string) error
	// RevokeFamiliesByUser revokes a user's live families and returns
	// their sessions.
	RevokeFamiliesByUser(ctx context.Context, userID, reason string) ([]string, error)
	RevokeRefreshToken(ctx context.Context, hash []byte) error

	// Reap deletes expired requests, tokens, and token-less families
	// older than keep.
	Reap(ctx context.Context, keep time.Duration) (Reaped, error)
}

// Reaped counts what one Reap deleted.
type Reaped struct {
	AuthRequests, AccessTokens, RefreshTokens, Families int64
}
