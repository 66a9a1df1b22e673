package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/observe"
	"github.com/strata-ref/strata/libs/pki"
	"github.com/strata-ref/strata/libs/server"
)

// issue mints a CA and the named SVIDs into a fresh directory.
func issue(t *testing.T, names ...string) (string, *pki.CA) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteCA(dir); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := ca.Issue(dir, pki.Leaf{Name: n, TTL: time.Hour, SPIFFE: true}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, ca
}

func source(t *testing.T, dir, name string) *mtls.Source {
	t.Helper()
	src, err := mtls.NewSource(mtls.Files{CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

type harness struct {
	dir              string
	ca               *pki.CA
	public, internal string
	dbUp             bool
}

func start(t *testing.T) *harness {
	t.Helper()
	dir, ca := issue(t, "ledger", "analytics", "session", "prometheus")
	h := &harness{dir: dir, ca: ca, dbUp: true}
	reg := observe.NewRegistry()
	srv := server.New(server.Config{
		Name: "ledger", PublicAddr: "127.0.0.1:0", InternalAddr: "127.0.0.1:0",
		TLS: source(t, dir, "ledger"), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Registry: reg,
		Checks: []server.Check{{Name: "db", Ping: func(context.Context) error {
			if !h.dbUp {
				return errors.New("down")
			}
			return nil
		}}},
		MaxBodyBytes: 64,
	})
	srv.Internal.GET("/internal/things", server.Adapt(server.RequirePeers("session")), func(c *gin.Context) { c.JSON(200, gin.H{"ok": true}) })
	srv.Public.POST("/v1/things", func(c *gin.Context) {
		var body struct {
			Name string `json:"name"`
		}
		if !server.DecodeJSON(c.Writer, c.Request, &body) {
			return
		}
		c.JSON(201, body)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		pub, in := srv.Addrs()
		if pub != nil {
			h.public, h.internal = pub.String(), in.String()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) mtlsClient(t *testing.T, dir, name string) *http.Client {
	src := source(t, dir, name)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: src.ClientConfig(mtls.ID("ledger"))}}
}

func (h *harness) publicClient(t *testing.T) *http.Client {
	pem, err := os.ReadFile(filepath.Join(h.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestPublicListenerHealthAndReadiness(t *testing.T) {
	h := start(t)
	c := h.publicClient(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := c.Get("https://" + h.public + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
		if resp.TLS.Version != tls.VersionTLS13 {
			t.Fatalf("TLS version %x", resp.TLS.Version)
		}
	}
	h.dbUp = false
	resp, err := c.Get("https://" + h.public + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("readyz with db down = %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestInternalListenerAuthorizesPeers(t *testing.T) {
	h := start(t)
	url := "https://" + h.internal + "/internal/things"

	t.Run("no client certificate", func(t *testing.T) {
		_, err := h.publicClient(t).Get(url)
		if err == nil {
			t.Fatal("handshake without a client certificate succeeded")
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		otherDir, _ := issue(t, "session")
		// Trust the real CA for the server, present the foreign SVID.
		foreign := source(t, otherDir, "session")
		cfg := &tls.Config{RootCAs: h.publicClient(t).Transport.(*http.Transport).TLSClientConfig.RootCAs,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				svid, _ := foreign.GetX509SVID()
				raw, key, _ := svid.Marshal()
				cert, err := tls.X509KeyPair(raw, key)
				return &cert, err
			}}
		_, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get(url)
		if err == nil {
			t.Fatal("a certificate from another CA was accepted")
		}
	})
	t.Run("valid SVID not allowed on the route", func(t *testing.T) {
		resp, err := h.mtlsClient(t, h.dir, "analytics").Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 403 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("allowed SVID", func(t *testing.T) {
		resp, err := h.mtlsClient(t, h.dir, "session").Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("metrics only for prometheus", func(t *testing.T) {
		for name, want := range map[string]int{"prometheus": 200, "session": 403} {
			resp, err := h.mtlsClient(t, h.dir, name).Get("https://" + h.internal + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("%s: /metrics = %d", name, resp.StatusCode)
			}
			if want == 200 && !strings.Contains(string(body), "http_server_request_duration_seconds") {
				t.Fatalf("metrics lack the RED histogram")
			}
		}
	})
}

func TestRotationWithoutRestart(t *testing.T) {
	h := start(t)
	serial := func() string {
		c := h.publicClient(t)
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get("https://" + h.public + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	if err := h.ca.Issue(h.dir, pki.Leaf{Name: "ledger", TTL: time.Hour, SPIFFE: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for serial() == before {
		if time.Now().After(deadline) {
			t.Fatal("new handshakes still present the old certificate")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBodiesAreStrict(t *testing.T) {
	h := start(t)
	c := h.publicClient(t)
	cases := []struct {
		name, ctype, body string
		want              int
	}{
		{"ok", "application/json", `{"name":"a"}`, 201},
		{"media type parameters", "application/json; charset=utf-8", `{"name":"a"}`, 201},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, 400},
		{"trailing data", "application/json", `{"name":"a"}{}`, 400},
		{"wrong type", "application/json", `{"name":1}`, 400},
		{"not json", "text/plain", `name=a`, 415},
		{"too large", "application/json", `{"name":"` + strings.Repeat("a", 100) + `"}`, 413},
		{"invalid UTF-8", "application/json", "{\"name\":\"\xff\xfe\"}", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Post("https://"+h.public+"/v1/things", tc.ctype, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want >= 400 {
				var p map[string]any
				if resp.Header.Get("Content-Type") != "application/problem+json" || json.NewDecoder(resp.Body).Decode(&p) != nil || p["status"] != float64(tc.want) {
					t.Fatalf("not a problem+json body: %v", p)
				}
			}
		})
	}
}

func TestHealthcheck(t *testing.T) {
	h := start(t)
	env := map[string]string{"STRATA_PUBLIC_ADDR": h.public, "STRATA_TLS_CA": filepath.Join(h.dir, "ca.pem")}
	getenv := func(k string) string { return env[k] }
	if err := server.Healthcheck(getenv); err != nil {
		t.Fatalf("healthy service: %v", err)
	}
	h.dbUp = false
	if err := server.Healthcheck(getenv); err == nil {
		t.Fatal("healthcheck passed with a dependency down")
	}
	env["STRATA_PUBLIC_ADDR"] = "127.0.0.1:1"
	if err := server.Healthcheck(getenv); err == nil {
		t.Fatal("healthcheck passed with nothing listening")
	}
}

func TestHTTP2IsOffered(t *testing.T) {
	h := start(t)
	c := h.publicClient(t)
	c.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	resp, err := c.Get("https://" + h.public + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
}
