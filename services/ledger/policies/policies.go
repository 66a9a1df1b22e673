// Package policies embeds the ledger's Cedar policies (ledger.cedar), loaded
// by libs/authz. See docs/authorization.md.
package policies

import "embed"

// FS holds *.cedar.
//
//go:embed *.cedar
var FS embed.FS
