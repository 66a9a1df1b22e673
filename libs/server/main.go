package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// RunFunc is every service's entry point: main passes the real process
// environment; tests pass their own and boot it on port 0.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// HealthcheckCommand makes a service binary probe its own readiness and
// exit: `ledger healthcheck`. Container images have no curl; the binary
// is its own probe (Dockerfile HEALTHCHECK, compose healthcheck).
const HealthcheckCommand = "healthcheck"

// Main runs run until SIGINT or SIGTERM and exits non-zero with one line on
// stderr naming the problem ("ledger: config: ...") when it fails.
func Main(name string, run RunFunc) {
	if len(os.Args) > 1 && os.Args[1] == HealthcheckCommand {
		if err := Healthcheck(os.Getenv); err != nil {
			fmt.Fprintf(os.Stderr, "%s: unhealthy: %v\n", name, err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Healthcheck asks the service's own public listener for /readyz over TLS
// 1.3, trusting STRATA_TLS_CA, and fails unless it answers 200 within 2 s.
func Healthcheck(getenv func(string) string) error {
	addr := getenv("STRATA_PUBLIC_ADDR")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("STRATA_PUBLIC_ADDR %q: %w", addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	pem, err := os.ReadFile(getenv("STRATA_TLS_CA"))
	if err != nil {
		return fmt.Errorf("STRATA_TLS_CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return errors.New("STRATA_TLS_CA holds no certificate")
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}}}
	resp, err := c.Get("https://" + net.JoinHostPort(host, port) + "/readyz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz answered %d", resp.StatusCode)
	}
	return nil
}
