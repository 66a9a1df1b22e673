package deploycheck

import (
	"bytes"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

// Services are Strata's four services and their public ports; each
// internal (mTLS) port is public + 1000 (README.md, "What runs where").
var Services = []struct {
	Name string
	Port int
}{{"auth", 8441}, {"ledger", 8442}, {"analytics", 8443}, {"session", 8444}}

func root(t testing.TB) string {
	t.Helper()
	r, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// serviceBinary builds services/<name> once per test binary.
func serviceBinary(t testing.TB, name string) string {
	t.Helper()
	return testenv.BuildService(t, root(t), name)
}

// configVars runs `<service> config-vars` with an empty environment: the
// variables the service's settings struct reads, one per line
// (libs/config.PrintVars). A service that does not implement the command
// fails the test: the deployment checks depend on it.
func configVars(t testing.TB, name string) []string {
	t.Helper()
	bin := serviceBinary(t, name)
	cmd := exec.Command(bin, "config-vars")
	cmd.Env = []string{}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s config-vars: %v (does its run func handle config.VarsCommand before config.Load?)\n%s%s", name, err, stdout.String(), stderr.String())
	}
	var vars []string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			vars = append(vars, l)
		}
	}
	if len(vars) == 0 {
		t.Fatalf("%s config-vars printed nothing", name)
	}
	return vars
}

// diff returns the members of a missing from b, sorted.
func diff(a, b []string) []string {
	in := map[string]bool{}
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
