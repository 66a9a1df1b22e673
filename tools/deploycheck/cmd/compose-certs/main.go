// Command compose-certs is the one-shot `certs` job of docker-compose.yml.
// It keeps the development CA in -ca (a volume only this job mounts),
// renews every leaf, and lays out one directory per container in -out (the
// `certs` volume): each container mounts only its own directory, read-only,
// with its key owned by the user it runs as. See deploy/docker/certs.Dockerfile
// and docs/deployment.md.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/strata-ref/strata/tools/deploycheck"
)

func main() {
	fs := flag.NewFlagSet("compose-certs", flag.ExitOnError)
	caDir := fs.String("ca", "/var/lib/strata/ca", "directory of the CA and the issued leaves (private to this job)")
	out := fs.String("out", "/run/strata/certs", "directory of the per-container layout (the shared volume)")
	workloadTTL := fs.Duration("workload-ttl", 30*24*time.Hour, "lifetime of workload SVIDs")
	storeTTL := fs.Duration("store-ttl", 90*24*time.Hour, "lifetime of data store certificates")
	caTTL := fs.Duration("ca-ttl", 365*24*time.Hour, "lifetime of a newly created CA")
	chown := fs.Bool("chown", true, "give each key to its container's user")
	_ = fs.Parse(os.Args[1:])
	err := deploycheck.Lay(*caDir, *out, deploycheck.LayoutOptions{WorkloadTTL: *workloadTTL, StoreTTL: *storeTTL, CATTL: *caTTL, Chown: *chown})
	if err != nil {
		fmt.Fprintln(os.Stderr, "compose-certs:", err)
		os.Exit(1)
	}
	for _, c := range deploycheck.Consumers {
		fmt.Printf("certs for %s in %s/%s\n", c.Name, *out, c.Name)
	}
}
