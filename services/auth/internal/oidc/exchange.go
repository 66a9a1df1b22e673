package oidc

import (
	"context"
	"errors"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/strata-ref/strata/services/auth/internal/identity"
)

// Token exchange (RFC 8693): a service holding a user's access token (the
// ledger) trades it for a token that only the next service (analytics)
// accepts. The new token keeps the user as subject, narrows the audience
// to exactly the one asked for, records the calling service in act, and
// never outlives the original. The rules:
//
//   - the caller authenticates as a service client (mTLS or private_key_jwt)
//     with the token-exchange grant;
//   - the subject token is an access token this service issued, not revoked,
//     whose audience includes the caller (it was meant for the caller), or
//     the caller's own client-credentials token (a service acting as itself,
//     as the ledger's outbox relay does towards analytics);
//   - exactly one audience is requested, and the caller may exchange to it;
//   - the user's session is still alive (stateful, as for refresh);
//   - scopes can only shrink; the issued type is an access token.

func (s *Storage) subjectRecord(ctx context.Context, req op.TokenExchangeRequest) (identity.AccessToken, error) {
	if req.GetExchangeSubjectTokenType() != oidc.AccessTokenType {
		return identity.AccessToken{}, oidc.ErrInvalidRequest().WithDescription("subject_token_type must be access_token")
	}
	at, err := s.tokens.AccessTokenByID(ctx, req.GetExchangeSubjectTokenIDOrToken())
	if err != nil || at.Revoked || at.Subject != req.GetExchangeSubject() || !s.now().Before(at.ExpiresAt) {
		return identity.AccessToken{}, oidc.ErrInvalidGrant().WithDescription("subject_token is invalid")
	}
	return at, nil
}

// ValidateTokenExchangeRequest applies the rules above.
func (s *Storage) ValidateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	c, err := s.ids.ClientByID(ctx, req.GetClientID())
	if err != nil {
		return oidc.ErrInvalidClient()
	}
	if !c.HasGrant(string(oidc.GrantTypeTokenExchange)) {
		return oidc.ErrUnauthorizedClient().WithDescription("client may not exchange tokens")
	}
	if req.GetExchangeActorTokenIDOrToken() != "" {
		return oidc.ErrInvalidRequest().WithDescription("actor_token is not supported; the authenticated client is the actor")
	}
	at, err := s.subjectRecord(ctx, req)
	if err != nil {
		return err
	}
	ownServiceToken := at.ClientID == c.ID && at.Subject == c.ID && at.SID == ""
	if !slices.Contains(at.Audiences, c.ID) && !ownServiceToken {
		return oidc.ErrInvalidGrant().WithDescription("subject_token was not issued for this client")
	}
	aud := req.GetAudience()
	if len(aud) != 1 || len(req.GetResourses()) > 0 {
		return oidc.ErrInvalidTarget().WithDescription("request exactly one audience")
	}
	if !slices.Contains(c.ExchangeAudiences, aud[0]) {
		return oidc.ErrInvalidTarget().WithDescription("client may not exchange to this audience")
	}
	switch req.GetRequestedTokenType() {
	case "":
		req.SetRequestedTokenType(oidc.AccessTokenType)
	case oidc.AccessTokenType:
	default:
		return oidc.ErrInvalidRequest().WithDescription("only access tokens are issued by exchange")
	}
	scopes := at.Scopes
	if want := req.GetScopes(); len(want) > 0 {
		scopes = slices.DeleteFunc(slices.Clone(want), func(sc string) bool { return !slices.Contains(at.Scopes, sc) })
	}
	req.SetCurrentScopes(scopes)
	alive, err := s.sessionAlive(ctx, at.SID)
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if !alive {
		return oidc.ErrInvalidGrant().WithDescription("the user's session has ended")
	}
	return nil
}

// exchangeRecord is the narrowed token.
func (s *Storage) exchangeRecord(ctx context.Context, req op.TokenExchangeRequest) (identity.AccessToken, error) {
	at, err := s.subjectRecord(ctx, req)
	if err != nil {
		return identity.AccessToken{}, err
	}
	c, err := s.ids.ClientByID(ctx, req.GetClientID())
	if err != nil {
		return identity.AccessToken{}, err
	}
	return identity.AccessToken{Subject: at.Subject, ClientID: c.ID, SID: at.SID, Audiences: req.GetAudience(),
		Scopes: req.GetScopes(), Roles: at.Roles, Region: at.Region, Actor: actorOf(c), ExpiresAt: at.ExpiresAt}, nil
}

// CreateTokenExchangeRequest records the exchange in the log (the issued
// token's record is the durable trace).
func (s *Storage) CreateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	s.log.InfoContext(ctx, "token exchange", "client_id", req.GetClientID(), "subject", req.GetSubject(),
		"audience", req.GetAudience())
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest is only used for op-signed JWTs.
func (s *Storage) GetPrivateClaimsFromTokenExchangeRequest(context.Context, op.TokenExchangeRequest) (map[string]any, error) {
	return nil, nil
}

// SetUserinfoFromTokenExchangeRequest: ID tokens are not issued by exchange.
func (s *Storage) SetUserinfoFromTokenExchangeRequest(context.Context, *oidc.UserInfo, op.TokenExchangeRequest) error {
	return errors.New("id tokens are not issued by token exchange")
}
