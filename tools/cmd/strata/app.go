package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitRefused = 1 // a service refused, or could not be reached
	exitUsage   = 2 // bad command line
)

// app is one run of the command; its environment is injected for tests.
type app struct {
	getenv    func(string) string
	configDir func() (string, error)
	stdout    io.Writer
	stderr    io.Writer
	// opened, when set, receives the sign-in URL instead of a person (tests).
	opened func(url string)

	cfg settings
}

// settings are the global flags, defaulting to the environment and then to
// the native `make run` addresses.
type settings struct {
	issuer, ledger, analytics, session string
	ca                                 string
	output                             string
}

// usageError is bad input: the command prints it with the usage and exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

const usage = `strata: Strata's command line.

Usage: strata [flags] <command> [command flags]

Commands:
  login                 sign in: open the printed URL in a browser
  token                 print an access token (for curl: -H "Authorization: Bearer $(strata token)")
  logout                forget the stored tokens
  accounts              list your accounts
  open-account          --currency EUR --name NAME
  transfer              --from ID --to ID --amount MINOR_UNITS --currency EUR [--memo TEXT] [--idempotency-key KEY]
  activity              --account ID [--limit N] [--page CURSOR]
  sessions              list your sessions
  sessions revoke SID   end one of your sessions

Flags (every command; environment variable in brackets):
  --output table|json   output format [table]
  --issuer URL          the auth service [STRATA_ISSUER, https://localhost:8441]
  --ledger URL          [STRATA_LEDGER_URL, https://127.0.0.1:8442]
  --analytics URL       [STRATA_ANALYTICS_URL, https://127.0.0.1:8443]
  --session URL         [STRATA_SESSION_URL, https://127.0.0.1:8444]
  --ca FILE             the CA the services' certificates chain to
                        [STRATA_CA_FILE, $STRATA_STACK_DIR/certs/ca.pem, .stack/certs/ca.pem]
`

func (a *app) run(ctx context.Context, args []string) int {
	err := a.dispatch(ctx, args)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(a.stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "strata: %s\n\n%s", ue.msg, usage)
		return exitUsage
	default:
		fmt.Fprintf(a.stderr, "strata: %v\n", err)
		return exitRefused
	}
}

func (a *app) env(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

// flags registers the global flags on fs, with the current settings as
// defaults, so they may come before or after the command.
func (a *app) flags(fs *flag.FlagSet) {
	fs.StringVar(&a.cfg.output, "output", a.cfg.output, "table or json")
	fs.StringVar(&a.cfg.issuer, "issuer", a.cfg.issuer, "auth service URL")
	fs.StringVar(&a.cfg.ledger, "ledger", a.cfg.ledger, "ledger URL")
	fs.StringVar(&a.cfg.analytics, "analytics", a.cfg.analytics, "analytics URL")
	fs.StringVar(&a.cfg.session, "session", a.cfg.session, "session service URL")
	fs.StringVar(&a.cfg.ca, "ca", a.cfg.ca, "CA certificate file")
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, with the usage
	return fs
}

func (a *app) dispatch(ctx context.Context, args []string) error {
	stackCA := filepath.Join(".stack", "certs", "ca.pem")
	if d := a.getenv("STRATA_STACK_DIR"); d != "" {
		stackCA = filepath.Join(d, "certs", "ca.pem")
	}
	a.cfg = settings{output: "table",
		issuer:    a.env("STRATA_ISSUER", "https://localhost:8441"),
		ledger:    a.env("STRATA_LEDGER_URL", "https://127.0.0.1:8442"),
		analytics: a.env("STRATA_ANALYTICS_URL", "https://127.0.0.1:8443"),
		session:   a.env("STRATA_SESSION_URL", "https://127.0.0.1:8444"),
		ca:        a.env("STRATA_CA_FILE", stackCA)}
	global := newFlagSet("strata")
	a.flags(global)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	rest := global.Args()
	if len(rest) == 0 {
		return usagef("a command is required")
	}
	cmd, rest := rest[0], rest[1:]
	fs := newFlagSet(cmd)
	a.flags(fs)
	var run func(context.Context, []string) error
	switch cmd {
	case "login":
		run = a.login(fs)
	case "token":
		run = a.token(fs)
	case "logout":
		run = a.logout(fs)
	case "accounts":
		run = a.accounts(fs)
	case "open-account":
		run = a.openAccount(fs)
	case "transfer":
		run = a.transfer(fs)
	case "activity":
		run = a.activity(fs)
	case "sessions":
		run = a.sessions(fs)
	case "help":
		return flag.ErrHelp
	default:
		return usagef("unknown command %q", cmd)
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", cmd, err)
	}
	if a.cfg.output != "table" && a.cfg.output != "json" {
		return usagef("--output must be table or json, not %q", a.cfg.output)
	}
	return run(ctx, fs.Args())
}

// httpClient trusts the configured CA (the services' certificates are
// issued by Strata's development CA).
func (a *app) httpClient() (*http.Client, error) {
	pem, err := os.ReadFile(a.cfg.ca)
	if err != nil {
		return nil, fmt.Errorf("the CA certificate (--ca, STRATA_CA_FILE): %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in %s", a.cfg.ca)
	}
	return &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}, nil
}

// service names a URL for messages ("ledger").
func (a *app) service(base string) string {
	switch strings.TrimRight(base, "/") {
	case strings.TrimRight(a.cfg.ledger, "/"):
		return "ledger"
	case strings.TrimRight(a.cfg.analytics, "/"):
		return "analytics"
	case strings.TrimRight(a.cfg.session, "/"):
		return "session"
	case strings.TrimRight(a.cfg.issuer, "/"):
		return "auth"
	}
	return base
}
