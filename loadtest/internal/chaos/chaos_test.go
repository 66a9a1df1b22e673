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
	"sync"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/testenv"
	"github.com/strata-ref/strata/loadtest/internal/chaos"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// processes is the Restarter over testenv processes: a restart is the same
// binary started again with the same environment, on the same ports.
type processes struct {
	t   *testing.T
	mu  sync.Mutex
	sys *testenv.System
}

func (p *processes) slot(name string) **testenv.Process {
	return map[string]**testenv.Process{"auth": &p.sys.Auth, "ledger": &p.sys.Ledger, "analytics": &p.sys.Analytics, "session": &p.sys.Session}[name]
}

func (p *processes) Kill(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	(*p.slot(name)).Kill()
	return nil
}

func (p *processes) Start(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.slot(name)
	*s = (*s).Restart(p.t)
	return nil
}

// TestDrillsShort runs every drill briefly at low load against the real
// system: no drill may lose data or break an invariant, the system must
// recover without manual steps, and the two rotations must be invisible to
// clients.
func TestDrillsShort(t *testing.T) {
	st := testenv.StartStack(t)
	sys := testenv.StartSystem(t, st, nil)
	const users = 8
	if out, err := sys.Auth.Seed(t, users); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	certsBin := filepath.Join(t.TempDir(), "certs")
	build := exec.Command("go", "build", "-o", certsBin, "./cmd/certs")
	build.Dir = filepath.Join(st.Root, "tools")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build certs: %v\n%s", err, out)
	}
	// Whatever happens, leave the stack with long-lived certificates.
	t.Cleanup(func() { _ = exec.Command(certsBin, "-dir", st.Certs).Run() })

	procs := &processes{t: t, sys: sys}
	env := &chaos.Env{
		Services: procs,
		Stack: func(_ context.Context, args ...string) (string, error) {
			out, err := st.Script(args...)
			return string(out), err
		},
		Certs: chaos.CertsCommand(certsBin, st.Certs),
		RotateKeys: func(ctx context.Context) error {
			procs.mu.Lock()
			auth := sys.Auth
			procs.mu.Unlock()
			cmd := exec.CommandContext(ctx, auth.Cmd.Path, "rotate-keys")
			cmd.Env = auth.Cmd.Env
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("rotate-keys: %v: %s", err, out)
			}
			return nil
		},
	}
	src := st.Source(t, "loadtest")
	api := strata.New(strata.Endpoints{Auth: sys.Issuer, Ledger: testenv.URL(sys.Ledger.Public),
		Analytics: testenv.URL(sys.Analytics.Public), Session: testenv.URL(sys.Session.Public)},
		&tls.Config{RootCAs: src.Roots(), MinVersion: tls.VersionTLS13}, 64)
	var buf bytes.Buffer
	o := chaos.Options{API: api, Env: env, Password: "strata-demo", Users: users,
		Rate: 25, Warm: 2 * time.Second, Hold: 4 * time.Second, After: 15 * time.Second, ExpiryTTL: 6 * time.Second,
		Bound: 45 * time.Second, Out: &buf, Live: os.Getenv("STRATA_VERBOSE") != ""}
	// STRATA_CHAOS_FULL=1: the full drills (docs/chaos.md quotes this
	// table), on the same processes: more load, longer faults.
	if os.Getenv("STRATA_CHAOS_FULL") != "" {
		o.Rate, o.Warm, o.Hold, o.After, o.ExpiryTTL, o.Bound = 80, 5*time.Second, 15*time.Second, 20*time.Second, 20*time.Second, 90*time.Second
	}
	runDrills(t, o, chaos.Drills, &buf, func(r chaos.Result) string {
		if strings.HasSuffix(r.Drill, "rotation") && r.Errors > 0 {
			return fmt.Sprintf("clients saw %d errors; a rotation must be invisible", r.Errors)
		}
		return ""
	})
}

// runDrills runs the drills of o, logs the table, and fails the test when
// not every drill ran, when one lost data, broke an invariant or did not
// recover, or when claim (the test's own expectation of a row) returns a
// complaint.
func runDrills(t *testing.T, o chaos.Options, drills []chaos.Drill, buf *bytes.Buffer, claim func(chaos.Result) string) {
	t.Helper()
	o.Drills = drills
	results, err := chaos.Run(context.Background(), o)
	var table bytes.Buffer
	chaos.Table(&table, results)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	t.Logf("\n%s", table.String())
	if len(results) != len(drills) {
		t.Fatalf("%d of %d drills ran\n%s", len(results), len(drills), buf.String())
	}
	failed := false
	for _, r := range results {
		if r.Violation() {
			t.Errorf("drill %q: violation (lost %d, recovered %v, err %v)", r.Drill, r.Lost, r.Recovered, r.Err)
			failed = true
		}
		if msg := claim(r); msg != "" {
			t.Errorf("drill %q: %s", r.Drill, msg)
			failed = true
		}
	}
	if failed || os.Getenv("STRATA_VERBOSE") != "" {
		t.Log(buf.String())
	}
}
