// Command ledger runs Strata's ledger service: a double-entry ledger on
// Postgres (accounts, deposits and transfers), with idempotency keys, a
// transactional outbox relayed to analytics, and envelope encryption of
// account names and memos. See docs/ledger.md.
//
// Subcommands: `ledger rotate-key` adds a new primary key-encryption key to
// the local keyset; `ledger rewrap` moves every record's data key to the
// primary KEK. Without arguments it serves.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/priority"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authz"
	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/crypto/envelope"
	"github.com/strata-ref/strata/libs/idempotency"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/ledger/internal/httpapi"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
	"github.com/strata-ref/strata/services/ledger/internal/postgres"
	"github.com/strata-ref/strata/services/ledger/internal/remote"
	"github.com/strata-ref/strata/services/ledger/policies"
)

// Port is the ledger service's public port; internal is Port+1000.
const Port = 8442

type settings struct {
	server.Env
	PGURL      string `env:"STRATA_PG_URL,required"`
	PGMaxConns int32  `env:"STRATA_PG_MAX_CONNS" envDefault:"16"`
	// The auth service's issuer and its JWKS (fetched over mTLS).
	authn.Settings
	// SessionURL and AnalyticsURL are internal (mTLS) listeners; each may
	// be a comma-separated list of the service's replicas (balanced,
	// failing ones ejected: resilience.ClientConfig.BaseURL).
	SessionURL   string `env:"STRATA_SESSION_URL" envDefault:"https://127.0.0.1:9444"`
	AnalyticsURL string `env:"STRATA_ANALYTICS_URL" envDefault:"https://127.0.0.1:9443"`
	// AuthTokenURL is auth's token endpoint on its internal (mTLS)
	// listener: the relay's token for analytics comes from there. With
	// several auth replicas, a comma-separated list, tried in turn.
	AuthTokenURL string `env:"STRATA_AUTH_TOKEN_URL" envDefault:"https://127.0.0.1:9441/oauth2/token"`
	// KMSKeyset is the local Tink keyset (the dev KMS); created when absent
	// unless STRATA_ENV=production.
	KMSKeyset string `env:"STRATA_KMS_KEYSET" envDefault:".stack/kms/ledger-keyset.json"`
	// IdempotencyRetention is how long keys are kept (at least 24 h).
	IdempotencyRetention time.Duration `env:"STRATA_IDEMPOTENCY_RETENTION" envDefault:"24h"`
	RelayDisabled        bool          `env:"STRATA_LEDGER_RELAY_DISABLED"`
}

