// Command session runs Strata's session service: SSO sessions kept in
// Postgres (the source of truth) and served cache-aside from Redis.
// See docs/cache-aside.md.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/pgstore"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/session/internal/httpapi"
	"github.com/strata-ref/strata/services/session/internal/postgres"
	"github.com/strata-ref/strata/services/session/internal/redis"
	"github.com/strata-ref/strata/services/session/internal/session"
)

// Port is the session service's public port; internal is Port+1000.
const Port = 8444

type settings struct {
	server.Env
	authn.Settings
	PGURL     string        `env:"STRATA_PG_URL,required"`
	RedisAddr string        `env:"STRATA_REDIS_ADDR,required"`
	CacheTTL  time.Duration `env:"STRATA_SESSION_CACHE_TTL" envDefault:"5m"`
	// CacheDisabled serves every read from Postgres: the benchmark baseline.
	CacheDisabled bool `env:"STRATA_SESSION_CACHE_DISABLED"`
}

func main() { server.Main("session", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if len(args) > 0 && args[0] == config.VarsCommand {
		return config.PrintVars(stdout, &cfg)
	}
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	kit, err := server.Setup(ctx, "session", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	pool, err := pgstore.Open(ctx, pgstore.Config{URL: cfg.PGURL, TLS: kit.TLS, Migrations: postgres.Migrations(),
		TracerProvider: kit.Tracing.Provider})
	if err != nil {
		return err
	}
	defer pool.Close()

	host, _, err := net.SplitHostPort(cfg.RedisAddr)
	if err != nil {
		return fmt.Errorf("STRATA_REDIS_ADDR: %w", err)
	}
	rdb := goredis.NewClient(&goredis.Options{Addr: cfg.RedisAddr, TLSConfig: kit.TLS.StoreConfig(host),
		DialTimeout: time.Second, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond,
		PoolSize: 64, MinIdleConns: 8,
		MaxRetries: -1}) // the breaker decides; no hidden retries
	defer rdb.Close()
	if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(kit.Tracing.Provider)); err != nil {
		return fmt.Errorf("redis tracing: %w", err)
	}

	var cache session.Cache = redis.New(rdb)
	if cfg.CacheDisabled {
		cache = noCache{}
	}
	svc := session.NewService(postgres.New(pool, nil), cache, session.Config{TTL: cfg.CacheTTL, Faults: kit.Faults},
		newObserver(kit.Registry), kit.Resilience, kit.Logger)
	go svc.Run(ctx)
	validator, err := authn.NewServiceValidator(cfg.Settings, "session", kit.Client("auth", "", resilience.ClientConfig{Timeout: 2 * time.Second}))
	if err != nil {
		return err
	}

	// Redis is not a readiness check: the service stays ready on Postgres
	// alone while the cache is down.
	srv := kit.NewServer(cfg.Env, server.Check{Name: "postgres", Ping: pool.Ping})
	api := httpapi.New(svc)
	api.RegisterInternal(srv.Internal)
	api.RegisterPublic(srv.Public, validator.Middleware(kit.Logger))
	return srv.Run(ctx)
}

// noCache misses every read, so all reads go to Postgres.
type noCache struct{}

func (noCache) Get(context.Context, string) (session.Entry, bool, error) {
	return session.Entry{}, false, nil
}
func (noCache) Set(context.Context, string, session.Entry, time.Duration) error { return nil }
func (noCache) Delete(context.Context, string) error                            { return nil }

type observer struct {
	results   *prometheus.CounterVec
	collapsed prometheus.Counter
}

func newObserver(reg prometheus.Registerer) *observer {
	o := &observer{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_session_cache_requests_total",
			Help: "Session cache lookups by result: hit, miss, negative_hit, bypass (Redis unavailable).",
		}, []string{"result"}),
		collapsed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_session_cache_collapsed_total",
			Help: "Cache misses that shared another caller's database read (singleflight).",
		}),
	}
	reg.MustRegister(o.results, o.collapsed)
	return o
}

func (o *observer) CacheResult(r string) { o.results.WithLabelValues(r).Inc() }
func (o *observer) Collapsed()           { o.collapsed.Inc() }
