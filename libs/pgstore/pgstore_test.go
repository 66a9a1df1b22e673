package pgstore

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/pki"
)

func testSource(t *testing.T) *mtls.Source {
	t.Helper()
	dir := t.TempDir()
	ca, _, err := pki.LoadOrCreateCA(dir, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Issue(dir, pki.Leaf{Name: "ledger", TTL: time.Hour, SPIFFE: true}); err != nil {
		t.Fatal(err)
	}
	src, err := mtls.NewSource(mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "ledger.pem"), Key: filepath.Join(dir, "ledger-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// A multi-host URL (the HA topology) keeps every host, each dialled with
// the workload's TLS for that host, and finds the writable one.
func TestPoolConfigMultiHost(t *testing.T) {
	src := testSource(t)
	pc, err := PoolConfig(Config{URL: "postgres://ledger@127.0.0.1:25432,localhost:25433/ledger?sslmode=verify-full&target_session_attrs=read-write", TLS: src})
	if err != nil {
		t.Fatal(err)
	}
	cc := pc.ConnConfig
	if len(cc.Fallbacks) != 1 {
		t.Fatalf("fallbacks = %d, want 1 (the second host)", len(cc.Fallbacks))
	}
	hosts := []struct {
		host string
		port uint16
		tls  bool
		sni  string
	}{{cc.Host, cc.Port, cc.TLSConfig != nil && cc.TLSConfig.GetClientCertificate != nil, ""},
		{cc.Fallbacks[0].Host, cc.Fallbacks[0].Port, cc.Fallbacks[0].TLSConfig != nil && cc.Fallbacks[0].TLSConfig.GetClientCertificate != nil, ""}}
	hosts[0].sni, hosts[1].sni = cc.TLSConfig.ServerName, cc.Fallbacks[0].TLSConfig.ServerName
	want := []struct {
		host string
		port uint16
	}{{"127.0.0.1", 25432}, {"localhost", 25433}}
	for i, h := range hosts {
		if h.host != want[i].host || h.port != want[i].port || !h.tls || h.sni != want[i].host {
			t.Errorf("host %d = %+v, want %v with the workload's TLS for that name", i, h, want[i])
		}
	}
	if cc.ValidateConnect == nil {
		t.Error("target_session_attrs=read-write ignored")
	}
	if cc.ConnectTimeout != DefaultConnectTimeout || pc.HealthCheckPeriod != HealthCheckPeriod {
		t.Errorf("connect timeout %s, health check %s", cc.ConnectTimeout, pc.HealthCheckPeriod)
	}
}

func TestPoolConfigRefusesWeakTLS(t *testing.T) {
	src := testSource(t)
	for _, mode := range []string{"disable", "prefer", "require", "verify-ca"} {
		_, err := PoolConfig(Config{URL: "postgres://ledger@127.0.0.1:25432,127.0.0.1:25433/ledger?sslmode=" + mode, TLS: src})
		if !errors.Is(err, ErrPlaintext) {
			t.Errorf("sslmode=%s: err = %v, want ErrPlaintext", mode, err)
		}
	}
}
