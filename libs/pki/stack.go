package pki

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	// Store certificates come from their own intermediate, so that store
	// clients can tell a store from a workload (see StoreCAName).
	storeCA, created, err := ca.LoadOrCreateStoreCA(dir, o.CATTL)
	if err != nil {
		return err
	}
	if created && o.Log != nil {
		fmt.Fprintf(o.Log, "created store CA %s/store-ca.pem\n", dir)
	}
	ca = storeCA
	for _, s := range Stores {
		if err := issue(s, o.StoreTTL, false); err != nil {
			return err
		}
	}
	return EnsureStorePasswords(dir, -1)
}

// StoreUsers are the accounts each store's access control knows, besides
// nobody: Redis ACL users and Cassandra roles. "admin" is the operator's
// (stack scripts, replication, Sentinel); each other one is the only
// workload that uses the store. A workload's certificate alone gets no
// access: the store also wants the user's password.
var StoreUsers = map[string][]string{
	"redis":     {"admin", "session"},
	"cassandra": {"admin", "analytics"},
}

// PasswordFile is the file holding user's password for store in dir.
func PasswordFile(dir, store, user string) string {
	return filepath.Join(dir, store+"-"+user+".password")
}

// EnsureStorePasswords creates every StoreUsers password file in dir that
// does not exist yet (256 random bits, base64url, mode 0600; a uid >= 0
// also owns it). Existing ones are kept: the stores hold their hashes.
func EnsureStorePasswords(dir string, uid int) error {
	for store, users := range StoreUsers {
		for _, u := range users {
			path := PasswordFile(dir, store, u)
			if _, err := os.Stat(path); err == nil {
				continue
			}
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			if err := WriteFileAtomic(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600, uid); err != nil {
				return err
			}
		}
	}
	return nil
}
