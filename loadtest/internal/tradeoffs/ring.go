package tradeoffs

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// RingConfig is the Cassandra ring measurement: consistency levels ONE,
// QUORUM and ALL side by side on the HA topology's three-node ring
// (deploy/native/ha.env), straight through the driver, so the figures are
// Cassandra's and not the analytics service's.
type RingConfig struct {
	Hosts []string // every node, e.g. 127.0.0.1, 127.0.0.2, 127.0.0.3
	Port  int
	TLS   *tls.Config // mutual TLS with a workload certificate
	// Username and Password log in as a Cassandra role (analytics).
	Username, Password string
	Keyspace           string // replication factor 3
	// Rate arrivals per second for Duration, shared by the six operations
	// (write and read at each level) in turn: the same moments, the same
	// noise. DownDuration is the same with one node stopped.
	Rate                   float64
	Duration, DownDuration time.Duration
	// Down names the node StopNode stops (and StartNode starts again).
	Down                string
	StopNode, StartNode func() error
	Log                 func(string, ...any)
	RequestTimeout      time.Duration // per statement [2s, the analytics default]
	Keys                int           // rows written at ALL before, read by the reads [200]
}

// RingLevel is one consistency level's measured line.
type RingLevel struct {
	Level       string
	Write, Read Latency // all nodes up
	// DownWrite and DownRead count answers with one node down (OK/Failed).
	DownWrite, DownRead Latency
}

// RingResult is the ring measurement.
type RingResult struct {
	Nodes, RF int
	Down      string
	Config    RingConfig
	Levels    []RingLevel
}

var ringLevels = []gocql.Consistency{gocql.One, gocql.Quorum, gocql.All}

// MeasureRing measures write and read latency at ONE, QUORUM and ALL with
// every node up, then stops one node and measures again: with replication
// factor 3, ONE and QUORUM (2 of 3) keep answering and ALL cannot. The node
// is started again before MeasureRing returns.
func MeasureRing(ctx context.Context, cfg RingConfig) (res *RingResult, err error) {
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	if cfg.Keys == 0 {
		cfg.Keys = 200
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	cluster := func(timeout time.Duration) *gocql.ClusterConfig {
		c := gocql.NewCluster(cfg.Hosts...)
		c.Port, c.Keyspace = cfg.Port, cfg.Keyspace
		c.Timeout, c.ConnectTimeout = timeout, 5*time.Second
		c.SslOpts = &gocql.SslOptions{Config: cfg.TLS}
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
		// As the analytics service: token-aware, no driver retries.
		c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy(), gocql.ShuffleReplicas())
		c.ReconnectInterval = time.Second
		c.RetryPolicy = nil
		return c
	}
	res = &RingResult{Nodes: len(cfg.Hosts), Down: cfg.Down, Config: cfg}
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	keys := make([]string, cfg.Keys)
	// A fresh ring has no keyspace yet (the analytics service or its tests
	// create it), and a session bound to a missing keyspace makes no
	// connection at all ("no connections were made"): create it first,
	// through a session bound to none.
	boot := cluster(30 * time.Second)
	boot.Keyspace = ""
	if err := RingKeyspace(ctx, boot, cfg.Keyspace, min(3, len(cfg.Hosts))); err != nil {
		return nil, err
	}
	if err := ringSetup(ctx, cluster(30*time.Second), res, run, keys); err != nil {
		return nil, err
	}
	s, err := cluster(cfg.RequestTimeout).CreateSession()
	if err != nil {
		return nil, fmt.Errorf("ring session: %w", err)
	}
	defer s.Close()
	var ops []op
	var seq atomic.Int64
	for _, l := range ringLevels {
		ops = append(ops, op{name: "write " + l.String(), do: func(ctx context.Context) bool {
			k := fmt.Sprintf("%s-w%d", run, seq.Add(1))
			return s.Query("INSERT INTO tradeoffs_ring (k, v) VALUES (?, ?)", k, l.String()).Consistency(l).ExecContext(ctx) == nil
		}}, op{name: "read " + l.String(), do: func(ctx context.Context) bool {
			var v string
			return s.Query("SELECT v FROM tradeoffs_ring WHERE k = ?", keys[rand.IntN(len(keys))]).Consistency(l).ScanContext(ctx, &v) == nil
		}})
	}
	cfg.Log("cassandra ring: %d nodes, RF %d; ONE/QUORUM/ALL at %.0f/s for %s", res.Nodes, res.RF, cfg.Rate, cfg.Duration)
	up := latencies(ctx, cfg.Rate, cfg.Duration, ops)

	cfg.Log("cassandra ring: stopping %s", cfg.Down)
	if err := cfg.StopNode(); err != nil {
		return nil, fmt.Errorf("stop %s: %w", cfg.Down, err)
	}
	defer func() {
		cfg.Log("cassandra ring: starting %s again", cfg.Down)
		if e := cfg.StartNode(); e != nil && err == nil {
			res, err = nil, fmt.Errorf("start %s: %w", cfg.Down, e)
		}
	}()
	cfg.Log("cassandra ring: %s down; ONE/QUORUM/ALL at %.0f/s for %s", cfg.Down, cfg.Rate, cfg.DownDuration)
	down := latencies(ctx, cfg.Rate, cfg.DownDuration, ops)
	for _, l := range ringLevels {
		w, r := "write "+l.String(), "read "+l.String()
		res.Levels = append(res.Levels, RingLevel{Level: l.String(), Write: up[w], Read: up[r], DownWrite: down[w], DownRead: down[r]})
	}
	return res, nil
}

