package security_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	goredis "github.com/redis/go-redis/v9"
)

// storeAccess attacks the stores with the keys of workloads that must not
// touch them. Every workload holds a certificate from the same CA, so a
// certificate can open a TLS connection to Redis or Cassandra; what it may
// do there must depend on a store user only the owning service has:
//   - with the ledger's or the load tool's key, writing a session into the
//     session service's cache (then signing in as anyone) fails;
//   - with those keys, dropping a keyspace of analytics fails;
//   - a workload's certificate presented as a store's server certificate
//     is refused by the store clients (no posing as Postgres or Redis).
//
// Controls: the owning workload with its own user succeeds each time.
func (s *suite) storeAccess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	thieves := []string{"ledger", "loadtest", "analytics", "prometheus", "auth"}
	redisAddr := "127.0.0.1:" + strconv.Itoa(s.st.RedisPort)
	sessionPW := s.st.Password(t, "redis", "session")
	cassandraPW := s.st.Password(t, "cassandra", "analytics")
	s.secret(sessionPW)
	s.secret(cassandraPW)
	forged := `{"user_id":"victim","expires_at":"2999-01-01T00:00:00Z"}`

	setSession := func(workload, user, password string) error {
		c := goredis.NewClient(&goredis.Options{Addr: redisAddr, TLSConfig: s.st.Source(t, workload).StoreConfig("127.0.0.1"),
			Username: user, Password: password, MaxRetries: -1, DialTimeout: 3 * time.Second})
		defer c.Close()
		key := "session:" + randomHex(22)
		err := c.Set(ctx, key, forged, time.Minute).Err()
		if err == nil {
			_ = c.Del(ctx, key).Err()
		}
		return err
	}
	t.Run("ASVS_v5_13.2.2/redis_control_session_user", func(t *testing.T) {
		if err := setSession("session", "session", sessionPW); err != nil {
			t.Fatalf("the session service's own user cannot write its cache: %v", err)
		}
	})
	for _, w := range thieves {
		t.Run("ASVS_v5_13.2.2/redis_session_write_with_"+w+"_key", func(t *testing.T) {
			for _, try := range []struct{ user, password string }{
				{"", ""},                        // the certificate alone (default user)
				{"default", ""},                 // the default user, explicitly
				{"session", "not-the-password"}, // guessing
				{w, "strata-demo"},              // a user named after the workload
			} {
				if err := setSession(w, try.user, try.password); err == nil {
					t.Fatalf("with the %s key as user %q a session key was written", w, try.user)
				}
			}
		})
	}
	t.Run("ASVS_v5_13.2.2/redis_session_user_only_session_keys", func(t *testing.T) {
		c := goredis.NewClient(&goredis.Options{Addr: redisAddr, TLSConfig: s.st.Source(t, "session").StoreConfig("127.0.0.1"),
			Username: "session", Password: sessionPW, MaxRetries: -1})
		defer c.Close()
		if err := c.Set(ctx, "other:"+randomHex(8), "x", time.Minute).Err(); err == nil {
			t.Fatal("the session user wrote outside session:*")
		}
		if err := c.FlushAll(ctx).Err(); err == nil {
			t.Fatal("the session user flushed the cache")
		}
	})

	cassandra := func(workload string, auth gocql.Authenticator) (*gocql.Session, error) {
		c := gocql.NewCluster("127.0.0.1")
		c.Port, c.Timeout, c.ConnectTimeout = s.st.CassandraPort, 10*time.Second, 5*time.Second
		c.DisableInitialHostLookup = true
		c.SslOpts = &gocql.SslOptions{Config: s.st.Source(t, workload).StoreConfig("127.0.0.1")}
		c.Authenticator = auth
		return c.CreateSession()
	}
	// A canary keyspace owned by analytics, as its real keyspace is: if the
	// defence failed, only the canary would be lost.
	owner, err := cassandra("analytics", gocql.PasswordAuthenticator{Username: "analytics", Password: cassandraPW})
	if err != nil {
		t.Fatalf("analytics cannot log in with its role (control): %v", err)
	}
	defer owner.Close()
	canary := "canary_" + randomHex(6)
	if err := owner.Query(fmt.Sprintf(`CREATE KEYSPACE %s WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`, canary)).
		ExecContext(ctx); err != nil {
		t.Fatalf("analytics cannot create a keyspace (control): %v", err)
	}
	for _, w := range thieves {
		t.Run("ASVS_v5_13.2.2/cassandra_drop_keyspace_with_"+w+"_key", func(t *testing.T) {
			for _, auth := range []gocql.Authenticator{
				nil, // the certificate alone
				gocql.PasswordAuthenticator{Username: "cassandra", Password: "cassandra"}, // the default superuser
				gocql.PasswordAuthenticator{Username: "analytics", Password: "not-the-password"},
				gocql.PasswordAuthenticator{Username: w, Password: w},
			} {
				sess, err := cassandra(w, auth)
				if err != nil {
					continue // refused at login
				}
				err = sess.Query("DROP KEYSPACE " + canary).ExecContext(ctx)
				sess.Close()
				if err == nil {
					t.Fatalf("with the %s key (%v) a keyspace of analytics was dropped", w, auth)
				}
			}
		})
	}
	t.Run("ASVS_v5_13.2.2/cassandra_control_owner_drops", func(t *testing.T) {
		if err := owner.Query("DROP KEYSPACE " + canary).ExecContext(ctx); err != nil {
			t.Fatalf("analytics cannot drop its own keyspace: %v", err)
		}
	})

	// A workload's certificate posing as a store: a listener presenting it,
	// dialled as the session service dials Redis (and every service its store).
	for _, tc := range []struct {
		cert string
		ok   bool
	}{{"redis", true}, {"postgres", true}, {"ledger", false}, {"loadtest", false}, {"analytics", false}} {
		name := "ASVS_v5_12.3.2/store_client_refuses_" + tc.cert + "_certificate_as_server"
		if tc.ok {
			name = "ASVS_v5_12.3.2/control_store_client_accepts_" + tc.cert
		}
		t.Run(name, func(t *testing.T) {
			f := s.st.Files(tc.cert)
			pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				if c, err := ln.Accept(); err == nil {
					_ = c.(*tls.Conn).Handshake()
					c.Close()
				}
			}()
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
				s.st.Source(t, "session").StoreConfig("127.0.0.1"))
			if conn != nil {
				conn.Close()
			}
			if tc.ok != (err == nil) {
				t.Fatalf("handshake with the %s certificate: %v", tc.cert, err)
			}
		})
	}
}
