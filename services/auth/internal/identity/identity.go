// Package identity is the auth service's domain: users with their roles and
// region, OAuth clients, password hashing (argon2id) and login throttling.
// It declares the Store it needs and knows nothing of pgx, gin or OIDC; the
// OpenID Connect layer (internal/oidc) and the admin API (internal/httpapi)
// build on it, internal/postgres implements it.
package identity

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Roles are the roles a user may hold (RBAC in libs/authz and the services'
// Cedar policies refer to them by these names).
var Roles = []string{"customer", "teller", "auditor", "admin"}

// Regions are the values of a user's region attribute (ABAC).
var Regions = []string{"eu", "us"}

// User is a person who signs in.
type User struct {
	ID           string // stable, opaque: the "sub" of every token
	Username     string
	PasswordHash string // PHC-formatted argon2id hash; never leaves the service
	Roles        []string
	Region       string
	Disabled     bool
	CreatedAt    time.Time
}

// Client is an OAuth 2.0 client.
type Client struct {
	ID   string
	Kind ClientKind
	// AuthMethod is how the client authenticates at the token endpoint.
	AuthMethod AuthMethod
	// SPIFFEID identifies a tls_client_auth client by its certificate.
	SPIFFEID               string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	// Audiences are the services its access tokens are issued for.
	Audiences []string
	// ExchangeAudiences are the audiences it may narrow a user's token to
	// with token exchange (RFC 8693).
	ExchangeAudiences []string
	Scopes            []string
	// JWKS holds the public keys of a private_key_jwt client (JSON).
	JWKS []byte
}

// ClientKind separates people's apps from workloads.
type ClientKind string

// AuthMethod is a token endpoint authentication method (RFC 8414 names).
type AuthMethod string

const (
	PublicClient  ClientKind = "public"  // a native app or script: no secret, PKCE
	ServiceClient ClientKind = "service" // a workload acting for itself or exchanging

	AuthNone          AuthMethod = "none"
	AuthTLSClient     AuthMethod = "tls_client_auth" // RFC 8705: the mTLS certificate
	AuthPrivateKeyJWT AuthMethod = "private_key_jwt" // RFC 7523 client assertion
)

// HasGrant reports whether c may use grant type g.
func (c Client) HasGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

var (
	// ErrNotFound: no such user or client.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the username is taken.
	ErrConflict = errors.New("already exists")
	// ErrInvalid: the input breaks a rule; the wrapped message says which.
	ErrInvalid = errors.New("invalid")
	// ErrBadCredentials: wrong username or password, indistinguishably.
	ErrBadCredentials = errors.New("invalid username or password")
	// ErrThrottled: too many failed sign-ins for this account or address.
	ErrThrottled = errors.New("too many sign-in attempts")
	// ErrBusy: every password-hashing slot stayed taken; retry shortly.
	ErrBusy = errors.New("too many sign-ins at once")
	// ErrUnavailable: a dependency (the session service) cannot answer.
	ErrUnavailable = errors.New("dependency unavailable")
)

// Store is what the domain needs from the database.
type Store interface {
	UserByID(ctx context.Context, id string) (User, error)
	UserByUsername(ctx context.Context, username string) (User, error)
	CreateUser(ctx context.Context, u User) error
	ListUsers(ctx context.Context, after string, limit int) ([]User, error)
	SetDisabled(ctx context.Context, id string, disabled bool) error
	ClientByID(ctx context.Context, id string) (Client, error)
	ClientBySPIFFEID(ctx context.Context, spiffeID string) (Client, error)
}

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,62}$`)

// NewUserInput is what an administrator supplies.
type NewUserInput struct {
	Username string
	Password string
	Roles    []string
	Region   string
}

// Validate checks the input against the rules for users.
func (in NewUserInput) Validate() error {
	if !usernameRE.MatchString(in.Username) {
		return fmt.Errorf("%w: username must be 2-63 of a-z 0-9 . _ - starting with a letter or digit", ErrInvalid)
	}
	if len(in.Password) < 8 || len(in.Password) > 256 {
		return fmt.Errorf("%w: password must be 8-256 characters", ErrInvalid)
	}
	if len(in.Roles) == 0 {
		return fmt.Errorf("%w: at least one role is required", ErrInvalid)
	}
	for _, r := range in.Roles {
		if !slices.Contains(Roles, r) {
			return fmt.Errorf("%w: unknown role %q", ErrInvalid, r)
		}
	}
	if in.Region != "" && !slices.Contains(Regions, in.Region) {
		return fmt.Errorf("%w: unknown region %q", ErrInvalid, in.Region)
	}
	return nil
}

// NewUser validates in and builds the user, hashing the password.
func NewUser(id string, in NewUserInput, now time.Time) (User, error) {
	if err := in.Validate(); err != nil {
		return User{}, err
	}
	hash, err := HashPassword(in.Password, DefaultParams)
	if err != nil {
		return User{}, fmt.Errorf("hash password: %w", err)
	}
	roles := slices.Clone(in.Roles)
	slices.Sort(roles)
	return User{ID: id, Username: in.Username, PasswordHash: hash, Roles: slices.Compact(roles), Region: in.Region, CreatedAt: now}, nil
}
