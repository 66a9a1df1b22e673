package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// TrustDomain is the SPIFFE trust domain of every Strata workload.
const TrustDomain = "strata.local"

// CA is a loaded certificate authority: the root, or an intermediate such
// as the store CA, whose certificate is then appended to every leaf it
// issues so that peers trusting only the root can build the chain.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// chain holds the intermediates between Cert and the root, Cert first;
	// empty for the root itself.
	chain []*x509.Certificate
}

// StoreCAName is the common name of the intermediate CA that issues the
// data stores' server certificates, and nothing else. Store clients
// (mtls.Source.StoreConfig) accept a server only if its chain goes through
// it, so a workload's certificate, issued by the root, cannot pose as
// Postgres, Redis or Cassandra even though its IP SANs match.
const StoreCAName = "Strata store CA"

// LoadOrCreateStoreCA keeps dir/store-ca.pem while the root signed it and it
// has more than a week to live; otherwise it makes a new one valid for ttl.
func (ca *CA) LoadOrCreateStoreCA(dir string, ttl time.Duration) (*CA, bool, error) {
	certPath, keyPath := filepath.Join(dir, "store-ca.pem"), filepath.Join(dir, "store-ca-key.pem")
	cert, key, err := loadPair(certPath, keyPath)
	if err == nil && time.Until(cert.NotAfter) > 7*24*time.Hour && cert.CheckSignatureFrom(ca.Cert) == nil {
		return &CA{Cert: cert, Key: key, chain: []*x509.Certificate{cert}}, false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("load store CA: %w", err)
	}
	sca, err := ca.NewIntermediate(StoreCAName, ttl)
	if err != nil {
		return nil, false, err
	}
	return sca, true, writePair(certPath, keyPath, [][]byte{sca.Cert.Raw}, sca.Key)
}

// NewIntermediate makes a CA signed by ca that may sign leaves only
// (path length 0).
func (ca *CA) NewIntermediate(name string, ttl time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if ca.Cert.NotAfter.Before(now.Add(ttl)) {
		ttl = ca.Cert.NotAfter.Sub(now) // never outlive the root
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Strata"}, CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, chain: append([]*x509.Certificate{cert}, ca.chain...)}, nil
}

// LoadOrCreateCA keeps dir/ca.pem while it has more than a week to live, so
// renewing leaves never breaks trust between running processes; otherwise it
// makes a new one valid for ttl. created reports which happened.
func LoadOrCreateCA(dir string, ttl time.Duration) (ca *CA, created bool, err error) {
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	cert, key, err := loadPair(certPath, keyPath)
	if err == nil && time.Until(cert.NotAfter) > 7*24*time.Hour {
		return &CA{Cert: cert, Key: key}, false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("load CA: %w", err)
	}
	ca, err = NewCA(ttl)
	if err != nil {
		return nil, false, err
	}
	return ca, true, writePair(certPath, keyPath, [][]byte{ca.Cert.Raw}, ca.Key)
}

// NewCA makes a CA in memory.
func NewCA(ttl time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Strata"}, CommonName: "Strata development CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}, err
}

// WriteCA writes the CA's certificate (and key) as dir/ca.pem, dir/ca-key.pem.
func (ca *CA) WriteCA(dir string) error {
	return writePair(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), [][]byte{ca.Cert.Raw}, ca.Key)
}

// Leaf describes one certificate to issue.
type Leaf struct {
	Name string // file stem and CN: "ledger"
	TTL  time.Duration
	// SPIFFE adds the URI SAN spiffe://strata.local/<Name>: a workload SVID.
	SPIFFE bool
	// Hosts are DNS names besides localhost and Name.
	Hosts []string
}

// Issue writes dir/<name>.pem and dir/<name>-key.pem signed by ca.
func (ca *CA) Issue(dir string, l Leaf) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"Strata"}, CommonName: l.Name},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(l.TTL),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every leaf can both serve and dial: workloads are mTLS peers, and
		// stores accept client certificates issued by the same CA.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    append([]string{"localhost", l.Name}, l.Hosts...),
		// 127.0.0.2 and .3 are the extra loopback nodes of the HA topology.
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2), net.IPv4(127, 0, 0, 3), net.IPv6loopback},
	}
	if l.SPIFFE {
		tmpl.URIs = []*url.URL{{Scheme: "spiffe", Host: TrustDomain, Path: "/" + l.Name}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return fmt.Errorf("issue %s: %w", l.Name, err)
	}
	certs := [][]byte{der}
	for _, c := range ca.chain {
		certs = append(certs, c.Raw)
	}
	return writePair(filepath.Join(dir, l.Name+".pem"), filepath.Join(dir, l.Name+"-key.pem"), certs, key)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// writePair writes the key first and the certificates (leaf first, then
// its intermediates) last, each through a rename, so a reader that sees
// the new certificate also finds its key.
func writePair(certPath, keyPath string, certs [][]byte, key crypto.Signer) error {
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		return err
	}
	var out []byte
	for _, der := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return writeAtomic(certPath, out, 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	return WriteFileAtomic(path, data, mode, -1)
}

// WriteFileAtomic replaces path with data through a temporary file and a
// rename, so a reader never sees half a key or certificate. A uid >= 0 also
// gives the file to that user (and group), as the compose certs job does
// for each container's own key.
func WriteFileAtomic(path string, data []byte, mode os.FileMode, uid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid >= 0 {
		if err := tmp.Chown(uid, uid); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("%s or %s: no PEM block", certPath, keyPath)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not a signing key", keyPath)
	}
	return cert, signer, nil
}
