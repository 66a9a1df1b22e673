package oidc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/services/auth/internal/identity"
	"github.com/strata-ref/strata/services/auth/internal/keys"
)

// AccessTokens turns token records into RFC 9068 access tokens: JWTs with
// typ "at+jwt", signed ES256 with the current key and its kid.
//
// Why this is the op's "Crypto": zitadel/oidc signs its own JWT access
// tokens with typ "JWT", which every Strata validator refuses (an ID token
// must never pass as an access token). So clients use the op's Bearer
// token type, for which the op calls Crypto().Encrypt(tokenID+":"+subject)
// to mint the token string. Encrypt looks up the record CreateAccessToken
// just saved and signs it with authn.Sign, the same code that defines the
// format for the validators. Decrypt is the reverse the op needs for
// userinfo, revocation and token exchange: it validates the JWT and returns
// "jti:sub". The ID token's at_hash is computed over the real JWT.
type AccessTokens struct {
	issuer string
	keys   *keys.Manager
	store  identity.TokenStore
	ttl    time.Duration
	now    func() time.Time

	mu      sync.Mutex
	pending map[string]identity.AccessToken // saved, not yet signed
}

var _ op.Crypto = (*AccessTokens)(nil)

// NewAccessTokens returns the signer for issuer; ttl is the access-token
// lifetime (5-15 minutes).
func NewAccessTokens(issuer string, km *keys.Manager, store identity.TokenStore, ttl time.Duration) *AccessTokens {
	return &AccessTokens{issuer: issuer, keys: km, store: store, ttl: ttl, now: time.Now, pending: map[string]identity.AccessToken{}}
}

// Issue saves a record for a new access token and returns its id and
// expiry. The lifetime is capped by rec.ExpiresAt when the caller set one
// (an exchanged token never outlives the token it was exchanged from).
func (a *AccessTokens) Issue(ctx context.Context, rec identity.AccessToken) (string, time.Time, error) {
	now := a.now().Truncate(time.Second)
	exp := now.Add(a.ttl)
	if !rec.ExpiresAt.IsZero() && rec.ExpiresAt.Before(exp) {
		exp = rec.ExpiresAt
	}
	rec.ID, rec.IssuedAt, rec.ExpiresAt = uuid.NewString(), now, exp
	if err := a.store.SaveAccessToken(ctx, rec); err != nil {
		return "", time.Time{}, err
	}
	a.mu.Lock()
	for id, p := range a.pending { // drop records whose signing never came
		if now.Sub(p.IssuedAt) > time.Minute {
			delete(a.pending, id)
		}
	}
	a.pending[rec.ID] = rec
	a.mu.Unlock()
	return rec.ID, exp, nil
}

// Encrypt signs the access token for "tokenID:subject". The op also mints
// authorization codes through it, as Encrypt(authRequestID): a code gets
// 256 random bits instead, whose hash SaveAuthCode stores, so a code
// carries nothing and can only be looked up.
func (a *AccessTokens) Encrypt(s string) (string, error) {
	id, sub, ok := strings.Cut(s, ":")
	if !ok {
		return randomToken(), nil
	}
	a.mu.Lock()
	rec, found := a.pending[id]
	delete(a.pending, id)
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !found {
		var err error
		if rec, err = a.store.AccessTokenByID(ctx, id); err != nil {
			return "", fmt.Errorf("access token %s: %w", id, err)
		}
	}
	if rec.Subject != sub {
		return "", errors.New("access token: subject mismatch")
	}
	return a.Sign(ctx, rec)
}

// Sign serialises rec as a JWT with the current key.
func (a *AccessTokens) Sign(ctx context.Context, rec identity.AccessToken) (string, error) {
	c := authn.Claims{
		Claims: jwt.Claims{Issuer: a.issuer, Subject: rec.Subject, Audience: jwt.Audience(rec.Audiences),
			Expiry: jwt.NewNumericDate(rec.ExpiresAt), IssuedAt: jwt.NewNumericDate(rec.IssuedAt),
			NotBefore: jwt.NewNumericDate(rec.IssuedAt), ID: rec.ID},
		ClientID: rec.ClientID, SessionID: rec.SID, Scope: strings.Join(rec.Scopes, " "),
		Roles: rec.Roles, Region: rec.Region,
	}
	if rec.Actor != "" {
		c.Act = &authn.Actor{Sub: rec.Actor}
	}
	return authn.Sign(a.keys.Signing(ctx), c)
}

// Decrypt validates an access token this service issued and returns
// "jti:sub".
func (a *AccessTokens) Decrypt(raw string) (string, error) {
	c, err := a.Verify(context.Background(), raw)
	if err != nil {
		return "", err
	}
	return c.ID + ":" + c.Subject, nil
}

// Verify checks an access token as a resource server would (RFC 8725),
// without an audience: the auth service accepts its tokens for any of its
// own purposes (userinfo, revocation, exchange), each of which then checks
// what it needs.
func (a *AccessTokens) Verify(ctx context.Context, raw string) (authn.Claims, error) {
	var c authn.Claims
	if len(raw) > authn.MaxTokenBytes {
		return c, authn.ErrInvalidToken
	}
	tok, err := jwt.ParseSigned(raw, authn.Algorithms)
	if err != nil || len(tok.Headers) != 1 {
		return c, fmt.Errorf("%w: parse", authn.ErrInvalidToken)
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, authn.TokenType) {
		return c, fmt.Errorf("%w: typ %q", authn.ErrInvalidToken, typ)
	}
	key, err := a.keys.Key(ctx, h.KeyID)
	if err != nil {
		return c, fmt.Errorf("%w: kid: %v", authn.ErrInvalidToken, err)
	}
	if err := tok.Claims(key.Key, &c); err != nil {
		return c, fmt.Errorf("%w: signature", authn.ErrInvalidToken)
	}
	if c.Expiry == nil || c.ID == "" || c.Subject == "" {
		return c, fmt.Errorf("%w: missing claims", authn.ErrInvalidToken)
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: a.issuer, Time: a.now()}, 30*time.Second); err != nil {
		return c, fmt.Errorf("%w: %v", authn.ErrInvalidToken, err)
	}
	return c, nil
}
