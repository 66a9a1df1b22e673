package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/strata-ref/strata/libs/pki"
)

// TrustDomain is the SPIFFE trust domain of every Strata workload.
var TrustDomain = spiffeid.RequireTrustDomainFromString("strata.local")

// ID returns the SPIFFE ID of a Strata workload by name ("ledger").
func ID(name string) spiffeid.ID {
	return spiffeid.RequireFromSegments(TrustDomain, name)
}

// Files names the PEM files of one workload.
type Files struct {
	CA   string // the trust bundle (ca.pem)
	Cert string // the SVID certificate chain
	Key  string // its PKCS#8 private key
}

// Source serves the current SVID and bundle, re-reading the files when their
// modification time changes. A half-written rotation (new certificate, old
// key) fails to parse and the previous material stays in use until the next
// call finds a consistent pair.
type Source struct {
	files Files

	mu       sync.RWMutex
	svid     *x509svid.SVID
	cert     *tls.Certificate // svid as a tls.Certificate, built once per load
	bundle   *x509bundle.Bundle
	stamp    [3]time.Time
	checked  time.Time
	interval time.Duration
	onReload func(error)
}

// NewSource loads the files once and fails if they are unreadable or invalid,
// so a service with a bad certificate path exits at start with that message.
func NewSource(f Files) (*Source, error) {
	s := &Source{files: f, interval: 200 * time.Millisecond}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// OnReload registers a hook called after every reload attempt (nil error on
// success), so the service can log rotation without this package logging.
func (s *Source) OnReload(fn func(error)) { s.mu.Lock(); s.onReload = fn; s.mu.Unlock() }

func stamps(f Files) ([3]time.Time, error) {
	var out [3]time.Time
	for i, p := range []string{f.CA, f.Cert, f.Key} {
		fi, err := os.Stat(p)
		if err != nil {
			return out, err
		}
		out[i] = fi.ModTime()
	}
	return out, nil
}

func (s *Source) load() error {
	st, err := stamps(s.files)
	if err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	svid, err := x509svid.Load(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("mtls: load SVID %s: %w", s.files.Cert, err)
	}
	if svid.ID.TrustDomain() != TrustDomain {
		return fmt.Errorf("mtls: %s is %s, not in trust domain %s", s.files.Cert, svid.ID, TrustDomain)
	}
	raw, key, err := svid.Marshal()
	if err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	cert, err := tls.X509KeyPair(raw, key)
	if err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	bundle, err := x509bundle.Load(TrustDomain, s.files.CA)
	if err != nil {
		return fmt.Errorf("mtls: load bundle %s: %w", s.files.CA, err)
	}
	s.mu.Lock()
	s.svid, s.cert, s.bundle, s.stamp, s.checked = svid, &cert, bundle, st, time.Now()
	s.mu.Unlock()
	return nil
}

// refresh reloads when any file changed; checks are rate limited so a busy
// server does not stat three files on every handshake.
func (s *Source) refresh() {
	s.mu.RLock()
	due := time.Since(s.checked) >= s.interval
	old := s.stamp
	s.mu.RUnlock()
	if !due {
		return
	}
	st, err := stamps(s.files)
	s.mu.Lock()
	s.checked = time.Now()
	hook := s.onReload
	s.mu.Unlock()
	if err != nil || st == old {
		return
	}
	err = s.load()
	if hook != nil {
		hook(err)
	}
}

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) {
	s.refresh()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.svid, nil
}

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != TrustDomain {
		return nil, fmt.Errorf("mtls: no bundle for trust domain %q", td)
	}
	s.refresh()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bundle, nil
}

// ID is the SPIFFE ID of this workload.
func (s *Source) ID() spiffeid.ID {
	svid, _ := s.GetX509SVID()
	return svid.ID
}

// Roots returns the CA certificates as a pool, for verifying stores and the
// public listener of another service.
func (s *Source) Roots() *x509.CertPool {
	b, _ := s.GetX509BundleForTrustDomain(TrustDomain)
	pool := x509.NewCertPool()
	for _, c := range b.X509Authorities() {
		pool.AddCert(c)
	}
	return pool
}

func (s *Source) certificate() (*tls.Certificate, error) {
	s.refresh()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cert, nil
}

// PublicServerConfig is the public listener's TLS: TLS 1.3, the SVID as the
// server certificate (it carries localhost and the service's DNS name), no
// client certificate asked for.
func (s *Source) PublicServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.certificate()
		},
	}
}

// InternalServerConfig requires a client SVID from Strata's trust domain at
// the handshake. A missing certificate or one from another CA never reaches
// a handler; which member may call which route is checked per route group.
func (s *Source) InternalServerConfig() *tls.Config {
	c := tlsconfig.MTLSServerConfig(s, s, tlsconfig.AuthorizeMemberOf(TrustDomain))
	c.MinVersion = tls.VersionTLS13
	return c
}

// ClientConfig dials another workload's internal listener and accepts only
// the expected SPIFFE ID, so a stolen DNS name cannot impersonate a service.
func (s *Source) ClientConfig(server spiffeid.ID) *tls.Config {
	c := tlsconfig.MTLSClientConfig(s, s, tlsconfig.AuthorizeID(server))
	c.MinVersion = tls.VersionTLS13
	return c
}

// StoreConfig dials a data store: the server certificate is verified against
// the CA for serverName, and the workload's SVID is the client certificate
// (Postgres maps its CN to the database role). The server's chain must go
// through the store CA (pki.StoreCAName) and its certificate must carry no
// SPIFFE ID: every workload's SVID also chains to the root and matches the
// loopback names, and must not be able to pose as a store.
func (s *Source) StoreConfig(serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12, // Cassandra's JDK and Redis negotiate 1.3 when they can.
		ServerName: serverName,
		RootCAs:    s.Roots(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.certificate()
		},
		// Roots can rotate; verify against the current bundle on every handshake.
		InsecureSkipVerify: true, //nolint:gosec // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("mtls: store presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: s.Roots(), DNSName: serverName, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			chains, err := cs.PeerCertificates[0].Verify(opts)
			if err != nil {
				return err
			}
			return storeChain(cs.PeerCertificates[0], chains)
		},
	}
}

// storeChain accepts a verified store certificate only when it is not a
// workload's (no URI SAN) and one of its chains was issued by the store CA.
func storeChain(leaf *x509.Certificate, chains [][]*x509.Certificate) error {
	if len(leaf.URIs) > 0 {
		return fmt.Errorf("mtls: %s is a workload certificate, not a store's", leaf.URIs[0])
	}
	for _, c := range chains {
		if len(c) >= 2 && c[1].IsCA && c[1].Subject.CommonName == pki.StoreCAName {
			return nil
		}
	}
	return fmt.Errorf("mtls: server certificate %q was not issued by the store CA", leaf.Subject.CommonName)
}

// PeerID returns the SPIFFE ID of the client certificate on r, if any.
func PeerID(r *http.Request) (spiffeid.ID, bool) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return spiffeid.ID{}, false
	}
	id, err := x509svid.IDFromCert(r.TLS.PeerCertificates[0])
	return id, err == nil
}
