package stack

import (
	"context"
	"crypto/tls"
	"fmt"
	"strconv"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/strata-ref/strata/libs/testenv"
)

func TestPostgres(t *testing.T) {
	st := testenv.StartStack(t, "postgres")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := st.PGURL("ledger", "ledger")

	t.Run("sslmode=disable is refused", func(t *testing.T) {
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://ledger@127.0.0.1:%d/ledger?sslmode=disable", st.PGPort))
		if err == nil {
			c.Close(ctx)
			t.Fatal("plaintext connection accepted")
		}
	})
	t.Run("TLS without a client certificate is refused", func(t *testing.T) {
		f := st.Files("ledger")
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://ledger@127.0.0.1:%d/ledger?sslmode=verify-full&sslrootcert=%s", st.PGPort, f.CA))
		if err == nil {
			c.Close(ctx)
			t.Fatal("connection without a client certificate accepted")
		}
	})
	t.Run("a role cannot reach another service's database", func(t *testing.T) {
		f := st.Files("ledger")
		c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://ledger@127.0.0.1:%d/auth?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s", st.PGPort, f.CA, f.Cert, f.Key))
		if err == nil {
			c.Close(ctx)
			t.Fatal("ledger connected to the auth database")
		}
	})
	t.Run("verify-full with the workload certificate works", func(t *testing.T) {
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var ssl bool
		if err := c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Fatalf("ssl = %v, %v", ssl, err)
		}
	})
}

func TestRedis(t *testing.T) {
	st := testenv.StartStack(t, "redis")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addr := "127.0.0.1:" + strconv.Itoa(st.RedisPort)
	src := st.Source(t, "session")

	ping := func(opts *goredis.Options) error {
		opts.Addr, opts.MaxRetries, opts.DialTimeout = addr, -1, 2*time.Second
		c := goredis.NewClient(opts)
		defer c.Close()
		return c.Ping(ctx).Err()
	}
	if err := ping(&goredis.Options{}); err == nil {
		t.Fatal("plaintext PING answered")
	}
	if err := ping(&goredis.Options{TLSConfig: &tls.Config{RootCAs: src.Roots(), ServerName: "127.0.0.1"}}); err == nil {
		t.Fatal("TLS without a client certificate answered")
	}
	// The certificate opens the connection; commands need an ACL user.
	if err := ping(&goredis.Options{TLSConfig: src.StoreConfig("127.0.0.1")}); err == nil {
		t.Fatal("a command without a user was answered (the default user must be off)")
	}
	if err := ping(&goredis.Options{TLSConfig: src.StoreConfig("127.0.0.1"), Username: "session",
		Password: st.Password(t, "redis", "session")}); err != nil {
		t.Fatalf("TLS with the workload certificate and its user: %v", err)
	}
}

func TestCassandra(t *testing.T) {
	st := testenv.StartStack(t, "cassandra")
	src := st.Source(t, "analytics")
	var login gocql.Authenticator
	connect := func(ssl *gocql.SslOptions) error {
		c := gocql.NewCluster("127.0.0.1")
		c.Port, c.Timeout, c.ConnectTimeout, c.SslOpts = st.CassandraPort, 3*time.Second, 3*time.Second, ssl
		c.Authenticator = login
		c.DisableInitialHostLookup = true
		s, err := c.CreateSession()
		if err == nil {
			defer s.Close()
			var v string
			err = s.Query("SELECT release_version FROM system.local").Scan(&v)
		}
		return err
	}
	if err := connect(nil); err == nil {
		t.Fatal("plaintext CQL session worked")
	}
	if err := connect(&gocql.SslOptions{Config: &tls.Config{RootCAs: src.Roots(), ServerName: "127.0.0.1"}}); err == nil {
		t.Fatal("TLS without a client certificate worked")
	}
	// The certificate opens the connection; logging in needs a role.
	if err := connect(&gocql.SslOptions{Config: src.StoreConfig("127.0.0.1")}); err == nil {
		t.Fatal("a session without credentials worked")
	}
	login = gocql.PasswordAuthenticator{Username: "analytics", Password: st.Password(t, "cassandra", "analytics")}
	if err := connect(&gocql.SslOptions{Config: src.StoreConfig("127.0.0.1")}); err != nil {
		t.Fatalf("TLS with the workload certificate and its role: %v", err)
	}
}