func main() { server.Main("ledger", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if len(args) > 0 && args[0] == config.VarsCommand {
		return config.PrintVars(stdout, &cfg)
	}
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	if cfg.IdempotencyRetention < 24*time.Hour {
		return errors.New("config: STRATA_IDEMPOTENCY_RETENTION must be at least 24h")
	}
	production := !cfg.Env.Env.IsDev()
	if len(args) > 0 && args[0] == "rotate-key" {
		id, err := envelope.RotateLocal(cfg.KMSKeyset)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "new primary key-encryption key %s in %s; run `ledger rewrap` to move old records\n", id, cfg.KMSKeyset)
		return nil
	}
	kms, err := envelope.OpenLocal(cfg.KMSKeyset, !production)
	if err != nil {
		return fmt.Errorf("STRATA_KMS_KEYSET: %v", err)
	}

	kit, err := server.Setup(ctx, "ledger", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	pool, err := pgstore.Open(ctx, pgstore.Config{URL: cfg.PGURL, TLS: kit.TLS, Migrations: postgres.Migrations(), MaxConns: cfg.PGMaxConns,
		TracerProvider: kit.Tracing.Provider, Registerer: kit.Registry})
	if err != nil {
		return err
	}
	defer pool.Close()

	if len(args) > 0 {
		switch args[0] {
		case "rewrap":
			n, err := ledger.Rewrap(ctx, postgres.New(pool), envelope.New(kms))
			fmt.Fprintf(stdout, "rewrapped %d data keys\n", n)
			return err
		default:
			return fmt.Errorf("unknown command %q (want rotate-key or rewrap)", args[0])
		}
	}

	auth := kit.Client("auth", "", resilience.ClientConfig{Timeout: 2 * time.Second})
	validator, err := authn.NewServiceValidator(cfg.Settings, "ledger", auth)
	if err != nil {
		return err
	}
	go validator.Run(ctx) // the JWKS refreshed on its schedule, not only when a token asks
	app, err := newServer(kit, cfg, pool, deps{
		Validator: validator,
		KMS:       kms,
		Sessions: remote.NewSessions(kit.Client("session", cfg.SessionURL, resilience.ClientConfig{Timeout: 500 * time.Millisecond}),
			kit.Resilience, kit.Logger),
		Sink: remote.NewAnalytics(kit.Client("analytics", cfg.AnalyticsURL, resilience.ClientConfig{Timeout: 5 * time.Second,
			Breaker: resilience.BreakerConfig{MinExecutions: 3}}),
			&authn.TokenClient{URL: cfg.AuthTokenURL, ClientID: "ledger", HTTP: auth}),
	})
	if err != nil {
		return err
	}
	if !cfg.RelayDisabled {
		go app.relay.Run(ctx)
	}
	go reapKeys(ctx, pool, cfg.IdempotencyRetention, kit.Logger)
	return app.srv.Run(ctx)
}

// deps are the collaborators that tests replace.
type deps struct {
	Validator *authn.Validator
	KMS       envelope.KMS
	Sessions  ledger.Sessions
	Sink      ledger.Sink
	Now       func() time.Time
}

type app struct {
	srv   *server.Server
	store *postgres.Store
	relay *ledger.Relay
	log   *slog.Logger
}

// newServer wires the service on pool; run calls it with the real
// dependencies, tests with fakes for the other services.
func newServer(kit *server.Kit, cfg settings, pool *pgxpool.Pool, d deps) (*app, error) {
	engine, err := authz.Load(policies.FS, kit.Logger)
	if err != nil {
		return nil, err
	}
	// The policy engine is the ledger's Authorizer: every decision is a
	// Cedar evaluation on the originating user's principal.
	authorizer := ledger.AuthorizerFunc(func(ctx context.Context, p authn.Principal, action string, r ledger.Resource, now time.Time) bool {
		return engine.Decide(ctx, authz.Request{Principal: p, Action: action, Resource: authz.Resource(r), Now: now}).Allowed
	})
	store := postgres.New(pool)
	env := envelope.New(d.KMS)
	svc := ledger.NewService(ledger.Config{Store: store, Envelope: env, Authorizer: authorizer,
		Sessions: d.Sessions, Now: d.Now, Logger: kit.Logger})
	m := newMetrics(kit.Registry)
	srv := kit.NewServer(cfg.Env, server.Check{Name: "postgres", Ping: pool.Ping})
	// Under overload, money movements are the last thing shed; reads first.
	srv.Prioritize(func(r *http.Request) priority.Priority {
		if r.Method == http.MethodPost {
			return priority.High
		}
		return priority.Medium
	})
	httpapi.New(svc, d.Validator, ledger.ResponseCipher{Envelope: env}, kit.Logger, m.replays.Inc).Register(srv.Public)
	// Leader: one active relay across the ledger's replicas (an advisory lock).
	relay := &ledger.Relay{Outbox: store, Sink: d.Sink, Observer: m, Leader: store.RelayLock(), Log: kit.Logger,
		Tracer: kit.Tracing.Provider.Tracer("github.com/strata-ref/strata/services/ledger/relay")}
	return &app{srv: srv, store: store, relay: relay, log: kit.Logger}, nil
}

// reapKeys deletes idempotency keys older than retention, hourly.
func reapKeys(ctx context.Context, pool *pgxpool.Pool, retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		n, err := idempotency.Reap(ctx, pool, time.Now().Add(-retention), 1000)
		if err != nil && ctx.Err() == nil {
			log.Warn("idempotency reaper failed", "err", err)
		} else if n > 0 {
			log.Info("idempotency keys reaped", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type metrics struct {
	replays   prometheus.Counter
	delivered prometheus.Counter
	failed    prometheus.Counter
	pending   prometheus.Gauge
	lag       prometheus.Gauge
	leader    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		replays: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_idempotent_replays_total",
			Help: "Responses replayed for a repeated Idempotency-Key."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_outbox_delivered_total",
			Help: "Outbox events acknowledged by analytics."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_outbox_delivery_failures_total",
			Help: "Failed outbox deliveries (the events wait and are retried)."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_outbox_pending",
			Help: "Events in the outbox not yet delivered."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_outbox_lag_seconds",
			Help: "Age of the oldest undelivered outbox event."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_outbox_relay_leader",
			Help: "1 while this replica's outbox relay is the active one (holds the relay's advisory lock), else 0."}),
	}
	reg.MustRegister(m.replays, m.delivered, m.failed, m.pending, m.lag, m.leader)
	return m
}

func (m *metrics) Delivered(n int) { m.delivered.Add(float64(n)) }
func (m *metrics) Failed()         { m.failed.Inc() }
func (m *metrics) Leading(on bool) {
	if on {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}
func (m *metrics) Lag(pending int64, oldest time.Duration) {
	m.pending.Set(float64(pending))
	m.lag.Set(oldest.Seconds())
}
