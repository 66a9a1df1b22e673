package testenv

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"testing"

	"github.com/strata-ref/strata/libs/authn/authntest"
)

// ServeJWKS publishes iss's keys the way the auth service does: on an mTLS
// listener presenting auth's SVID, so the service under test fetches them
// through its real JWKS client. It returns the JWKS URL; tokens from iss
// then validate with STRATA_AUTH_ISSUER=authntest.IssuerURL.
func ServeJWKS(t testing.TB, st *Stack, iss *authntest.Issuer) string {
	t.Helper()
	src := st.Source(t, "auth")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", src.InternalServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(iss.JWKS())
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().(*net.TCPAddr).String() + "/.well-known/jwks.json"
}
