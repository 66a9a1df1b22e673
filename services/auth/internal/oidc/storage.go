package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/services/auth/internal/identity"
	"github.com/strata-ref/strata/services/auth/internal/keys"
)

// Storage is the op.Storage of the provider: every question zitadel/oidc
// asks (which client is this, store this auth request, issue these tokens)
// is answered here from the Postgres-backed stores, the signing keys and
// the session service.
type Storage struct {
	ids      identity.Store
	tokens   identity.TokenStore
	keys     *keys.Manager
	access   *AccessTokens
	sessions Sessions
	log      *slog.Logger
	cfg      Config
	now      func() time.Time
}

var (
	_ op.Storage                        = (*Storage)(nil)
	_ op.ClientCredentialsStorage       = (*Storage)(nil)
	_ op.TokenExchangeStorage           = (*Storage)(nil)
	_ op.CanTerminateSessionFromRequest = (*Storage)(nil)
	_ op.CanSetUserinfoFromRequest      = (*Storage)(nil)
)

// hashToken is how codes and refresh tokens are stored: never in clear.
func hashToken(t string) []byte { s := sha256.Sum256([]byte(t)); return s[:] }

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ---- clients ----

// GetClientByClientID returns the client.
func (s *Storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.ids.ClientByID(ctx, id)
	if errors.Is(err, identity.ErrNotFound) {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	return client{c}, nil
}

// AuthorizeClientIDSecret authenticates a confidential client. Strata has
// no client secrets: a service client proves itself with its mTLS
// certificate (RFC 8705 tls_client_auth: the SPIFFE ID in the verified
// certificate must be the client's) or a private_key_jwt assertion
// (verified before the op saw the request, clientauth.go).
func (s *Storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	_, err := s.authenticateClient(ctx, id, secret)
	return err
}

func (s *Storage) authenticateClient(ctx context.Context, id, secret string) (identity.Client, error) {
	c, err := s.ids.ClientByID(ctx, id)
	if errors.Is(err, identity.ErrNotFound) {
		return c, errors.New("unknown client")
	}
	if err != nil {
		return c, oidc.ErrServerError().WithParent(err)
	}
	if secret != "" {
		return c, errors.New("client secrets are not accepted")
	}
	switch c.AuthMethod {
	case identity.AuthTLSClient:
		if peer, ok := peerFrom(ctx); ok && peer == c.SPIFFEID {
			return c, nil
		}
		return c, errors.New("tls_client_auth: certificate does not identify the client")
	case identity.AuthPrivateKeyJWT:
		if asserted, ok := assertedClientFrom(ctx); ok && asserted == c.ID {
			return c, nil
		}
		return c, errors.New("private_key_jwt: no valid assertion for the client")
	default:
		return c, errors.New("client cannot authenticate")
	}
}

// ClientCredentials authenticates a service client for its own token.
func (s *Storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := s.authenticateClient(ctx, id, secret)
	if err != nil {
		s.log.InfoContext(ctx, "client authentication failed", "client_id", id, "reason", err.Error())
		return nil, err
	}
	return client{c}, nil
}

// ClientCredentialsTokenRequest describes the service's own token.
// Only scopes registered for the client are granted (RFC 6749 section
// 3.3 lets the server issue fewer than asked); the token's scope says
// which.
func (s *Storage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, err := s.ids.ClientByID(ctx, id)
	if err != nil {
		return nil, oidc.ErrInvalidClient()
	}
	granted := slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool { return !slices.Contains(c.Scopes, sc) })
	return serviceRequest{clientID: id, scopes: granted}, nil
}

