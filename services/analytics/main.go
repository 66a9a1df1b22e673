// Command analytics runs Strata's analytics service: high-write event
// ingestion into Cassandra and per-account activity reads.
// See docs/analytics.md.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/failsafe-go/failsafe-go/priority"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/analytics/internal/analytics"
	"github.com/strata-ref/strata/services/analytics/internal/cassandra"
	"github.com/strata-ref/strata/services/analytics/internal/httpapi"
)

// Port is the analytics service's public port; internal is Port+1000.
const Port = 8443

type settings struct {
	server.Env
	CassandraHosts       string        `env:"STRATA_CASSANDRA_HOSTS,required"`
	CassandraPort        int           `env:"STRATA_CASSANDRA_PORT" envDefault:"9042"`
	CassandraKeyspace    string        `env:"STRATA_CASSANDRA_KEYSPACE" envDefault:"analytics"`
	CassandraReplication string        `env:"STRATA_CASSANDRA_REPLICATION" envDefault:"{'class': 'SimpleStrategy', 'replication_factor': 1}"`
	CassandraConsistency string        `env:"STRATA_CASSANDRA_CONSISTENCY" envDefault:"LOCAL_QUORUM"`
	CassandraTimeout     time.Duration `env:"STRATA_CASSANDRA_TIMEOUT" envDefault:"2s"`
	// The role analytics logs in as (PasswordAuthenticator) and the file
	// holding its password: the client certificate alone opens the
	// connection but may do nothing (docs/transport-security.md).
	CassandraUsername     string `env:"STRATA_CASSANDRA_USERNAME" envDefault:"analytics"`
	CassandraPasswordFile string `env:"STRATA_CASSANDRA_PASSWORD_FILE,required"`
	// Optional: the data center whose nodes coordinate (LOCAL_* levels count there).
	CassandraLocalDC string `env:"STRATA_CASSANDRA_LOCAL_DC"`
	// Per-operation consistency levels; empty takes STRATA_CASSANDRA_CONSISTENCY.
	ConsistencyIngest   string `env:"STRATA_CASSANDRA_CONSISTENCY_INGEST"`
	ConsistencyActivity string `env:"STRATA_CASSANDRA_CONSISTENCY_ACTIVITY"`
	ConsistencyStats    string `env:"STRATA_CASSANDRA_CONSISTENCY_STATS"`

	WriteTimeout      time.Duration `env:"STRATA_ANALYTICS_WRITE_TIMEOUT" envDefault:"1s"`
	ReadTimeout       time.Duration `env:"STRATA_ANALYTICS_READ_TIMEOUT" envDefault:"2s"`
	MaxInFlightWrites uint          `env:"STRATA_ANALYTICS_MAX_INFLIGHT_WRITES" envDefault:"256"`
	BreakerDelay      time.Duration `env:"STRATA_ANALYTICS_BREAKER_DELAY" envDefault:"2s"`

	// Access tokens: the auth service's issuer and its JWKS, fetched over mTLS.
	authn.Settings
	// SessionURL is the session service's internal (mTLS) listener, or a
	// comma-separated list of its replicas': client writes check there
	// that the token's session is still alive.
	SessionURL string `env:"STRATA_SESSION_URL" envDefault:"https://127.0.0.1:9444"`
}

func main() { server.Main("analytics", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if len(args) > 0 && args[0] == config.VarsCommand {
		return config.PrintVars(stdout, &cfg)
	}
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	def, err := cassandra.ParseConsistency(cfg.CassandraConsistency)
	if err != nil {
		return fmt.Errorf("config: STRATA_CASSANDRA_CONSISTENCY: %w", err)
	}
	levels := cassandra.Consistency{Ingest: def, Activity: def, Stats: def}
	for _, o := range []struct {
		name, value string
		dst         *gocql.Consistency
	}{
		{"STRATA_CASSANDRA_CONSISTENCY_INGEST", cfg.ConsistencyIngest, &levels.Ingest},
		{"STRATA_CASSANDRA_CONSISTENCY_ACTIVITY", cfg.ConsistencyActivity, &levels.Activity},
		{"STRATA_CASSANDRA_CONSISTENCY_STATS", cfg.ConsistencyStats, &levels.Stats},
	} {
		if o.value == "" {
			continue
		}
		if *o.dst, err = cassandra.ParseConsistency(o.value); err != nil {
			return fmt.Errorf("config: %s: %w", o.name, err)
		}
	}

	kit, err := server.Setup(ctx, "analytics", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	validator, err := authn.NewServiceValidator(cfg.Settings, "analytics", kit.Client("auth", "", resilience.ClientConfig{Timeout: 2 * time.Second}))
	if err != nil {
		return err
	}
	go validator.Run(ctx) // the JWKS refreshed on its schedule, not only when a token asks

	password, err := config.ReadSecretFile("STRATA_CASSANDRA_PASSWORD_FILE", cfg.CassandraPasswordFile)
	if err != nil {
		return err
	}
	cql, err := cassandra.Open(ctx, cassandra.Config{Hosts: strings.Split(cfg.CassandraHosts, ","), Port: cfg.CassandraPort,
		Username: cfg.CassandraUsername, Password: password,
		Keyspace: cfg.CassandraKeyspace, Replication: cfg.CassandraReplication, Consistency: def,
		LocalDC: cfg.CassandraLocalDC, Timeout: cfg.CassandraTimeout, TLS: kit.TLS})
	if err != nil {
		return err
	}
	defer cql.Close()

	store := cassandra.NewStore(cql, levels, kit.Tracing.Provider, kit.Registry)
	svc := analytics.NewService(store, analytics.Config{WriteTimeout: cfg.WriteTimeout, ReadTimeout: cfg.ReadTimeout,
		MaxInFlightWrites: cfg.MaxInFlightWrites, BreakerDelay: cfg.BreakerDelay,
		Sessions: authn.NewSessionCheck(kit.Client("session", cfg.SessionURL, resilience.ClientConfig{Timeout: 2 * time.Second}))},
		newObserver(kit.Registry), kit.Resilience, kit.Logger)

	srv := kit.NewServer(cfg.Env, server.Check{Name: "cassandra", Ping: cassandra.Ping(cql)})
	// Under overload, reads (activity, stats) are shed before ingestion.
	srv.Prioritize(func(r *http.Request) priority.Priority {
		if r.Method == http.MethodGet {
			return priority.Low
		}
		return priority.Medium
	})
	api := httpapi.New(svc, validator.Middleware(kit.Logger), kit.Logger)
	api.RegisterPublic(srv.Public)
	api.RegisterInternal(srv.Internal)
	return srv.Run(ctx)
}

type observer struct {
	events  *prometheus.CounterVec
	rows    *prometheus.CounterVec
	refused *prometheus.CounterVec
}

func newObserver(reg prometheus.Registerer) *observer {
	o := &observer{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_analytics_events_ingested_total",
			Help: "Events accepted, by source (client, ledger).",
		}, []string{"source"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_analytics_rows_written_total",
			Help: "Activity rows written, by source (a posted transfer writes two).",
		}, []string{"source"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_analytics_events_refused_total",
			Help: "Ingestion requests refused, by source and reason (invalid, unknown_account, session, unavailable, shed).",
		}, []string{"source", "reason"}),
	}
	reg.MustRegister(o.events, o.rows, o.refused)
	return o
}

func (o *observer) Ingested(source string, events, rows int) {
	o.events.WithLabelValues(source).Add(float64(events))
	o.rows.WithLabelValues(source).Add(float64(rows))
}

func (o *observer) Refused(source, reason string) { o.refused.WithLabelValues(source, reason).Inc() }
