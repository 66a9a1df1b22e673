package tradeoffs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/tradeoffs"
)

// TestRingKeyspaceOnAFreshCluster: a session bound to a keyspace that does
// not exist yet makes no connection (what a fresh HA ring gave the ring
// measurement); RingKeyspace creates it, after which the session opens.
// Run on the single-node stack with replication factor 1, on a throwaway
// keyspace dropped again.
func TestRingKeyspaceOnAFreshCluster(t *testing.T) {
	st := testenv.StartStack(t, "cassandra")
	keyspace := fmt.Sprintf("ring_fresh_%d", time.Now().UnixNano())
	cluster := func(ks string) *gocql.ClusterConfig {
		c := gocql.NewCluster("127.0.0.1")
		c.Port, c.Keyspace = st.CassandraPort, ks
		c.Timeout, c.ConnectTimeout = 30*time.Second, 5*time.Second
		c.SslOpts = &gocql.SslOptions{Config: st.Source(t, "analytics").StoreConfig("127.0.0.1")}
		c.Authenticator = gocql.PasswordAuthenticator{Username: "analytics", Password: st.Password(t, "cassandra", "analytics")}
		return c
	}
	if s, err := cluster(keyspace).CreateSession(); err == nil {
		s.Close()
		t.Fatal("a session bound to a missing keyspace opened: the failure this guards against is gone")
	} else if !strings.Contains(err.Error(), "no connections") {
		t.Logf("bound to a missing keyspace: %v", err)
	}
	ctx := context.Background()
	if err := tradeoffs.RingKeyspace(ctx, cluster(""), keyspace, 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := cluster("").CreateSession(); err == nil {
			_ = s.Query("DROP KEYSPACE IF EXISTS " + keyspace).ExecContext(ctx)
			s.Close()
		}
	})
	if err := tradeoffs.RingKeyspace(ctx, cluster(""), keyspace, 1); err != nil {
		t.Fatalf("a second run must find it and pass: %v", err)
	}
	s, err := cluster(keyspace).CreateSession()
	if err != nil {
		t.Fatalf("bound to the created keyspace: %v", err)
	}
	s.Close()
}
