package deploycheck

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

// Services are Strata's four services and their public ports; each
// internal (mTLS) port is public + 1000 (DESIGN.md section 5).
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

var (
	buildMu sync.Mutex
	bins    = map[string]string{}
	binDir  string
)

// serviceBinary builds services/<name> once per test binary, as
// `go build` from the service's directory (the workspace resolves libs).
func serviceBinary(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if b, ok := bins[name]; ok {
		return b
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "deploycheck-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	bin := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root(t), "services", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build services/%s: %v\n%s", name, err, out)
	}
	bins[name] = bin
	return bin
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
