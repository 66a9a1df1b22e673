package oidc

import (
	"context"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/strata-ref/strata/services/auth/internal/identity"
)

// AdminAudience is the audience of auth's own admin API (/v1/users). It is
// never in a token's default audiences: a user's token is sent to every
// service it names, and any of them (its logs, a compromise) could replay
// it, so the admin API is reachable only with a token asked for it.
const AdminAudience = "auth"

// Resource indicators (RFC 8707): a client names the services a user's
// access token is for with `resource` parameters, at /oauth2/authorize (the
// grant is then limited to them, refresh tokens included) or at
// /oauth2/token (this token only). Strata's resource identifiers are the
// audience names the services check ("ledger", "analytics", "session",
// "auth"), not URLs: the services' URLs differ per deployment while their
// audience names do not. Without `resource`, a token gets the client's
// registered audiences except AdminAudience.

// audiencesFor decides the aud of a user's access token for client c:
// grant are the resources the grant was limited to (none: all of the
// client's), asked those of this token request.
func audiencesFor(c identity.Client, grant, asked []string) ([]string, error) {
	allowed := c.Audiences
	if len(grant) > 0 {
		allowed = grant
	}
	if len(asked) == 0 {
		if len(grant) > 0 {
			return slices.Clone(grant), nil
		}
		return slices.DeleteFunc(slices.Clone(c.Audiences), func(a string) bool { return a == AdminAudience }), nil
	}
	if err := checkResources(allowed, asked); err != nil {
		return nil, err
	}
	out := slices.Clone(asked)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// checkResources refuses a resource outside allowed with invalid_target.
func checkResources(allowed, asked []string) error {
	for _, a := range asked {
		if !slices.Contains(allowed, a) {
			return oidc.ErrInvalidTarget().WithDescription("resource %s is not available to this client", a)
		}
	}
	return nil
}

func withResources(ctx context.Context, r []string) context.Context {
	return context.WithValue(ctx, resourcesKey, slices.Clone(r))
}

func resourcesFrom(ctx context.Context) []string {
	r, _ := ctx.Value(resourcesKey).([]string)
	return r
}
