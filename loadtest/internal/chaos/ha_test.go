package chaos_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/chaos"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// haServices is the Restarter of the HA topology: the real processes of
// deploy/native/ha.sh, killed and started through services.sh.
type haServices struct{ h *testenv.HAStack }

func (s haServices) run(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(s.h.Root, "deploy/native/ha.sh")}, args...)...)
	cmd.Env = s.h.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ha.sh %v: %v\n%s", args, err, out)
	}
	return nil
}

func (s haServices) Kill(ctx context.Context, name string) error {
	return s.run(ctx, "services", "kill", name)
}

func (s haServices) Start(ctx context.Context, _ string) error {
	return s.run(ctx, "services", "start")
}

// TestHADrillsShort brings the HA topology up natively (Postgres primary and
// streaming replica, Redis master, replica and three Sentinels, a
// three-node Cassandra ring, two replicas of every service), runs every HA
// drill briefly under load, and takes it all down again. Nothing may be
// lost; killing a Cassandra node or a replica of each service must cost
// clients no errors; a failover may pause writes for at most
// haWritePauseBound (docs/high-availability.md).
func TestHADrillsShort(t *testing.T) {
	const haWritePauseBound = 15 // seconds with errors, at 1-second resolution
	start := time.Now()
	h := testenv.StartHAStack(t)
	svc := haServices{h}
	t.Cleanup(func() {
		if err := svc.run(context.Background(), "down"); err != nil {
			t.Log(err)
		}
	})
	if err := svc.run(context.Background(), "up"); err != nil {
		t.Fatal(err)
	}
	const users = 8
	if err := svc.run(context.Background(), "services", "seed", fmt.Sprint(users)); err != nil {
		t.Fatal(err)
	}
	t.Logf("HA topology up in %s", time.Since(start).Round(time.Second))

	src, err := mtls.NewSource(h.Files("loadtest"))
	if err != nil {
		t.Fatal(err)
	}
	api := strata.New(strata.Topology(2, envInt(h, "STRATA_SERVICE_PORT_BASE")),
		&tls.Config{RootCAs: src.Roots(), MinVersion: tls.VersionTLS13}, 64)
	env := &chaos.Env{
		Services: svc,
		Stack: func(_ context.Context, args ...string) (string, error) {
			out, err := h.Script(args...)
			return string(out), err
		},
	}
	var buf bytes.Buffer
	o := chaos.Options{API: api, Env: env, Password: "strata-demo", Users: users,
		Rate: 25, Warm: 3 * time.Second, Hold: 6 * time.Second, After: 10 * time.Second,
		Bound: 45 * time.Second, Out: &buf, Live: os.Getenv("STRATA_VERBOSE") != ""}
	runDrills(t, o, chaos.HADrills, &buf, func(r chaos.Result) string {
		switch {
		case strings.Contains(r.Drill, "failover"):
			if r.ErrorSeconds > haWritePauseBound {
				return fmt.Sprintf("clients saw errors in %d seconds, more than the %d s bound", r.ErrorSeconds, haWritePauseBound)
			}
		case r.Errors > 0:
			// A node or a replica lost: its peers carry the load, and
			// requests that broke mid-flight were retried by the client.
			return fmt.Sprintf("clients saw %d errors; a replicated layer must hide one lost member", r.Errors)
		}
		return ""
	})
}

func envInt(h *testenv.HAStack, k string) int {
	var n int
	for _, kv := range h.Environ() {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			fmt.Sscan(v, &n)
		}
	}
	return n
}