// RingKeyspace creates keyspace with SimpleStrategy and replication factor
// rf unless it exists, through c (bound to no keyspace), retrying as
// schema changes on a ring need.
func RingKeyspace(ctx context.Context, c *gocql.ClusterConfig, keyspace string, rf int) error {
	s, err := c.CreateSession()
	if err != nil {
		return fmt.Errorf("ring session: %w", err)
	}
	defer s.Close()
	stmt := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': %d}", keyspace, rf)
	for attempt := 1; ; attempt++ {
		err = s.Query(stmt).ExecContext(ctx)
		if err == nil {
			return nil
		}
		if attempt == 4 {
			return fmt.Errorf("create keyspace %s: %w", keyspace, err)
		}
		time.Sleep(time.Duration(attempt) * time.Second)
	}
}

// ringSetup reads the keyspace's replication factor, creates the table
// and writes the rows the reads read, at ALL (so every replica has them),
// through a session with a schema change's patience: DDL waits for every
// node to agree on the new schema.
func ringSetup(ctx context.Context, c *gocql.ClusterConfig, res *RingResult, run string, keys []string) error {
	s, err := c.CreateSession()
	if err != nil {
		return fmt.Errorf("ring session: %w", err)
	}
	defer s.Close()
	var repl map[string]string
	if err := s.Query("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?", c.Keyspace).
		Consistency(gocql.One).ScanContext(ctx, &repl); err != nil {
		return fmt.Errorf("keyspace %s: %w", c.Keyspace, err)
	}
	for k, v := range repl {
		if k != "class" { // "replication_factor" or one entry per data center
			if n, err := strconv.Atoi(v); err == nil {
				res.RF += n
			}
		}
	}
	for attempt := 1; ; attempt++ {
		err = s.Query("CREATE TABLE IF NOT EXISTS tradeoffs_ring (k text PRIMARY KEY, v text)").ExecContext(ctx)
		if err == nil {
			break
		}
		if attempt == 4 {
			return fmt.Errorf("create table: %w", err)
		}
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-r%d", run, i)
		if err := s.Query("INSERT INTO tradeoffs_ring (k, v) VALUES (?, ?)", keys[i], "seed").Consistency(gocql.All).ExecContext(ctx); err != nil {
			return fmt.Errorf("writing the rows to read, at ALL: %w", err)
		}
	}
	return nil
}

// Availability is the share of answered requests (0..1), -1 if none ran.
func (l Latency) Availability() float64 {
	if l.OK+l.Failed == 0 {
		return -1
	}
	return float64(l.OK) / float64(l.OK+l.Failed)
}

// Markdown renders the ring's table (part of Result.Markdown).
func (r *RingResult) Markdown() string {
	var b strings.Builder
	c := r.Config
	fmt.Fprintf(&b, "Cassandra ring: %d nodes, keyspace `%s` at replication factor %d, straight through the driver "+
		"(token-aware, mutual TLS, no retries, %s timeout); %.0f requests/s for %s with every node up, then %s with %s stopped "+
		"(writes and reads at the three levels alternating).\n\n",
		r.Nodes, c.Keyspace, r.RF, c.RequestTimeout, c.Rate, c.Duration, c.DownDuration, r.Down)
	fmt.Fprintln(&b, "| consistency | replicas that must answer | write p50 / p99 | read p50 / p99 | writes answered, one node down | reads answered, one node down |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|")
	for _, l := range r.Levels {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", l.Level, needed(l.Level, r.RF), pct(l.Write), pct(l.Read), ratio(l.DownWrite), ratio(l.DownRead))
	}
	return b.String()
}

func needed(level string, rf int) string {
	switch level {
	case "ONE":
		return fmt.Sprintf("1 of %d", rf)
	case "QUORUM":
		return fmt.Sprintf("%d of %d", rf/2+1, rf)
	case "ALL":
		return fmt.Sprintf("%d of %d", rf, rf)
	}
	return "?"
}

func ratio(l Latency) string {
	a := l.Availability()
	if a < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f %% (%d of %d)", 100*a, l.OK, l.OK+l.Failed)
}
