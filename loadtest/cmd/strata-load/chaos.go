package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/loadtest/internal/chaos"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// runChaos is `strata-load chaos [flags]`: the fault drills against the
// services of `make run` (pid files under the stack directory, restarted by
// deploy/native/services.sh). It prints the table and fails on a violation.
func runChaos(ctx context.Context, args []string, src *mtls.Source, o options, w io.Writer) error {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	rate := fs.Float64("rate", 100, "steady arrivals per second during every drill")
	warm := fs.Duration("warm", 10*time.Second, "clean traffic before each fault")
	hold := fs.Duration("hold", 15*time.Second, "how long each fault lasts")
	after := fs.Duration("after", 30*time.Second, "traffic after the fault is cleared (the recovery window)")
	expiry := fs.Duration("expiry-ttl", 20*time.Second, "lifetime of the short-lived SVIDs in the expiry drill")
	only := fs.String("only", "", "comma-separated drill names (substrings) to run; default all")
	live := fs.Bool("live", false, "print one line per second")
	ha := fs.Bool("ha", os.Getenv("STRATA_HA") == "1", "run the HA drills (make run-ha: a Cassandra node, a replica of each service, Postgres and Redis failovers)")
	compose := fs.Bool("compose", false, "with -ha: the drills act on the containers of the compose profile ha (deploy/compose/drill.sh) instead of make run-ha's processes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	root := strata.RepoRoot()
	if *compose {
		if !*ha {
			return fmt.Errorf("-compose runs the HA drills only: add -ha")
		}
		return runDrills(ctx, composeEnv(filepath.Join(root, "deploy/compose/drill.sh")), src, o, w, runFlags{rate: *rate, warm: *warm,
			hold: *hold, after: *after, expiry: *expiry, only: *only, live: *live, ha: true})
	}
	stackDir := os.Getenv("STRATA_STACK_DIR")
	if stackDir == "" {
		stackDir = filepath.Join(root, ".stack")
	}
	tmp, err := os.MkdirTemp("", "strata-chaos-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	certsBin := filepath.Join(tmp, "certs")
	build := exec.CommandContext(ctx, "go", "build", "-o", certsBin, "./cmd/certs")
	build.Dir = filepath.Join(root, "tools")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the certs command: %v: %s", err, out)
	}
	servicesSh := filepath.Join(root, "deploy/native/services.sh")
	env := &chaos.Env{
		Services: native{run: filepath.Join(stackDir, "run"), script: servicesSh},
		Stack: func(ctx context.Context, args ...string) (string, error) {
			out, err := exec.CommandContext(ctx, "bash", append([]string{o.stackScript}, args...)...).Output()
			return string(out), err
		},
		Certs: chaos.CertsCommand(certsBin, o.certs),
		RotateKeys: func(ctx context.Context) error {
			vars, err := exec.CommandContext(ctx, "bash", servicesSh, "env", "auth").Output()
			if err != nil {
				return fmt.Errorf("services.sh env auth: %w", err)
			}
			cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "auth"), "rotate-keys")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for _, line := range strings.Split(string(vars), "\n") {
				if strings.Contains(line, "=") {
					cmd.Env = append(cmd.Env, line)
				}
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("auth rotate-keys: %v: %s", err, out)
			}
			return nil
		},
	}
	return runDrills(ctx, env, src, o, w, runFlags{rate: *rate, warm: *warm, hold: *hold, after: *after, expiry: *expiry,
		only: *only, live: *live, ha: *ha})
}

// runFlags are chaos's own flags.
type runFlags struct {
	rate                      float64
	warm, hold, after, expiry time.Duration
	only                      string
	live, ha                  bool
}

// runDrills runs the drills on env, prints the table and fails on a violation.
func runDrills(ctx context.Context, env *chaos.Env, src *mtls.Source, o options, w io.Writer, f runFlags) error {
	api := strata.New(o.endpoints, &tls.Config{RootCAs: src.Roots(), MinVersion: tls.VersionTLS13}, 512)
	results, err := chaos.Run(ctx, chaos.Options{API: api, Env: env, Password: o.password, Users: o.users, Rate: f.rate,
		Warm: f.warm, Hold: f.hold, After: f.after, ExpiryTTL: f.expiry, Bound: o.bound, Only: strings.Split(f.only, ","),
		Out: w, Live: f.live, Drills: map[bool][]chaos.Drill{false: chaos.Drills, true: chaos.HADrills}[f.ha]})
	fmt.Fprintln(w)
	chaos.Table(w, results)
	if err != nil {
		return err
	}
	if n := chaos.Violations(results); n > 0 {
		return fmt.Errorf("%d drill(s) lost data, broke an invariant or did not recover", n)
	}
	return nil
}

// native kills services by their pid files and restarts them with
// services.sh, which starts whatever is not running and waits until ready.
type native struct{ run, script string }

func (n native) Kill(_ context.Context, service string) error {
	b, err := os.ReadFile(filepath.Join(n.run, service+".pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("%s pid file: %w", service, err)
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}

func (n native) Start(ctx context.Context, service string) error {
	if out, err := exec.CommandContext(ctx, "bash", n.script, "start").CombinedOutput(); err != nil {
		return fmt.Errorf("services.sh start: %v: %s", err, out)
	}
	return nil
}

// composeEnv is the HA drills' environment on the compose profile ha: the
// store verbs and the service kills go to deploy/compose/drill.sh, which
// acts on the containers.
func composeEnv(script string) *chaos.Env {
	run := func(ctx context.Context, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...).CombinedOutput()
		return string(out), err
	}
	return &chaos.Env{Services: containers{run: run}, Stack: run}
}

// containers kills service containers with SIGKILL and starts whatever is
// not running, both through drill.sh.
type containers struct {
	run func(ctx context.Context, args ...string) (string, error)
}

func (c containers) Kill(ctx context.Context, service string) error {
	if out, err := c.run(ctx, "kill", service); err != nil {
		return fmt.Errorf("drill.sh kill %s: %v: %s", service, err, out)
	}
	return nil
}

func (c containers) Start(ctx context.Context, _ string) error {
	if out, err := c.run(ctx, "services"); err != nil {
		return fmt.Errorf("drill.sh services: %v: %s", err, out)
	}
	return nil
}
