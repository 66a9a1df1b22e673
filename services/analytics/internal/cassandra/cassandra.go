// Package cassandra opens the analytics service's Cassandra session: TLS
// with the workload's SVID as client certificate (the node requires one),
// the keyspace created if missing, and the query-first schema applied
// idempotently (every statement is IF NOT EXISTS).
package cassandra

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/mtls"
)

//go:embed schema/*.cql
var schema embed.FS

// Config says where the cluster is and how to talk to it.
type Config struct {
	Hosts       []string
	Port        int
	Keyspace    string
	Replication string // CQL replication map for CREATE KEYSPACE
	Consistency gocql.Consistency
	// LocalDC, when set, keeps coordinators in that data center (the
	// DC-aware policy under the token-aware one); empty: any node.
	LocalDC string
	Timeout time.Duration
	TLS     *mtls.Source
	// Username and Password log in (PasswordAuthenticator); empty: no
	// credentials, which a cluster with authentication refuses.
	Username string
	Password config.Secret
	// StartTimeout bounds how long Open waits for the cluster.
	StartTimeout time.Duration
}

// Open connects, creates the keyspace if missing and applies the schema.
func Open(ctx context.Context, cfg Config) (*gocql.Session, error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	// The keyspace may not exist yet: bootstrap without one. Schema changes
	// wait for the cluster to agree on the new schema, which can take far
	// longer than a query on a busy node: the bootstrap session gets a
	// timeout of its own.
	bootCfg := cfg
	bootCfg.Timeout = max(cfg.Timeout, 30*time.Second)
	boot, err := connect(ctx, bootCfg, "")
	if err != nil {
		return nil, err
	}
	err = applySchema(ctx, boot, cfg)
	boot.Close()
	if err != nil {
		return nil, err
	}
	return connect(ctx, cfg, cfg.Keyspace)
}

func cluster(cfg Config, keyspace string) *gocql.ClusterConfig {
	c := gocql.NewCluster(cfg.Hosts...)
	c.Port = cfg.Port
	c.Keyspace = keyspace
	c.Consistency = cfg.Consistency
	c.Timeout = cfg.Timeout
	c.ConnectTimeout = cfg.Timeout
	// Every node presents the cassandra store certificate, whose IP SANs
	// cover all nodes of the ring; it is verified against the first host.
	c.SslOpts = &gocql.SslOptions{Config: cfg.TLS.StoreConfig(cfg.Hosts[0])}
	if cfg.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password.Reveal(),
			AllowedAuthenticators: []string{"org.apache.cassandra.auth.PasswordAuthenticator"}}
	}
	// Token-aware routing: a statement with a partition key goes straight
	// to a live replica of that key, which coordinates it without an extra
	// hop; replicas are shuffled so reads spread over all of them. On a
	// ring the driver learns every node from the hosts given, tracks which
	// are up (a stopped node is skipped until it returns) and falls back to
	// round robin (or the local data center) for statements without a key,
	// such as the readiness ping. A policy belongs to one session, so each
	// cluster config gets its own.
	fallback := gocql.RoundRobinHostPolicy()
	if cfg.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(cfg.LocalDC)
	}
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback, gocql.ShuffleReplicas())
	// A node that was down or hung is retried every second (the default is
	// a minute), so the service recovers on its own soon after the node does.
	c.ReconnectInterval = time.Second
	// One retry, on another replica, and only for a statement whose node
	// gave no answer (its connection closed or the node went away under
	// it: a node stopping, in a ring). Every statement here is idempotent.
	// An answer from Cassandra (timeout at the consistency level,
	// unavailable, overloaded) is not retried: the breaker decides, and
	// the client (or the ledger's outbox) retries the whole request.
	c.RetryPolicy = NodeLostRetry{}
	return c
}

// NodeLostRetry is the driver's retry policy: one more attempt on the next
// host when the error is not a response from Cassandra.
type NodeLostRetry struct{}

// Attempt allows one retry.
func (NodeLostRetry) Attempt(q gocql.RetryableQuery) bool { return q.Attempts() <= 1 }

// GetRetryType sends the retry to the next host for a lost node and gives
// up on anything Cassandra answered.
func (NodeLostRetry) GetRetryType(err error) gocql.RetryType {
	var answered gocql.RequestError
	if errors.As(err, &answered) {
		return gocql.Rethrow
	}
	return gocql.RetryNextHost
}

func connect(ctx context.Context, cfg Config, keyspace string) (*gocql.Session, error) {
	deadline := time.Now().Add(cfg.StartTimeout)
	delay := 250 * time.Millisecond
	for {
		s, err := cluster(cfg, keyspace).CreateSession()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cassandra %s not reachable within %s: %w", strings.Join(cfg.Hosts, ","), cfg.StartTimeout, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func applySchema(ctx context.Context, s *gocql.Session, cfg Config) error {
	stmt := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s", cfg.Keyspace, cfg.Replication)
	if err := execDDL(ctx, s, stmt); err != nil {
		return fmt.Errorf("create keyspace: %w", err)
	}
	files, err := schema.ReadDir("schema")
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := schema.ReadFile("schema/" + f.Name())
		if err != nil {
			return err
		}
		for _, q := range strings.Split(string(b), ";") {
			q = stripComments(q)
			if q == "" {
				continue
			}
			q = strings.ReplaceAll(q, "{{keyspace}}", cfg.Keyspace)
			if err := execDDL(ctx, s, q); err != nil {
				return fmt.Errorf("schema %s: %w", f.Name(), err)
			}
		}
	}
	return nil
}

// execDDL runs one idempotent (IF NOT EXISTS) schema statement, retrying a
// few times: a timeout on DDL often means the change is still propagating.
func execDDL(ctx context.Context, s *gocql.Session, q string) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = s.Query(q).ExecContext(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * time.Second):
		}
	}
	return err
}

func stripComments(q string) string {
	var out []string
	for _, line := range strings.Split(q, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
			out = append(out, line)
		}
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// Ping asks the coordinator for its version: the readiness check.
func Ping(s *gocql.Session) func(context.Context) error {
	return func(ctx context.Context) error {
		var v string
		return s.Query("SELECT release_version FROM system.local").Consistency(gocql.One).ScanContext(ctx, &v)
	}
}
