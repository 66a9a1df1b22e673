package deploycheck

import (
	"bytes"
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The rules of the house that hold by discipline unless a test checks them:
// the import directions between Strata's modules and layers, and one version
// of each dependency across the workspace. `make lint` runs these tests.

const modPrefix = "github.com/strata-ref/strata/"

// domains are the packages that hold a service's rules. They declare the
// interfaces their stores implement and import no driver or HTTP framework.
var domains = []string{
	"services/analytics/internal/analytics",
	"services/auth/internal/identity",
	"services/ledger/internal/ledger",
	"services/session/internal/session",
}

// driversAndFrameworks are the import path prefixes a domain package must
// not import.
var driversAndFrameworks = []string{
	ginModule,
	"github.com/jackc/pgx",
	"github.com/apache/cassandra-gocql-driver",
	"github.com/gocql/gocql",
	"github.com/redis/go-redis",
}

// httpLibs are the libraries that need only net/http: they take and return
// http.Handler (net/http's own middleware shape), so they work under any
// router. gin stays with the routers: the services' and libs/server, which
// builds their engines.
var httpLibs = []string{
	"libs/authn",
	"libs/idempotency",
	"libs/openapi",
	"libs/problem",
	"libs/resilience",
}

const ginModule = "github.com/gin-gonic/gin"

// workspaceModules lists the directories go.work uses, relative to the
// repository root.
func workspaceModules(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "work", "edit", "-json")
	cmd.Dir = root(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go work edit -json: %v", err)
	}
	var w struct{ Use []struct{ DiskPath string } }
	if err := json.Unmarshal(out, &w); err != nil {
		t.Fatal(err)
	}
	var mods []string
	for _, u := range w.Use {
		mods = append(mods, filepath.ToSlash(filepath.Clean(u.DiskPath)))
	}
	if len(mods) < 7 {
		t.Fatalf("go.work uses %d modules, want at least 7: %v", len(mods), mods)
	}
	return mods
}

// pkgImports are what one package imports, its own code apart from its
// tests'.
type pkgImports struct{ code, tests []string }

// imports maps each package of the workspace, by its path relative to the
// repository root ("services/ledger/internal/ledger"), to its imports.
func imports(t *testing.T) map[string]pkgImports {
	t.Helper()
	all := map[string]pkgImports{}
	for _, m := range workspaceModules(t) {
		cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
		cmd.Dir = filepath.Join(root(t), m)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("go list in %s: %v\n%s", m, err, stderr.String())
		}
		dec := json.NewDecoder(&stdout)
		for dec.More() {
			var p struct {
				ImportPath                         string
				Imports, TestImports, XTestImports []string
			}
			if err := dec.Decode(&p); err != nil {
				t.Fatal(err)
			}
			rel := strings.TrimPrefix(p.ImportPath, modPrefix)
			all[rel] = pkgImports{code: p.Imports, tests: slices.Concat(p.TestImports, p.XTestImports)}
		}
	}
	return all
}

// service returns the service a package belongs to ("ledger" for
// services/ledger/...), or "".
func service(pkg string) string {
	rest, ok := strings.CutPrefix(pkg, "services/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// houseRule returns why pkg may not import imp, or "" when it may. test says
// the import is from the package's tests: a domain's integration tests wire
// real drivers, its code never does.
func houseRule(pkg, imp string, test bool) string {
	target, own := strings.CutPrefix(imp, modPrefix)
	switch {
	case own && strings.HasPrefix(pkg, "libs/") && (strings.HasPrefix(target, "services/") || strings.HasPrefix(target, "loadtest/") || strings.HasPrefix(target, "tools/")):
		return "libs import no service, load tool or tool"
	case own && service(pkg) != "" && service(target) != "" && service(pkg) != service(target):
		return "a service never imports another service (they talk over HTTP)"
	case own && (strings.HasPrefix(pkg, "loadtest/") || strings.HasPrefix(pkg, "tools/")) && strings.HasPrefix(target, "services/"):
		return "the load tool and tools use the services' HTTP APIs, never their packages"
	case !test && slices.Contains(domains, pkg) && slices.ContainsFunc(driversAndFrameworks, func(p string) bool { return imp == p || strings.HasPrefix(imp, p+"/") }):
		return "a domain package imports no driver or HTTP framework"
	case !test && slices.Contains(httpLibs, pkg) && (imp == ginModule || strings.HasPrefix(imp, ginModule+"/")):
		return "a library that needs only net/http takes and returns http.Handler; gin stays with the routers"
	}
	return ""
}

// TestImportRules walks the import graph of every package in the workspace
// (tests included) against the layering rules in houseRule.
func TestImportRules(t *testing.T) {
	all := imports(t)
	for _, d := range domains {
		if _, ok := all[d]; !ok {
			t.Errorf("domain package %s not found: update the domains list", d)
		}
	}
	for _, l := range httpLibs {
		if _, ok := all[l]; !ok {
			t.Errorf("library %s not found: update the httpLibs list", l)
		}
	}
	for _, pkg := range slices.Sorted(maps.Keys(all)) {
		for _, imp := range all[pkg].code {
			if why := houseRule(pkg, imp, false); why != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, why)
			}
		}
		for _, imp := range all[pkg].tests {
			if why := houseRule(pkg, imp, true); why != "" {
				t.Errorf("%s's tests import %s: %s", pkg, imp, why)
			}
		}
	}
}

