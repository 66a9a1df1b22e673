package testenv

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/pki"
)

// Stack describes the running native stack.
type Stack struct {
	Root          string // repository root
	Dir           string // .stack
	Certs         string // .stack/certs
	PGPort        int
	RedisPort     int
	CassandraPort int

	contracts contracts // the services' OpenAPI documents (Check)
}

var (
	stackOnce sync.Once
	stack     *Stack
	stackErr  error
)

// RepoRoot finds the directory holding go.work above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.work above the working directory")
		}
		dir = parent
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// StartStack runs `stack.sh up` for the named servers (all when none) once
// per test binary and describes the stack. It fails the test, never skips
// it, when a server cannot be started.
func StartStack(t testing.TB, servers ...string) *Stack {
	t.Helper()
	stackOnce.Do(func() {
		root, err := RepoRoot()
		if err != nil {
			stackErr = err
			return
		}
		dir := os.Getenv("STRATA_STACK_DIR")
		if dir == "" {
			dir = filepath.Join(root, ".stack")
		}
		stack = &Stack{Root: root, Dir: dir, Certs: filepath.Join(dir, "certs"),
			PGPort: envInt("STRATA_PG_PORT", 15432), RedisPort: envInt("STRATA_REDIS_PORT", 16379),
			CassandraPort: envInt("STRATA_CASSANDRA_PORT", 19042)}
	})
	if stackErr != nil {
		t.Fatal(stackErr)
	}
	if out, err := stack.Script(append([]string{"up"}, servers...)...); err != nil {
		t.Fatalf("stack.sh up %v: %v\n%s", servers, err, out)
	}
	return stack
}

// Script runs deploy/native/stack.sh with args and returns its output.
func (s *Stack) Script(args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(s.Root, "deploy/native/stack.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "STRATA_STACK_DIR="+s.Dir)
	return cmd.CombinedOutput()
}

// MustScript is Script that fails the test on error.
func (s *Stack) MustScript(t testing.TB, args ...string) {
	t.Helper()
	if out, err := s.Script(args...); err != nil {
		t.Fatalf("stack.sh %v: %v\n%s", args, err, out)
	}
}

// Files names a workload's certificate files.
func (s *Stack) Files(name string) mtls.Files {
	return mtls.Files{CA: filepath.Join(s.Certs, "ca.pem"), Cert: filepath.Join(s.Certs, name+".pem"), Key: filepath.Join(s.Certs, name+"-key.pem")}
}

// Source loads a workload's SVID.
func (s *Stack) Source(t testing.TB, name string) *mtls.Source {
	t.Helper()
	src, err := mtls.NewSource(s.Files(name))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// PGURL is the verify-full URL for a role's database; TLS material comes
// from the service's mtls.Source, the paths are there for other clients.
func (s *Stack) PGURL(role, db string) string {
	f := s.Files(role)
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s&sslcert=%s&sslkey=%s",
		role, s.PGPort, db, f.CA, f.Cert, f.Key)
}

// Env is the environment a service needs to run against this stack as
// workload name, before service-specific variables are added. The two
// store users get their credentials: session its Redis ACL user, analytics
// its Cassandra role.
func (s *Stack) Env(name string) map[string]string {
	f := s.Files(name)
	e := map[string]string{
		"STRATA_ENV":           "dev",
		"STRATA_PUBLIC_ADDR":   "127.0.0.1:0",
		"STRATA_INTERNAL_ADDR": "127.0.0.1:0",
		"STRATA_TLS_CA":        f.CA,
		"STRATA_TLS_CERT":      f.Cert,
		"STRATA_TLS_KEY":       f.Key,
	}
	switch name {
	case "session":
		e["STRATA_REDIS_USERNAME"], e["STRATA_REDIS_PASSWORD_FILE"] = "session", s.PasswordFile("redis", "session")
	case "analytics":
		e["STRATA_CASSANDRA_USERNAME"], e["STRATA_CASSANDRA_PASSWORD_FILE"] = "analytics", s.PasswordFile("cassandra", "analytics")
	}
	return e
}

// PasswordFile is the file holding a store user's password (pki.StoreUsers:
// redis admin and session, cassandra admin and analytics).
func (s *Stack) PasswordFile(store, user string) string {
	return pki.PasswordFile(s.Certs, store, user)
}

// Password reads a store user's password.
func (s *Stack) Password(t testing.TB, store, user string) string {
	t.Helper()
	b, err := os.ReadFile(s.PasswordFile(store, user))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// PublicClient trusts the stack's CA and presents no certificate. What it
// sends to a service with a contract (Check) is checked against it.
func (s *Stack) PublicClient(t testing.TB) *http.Client {
	src := s.Source(t, "loadtest")
	return &http.Client{Timeout: 10 * time.Second, Transport: &contractTransport{contracts: &s.contracts,
		next: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: src.Roots(), MinVersion: tls.VersionTLS13},
			MaxIdleConnsPerHost: 64}}} // load tests reuse connections instead of redoing TLS handshakes
}

// InternalClient dials server's internal listener as workload name. What
// it sends to a service with a contract (Check) is checked against it.
func (s *Stack) InternalClient(t testing.TB, name string, server spiffeid.ID) *http.Client {
	src := s.Source(t, name)
	return &http.Client{Timeout: 10 * time.Second, Transport: &contractTransport{contracts: &s.contracts,
		next: &http.Transport{TLSClientConfig: src.ClientConfig(server), MaxIdleConnsPerHost: 64}}}
}
