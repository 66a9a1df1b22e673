// Command certs creates Strata's development certificate authority and the
// key pair of every workload and data store in one directory (.stack/certs
// by default):
//
//	ca.pem, ca-key.pem            the private CA (kept across runs)
//	store-ca.pem, store-ca-key.pem  the store CA, an intermediate that issues
//	                              only the stores' certificates (kept)
//	<store>-<user>.password       each Redis ACL user's and Cassandra role's
//	                              password (made once, kept)
//	<name>.pem, <name>-key.pem    one leaf per workload and store
//
// Workloads (auth, ledger, analytics, session, loadtest, prometheus, console) get an
// X.509 SVID whose URI SAN spiffe://strata.local/<name> names them for mTLS
// authorization; their DNS/IP SANs let the same certificate serve the public
// listener. Stores (postgres, redis, cassandra) get server certificates.
// The replicator leaf (CN replicator) is the Postgres replication role's
// client certificate: a standby streams WAL from the primary with it.
// Re-running renews every leaf under the same CA: services reload the files
// and present the new certificate without a restart. See libs/pki.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/pki"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "certs:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	dir := fs.String("dir", ".stack/certs", "output directory")
	workloadTTL := fs.Duration("workload-ttl", 24*time.Hour, "lifetime of workload SVIDs")
	storeTTL := fs.Duration("store-ttl", 30*24*time.Hour, "lifetime of data store server certificates")
	caTTL := fs.Duration("ca-ttl", 365*24*time.Hour, "lifetime of a newly created CA")
	hosts := fs.String("hosts", "", "comma-separated extra DNS names for every leaf (e.g. compose service names)")
	only := fs.String("only", "", "comma-separated names to issue (default: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	opts := pki.StackOptions{WorkloadTTL: *workloadTTL, StoreTTL: *storeTTL, CATTL: *caTTL, Hosts: splitList(*hosts), Log: stdout}
	if names := splitList(*only); len(names) > 0 {
		opts.Only = map[string]bool{}
		for _, n := range names {
			opts.Only[n] = true
		}
	}
	if err := pki.IssueStack(*dir, opts); err != nil {
		return err
	}
	return issueReplicator(*dir, opts)
}

// Replicator is the CN (and Postgres role) a standby uses to stream WAL.
const Replicator = "replicator"

// issueReplicator issues the replication role's client certificate. It is
// not a workload (no SPIFFE ID): only Postgres accepts it, for replication.
func issueReplicator(dir string, o pki.StackOptions) error {
	if (o.Only != nil && !o.Only[Replicator]) || slices.Contains(pki.Stores, Replicator) {
		return nil // not asked for, or issued with the stores already
	}
	ca, _, err := pki.LoadOrCreateCA(dir, o.CATTL)
	if err != nil {
		return err
	}
	if err := ca.Issue(dir, pki.Leaf{Name: Replicator, TTL: o.StoreTTL, Hosts: o.Hosts}); err != nil {
		return err
	}
	fmt.Fprintf(o.Log, "issued %s (valid %s)\n", Replicator, o.StoreTTL)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