// GetKeyByIDAndClientID returns a private_key_jwt client's public key.
func (s *Storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c, err := s.ids.ClientByID(ctx, clientID)
	if err != nil {
		return nil, err
	}
	if c.AuthMethod != identity.AuthPrivateKeyJWT {
		return nil, errors.New("client does not use private_key_jwt")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(c.JWKS, &set); err != nil {
		return nil, fmt.Errorf("client %s jwks: %w", clientID, err)
	}
	for _, k := range set.Key(keyID) {
		if k.IsPublic() {
			return &k, nil
		}
	}
	return nil, errors.New("key not found")
}

// ValidateJWTProfileScopes: the JWT bearer grant (RFC 7523 section 2.1) is
// not offered.
func (s *Storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, oidc.ErrUnsupportedGrantType()
}

// ---- authorization requests and codes ----

// CreateAuthRequest stores a validated authorization request. PKCE with
// S256 is required of every client of the code flow (the op has already checked the
// client, redirect URI, response type and scopes).
func (s *Storage) CreateAuthRequest(ctx context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, err := s.ids.ClientByID(ctx, r.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient()
	}
	if (c.Kind == identity.PublicClient || c.HasGrant(string(oidc.GrantTypeCode))) &&
		(r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method=S256 is required")
	}
	if slices.Contains(r.Prompt, oidc.PromptNone) {
		if _, ok := ssoFrom(ctx); !ok {
			return nil, oidc.ErrLoginRequired()
		}
	}
	resources := resourcesFrom(ctx)
	if err := checkResources(c.Audiences, resources); err != nil {
		return nil, err
	}
	req := identity.AuthRequest{
		ID: uuid.NewString(), ClientID: r.ClientID, ExpiresAt: s.now().Add(10 * time.Minute),
		Params: identity.AuthParams{
			RedirectURI: r.RedirectURI, Scopes: r.Scopes, State: r.State, Nonce: r.Nonce,
			ResponseType: string(r.ResponseType), ResponseMode: string(r.ResponseMode),
			CodeChallenge: r.CodeChallenge, CodeChallengeMethod: string(r.CodeChallengeMethod),
			Prompt: r.Prompt, MaxAge: r.MaxAge, LoginHint: r.LoginHint, Resources: resources,
		},
	}
	if err := s.tokens.CreateAuthRequest(ctx, req); err != nil {
		return nil, err
	}
	return authRequest{req}, nil
}

// AuthRequestByID returns a stored request.
func (s *Storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	r, err := s.tokens.AuthRequestByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("auth request: %w", err)
	}
	return authRequest{r}, nil
}

// codeTombstone is how long a redeemed code is remembered, so that a
// second redemption is recognised as reuse.
const codeTombstone = 10 * time.Minute

// AuthRequestByCode returns the request a code was issued for, and marks
// the code redeemed in the same step (the op deletes the request only
// after the tokens are issued, so two concurrent redemptions used to both
// succeed). The PKCE verifier is checked first: a redemption without it
// neither spends the code nor revokes anything. A code presented again
// with its verifier is reuse (RFC 6749 section 4.1.2): the tokens issued
// from it (its session's refresh-token family, access tokens and the SSO
// session) are revoked, since either a thief or the client holds a copy.
func (s *Storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	hash := hashToken(code)
	r, err := s.tokens.AuthRequestByCodeHash(ctx, hash)
	reused := errors.Is(err, identity.ErrReused)
	if err != nil && !reused {
		return nil, fmt.Errorf("auth request by code: %w", err)
	}
	if r.Params.CodeChallenge != "" {
		ch := &oidc.CodeChallenge{Challenge: r.Params.CodeChallenge, Method: oidc.CodeChallengeMethod(r.Params.CodeChallengeMethod)}
		if !oidc.VerifyCodeChallenge(ch, codeVerifierFrom(ctx)) {
			return nil, oidc.ErrInvalidGrant().WithDescription("invalid code_verifier")
		}
	}
	if !reused {
		err = s.tokens.ConsumeCode(ctx, hash, codeTombstone)
		reused = errors.Is(err, identity.ErrReused)
		if err != nil && !reused {
			return nil, oidc.ErrServerError().WithParent(err)
		}
	}
	if reused {
		s.revokeFamily(ctx, r.FamilyID, r.SID, "authorization code redeemed again")
		if err := s.tokens.RevokeAccessTokensBySID(ctx, r.SID); err != nil {
			s.log.ErrorContext(ctx, "revoke access tokens failed", "session", sessionRef(r.SID), "err", err)
		}
		return nil, oidc.ErrInvalidGrant().WithDescription("code already used; the tokens issued from it are revoked")
	}
	return authRequest{r}, nil
}

// SaveAuthCode binds the code to the request (stored hashed).
func (s *Storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.tokens.SaveCodeHash(ctx, id, hashToken(code))
}

// DeleteAuthRequest is called when the code is redeemed: single use.
func (s *Storage) DeleteAuthRequest(ctx context.Context, id string) error {
	return s.tokens.DeleteAuthRequest(ctx, id)
}

// ---- tokens ----

// CreateAccessToken issues an access token without a refresh token.
func (s *Storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	rec, err := s.accessRecord(ctx, req)
	if err != nil {
		return "", time.Time{}, err
	}
	return s.access.Issue(ctx, rec)
}

