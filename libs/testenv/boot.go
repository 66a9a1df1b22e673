package testenv

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-ref/strata/libs/mtls"
)

// CheckBoot asserts the boot contract every service shares: it becomes
// ready over TLS on its public port and over mTLS on its internal port, and
// bad configuration stops it with one line naming the problem, both from
// run (in-process) and from the built binary (exit status 1). name is the
// workload; pkgDir the service's main package ("." from its run_test.go).
func CheckBoot(t *testing.T, st *Stack, name string, run RunFunc, env map[string]string) {
	t.Run("ready over TLS and mTLS", func(t *testing.T) {
		svc := StartService(t, run, env)
		for _, tc := range []struct {
			url    string
			client *http.Client
		}{
			{"https://" + svc.Public + "/readyz", st.PublicClient(t)},
			{"https://" + svc.Internal + "/readyz", st.InternalClient(t, "loadtest", mtls.ID(name))},
		} {
			resp, err := tc.client.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d\n%s", tc.url, resp.StatusCode, svc.Logs())
			}
		}
		// Plain HTTP on the TLS port gets nothing useful.
		if resp, err := http.Get("http://" + svc.Public + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plain HTTP was served")
			}
		}
	})

	bad := []struct {
		name, key, value, want string
	}{
		{"missing required variable", "STRATA_TLS_CERT", "", "STRATA_TLS_CERT"},
		{"unreadable certificate", "STRATA_TLS_CERT", "/nonexistent/cert.pem", "/nonexistent/cert.pem"},
		// Anything but dev or production would otherwise fall through to
		// dev-only features (demo users, fault injection).
		{"missing STRATA_ENV", "STRATA_ENV", "", "STRATA_ENV"},
		{"unknown STRATA_ENV", "STRATA_ENV", "prod", "STRATA_ENV"},
		{"STRATA_ENV in another case", "STRATA_ENV", "Production", "STRATA_ENV"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			e := clone(env)
			e[b.key] = b.value
			err := run(t.Context(), nil, func(k string) string { return e[k] }, os.Stderr)
			if err == nil || !strings.Contains(err.Error(), b.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("run = %v; want one line naming %s", err, b.want)
			}
		})
	}

	t.Run("binary exits 1 with one line", func(t *testing.T) {
		bin := filepath.Join(t.TempDir(), name)
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		cmd := exec.Command(bin)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("exit = %v, output %q", err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], name+": config:") {
			t.Fatalf("output = %q", out)
		}
	})
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
