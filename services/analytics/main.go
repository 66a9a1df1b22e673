// Command analytics runs Strata's analytics service: high-write event
// ingestion into Cassandra and per-account activity reads.
// See docs/analytics.md.
package main

import (
	"context"
	"io"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/server"
	"github.com/strata-ref/strata/services/analytics/internal/cassandra"
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
}

func main() { server.Main("analytics", run) }

func run(ctx context.Context, _ []string, getenv func(string) string, stdout io.Writer) error {
	var cfg settings
	if err := config.Load(getenv, &cfg, server.Defaults(Port)); err != nil {
		return err
	}
	consistency, err := gocql.ParseConsistencyWrapper(cfg.CassandraConsistency)
	if err != nil {
		return err
	}
	kit, err := server.Setup(ctx, "analytics", cfg.Env, stdout)
	if err != nil {
		return err
	}
	defer kit.Shutdown(context.Background())
	kit.Logger.Info("config", config.Attrs(&cfg)...)

	cql, err := cassandra.Open(ctx, cassandra.Config{Hosts: strings.Split(cfg.CassandraHosts, ","), Port: cfg.CassandraPort,
		Keyspace: cfg.CassandraKeyspace, Replication: cfg.CassandraReplication, Consistency: consistency,
		Timeout: cfg.CassandraTimeout, TLS: kit.TLS})
	if err != nil {
		return err
	}
	defer cql.Close()

	srv := kit.NewServer(cfg.Env, server.Check{Name: "cassandra", Ping: cassandra.Ping(cql)})
	return srv.Run(ctx)
}
