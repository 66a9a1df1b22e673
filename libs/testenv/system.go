package testenv

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FreePort reserves a loopback port by binding and releasing it; a service
// started right after can listen on it. Used where two services must know
// each other's addresses before either starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// System is the four services running as real processes against the
// native stack, wired to each other over mTLS as `make run` wires them, on
// free ports.
type System struct {
	Stack                            *Stack
	Auth, Ledger, Analytics, Session *Process
	// Issuer is auth's public URL, the exact "iss" of its tokens.
	Issuer string
	// Console runs after StartConsole; its ports are reserved up front
	// because auth registers the console's redirect URI at start.
	Console     *Process
	consolePort [2]int
	env         func(string) map[string]string
}

// URL returns the https base URL of addr.
func URL(addr string) string { return "https://" + addr }

// StartSystem boots session, auth, ledger and analytics (in that order) as
// processes. Test databases and keyspace keep them off the dev data; extra
// variables per service override the defaults.
func StartSystem(t testing.TB, st *Stack, extra map[string]map[string]string) *System {
	t.Helper()
	ports := map[string][2]int{}
	for _, n := range []string{"auth", "ledger", "analytics", "session", "console"} {
		ports[n] = [2]int{FreePort(t), FreePort(t)}
	}
	addr := func(n string, i int) string { return "127.0.0.1:" + strconv.Itoa(ports[n][i]) }
	issuer := "https://127.0.0.1:" + strconv.Itoa(ports["auth"][0])
	jwks := URL(addr("auth", 1)) + "/.well-known/jwks.json"
	env := func(n string) map[string]string {
		e := st.Env(n)
		e["STRATA_PUBLIC_ADDR"], e["STRATA_INTERNAL_ADDR"] = addr(n, 0), addr(n, 1)
		e["STRATA_AUTH_ISSUER"], e["STRATA_AUTH_JWKS_URL"] = issuer, jwks
		switch n {
		case "auth":
			e["STRATA_PG_URL"] = st.PGURL("auth", "auth_test")
			e["STRATA_SESSION_URL"] = URL(addr("session", 1))
			e["STRATA_CONSOLE_URL"] = URL(addr("console", 0))
			// The default key-encryption key (.stack/auth/kek): the signing
			// keys in auth_test are sealed with it.
		case "session":
			e["STRATA_PG_URL"] = st.PGURL("session", "session_test")
			e["STRATA_REDIS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", st.RedisPort)
		case "ledger":
			e["STRATA_PG_URL"] = st.PGURL("ledger", "ledger_test")
			e["STRATA_SESSION_URL"] = URL(addr("session", 1))
			e["STRATA_ANALYTICS_URL"] = URL(addr("analytics", 1))
			e["STRATA_AUTH_TOKEN_URL"] = URL(addr("auth", 1)) + "/oauth2/token"
			e["STRATA_KMS_KEYSET"] = filepath.Join(st.Dir, "kms", "ledger-test-keyset.json")
		case "analytics":
			e["STRATA_CASSANDRA_HOSTS"] = "127.0.0.1"
			e["STRATA_CASSANDRA_PORT"] = strconv.Itoa(st.CassandraPort)
			e["STRATA_CASSANDRA_KEYSPACE"] = "analytics_test"
			e["STRATA_SESSION_URL"] = URL(addr("session", 1))
		case "console":
			e["STRATA_CONSOLE_URL"] = URL(addr("console", 0))
			e["STRATA_AUTH_TOKEN_URL"] = URL(addr("auth", 1)) + "/oauth2/token"
			e["STRATA_LEDGER_PUBLIC_URL"] = URL(addr("ledger", 0))
			e["STRATA_ANALYTICS_PUBLIC_URL"] = URL(addr("analytics", 0))
			e["STRATA_SESSION_PUBLIC_URL"] = URL(addr("session", 0))
			for _, m := range []string{"auth", "ledger", "analytics", "session"} {
				e["STRATA_"+strings.ToUpper(m)+"_INTERNAL_URL"] = URL(addr(m, 1))
			}
		}
		for k, v := range extra[n] {
			e[k] = v
		}
		return e
	}
	sys := &System{Stack: st, Issuer: issuer, consolePort: ports["console"], env: env}
	sys.Session = StartProcess(t, st, "session", env("session"))
	sys.Auth = StartProcess(t, st, "auth", env("auth"))
	sys.Analytics = StartProcess(t, st, "analytics", env("analytics"))
	sys.Ledger = StartProcess(t, st, "ledger", env("ledger"))
	return sys
}

// StartConsole boots the web console on its reserved ports, wired to the
// system's services; extra variables override the defaults.
func (s *System) StartConsole(t testing.TB, extra map[string]string) *Process {
	t.Helper()
	e := s.env("console")
	for k, v := range extra {
		e[k] = v
	}
	s.Console = StartProcess(t, s.Stack, "console", e)
	return s.Console
}

// Seed creates n load-test users (load-000001...) with the auth binary's
// seed command, against the same database and key material as p.
func (p *Process) Seed(t testing.TB, n int) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(p.Cmd.Path, "seed", "-users", strconv.Itoa(n))
	cmd.Env = p.Cmd.Env
	return cmd.CombinedOutput()
}
