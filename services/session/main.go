// Command session runs Strata's session service: SSO sessions kept in
// Postgres (the source of truth) and served cache-aside from Redis.
// See docs/cache-aside.md.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/mtls"
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
	PGURL string `env:"STRATA_PG_URL,required"`
	// RedisAddr is the single Redis node; with Sentinels set (the HA
	// topology) it is ignored and Sentinel names the current master.
	RedisAddr       string   `env:"STRATA_REDIS_ADDR"`
	RedisSentinels  []string `env:"STRATA_REDIS_SENTINELS" envSeparator:","`
	RedisMasterName string   `env:"STRATA_REDIS_MASTER_NAME"`
	// RedisUsername is the session service's Redis ACL user; its password
	// is read from RedisPasswordFile. The client certificate alone opens
	// the connection but runs no command (docs/transport-security.md).
	RedisUsername     string        `env:"STRATA_REDIS_USERNAME" envDefault:"session"`
	RedisPasswordFile string        `env:"STRATA_REDIS_PASSWORD_FILE,required"`
	CacheTTL          time.Duration `env:"STRATA_SESSION_CACHE_TTL" envDefault:"5m"`
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
		TracerProvider: kit.Tracing.Provider, Registerer: kit.Registry})
	if err != nil {
		return err
	}
	defer pool.Close()

	rdb, err := newRedisClient(cfg, kit.TLS)
	if err != nil {
		return err
	}
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
	go validator.Run(ctx) // the JWKS refreshed on its schedule, not only when a token asks

	// Redis is not a readiness check: the service stays ready on Postgres
	// alone while the cache is down.
	srv := kit.NewServer(cfg.Env, server.Check{Name: "postgres", Ping: pool.Ping})
	api := httpapi.New(svc)
	api.RegisterInternal(srv.Internal)
	api.RegisterPublic(srv.Public, validator.Middleware(kit.Logger))
	return srv.Run(ctx)
}

// Redis client settings shared by the single-node and the Sentinel client.
const (
	redisDialTimeout = time.Second
	redisIOTimeout   = 500 * time.Millisecond
	redisPoolSize    = 64
	redisMinIdle     = 8
)

// newRedisClient is the cache's client: with STRATA_REDIS_SENTINELS and
// STRATA_REDIS_MASTER_NAME, a Sentinel failover client that asks the
// Sentinels for the current master and follows a failover (it drops its
// connections to the old master on Sentinel's +switch-master); otherwise
// one node at STRATA_REDIS_ADDR. Every connection, to Sentinels as to
// Redis, is TLS with the workload's certificate, verified for the host
// dialled. No hidden retries: the breaker decides.
func newRedisClient(cfg settings, src *mtls.Source) (*goredis.Client, error) {
	password, err := config.ReadSecretFile("STRATA_REDIS_PASSWORD_FILE", cfg.RedisPasswordFile)
	if err != nil {
		return nil, err
	}
	var sentinels []string
	for _, a := range cfg.RedisSentinels {
		if a = strings.TrimSpace(a); a != "" {
			sentinels = append(sentinels, a)
		}
	}
	if len(sentinels) > 0 {
		if cfg.RedisMasterName == "" {
			return nil, fmt.Errorf("config: STRATA_REDIS_SENTINELS is set but STRATA_REDIS_MASTER_NAME is not")
		}
		for _, a := range sentinels {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("STRATA_REDIS_SENTINELS: %w", err)
			}
		}
		return goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: cfg.RedisMasterName, SentinelAddrs: sentinels,
			Username: cfg.RedisUsername, Password: password.Reveal(),
			Dialer:      tlsDialer(src),
			DialTimeout: redisDialTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
			PoolSize: redisPoolSize, MinIdleConns: redisMinIdle, MaxRetries: -1}), nil
	}
	if cfg.RedisAddr == "" {
		return nil, fmt.Errorf("config: STRATA_REDIS_ADDR is required (or STRATA_REDIS_SENTINELS and STRATA_REDIS_MASTER_NAME)")
	}
	host, _, err := net.SplitHostPort(cfg.RedisAddr)
	if err != nil {
		return nil, fmt.Errorf("STRATA_REDIS_ADDR: %w", err)
	}
	return goredis.NewClient(&goredis.Options{Addr: cfg.RedisAddr, TLSConfig: src.StoreConfig(host),
		Username: cfg.RedisUsername, Password: password.Reveal(),
		DialTimeout: redisDialTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
		PoolSize: redisPoolSize, MinIdleConns: redisMinIdle, MaxRetries: -1}), nil
}

// tlsDialer dials addr over TLS verified for addr's own host: Sentinel
// hands out the master's address, so one fixed server name would not do.
func tlsDialer(src *mtls.Source) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: redisDialTimeout, KeepAlive: 5 * time.Minute}, Config: src.StoreConfig(host)}
		return d.DialContext(ctx, network, addr)
	}
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
