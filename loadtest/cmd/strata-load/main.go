// Command strata-load drives Strata from outside, as its users do.
//
//	strata-load probe    check every service's readiness over TLS (public
//	                     port) and mTLS (internal port, as the loadtest
//	                     workload) and print one line per service
//
// Flags and environment: -certs (STRATA_CERTS_DIR, default .stack/certs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
)

// Services and their public ports (DESIGN.md section 5); internal is +1000.
var services = []struct {
	Name string
	Port int
}{{"auth", 8441}, {"ledger", 8442}, {"analytics", 8443}, {"session", 8444}}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "strata-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("strata-load", flag.ContinueOnError)
	def := os.Getenv("STRATA_CERTS_DIR")
	if def == "" {
		def = ".stack/certs"
	}
	certs := fs.String("certs", def, "directory with ca.pem and loadtest.pem/loadtest-key.pem")
	host := fs.String("host", "127.0.0.1", "host of every service")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "probe":
		return probe(ctx, *certs, *host, stdout)
	default:
		return errors.New("usage: strata-load [-certs DIR] probe")
	}
}

func probe(ctx context.Context, certs, host string, stdout io.Writer) error {
	src, err := mtls.NewSource(mtls.Files{CA: filepath.Join(certs, "ca.pem"),
		Cert: filepath.Join(certs, "loadtest.pem"), Key: filepath.Join(certs, "loadtest-key.pem")})
	if err != nil {
		return err
	}
	public := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: src.StoreConfig(host)}}
	failed := 0
	for _, s := range services {
		internal := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: src.ClientConfig(mtls.ID(s.Name))}}
		pub := check(ctx, public, fmt.Sprintf("https://%s:%d/readyz", host, s.Port))
		in := check(ctx, internal, fmt.Sprintf("https://%s:%d/readyz", host, s.Port+1000))
		if !strings.HasPrefix(pub, "ready") || !strings.HasPrefix(in, "ready") {
			failed++
		}
		fmt.Fprintf(stdout, "%-10s public https://%s:%d %-22s internal (mTLS as loadtest) :%d %s\n", s.Name, host, s.Port, pub, s.Port+1000, in)
	}
	if failed > 0 {
		return fmt.Errorf("%d service(s) not ready", failed)
	}
	return nil
}

func check(ctx context.Context, c *http.Client, url string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "unreachable"
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("not ready (%d)", resp.StatusCode)
	}
	proto := "TLS 1.3"
	if resp.TLS == nil || resp.TLS.Version != 0x0304 {
		proto = "not TLS 1.3"
	}
	return "ready, " + proto
}