// accessRecord decides what an access token says, per kind of request.
func (s *Storage) accessRecord(ctx context.Context, req op.TokenRequest) (identity.AccessToken, error) {
	switch r := req.(type) {
	case authRequest:
		return s.userRecord(ctx, r.UserID, r.ClientID, r.SID, r.Params.Scopes, r.Params.Resources)
	case *refreshRequest:
		return s.userRecord(ctx, r.UserID, r.ClientID, r.SID, r.Scopes, r.Resources)
	case serviceRequest:
		c, err := s.ids.ClientByID(ctx, r.clientID)
		if err != nil {
			return identity.AccessToken{}, err
		}
		return identity.AccessToken{Subject: c.ID, ClientID: c.ID, Audiences: c.Audiences, Scopes: r.scopes}, nil
	case op.TokenExchangeRequest:
		return s.exchangeRecord(ctx, r)
	default:
		return identity.AccessToken{}, oidc.ErrUnsupportedGrantType()
	}
}

// userRecord is a user's token for a client: the audiences the request
// asked for (RFC 8707, within the grant's; resources.go) or the client's
// default set, the user's current roles and region (so a role change
// applies at the next refresh), and the session it belongs to.
func (s *Storage) userRecord(ctx context.Context, userID, clientID, sid string, scopes, grant []string) (identity.AccessToken, error) {
	u, err := s.ids.UserByID(ctx, userID)
	if err != nil {
		return identity.AccessToken{}, fmt.Errorf("token for user: %w", err)
	}
	if u.Disabled {
		return identity.AccessToken{}, oidc.ErrInvalidGrant().WithDescription("user disabled")
	}
	c, err := s.ids.ClientByID(ctx, clientID)
	if err != nil {
		return identity.AccessToken{}, err
	}
	aud, err := audiencesFor(c, grant, resourcesFrom(ctx))
	if err != nil {
		return identity.AccessToken{}, err
	}
	return identity.AccessToken{Subject: u.ID, ClientID: c.ID, SID: sid, Audiences: aud, Scopes: scopes,
		Roles: u.Roles, Region: u.Region}, nil
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token.
// From a code: the first refresh token of the session's family. From a
// refresh token: rotation; the presented token is retired in the same
// transaction the new one is stored, and if it had already been retired,
// that is reuse: the family and its session are revoked.
func (s *Storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	rec, err := s.accessRecord(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	next := randomToken()
	rt := identity.RefreshToken{Hash: hashToken(next), Scopes: req.GetScopes(), ExpiresAt: s.now().Add(s.cfg.RefreshTokenTTL)}
	switch r := req.(type) {
	case authRequest:
		rt.FamilyID, rt.ClientID, rt.UserID, rt.SID, rt.AMR, rt.AuthTime = r.FamilyID, r.ClientID, r.UserID, r.SID, amrPassword, r.AuthTime
		rt.Resources = r.Params.Resources
		if err := s.tokens.InsertRefreshToken(ctx, rt); err != nil {
			return "", "", time.Time{}, err
		}
	case *refreshRequest:
		rt.FamilyID, rt.ClientID, rt.UserID, rt.SID, rt.AMR, rt.AuthTime = r.FamilyID, r.ClientID, r.UserID, r.SID, r.AMR, r.AuthTime
		rt.Resources = r.Resources
		if err := s.tokens.RotateRefreshToken(ctx, hashToken(current), rt); err != nil {
			if errors.Is(err, identity.ErrReused) {
				s.revokeFamily(ctx, r.FamilyID, r.SID, "refresh token reused (concurrent rotation)")
				return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token is no longer valid")
			}
			return "", "", time.Time{}, err
		}
	default:
		return "", "", time.Time{}, oidc.ErrInvalidRequest().WithDescription("refresh tokens are issued only to people's sign-ins")
	}
	id, exp, err := s.access.Issue(ctx, rec)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return id, next, exp, nil
}

// revokeFamily ends a refresh-token family and the session it belongs to.
func (s *Storage) revokeFamily(ctx context.Context, familyID, sid, reason string) {
	s.log.WarnContext(ctx, "revoking refresh-token family", "family_id", familyID, "session", sessionRef(sid), "reason", reason)
	if err := s.tokens.RevokeFamily(ctx, familyID, reason); err != nil {
		s.log.ErrorContext(ctx, "revoke family failed", "family_id", familyID, "err", err)
	}
	if sid != "" {
		if err := s.sessions.Delete(ctx, sid); err != nil {
			s.log.ErrorContext(ctx, "delete session failed", "session", sessionRef(sid), "err", err)
		}
	}
}

// EndUserSessions ends every session of a user (an administrator disabled
// them): their refresh-token families are revoked (which also ends SSO
// from their cookies), the sessions deleted at the session service (so
// stateful checks refuse their access tokens), and their access-token
// records revoked.
func (s *Storage) EndUserSessions(ctx context.Context, userID, reason string) error {
	sids, err := s.tokens.RevokeFamiliesByUser(ctx, userID, reason)
	if err != nil {
		return err
	}
	var errs []error
	for _, sid := range sids {
		if err := s.sessions.Delete(ctx, sid); err != nil {
			errs = append(errs, err)
		}
		if err := s.tokens.RevokeAccessTokensBySID(ctx, sid); err != nil {
			errs = append(errs, err)
		}
	}
	s.log.InfoContext(ctx, "ended a user's sessions", "user_id", userID, "sessions", len(sids), "reason", reason)
	return errors.Join(errs...)
}

// TokenRequestByRefreshToken checks a presented refresh token: it must be
// active, its family unrevoked, unexpired, and its session alive (the
// stateful check: a logged-out session's refresh tokens stop working).
func (s *Storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	rt, err := s.tokens.RefreshTokenByHash(ctx, hashToken(token))
	if err != nil {
		return nil, fmt.Errorf("refresh token: %w", err)
	}
	switch {
	case rt.State == identity.TokenRotated && !rt.FamilyRevoked:
		// Only a thief or a confused client presents a rotated token: RFC
		// 9700 section 4.14.2. Both copies of the family are now worthless.
		s.revokeFamily(ctx, rt.FamilyID, rt.SID, "rotated refresh token presented again")
		return nil, identity.ErrReused
	case rt.State != identity.TokenActive || rt.FamilyRevoked:
		return nil, errors.New("refresh token revoked")
	case !s.now().Before(rt.ExpiresAt):
		return nil, errors.New("refresh token expired")
	}
	alive, err := s.sessionAlive(ctx, rt.SID)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	if !alive {
		_ = s.tokens.RevokeFamily(ctx, rt.FamilyID, "session ended")
		return nil, errors.New("session ended")
	}
	return &refreshRequest{RefreshToken: rt, token: token}, nil
}

func (s *Storage) sessionAlive(ctx context.Context, sid string) (bool, error) {
	if sid == "" {
		return true, nil
	}
	_, ok, err := s.sessions.Get(ctx, sid)
	return ok, err
}

// GetRefreshTokenInfo identifies a refresh token for revocation.
func (s *Storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	rt, err := s.tokens.RefreshTokenByHash(ctx, hashToken(token))
	if err != nil || rt.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.UserID, token, nil
}

// RevokeToken revokes an access token (by id) or a refresh token (RFC 7009).
// Unknown tokens are not an error: the answer is the same 200 either way.
func (s *Storage) RevokeToken(ctx context.Context, tokenOrID, userID, clientID string) *oidc.Error {
	if userID != "" { // an access token, identified by its jti
		if at, err := s.tokens.AccessTokenByID(ctx, tokenOrID); err == nil {
			if at.ClientID != clientID {
				return oidc.ErrInvalidClient().WithDescription("token was issued to another client")
			}
			if err := s.tokens.RevokeAccessToken(ctx, tokenOrID); err != nil {
				return oidc.ErrServerError().WithParent(err)
			}
			return nil
		}
	}
	rt, err := s.tokens.RefreshTokenByHash(ctx, hashToken(tokenOrID))
	if err != nil {
		return nil
	}
	if rt.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was issued to another client")
	}
	if err := s.tokens.RevokeRefreshToken(ctx, rt.Hash); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// TerminateSession is required by op.Storage; TerminateSessionFromRequest
// replaces it.
func (s *Storage) TerminateSession(context.Context, string, string) error { return nil }

// TerminateSessionFromRequest ends the SSO session(s) the logout handler
// (login.go) decided the request may end. The session service deletes the session (so stateful
// checks refuse its access tokens) and its refresh-token families are
// revoked here.
func (s *Storage) TerminateSessionFromRequest(ctx context.Context, req *op.EndSessionRequest) (string, error) {
	for _, sid := range logoutSIDsFrom(ctx) {
		if err := s.sessions.Delete(ctx, sid); err != nil {
			return "", err
		}
		if err := s.tokens.RevokeFamiliesBySID(ctx, sid, "logout"); err != nil {
			return "", err
		}
		s.log.InfoContext(ctx, "session ended", "session", sessionRef(sid))
	}
	return req.RedirectURI, nil
}

// ---- userinfo and claims ----

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest does the work.
func (s *Storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's claims, including sid (so an
// id_token_hint at logout names the session).
func (s *Storage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	u, err := s.ids.UserByID(ctx, req.GetSubject())
	if err != nil {
		return err
	}
	fillUserinfo(info, u, scopes)
	switch r := req.(type) {
	case authRequest:
		info.AppendClaims("sid", r.SID)
	case *refreshRequest:
		info.AppendClaims("sid", r.SID)
	}
	return nil
}

func fillUserinfo(info *oidc.UserInfo, u identity.User, scopes []string) {
	info.Subject = u.ID
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.PreferredUsername = u.Username
		info.AppendClaims("roles", u.Roles)
		if u.Region != "" {
			info.AppendClaims("region", u.Region)
		}
	}
}

// SetUserinfoFromToken answers /userinfo. This is a stateful check: a
// revoked token, or one whose session has ended, gets nothing.
func (s *Storage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	at, err := s.tokens.AccessTokenByID(ctx, tokenID)
	if err != nil || at.Revoked || at.Subject != subject {
		return errors.New("access token revoked or unknown")
	}
	alive, err := s.sessionAlive(ctx, at.SID)
	if err != nil {
		return err
	}
	if !alive {
		return errors.New("session ended")
	}
	u, err := s.ids.UserByID(ctx, subject)
	if err != nil {
		return errors.New("not a user's token")
	}
	fillUserinfo(info, u, at.Scopes) // profile claims only when the profile scope was granted
	return nil
}

// SetIntrospectionFromToken: introspection is not offered (access tokens
// are JWTs validated locally; the stateful check is the session service).
func (s *Storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not supported")
}

// GetPrivateClaimsFromScopes is only used for op-signed JWT access tokens,
// which Strata does not use (see accesstoken.go).
func (s *Storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// ---- keys ----

type signingKey struct{ jose.JSONWebKey }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return keys.Algorithm }
func (k signingKey) Key() any                                    { return k.JSONWebKey.Key }
func (k signingKey) ID() string                                  { return k.KeyID }

type publicKey struct{ jose.JSONWebKey }

func (k publicKey) ID() string                         { return k.KeyID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return keys.Algorithm }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.JSONWebKey.Key }

// SigningKey is the current key, for ID tokens.
func (s *Storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	return signingKey{s.keys.Signing(ctx)}, nil
}

// SignatureAlgorithms lists ES256.
func (s *Storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{keys.Algorithm}, nil
}

// KeySet is JWKS: next, current and retired keys.
func (s *Storage) KeySet(ctx context.Context) ([]op.Key, error) {
	pub := s.keys.Published(ctx)
	out := make([]op.Key, len(pub))
	for i, k := range pub {
		out[i] = publicKey{k}
	}
	return out, nil
}

// Health pings the database through a cheap query.
func (s *Storage) Health(ctx context.Context) error {
	_, err := s.ids.ClientByID(ctx, "strata-cli")
	if errors.Is(err, identity.ErrNotFound) {
		return nil
	}
	return err
}

// peer identity and asserted client travel in the request context from
// the client-authentication middleware to the storage.
type ctxKey int

const (
	peerKey ctxKey = iota
	assertedKey
	ssoKey
	logoutKey
	verifierKey
	resourcesKey
)

func withCodeVerifier(ctx context.Context, v string) context.Context {
	return context.WithValue(ctx, verifierKey, v)
}

func codeVerifierFrom(ctx context.Context) string {
	s, _ := ctx.Value(verifierKey).(string)
	return s
}

func withPeer(ctx context.Context, spiffeID string) context.Context {
	return context.WithValue(ctx, peerKey, spiffeID)
}

func peerFrom(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(peerKey).(string)
	return s, ok && s != ""
}

func withAssertedClient(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, assertedKey, id)
}

func assertedClientFrom(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(assertedKey).(string)
	return s, ok && s != ""
}

func withSSO(ctx context.Context, sid string) context.Context {
	return context.WithValue(ctx, ssoKey, sid)
}

func ssoFrom(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(ssoKey).(string)
	return s, ok && s != ""
}

func withLogoutSIDs(ctx context.Context, sids []string) context.Context {
	return context.WithValue(ctx, logoutKey, sids)
}

func logoutSIDsFrom(ctx context.Context) []string {
	s, _ := ctx.Value(logoutKey).([]string)
	return slices.Clone(s)
}

// actorOf is the act.sub a service client is recorded as: its SPIFFE ID
// when it has one (what resource services see on the wire), else its id.
func actorOf(c identity.Client) string {
	if c.SPIFFEID != "" {
		return c.SPIFFEID
	}
	return mtls.ID(c.ID).String()
}
