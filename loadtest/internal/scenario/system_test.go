package scenario_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/scenario"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// TestScenariosShort runs short forms of the scenarios against the real
// system (four service processes over mTLS, real Postgres, Redis and
// Cassandra): each must keep every invariant and meet its goals.
func TestScenariosShort(t *testing.T) {
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	if out, err := sys.Auth.Seed(t, 12); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	opts := func(buf *bytes.Buffer) scenario.Options {
		return scenario.Options{
			Endpoints: strata.Endpoints{Auth: sys.Issuer, Ledger: testenv.URL(sys.Ledger.Public),
				Analytics: testenv.URL(sys.Analytics.Public), Session: testenv.URL(sys.Session.Public)},
			Services: []scenario.Service{{Name: "auth", Internal: testenv.URL(sys.Auth.Internal)},
				{Name: "ledger", Internal: testenv.URL(sys.Ledger.Internal)},
				{Name: "analytics", Internal: testenv.URL(sys.Analytics.Internal)},
				{Name: "session", Internal: testenv.URL(sys.Session.Internal)}},
			TLS: st.Source(t, "loadtest"),
			Env: &scenario.Env{Stack: func(ctx context.Context, args ...string) (string, error) {
				out, err := st.Script(args...)
				return string(out), err
			}},
			Password: "strata-demo", Users: 12, Duration: 9 * time.Second, MaxRate: 400,
			Bound: 30 * time.Second, ReportDir: t.TempDir(), Out: buf,
		}
	}
	for _, name := range []string{"ramp", "breaker", "cache", "retry-storm", "hot-account"} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			o := opts(&buf)
			if name != "ramp" {
				o.Capacity = 40 // the fault scenarios need no calibration
			}
			out, err := scenario.Execute(context.Background(), scenario.Specs[name], o)
			if err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			if out.Failed() > 0 || out.Summary.Served == 0 {
				t.Fatalf("%d check(s) failed:\n%s", out.Failed(), buf.String())
			}
			if os.Getenv("STRATA_VERBOSE") != "" {
				t.Log(buf.String())
			}
		})
	}
}
