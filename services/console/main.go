// Command console runs Strata's web console: a person signs in through the
// auth service (the console is a confidential OpenID Connect client and a
// backend for frontend: tokens stay here, the browser holds an opaque
// cookie), moves money, sees the eventually consistent activity feed, and,
// as an admin, watches every service's limits, breakers and 429s live.
// See docs/console.md.
package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/console/internal/backend"
	"github.com/strata-ref/strata/services/console/internal/bff"
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
	// URL is the console's own public origin, as registered at the
	// provider (redirect URI URL/callback).
	URL string `env:"STRATA_CONSOLE_URL" envDefault:"https://127.0.0.1:8445"`
	// The public APIs the pages call with the person's access token.
	LedgerURL    string `env:"STRATA_LEDGER_PUBLIC_URL" envDefault:"https://127.0.0.1:8442"`
	AnalyticsURL string `env:"STRATA_ANALYTICS_PUBLIC_URL" envDefault:"https://127.0.0.1:8443"`
	SessionURL   string `env:"STRATA_SESSION_PUBLIC_URL" envDefault:"https://127.0.0.1:8444"`
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
		PostLogoutURL: base + "/signed-out", TokenURL: cfg.AuthTokenURL,
		HTTP: &http.Client{Transport: doerTransport{auth}}, Log: kit.Logger})
	api := &backend.Client{
		Ledger:    kit.Client("ledger", cfg.LedgerURL, rc),
		Analytics: kit.Client("analytics", cfg.AnalyticsURL, rc),
		Session:   kit.Client("session", cfg.SessionURL, rc),
	}
	pages, err := web.New(web.Config{BFF: signin, Backend: api, Log: kit.Logger, Issuer: cfg.Issuer, Dev: cfg.Env.Env == "dev"})
	if err != nil {
		return err
	}

	srv := kit.NewServer(cfg.Env, server.Check{Name: "auth", Ping: signin.Ready})
	pages.Register(srv.Public)
	return srv.Run(ctx)
}

// doerTransport lets go-oidc and x/oauth2, which take an *http.Client,
// call the provider through the resilient client (breaker, timeouts,
// tracing, mTLS pinned to auth's SPIFFE ID).
type doerTransport struct{ c *resilience.Client }

func (t doerTransport) RoundTrip(r *http.Request) (*http.Response, error) { return t.c.Do(r) }