// TestHouseRuleCatches proves each rule fires on the import it forbids, so
// TestImportRules passing means something.
func TestHouseRuleCatches(t *testing.T) {
	for _, tc := range []struct {
		pkg, imp  string
		test, bad bool
	}{
		{"libs/server", modPrefix + "services/ledger/internal/ledger", false, true},
		{"libs/server", modPrefix + "loadtest/internal/engine", false, true},
		{"libs/server", modPrefix + "libs/problem", false, false},
		{"services/ledger", modPrefix + "services/session/internal/session", false, true},
		{"services/ledger/internal/httpapi", modPrefix + "services/ledger/internal/ledger", false, false},
		{"services/ledger/internal/ledger", "github.com/jackc/pgx/v5", false, true},
		{"services/session/internal/session", "github.com/redis/go-redis/v9", false, true},
		{"services/analytics/internal/analytics", "github.com/apache/cassandra-gocql-driver/v2", false, true},
		{"services/ledger/internal/ledger", "github.com/gin-gonic/gin", false, true},
		{"services/ledger/internal/postgres", "github.com/jackc/pgx/v5", false, false},
		{"services/session/internal/session", "github.com/redis/go-redis/v9", true, false},
		{"libs/testenv", modPrefix + "services/ledger", true, true},
		{"loadtest/internal/engine", modPrefix + "services/ledger/internal/ledger", false, true},
		{"tools/deploycheck", modPrefix + "services/auth", false, true},
		{"loadtest/internal/engine", modPrefix + "libs/mtls", false, false},
		{"libs/problem", "github.com/gin-gonic/gin", false, true},
		{"libs/authn", "github.com/gin-gonic/gin", false, true},
		{"libs/resilience", "github.com/gin-gonic/gin/binding", false, true},
		{"libs/authn", "github.com/gin-gonic/gin", true, false},
		{"libs/server", "github.com/gin-gonic/gin", false, false},
		{"libs/openapi/openapitest", "github.com/gin-gonic/gin", false, false},
	} {
		if got := houseRule(tc.pkg, tc.imp, tc.test) != ""; got != tc.bad {
			t.Errorf("%s importing %s: forbidden=%v, want %v", tc.pkg, tc.imp, got, tc.bad)
		}
	}
}

// TestOneVersion fails when two modules of the workspace require different
// versions of the same module: each module also builds on its own
// (GOWORK=off, as in its image), and must build with what the workspace
// tests.
func TestOneVersion(t *testing.T) {
	versions := map[string]map[string][]string{} // module path -> version -> requiring modules
	for _, m := range workspaceModules(t) {
		cmd := exec.Command("go", "mod", "edit", "-json")
		cmd.Dir = filepath.Join(root(t), m)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go mod edit -json in %s: %v", m, err)
		}
		var f struct {
			Require []struct{ Path, Version string }
		}
		if err := json.Unmarshal(out, &f); err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Require {
			if strings.HasPrefix(r.Path, modPrefix) {
				continue // replaced by the directory in the repository
			}
			if versions[r.Path] == nil {
				versions[r.Path] = map[string][]string{}
			}
			versions[r.Path][r.Version] = append(versions[r.Path][r.Version], m)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(versions)) {
		if v := versions[path]; len(v) > 1 {
			t.Errorf("%s at %d versions: %v", path, len(v), v)
		}
	}
}
