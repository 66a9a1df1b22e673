// Command strata-tradeoffs measures the database trade-off table
// against a running Strata (`make run`) and writes docs/tradeoffs.md.
//
//	strata-tradeoffs [-write docs/tradeoffs.md] [-analytics-alt ONE=https://127.0.0.1:8453]
//
// Postgres is measured through ledger, Cassandra through analytics and
// Redis through session, each through the public API with tokens from the
// OIDC login flow: write and read p50/p99 at a fixed rate, maximum
// throughput in a closed loop, and consistency probes (read-your-write,
// the cache's stale-read window after a revoke). It needs the load users
// seeded (`auth seed -users N+1` for -users N). The logic lives in
// loadtest/internal/tradeoffs; its test boots the system itself and adds a
// second analytics instance at consistency ONE.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/strata"
	"github.com/strata-ref/strata/loadtest/internal/tradeoffs"
)

func main() {
	ctx, stop := signalContext()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-tradeoffs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("strata-tradeoffs", flag.ContinueOnError)
	root := strata.RepoRoot()
	certs := os.Getenv("STRATA_CERTS_DIR")
	if certs == "" {
		certs = filepath.Join(root, ".stack", "certs")
	}
	var cfg tradeoffs.Config
	e := strata.Native
	fs.StringVar(&certs, "certs", certs, "directory with ca.pem (the CA the services' certificates chain to)")
	fs.StringVar(&cfg.Password, "password", strata.EnvOr("STRATA_DEMO_PASSWORD", "strata-demo"), "password of the admin and load users")
	fs.StringVar(&e.Auth, "auth", e.Auth, "auth public URL (the issuer)")
	fs.StringVar(&e.Ledger, "ledger", e.Ledger, "ledger public URL")
	fs.StringVar(&e.Analytics, "analytics", e.Analytics, "analytics public URL")
	fs.StringVar(&e.Session, "session", e.Session, "session public URL")
	fs.StringVar(&cfg.Level, "level", "LOCAL_QUORUM (default)", "consistency level the -analytics instance runs at (for the table)")
	alt := fs.String("analytics-alt", "", "further analytics instances as LEVEL=url,... (e.g. ONE=https://127.0.0.1:8453)")
	fs.IntVar(&cfg.Users, "users", 8, "load users with funded accounts (load-000001...); user N+1 owns the revoked sessions")
	fs.Float64Var(&cfg.Rate, "rate", 40, "fixed arrival rate of the latency phase, requests/s")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "latency phase per store")
	fs.IntVar(&cfg.Workers, "workers", 16, "closed-loop callers for maximum throughput")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", 5*time.Second, "closed-loop phase per operation")
	fs.IntVar(&cfg.Probes, "probes", 100, "read-your-write probes per store")
	fs.IntVar(&cfg.StaleProbes, "stale-probes", 20, "revokes watched by the stale-read probe")
	fs.IntVar(&cfg.StaleReaders, "stale-readers", 8, "concurrent readers of the session being revoked")
	fs.DurationVar(&cfg.StaleWatch, "stale-watch", 1200*time.Millisecond, "how long reads continue after each revoke's 204")
	fs.IntVar(&cfg.Batch, "batch", 10, "events per POST /v1/events")
	write := fs.String("write", filepath.Join(root, "docs", "tradeoffs.md"), "page whose generated block is replaced (empty: print only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *alt != "" {
		for _, kv := range strings.Split(*alt, ",") {
			level, url, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("-analytics-alt: %q is not LEVEL=url", kv)
			}
			cfg.AltAnalytics = append(cfg.AltAnalytics, tradeoffs.Analytics{URL: url, Level: level})
		}
	}
	pem, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("%s: no certificate", filepath.Join(certs, "ca.pem"))
	}
	cfg.API = strata.New(e, &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}, 256)
	cfg.Log = stderr
	res, err := tradeoffs.Run(ctx, cfg)
	if err != nil {
		return err
	}
	res.Command = "strata-tradeoffs " + strings.Join(args, " ")
	fmt.Fprint(stdout, res.Markdown())
	if *write != "" {
		if err := tradeoffs.WriteDoc(*write, res); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", *write)
	}
	return nil
}
