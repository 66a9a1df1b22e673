package deploycheck

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-ref/strata/libs/pki"
)

// Consumer is one container that mounts its own compose volume
// certs-<Name> (filled by the certs job) at CertsMount. It sees
// the CA certificate and its own key pair, nothing else: a compromised
// container holds no other workload's key.
type Consumer struct {
	Name string
	// UID owns the key file (mode 0600): the user the container's process
	// runs as. Postgres refuses a key readable by others.
	UID int
	// Leaves are the key pairs it gets [Name]: the Postgres replica serves
	// as postgres and replicates as the replicator role.
	Leaves []string
	// Keystore also writes keystore.pem (key then certificate in one file),
	// the form Cassandra's PEMBasedSslContextFactory reads.
	Keystore bool
	// Passwords are the store users' password files it gets
	// (<store>-<user>.password, mode 0600): a service its own store user's,
	// a store the ones it sets up.
	Passwords []string
	// RedisACL also writes users.acl, Redis's ACL users with the passwords'
	// SHA-256 (deploy/native/lib/redis.sh writes the same natively).
	RedisACL bool
	// CQLCredentials also writes cqlsh-credentials, the admin role's login
	// for cqlsh (the healthcheck and the role setup).
	CQLCredentials bool
}

// CertsMount is where every container mounts its directory of the volume.
const CertsMount = "/run/strata/certs"

// UIDs of the users the images run as.
const (
	UIDNonroot = 65532 // the Strata images (USER 65532)
	UIDNobody  = 65534 // prom/prometheus
	UIDStore   = 999   // postgres, redis and cassandra official Debian images
)

// Consumers are the containers that receive certificates, by compose
// service name; each leaf's DNS SANs hold its own name, which is also its
// compose host name.
var Consumers = []Consumer{
	{Name: "auth", UID: UIDNonroot},
	{Name: "ledger", UID: UIDNonroot},
	{Name: "analytics", UID: UIDNonroot, Passwords: []string{"cassandra-analytics"}},
	{Name: "session", UID: UIDNonroot, Passwords: []string{"redis-session"}},
	{Name: "console", UID: UIDNonroot},
	{Name: "loadtest", UID: UIDNonroot},
	{Name: "prometheus", UID: UIDNobody},
	{Name: "postgres", UID: UIDStore},
	{Name: "redis", UID: UIDStore, Passwords: []string{"redis-admin"}, RedisACL: true},
	{Name: "cassandra", UID: UIDStore, Keystore: true, Passwords: []string{"cassandra-admin", "cassandra-analytics"}, CQLCredentials: true},
	{Name: "postgres-replica", UID: UIDStore, Leaves: []string{"postgres", "replicator"}},
}

// LayoutOptions configures Lay.
type LayoutOptions struct {
	// WorkloadTTL is the lifetime of workload SVIDs. Compose has no
	// rotation loop, so it uses 30 days instead of the native 24 hours;
	// every `docker compose up` renews them.
	WorkloadTTL, StoreTTL, CATTL time.Duration
	// Chown sets each key's owner to its consumer's UID (needs root or
	// CAP_CHOWN; the compose job has it, tests as non-root do not).
	Chown bool
}

// Lay issues (or renews) every leaf under the CA kept in caDir, then copies
// into out/<consumer>/ the files that consumer needs: ca.pem, <name>.pem and
// <name>-key.pem (plus keystore.pem for Cassandra). caDir, holding the CA's
// private key, is never shared with any other container.
func Lay(caDir, out string, o LayoutOptions) error {
	if err := pki.IssueStack(caDir, pki.StackOptions{WorkloadTTL: o.WorkloadTTL, StoreTTL: o.StoreTTL, CATTL: o.CATTL}); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(caDir, "ca.pem"))
	if err != nil {
		return err
	}
	for _, c := range Consumers {
		dir := filepath.Join(out, c.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		uid := -1
		if o.Chown {
			uid = c.UID
		}
		type file struct {
			name string
			data []byte
			mode os.FileMode
		}
		// Key before certificate, each through a rename: a service that
		// reloads on the certificate's mtime always finds the matching key.
		files := []file{{"ca.pem", ca, 0o644}}
		leaves := c.Leaves
		if len(leaves) == 0 {
			leaves = []string{c.Name}
		}
		var key, cert []byte
		for _, leaf := range leaves {
			if cert, err = os.ReadFile(filepath.Join(caDir, leaf+".pem")); err != nil {
				return err
			}
			if key, err = os.ReadFile(filepath.Join(caDir, leaf+"-key.pem")); err != nil {
				return err
			}
			files = append(files, file{leaf + "-key.pem", key, 0o600}, file{leaf + ".pem", cert, 0o644})
		}
		if c.Keystore {
			files = append(files, file{"keystore.pem", append(append([]byte{}, key...), cert...), 0o600})
		}
		pw := func(name string) ([]byte, error) {
			b, err := os.ReadFile(filepath.Join(caDir, name+".password"))
			return bytes.TrimSpace(b), err
		}
		for _, name := range c.Passwords {
			b, err := pw(name)
			if err != nil {
				return err
			}
			files = append(files, file{name + ".password", append(b, '\n'), 0o600})
		}
		if c.RedisACL {
			admin, err := pw("redis-admin")
			if err != nil {
				return err
			}
			session, err := pw("redis-session")
			if err != nil {
				return err
			}
			files = append(files, file{"users.acl", []byte(RedisACL(admin, session)), 0o600})
		}
		if c.CQLCredentials {
			admin, err := pw("cassandra-admin")
			if err != nil {
				return err
			}
			files = append(files, file{"cqlsh-credentials", []byte("[PlainTextAuthProvider]\nusername = admin\npassword = " + string(admin) + "\n"), 0o600})
		}
		for _, f := range files {
			if err := pki.WriteFileAtomic(filepath.Join(dir, f.name), f.data, f.mode, uid); err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
		}
		if uid >= 0 {
			if err := os.Chown(dir, uid, uid); err != nil {
				return err
			}
		}
	}
	return nil
}

// RedisACL is the ACL file of the compose Redis, the same users as the
// native stack's (deploy/native/lib/redis.sh): default off, admin for the
// healthcheck, replication and Sentinel, session for the session service's
// session:* keys only.
func RedisACL(adminPassword, sessionPassword []byte) string {
	h := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	return "user default off\n" +
		"user admin on #" + h(adminPassword) + " ~* &* +@all\n" +
		"user session on #" + h(sessionPassword) + " ~session:* resetchannels -@all +@read +@write +@connection -@dangerous -@admin\n"
}
