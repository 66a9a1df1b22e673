package ledger

import (
	"context"
	"time"

	"github.com/strata-ref/strata/libs/authn"
)

// Actions the ledger asks the policy engine about (policies/ledger.cedar).
const (
	ActionOpen     = "create_account"
	ActionRead     = "read_account"
	ActionTransfer = "transfer"
	ActionDeposit  = "deposit"
)

// Resource is what an action is on: an account, with its owner and region.
type Resource struct {
	Type   string // "Account"
	ID     string
	Owner  string
	Region string
}

// Authorizer is the policy decision point. The service asks it about every
// operation with the originating user's principal; it is the seam to the
// shared policy engine (libs/authz) and the Cedar policies in
// services/ledger/policies. A denied read is answered 404, so a caller
// cannot probe for other users' ids; an action denied on a resource the
// caller may read is 403.
type Authorizer interface {
	Allowed(ctx context.Context, p authn.Principal, action string, r Resource, now time.Time) bool
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, p authn.Principal, action string, r Resource, now time.Time) bool

// Allowed implements Authorizer.
func (f AuthorizerFunc) Allowed(ctx context.Context, p authn.Principal, action string, r Resource, now time.Time) bool {
	return f(ctx, p, action, r, now)
}
