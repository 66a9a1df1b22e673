package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-ref/strata/libs/mtls"
)

// Config says where the database is and what to do on open.
type Config struct {
	// URL is a postgres:// URL with sslmode=verify-full; user is the role.
	URL string
	TLS *mtls.Source
	// Migrations holds NNNNN_name.sql goose files; nil skips migration.
	Migrations fs.FS
	MaxConns   int32
	// StartTimeout bounds how long Open waits for the database to answer.
	StartTimeout time.Duration
	// TracerProvider, when set, gives every query a span (otelpgx).
	TracerProvider trace.TracerProvider
	// Registerer, when set, gets the pool's replication-lag collector
	// (see NewReplicationCollector), so the service's /metrics shows how
	// far each standby is behind the primary it writes to.
	Registerer prometheus.Registerer
}

// Defaults for the high-availability topology, where the URL lists every
// node (postgres://role@h1:p1,h2:p2/db?...&target_session_attrs=read-write)
// and a failover moves the primary to another host.
const (
	// DefaultConnectTimeout bounds each host's connection attempt, so a
	// node that does not answer costs at most this before the next host
	// in the list is tried.
	DefaultConnectTimeout = 2 * time.Second
	// HealthCheckPeriod is how often idle connections are checked. A
	// connection idle for over a second is also pinged when acquired.
	HealthCheckPeriod = 5 * time.Second
)

// ErrPlaintext is returned for a URL that would allow an unverified or
// unencrypted connection.
var ErrPlaintext = errors.New("postgres URL must use sslmode=verify-full")

// Open connects, waits for the database (up to StartTimeout), and applies
// pending migrations.
func Open(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := PoolConfig(cfg)
	if err != nil {
		return nil, err
	}
	var self atomic.Pointer[pgxpool.Pool]
	pc.ConnConfig.OnPgError = func(_ *pgconn.PgConn, e *pgconn.PgError) bool {
		if serverGone(e) {
			if p := self.Load(); p != nil {
				p.Reset()
			}
		}
		return e.Severity != "FATAL" // pgconn's default: a FATAL closes the connection
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres pool: %w", err)
	}
	self.Store(pool)
	if err := waitReady(ctx, pool, cfg.StartTimeout); err != nil {
		pool.Close()
		return nil, err
	}
	if cfg.Migrations != nil {
		if err := Migrate(ctx, pool, cfg.Migrations); err != nil {
			pool.Close()
			return nil, err
		}
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(NewReplicationCollector(pool)); err != nil {
			pool.Close()
			return nil, fmt.Errorf("postgres metrics: %w", err)
		}
	}
	return pool, nil
}

// serverGone reports a FATAL error that ends a session for a reason every
// session of the pool shares: the server shut down (57P01, also what
// pg_terminate_backend sends), crashed (57P02) or is starting (57P03).
// After a restart, each pooled connection learns it only when next used,
// and pgxpool pings before use only those idle for over a second, so each
// would fail one query, for seconds after the server is back. Open resets
// the pool on the first such error instead: the idle connections are all
// dropped at once and new ones dialled.
func serverGone(e *pgconn.PgError) bool {
	return e.Severity == "FATAL" && (e.Code == "57P01" || e.Code == "57P02" || e.Code == "57P03")
}

// ServerGone reports whether err carries such a FATAL error: the server is
// shutting down, crashed or starting (a restart or a failover in
// progress), so the store is unavailable for now rather than broken.
func ServerGone(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && serverGone(e)
}

// ConnLost reports whether conn, whose statement just failed, was lost
// under it (closed, and not because ctx ended), and then resets pool: a
// server that went away without a word (killed, or the network dropped)
// has lost every connection of the pool, which serverGone cannot see. The
// caller decides whether what it sent may run again.
func ConnLost(ctx context.Context, pool *pgxpool.Pool, conn *pgxpool.Conn) bool {
	if ctx.Err() != nil || !conn.Conn().IsClosed() {
		return false
	}
	pool.Reset()
	return true
}

// PoolConfig is the pool configuration Open uses: the URL checked for
// verify-full, the workload's TLS on every host, and the timeouts that let
// a multi-host URL move to a promoted primary quickly.
func PoolConfig(cfg Config) (*pgxpool.Config, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres URL: %w", err)
	}
	if u.Query().Get("sslmode") != "verify-full" {
		return nil, ErrPlaintext
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres URL: %w", err)
	}
	// Every host of a multi-host URL gets the workload's TLS (verify-full
	// against that host, the SVID as client certificate). With verify-full
	// the parser makes one fallback per further host and none for another
	// sslmode, and a fallback without TLS is dropped, never dialled.
	pc.ConnConfig.TLSConfig = cfg.TLS.StoreConfig(pc.ConnConfig.Host)
	hosts := pc.ConnConfig.Fallbacks
	pc.ConnConfig.Fallbacks = nil
	for _, fb := range hosts {
		if fb.TLSConfig != nil {
			pc.ConnConfig.Fallbacks = append(pc.ConnConfig.Fallbacks,
				&pgconn.FallbackConfig{Host: fb.Host, Port: fb.Port, TLSConfig: cfg.TLS.StoreConfig(fb.Host)})
		}
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	pc.HealthCheckPeriod = HealthCheckPeriod
	if cfg.TracerProvider != nil {
		// Query and batch spans only: a span per pool acquire doubled the
		// span count of a transfer for little insight.
		pc.ConnConfig.Tracer = otelpgx.NewTracer(otelpgx.WithTracerProvider(cfg.TracerProvider), otelpgx.WithDisableAcquireTracer())
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	return pc, nil
}

func waitReady(ctx context.Context, pool *pgxpool.Pool, limit time.Duration) error {
	if limit <= 0 {
		limit = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		err := pool.Ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres %s not reachable within %s: %w", pool.Config().ConnConfig.Host, limit, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

// migrateLock is the key of the advisory lock Migrate holds ("strata
// migrate" in ASCII).
const migrateLock int64 = 0x737472617461_6d67

// Migrate applies the embedded goose migrations, one replica at a time: it
// holds a session advisory lock for the whole of goose's work. goose's own
// session locker covers only the applying of migrations; its check for
// pending ones runs unlocked and creates the version table when missing,
// so replicas starting at once on a new database raced to create it (goose
// retried, but Postgres logged a failed CREATE TABLE for each loser).
func Migrate(ctx context.Context, pool *pgxpool.Pool, migrations fs.FS) error {
	// The lock lives on a connection of its own, outside the pool, so a
	// pool of one connection still has it free for goose; closing the
	// connection releases the lock.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
