package scenario_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-ref/strata/libs/testenv"
)

// TestScenariosShort runs short forms of the scenarios with the real
// strata-load command against the real system: four service processes over
// mTLS on real Postgres, Redis and Cassandra. Each must keep every invariant
// and meet its goals (the command exits non-zero otherwise).
//
// The load generator runs as its own binary, built without the race
// detector: generating load under the detector would measure the detector.
func TestScenariosShort(t *testing.T) {
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	if out, err := sys.Auth.Seed(t, 12); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "strata-load")
	build := exec.Command("go", "build", "-o", bin, "./cmd/strata-load")
	build.Dir = filepath.Join(st.Root, "loadtest")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build strata-load: %v\n%s", err, out)
	}
	internal := []string{"auth=" + testenv.URL(sys.Auth.Internal), "ledger=" + testenv.URL(sys.Ledger.Internal),
		"analytics=" + testenv.URL(sys.Analytics.Internal), "session=" + testenv.URL(sys.Session.Internal)}
	for _, tc := range []struct {
		name     string
		capacity string // fixed for the fault scenarios: no calibration needed
		duration string
		flags    []string
	}{
		// The ramp calibrates, capped at 150/s so that 10x stays within what
		// one generator on a 2-core machine can offer beside the system, with
		// steps of 3 s, longer than the seconds of latency an overloaded
		// step carries into the next.
		{"ramp", "0", "18s", nil}, {"breaker", "40", "9s", nil}, {"cache", "40", "9s", nil}, {"retry-storm", "40", "9s", nil}, {"hot-account", "40", "9s", nil},
		// The ramp again with clients that throttle themselves, and the
		// flood (capacity given: a calibrated one would make its goal this
		// shared machine's, not the code's).
		{"ramp", "0", "18s", []string{"-throttle"}}, {"flood", "100", "6s", nil},
	} {
		t.Run(strings.Join(append([]string{tc.name}, tc.flags...), " "), func(t *testing.T) {
			cmd := exec.Command(bin, append(append([]string{"-certs", st.Certs, "-out", t.TempDir(), "-stack", filepath.Join(st.Root, "deploy/native/stack.sh"),
				"-auth", sys.Issuer, "-ledger", testenv.URL(sys.Ledger.Public), "-analytics", testenv.URL(sys.Analytics.Public),
				"-session", testenv.URL(sys.Session.Public), "-internal", strings.Join(internal, ","),
				"-users", "12", "-duration", tc.duration, "-capacity", tc.capacity, "-max-rate", "150"}, tc.flags...), tc.name)...)
			cmd.Env = append(os.Environ(), "STRATA_STACK_DIR="+st.Dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("strata-load %s: %v\n%s", tc.name, err, out)
			}
			if !strings.Contains(string(out), "report: ") || strings.Contains(string(out), "FAIL") {
				t.Fatalf("unexpected output:\n%s", out)
			}
			if os.Getenv("STRATA_VERBOSE") != "" {
				t.Log(string(out))
			}
		})
	}
}
