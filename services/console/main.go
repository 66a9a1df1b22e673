// Command console runs Strata's web console: a person signs in through the
// auth service (the console is a confidential OpenID Connect client and a
// backend for frontend: tokens stay here, the browser holds an opaque
// cookie), moves money, sees the eventually consistent activity feed, and,
// as an admin, watches every service's limits, breakers and 429s live.
// See docs/console.md.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/console/internal/backend"
	"github.com/strata-ref/strata/services/console/internal/bff"
	"github.com/strata-ref/strata/services/console/internal/operator"
	"github.com/strata-ref/strata/services/console/internal/web"
)

// Port is the console's public port; internal is Port+1000.
const Port = 8445

// ClientID is the console's registration at the provider.
const ClientID = "strata-console"

type settings struct {
	server.Env
	// Issuer is the provider's exact issuer; its discovery document and
	// keys are fetched from there.
	Issuer string `env:"STRATA_AUTH_ISSUER" envDefault:"https://localhost:8441"`
	// AuthTokenURL is auth's token endpoint on its internal (mTLS)
	// listener, where the console's certificate authenticates it.
	AuthTokenURL string `env:"STRATA_AUTH_TOKEN_URL" envDefault:"https://127.0.0.1:9441/oauth2/token"`
	// AuthURL, when set, is where the console reaches auth's public
	// listener itself, when the issuer is an address only the browser can
	// use (containers: https://auth:8441 while the issuer is localhost).
	AuthURL string `env:"STRATA_AUTH_URL"`
	// URL is the console's own public origin, as registered at the
	// provider (redirect URI URL/callback).
	URL string `env:"STRATA_CONSOLE_URL" envDefault:"https://127.0.0.1:8445"`
	// The public APIs the pages call with the person's access token.
	LedgerURL    string `env:"STRATA_LEDGER_PUBLIC_URL" envDefault:"https://127.0.0.1:8442"`
	AnalyticsURL string `env:"STRATA_ANALYTICS_PUBLIC_URL" envDefault:"https://127.0.0.1:8443"`
	SessionURL   string `env:"STRATA_SESSION_PUBLIC_URL" envDefault:"https://127.0.0.1:8444"`
	// The internal (mTLS) listeners the operator view reads metrics from
	// and sets fault toggles on; each may list replicas, comma-separated.
	AuthInternal      string `env:"STRATA_AUTH_INTERNAL_URL" envDefault:"https://127.0.0.1:9441"`
	LedgerInternal    string `env:"STRATA_LEDGER_INTERNAL_URL" envDefault:"https://127.0.0.1:9442"`
	AnalyticsInternal string `env:"STRATA_ANALYTICS_INTERNAL_URL" envDefault:"https://127.0.0.1:9443"`
	SessionInternal   string `env:"STRATA_SESSION_INTERNAL_URL" envDefault:"https://127.0.0.1:9444"`
	// The load tool the operator may start in dev (empty: none), and its
	// certificates (loadtest.pem), report directory and users.
	LoadBin      string        `env:"STRATA_CONSOLE_LOAD_BIN"`
	LoadCerts    string        `env:"STRATA_CONSOLE_LOAD_CERTS"`
	LoadOut      string        `env:"STRATA_CONSOLE_LOAD_OUT" envDefault:"out"`
	LoadUsers    int           `env:"STRATA_CONSOLE_LOAD_USERS" envDefault:"40"`
	LoadDuration time.Duration `env:"STRATA_CONSOLE_LOAD_DURATION" envDefault:"60s"`
}

