package config

import "fmt"

// Environment is what STRATA_ENV says a process is: Dev or Production,
// nothing else. Dev-only behaviour (demo users, fault injection, keys
// created on first use) is switched on by comparing with Dev, so a typo
// such as "prod" can never fall through to it: parsing refuses any other
// value, and the variable has no default (an unset STRATA_ENV refuses to
// start, like any other required setting).
type Environment string

const (
	// Dev is a developer's machine or a test: demo users seeded, fault
	// toggles mounted, missing dev keys created.
	Dev Environment = "dev"
	// Production refuses every dev-only feature.
	Production Environment = "production"
)

// UnmarshalText accepts exactly "dev" or "production" (case-sensitive).
func (e *Environment) UnmarshalText(b []byte) error {
	switch v := Environment(b); v {
	case Dev, Production:
		*e = v
		return nil
	default:
		return fmt.Errorf("must be %q or %q, not %q", Dev, Production, string(b))
	}
}

// IsDev reports whether dev-only features may run. The zero value is not
// dev: a struct that was never loaded gets production behaviour.
func (e Environment) IsDev() bool { return e == Dev }
