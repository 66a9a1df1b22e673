// Package contract runs schemathesis, an outside conformance tester, against
// each running service and its published OpenAPI document: generated
// requests, valid and invalid, with a real access token, and the standard
// checks on every answer (no server errors, documented status codes,
// content types, headers and response schemas). `make contract` runs it.
package contract

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-ref/strata/libs/oidclogin"
	"github.com/strata-ref/strata/libs/testenv"
)

// checks are schemathesis's standard response checks.
const checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"

func TestSchemathesis(t *testing.T) {
	if os.Getenv("STRATA_CONTRACT") == "" {
		t.Skip("set STRATA_CONTRACT=1 (make contract) to run schemathesis against the system")
	}
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	if out, err := sys.Auth.Seed(t, 0); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	login := func(user string, resources ...string) string {
		c := &oidclogin.Client{Issuer: sys.Issuer, ClientID: "strata-cli", RedirectURI: "http://127.0.0.1:8765/callback", HTTP: st.PublicClient(t),
			Resources: resources}
		tok, err := c.Login(context.Background(), user, "strata-demo")
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		return tok.AccessToken
	}
	// A customer for the services of customers; the admin API needs an admin.
	// The admin API's audience is in no default set: asked for (RFC 8707).
	alice, admin, dave := login("alice"), login("admin", "auth"), login("dave")
	script := filepath.Join(st.Root, "tools", "contract", "schemathesis.sh")
	reports := filepath.Join(st.Root, "out", "contract")
	examples := "30"
	if n, err := strconv.Atoi(os.Getenv("STRATA_CONTRACT_EXAMPLES")); err == nil && n > 0 {
		examples = strconv.Itoa(n)
	}
	checkList := checks
	if c := os.Getenv("STRATA_CONTRACT_CHECKS"); c != "" {
		checkList = c
	}
	ca := filepath.Join(st.Certs, "ca.pem")
	// run tests the operations of the document published at docs that
	// are served at base.
	run := func(t *testing.T, name, docs, base, token string, extra ...string) {
		args := append([]string{"run", docs + "/openapi.json", "--url", base, "--tls-verify", ca,
			"--checks", checkList, "--max-examples", examples, "--seed", "1", "--workers", "1",
			"--report", "junit", "--report-junit-path", filepath.Join(reports, name+".xml"),
			"--warnings", "off", "--no-color"}, extra...)
		if token != "" {
			args = append(args, "--header", "Authorization: Bearer "+token)
		}
		if err := os.MkdirAll(reports, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(script, args...)
		cmd.Dir = reports // its cache (.schemathesis) goes there, with the reports
		cmd.Env = append(os.Environ(), "STRATA_STACK_DIR="+st.Dir)
		out, err := cmd.CombinedOutput()
		_ = os.WriteFile(filepath.Join(reports, name+".txt"), out, 0o644)
		if err != nil {
			t.Errorf("schemathesis %s: %v\n%s", name, err, out)
			return
		}
		t.Logf("schemathesis %s:\n%s", name, tail(string(out), 12))
	}
	public := func(p *testenv.Process) string { return testenv.URL(p.Public) }
	// Public listeners: the internal listener's operations are tested below,
	// on their own listener.
	onlyPublic := []string{"--exclude-path-regex", "^/(internal/|metrics$)"}
	services := []struct {
		name  string
		p     *testenv.Process
		token string
	}{
		{"auth", sys.Auth, admin},
		{"ledger", sys.Ledger, alice},
		{"analytics", sys.Analytics, alice},
		{"session", sys.Session, alice},
	}
	for _, s := range services {
		extra := onlyPublic
		if s.name == "auth" {
			// Disabling users is left to auth's own tests: following GET
			// /v1/users to DELETE /v1/users/{id}, schemathesis would disable
			// the shared test database's users, admin included, whom every
			// other test signs in with.
			extra = append(slices.Clone(onlyPublic), "--exclude-operation-id", "disableUser")
		}
		t.Run(s.name, func(t *testing.T) { run(t, s.name, public(s.p), public(s.p), s.token, extra...) })
	}
	// The auditors' statistics answer an auditor (dave) only.
	t.Run("analytics-auditor", func(t *testing.T) {
		run(t, "analytics-auditor", public(sys.Analytics), public(sys.Analytics), dave, "--include-path", "/v1/stats/transfers")
	})
	// Internal listeners, over mTLS as the loadtest workload (the operator's
	// tool): metrics and the fault toggles answer it; the other workloads'
	// routes refuse it with 403. Last, since it may set faults.
	cert, key := filepath.Join(st.Certs, "loadtest.pem"), filepath.Join(st.Certs, "loadtest-key.pem")
	for _, s := range services {
		t.Run(s.name+"-internal", func(t *testing.T) {
			run(t, s.name+"-internal", public(s.p), testenv.URL(s.p.Internal), s.token, "--request-cert", cert, "--request-cert-key", key,
				"--include-path-regex", "^/(internal/|metrics$|healthz$|readyz$)")
		})
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