func main() { server.Main("console", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if len(args) > 0 && args[0] == config.VarsCommand {
		return config.PrintVars(stdout, &cfg)
	}
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	kit, err := server.Setup(ctx, "console", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	base := strings.TrimSuffix(cfg.URL, "/")
	rc := resilience.ClientConfig{Timeout: 3 * time.Second}
	auth := kit.Client("auth", "", rc)
	signin := bff.New(bff.Config{Issuer: cfg.Issuer, ClientID: ClientID, RedirectURL: base + "/callback",
		PostLogoutURL: base + "/signed-out", TokenURL: cfg.AuthTokenURL, BackChannel: cfg.AuthURL,
		HTTP: &http.Client{Transport: doerTransport{auth}}, Log: kit.Logger})
	api := &backend.Client{
		Ledger:    kit.Client("ledger", cfg.LedgerURL, rc),
		Analytics: kit.Client("analytics", cfg.AnalyticsURL, rc),
		Session:   kit.Client("session", cfg.SessionURL, rc),
	}
	op, err := newOperator(cfg, kit)
	if err != nil {
		return err
	}
	go op.Scraper.Run(ctx)
	if op.Load != nil {
		defer op.Load.Close()
	}
	pages, err := web.New(web.Config{BFF: signin, Backend: api, Log: kit.Logger, Issuer: cfg.Issuer, Dev: cfg.Env.Env == "dev",
		Operator: op})
	if err != nil {
		return err
	}

	srv := kit.NewServer(cfg.Env, server.Check{Name: "auth", Ping: signin.Ready})
	pages.Register(srv.Public)
	return srv.Run(ctx)
}

// newOperator wires the operator view: a metrics target per replica of
// each service (read with the console's certificate, pinned to the
// service's SPIFFE ID) and the console itself; in dev, the fault toggles
// and the load runner.
func newOperator(cfg settings, kit *server.Kit) (web.Operator, error) {
	internal := []struct{ name, urls string }{
		{"auth", cfg.AuthInternal}, {"ledger", cfg.LedgerInternal}, {"analytics", cfg.AnalyticsInternal}, {"session", cfg.SessionInternal},
	}
	var targets []operator.Target
	remote := map[string][]operator.FaultTarget{}
	for _, svc := range internal {
		for _, u := range resilience.SplitURLs(svc.urls) {
			u = strings.TrimSuffix(u, "/")
			if _, err := url.Parse(u); err != nil {
				return web.Operator{}, fmt.Errorf("config: internal URL of %s: %w", svc.name, err)
			}
			// A client per replica, named for the listener it reads.
			c := kit.Client(svc.name+"-internal", "", resilience.ClientConfig{Timeout: 800 * time.Millisecond,
				TLS: kit.TLS.ClientConfig(mtls.ID(svc.name))})
			targets = append(targets, operator.Target{Service: svc.name, URL: u, Client: c})
			remote[svc.name] = append(remote[svc.name], operator.FaultTarget{URL: u, Client: c})
		}
	}
	targets = append(targets, operator.Target{Service: "console", Gather: kit.Registry.Gather})
	op := web.Operator{Scraper: operator.New(targets)}
	if kit.Faults == nil { // not dev
		return op, nil
	}
	op.Faults = operator.NewFaults(remote, kit.Faults)
	if cfg.LoadBin != "" {
		certs := cfg.LoadCerts
		if certs == "" {
			certs = filepath.Dir(cfg.TLSCA)
		}
		var names []string
		for _, svc := range internal {
			for _, u := range resilience.SplitURLs(svc.urls) {
				names = append(names, svc.name+"="+u)
			}
		}
		op.Load = &operator.LoadRunner{Bin: cfg.LoadBin, Args: []string{"-certs", certs, "-out", cfg.LoadOut,
			"-users", strconv.Itoa(cfg.LoadUsers), "-duration", cfg.LoadDuration.String(),
			"-auth", cfg.Issuer, "-ledger", cfg.LedgerURL, "-analytics", cfg.AnalyticsURL, "-session", cfg.SessionURL,
			"-internal", strings.Join(names, ",")}}
	}
	return op, nil
}

// doerTransport lets go-oidc and x/oauth2, which take an *http.Client,
// call the provider through the resilient client (breaker, timeouts,
// tracing, mTLS pinned to auth's SPIFFE ID).
type doerTransport struct{ c *resilience.Client }

func (t doerTransport) RoundTrip(r *http.Request) (*http.Response, error) { return t.c.Do(r) }
