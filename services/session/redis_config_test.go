package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/config"
	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/pki"
	"github.com/strata-ref/strata/libs/server"
)

// The cache client follows the environment: Sentinel failover when
// STRATA_REDIS_SENTINELS and STRATA_REDIS_MASTER_NAME are set, else one node.
func TestRedisClientFromEnv(t *testing.T) {
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(dir, pki.Leaf{Name: "session", TTL: time.Hour, SPIFFE: true}); err != nil {
		t.Fatal(err)
	}
	files := mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "session.pem"), Key: filepath.Join(dir, "session-key.pem")}
	src, err := mtls.NewSource(files)
	if err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "redis-session.password")
	if err := os.WriteFile(pwFile, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"STRATA_TLS_CA": files.CA, "STRATA_TLS_CERT": files.Cert, "STRATA_TLS_KEY": files.Key,
		"STRATA_ENV": "dev", "STRATA_REDIS_PASSWORD_FILE": pwFile,
		"STRATA_PG_URL":      "postgres://session@127.0.0.1:25432,127.0.0.1:25433/session?sslmode=verify-full&target_session_attrs=read-write",
		"STRATA_AUTH_ISSUER": "https://localhost:8441", "STRATA_AUTH_JWKS_URL": "https://localhost:9441/jwks"}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		wantAddr string // "" wants an error
	}{
		{"single node", map[string]string{"STRATA_REDIS_ADDR": "127.0.0.1:26379"}, "127.0.0.1:26379"},
		{"sentinel", map[string]string{"STRATA_REDIS_ADDR": "127.0.0.1:26379",
			"STRATA_REDIS_SENTINELS": "127.0.0.1:26381, 127.0.0.1:26382,127.0.0.1:26383", "STRATA_REDIS_MASTER_NAME": "strata"}, "FailoverClient"},
		{"sentinel without an address", map[string]string{
			"STRATA_REDIS_SENTINELS": "127.0.0.1:26381", "STRATA_REDIS_MASTER_NAME": "strata"}, "FailoverClient"},
		{"empty sentinel list (compose default)", map[string]string{"STRATA_REDIS_ADDR": "redis:6379",
			"STRATA_REDIS_SENTINELS": "", "STRATA_REDIS_MASTER_NAME": ""}, "redis:6379"},
		{"sentinels without a master name", map[string]string{"STRATA_REDIS_SENTINELS": "127.0.0.1:26381"}, ""},
		{"nothing", map[string]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			var cfg settings
			if err := config.Load(func(k string) string { return env[k] }, &cfg, server.Defaults(Port)); err != nil {
				t.Fatal(err)
			}
			rdb, err := newRedisClient(cfg, src)
			if tc.wantAddr == "" {
				if err == nil {
					rdb.Close()
					t.Fatal("no error")
				}
				if !strings.Contains(err.Error(), "STRATA_REDIS_") {
					t.Errorf("error %q does not name the variable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if got := rdb.Options().Addr; got != tc.wantAddr {
				t.Errorf("client address %q, want %q", got, tc.wantAddr)
			}
			if o := rdb.Options(); o.Username != "session" || o.Password != "pw" {
				t.Errorf("user %q: the client must log in as the session ACL user with the file's password", o.Username)
			}
			if o := rdb.Options(); o.MaxRetries > 0 || o.ReadTimeout != redisIOTimeout {
				t.Errorf("retries %d, read timeout %s: the breaker must decide", o.MaxRetries, o.ReadTimeout)
			}
		})
	}
}
