package pki

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Workloads are the SPIFFE identities Strata issues.
var Workloads = []string{"auth", "ledger", "analytics", "session", "loadtest", "prometheus", "console"}

// Stores are the data stores that get server certificates, and the
// Postgres replication role (CN replicator), the client identity a
// streaming replica connects to its primary with.
var Stores = []string{"postgres", "redis", "cassandra", "replicator"}

// Aliases are the other host names a leaf answers to: in the compose
// profile ha, a service's second replica and a store's replicas share its
// identity (and so its certificate) under their own container names.
var Aliases = map[string][]string{
	"auth": {"auth-b"}, "ledger": {"ledger-b"}, "analytics": {"analytics-b"}, "session": {"session-b"},
	"postgres":  {"postgres-replica"},
	"redis":     {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"},
	"cassandra": {"cassandra2", "cassandra3"},
}

// StackOptions sets lifetimes and extra names for IssueStack.
type StackOptions struct {
	WorkloadTTL, StoreTTL, CATTL time.Duration
	Hosts                        []string        // extra DNS names on every leaf
	Only                         map[string]bool // issue only these (nil: all)
	Log                          io.Writer
}

// IssueStack makes (or keeps) the CA in dir and renews every leaf.
func IssueStack(dir string, o StackOptions) error {
	ca, created, err := LoadOrCreateCA(dir, o.CATTL)
	if err != nil {
		return err
	}
	if created && o.Log != nil {
		fmt.Fprintf(o.Log, "created CA %s/ca.pem\n", dir)
	}
	issue := func(name string, ttl time.Duration, spiffe bool) error {
		if o.Only != nil && !o.Only[name] {
			return nil
		}
		if err := ca.Issue(dir, Leaf{Name: name, TTL: ttl, SPIFFE: spiffe, Hosts: append(slices.Clone(o.Hosts), Aliases[name]...)}); err != nil {
			return err
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "issued %s (valid %s)\n", name, ttl)
		}
		return nil
	}
	for _, w := range Workloads {
		if err := issue(w, o.WorkloadTTL, true); err != nil {
			return err
		}
	}
	for _, s := range Stores {
		if err := issue(s, o.StoreTTL, false); err != nil {
			return err
		}
	}
	return nil
}
