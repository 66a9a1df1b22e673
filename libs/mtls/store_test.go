package mtls_test

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/pki"
)

// A store client must refuse a server presenting a workload's certificate:
// every SVID chains to the same root and carries the loopback IP SANs, so
// plain CA + host name verification would let any workload key (the
// ledger's, the load tool's) pose as Postgres or Redis and read another
// service's credentials and data. Only certificates from the store CA pass.
func TestStoreClientRefusesWorkloadCertificate(t *testing.T) {
	dir := t.TempDir()
	if err := pki.IssueStack(dir, pki.StackOptions{WorkloadTTL: time.Hour, StoreTTL: time.Hour, CATTL: 30 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	client, err := mtls.NewSource(mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "session.pem"), Key: filepath.Join(dir, "session-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		server string
		ok     bool
	}{
		{"redis", true}, {"postgres", true}, // the stores' own certificates (control)
		{"ledger", false}, {"loadtest", false}, {"prometheus", false},
	} {
		t.Run(tt.server, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(filepath.Join(dir, tt.server+".pem"), filepath.Join(dir, tt.server+"-key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					_ = c.(*tls.Conn).Handshake()
					c.Close()
				}
			}()
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), client.StoreConfig("127.0.0.1"))
			if conn != nil {
				conn.Close()
			}
			if tt.ok && err != nil {
				t.Fatalf("store certificate refused: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), "store")) {
				t.Fatalf("a %s certificate was accepted as a store's: %v", tt.server, err)
			}
		})
	}
}
