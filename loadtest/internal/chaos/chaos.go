// Package chaos runs fault drills on the real processes of a running Strata
// under steady load: SIGKILL the ledger and restart it, restart Postgres,
// stop Redis, freeze Cassandra (SIGSTOP), rotate and expire certificates,
// rotate the token signing keys. Each drill drives the scenario package's
// traffic mix with the open-model engine, injects one fault, clears it,
// then runs the scenario invariant check (nothing lost or duplicated, money
// conserved, analytics caught up) and measures how long the system took to
// serve cleanly again. `strata-load chaos` runs it against `make run`; the
// package test runs it against testenv processes. See docs/chaos.md.
package chaos

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-ref/strata/loadtest/internal/engine"
	"github.com/strata-ref/strata/loadtest/internal/report"
	"github.com/strata-ref/strata/loadtest/internal/scenario"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// Restarter kills and restarts service processes. For `make run` the
// processes have pid files and services.sh restarts them; in tests they are
// testenv processes.
type Restarter interface {
	// Kill sends SIGKILL to the service's process: a crash, no drain.
	Kill(ctx context.Context, service string) error
	// Start starts the service again and returns once it is ready.
	Start(ctx context.Context, service string) error
}

// Env is what the drills act on.
type Env struct {
	Services Restarter
	// Stack runs deploy/native/stack.sh with args (stop postgres, pid cassandra ...).
	Stack func(ctx context.Context, args ...string) (string, error)
	// Certs runs the certs command on the live certificate directory: all
	// leaves when only is empty, else just those; ttl 0 is the default lifetime.
	Certs func(ctx context.Context, ttl time.Duration, only ...string) error
	// RotateKeys performs one signing-key rotation step (`auth rotate-keys`).
	RotateKeys func(ctx context.Context) error
}

// Drill is one fault.
type Drill struct {
	Name string
	Doc  string
	// Inject starts the fault; Clear (optional) ends it after the hold.
	Inject, Clear func(ctx context.Context, d *drillRun) error
	// Hold overrides Options.Hold (the expiry drill waits past expiry).
	Hold func(o Options) time.Duration
	// Probe (optional) runs at the end of the hold, before Clear: proof
	// that the fault really took effect (the certificates have expired).
	Probe func(ctx context.Context, d *drillRun) error
	// Verify (optional) runs after Clear, during the recovery window: a
	// drill-specific claim (a token signed with the new key validates).
	Verify func(ctx context.Context, d *drillRun) error
	// Restore (optional) undoes the fault after the checks, untimed: for a
	// fault clients do not see, whose undoing takes longer than the
	// recovery window (a Cassandra node rejoining).
	Restore func(ctx context.Context, d *drillRun) error
}

// drillRun is a drill's view of the run.
type drillRun struct {
	env *Env
	pop *scenario.Population
	o   Options
}

// Services are the four services' public listeners, for readiness waits.
var services = []string{"auth", "ledger", "analytics", "session"}

// Drills are the drills in the order they run.
var Drills = []Drill{
	{Name: "ledger SIGKILL + restart", Doc: "the ledger process is killed (SIGKILL) and started again by its supervisor",
		Inject: func(ctx context.Context, d *drillRun) error { return d.env.Services.Kill(ctx, "ledger") },
		Clear:  func(ctx context.Context, d *drillRun) error { return d.env.Services.Start(ctx, "ledger") }},
	{Name: "postgres restart", Doc: "Postgres is stopped and started (auth, ledger and session lose their database)",
		Inject: func(ctx context.Context, d *drillRun) error {
			_, err := d.env.Stack(ctx, "stop", "postgres")
			return err
		},
		Clear: func(ctx context.Context, d *drillRun) error {
			_, err := d.env.Stack(ctx, "start", "postgres")
			return err
		}},
	{Name: "redis stopped", Doc: "Redis is stopped for the hold (session falls back to Postgres)",
		Inject: func(ctx context.Context, d *drillRun) error { _, err := d.env.Stack(ctx, "stop", "redis"); return err },
		Clear:  func(ctx context.Context, d *drillRun) error { _, err := d.env.Stack(ctx, "start", "redis"); return err }},
	{Name: "cassandra SIGSTOP", Doc: "Cassandra is frozen (SIGSTOP) for the hold, then thawed (SIGCONT)",
		Inject: func(ctx context.Context, d *drillRun) error { return cassandra(ctx, d.env, syscall.SIGSTOP) },
		Clear:  func(ctx context.Context, d *drillRun) error { return cassandra(ctx, d.env, syscall.SIGCONT) }},
	{Name: "certificate rotation", Doc: "every certificate is re-issued under load (the certs command); services reload without restart",
		Inject: func(ctx context.Context, d *drillRun) error { return d.env.Certs(ctx, 0) }},
	{Name: "certificate expiry", Doc: "the services get short-lived SVIDs that expire; the certs job re-issues them; services recover without restart",
		Inject: func(ctx context.Context, d *drillRun) error { return d.env.Certs(ctx, d.o.ExpiryTTL, services...) },
		Hold:   func(o Options) time.Duration { return o.ExpiryTTL + o.Hold },
		Probe:  func(ctx context.Context, d *drillRun) error { return handshakes(ctx, d, false) },
		Clear:  func(ctx context.Context, d *drillRun) error { return d.env.Certs(ctx, 0, services...) },
		Verify: func(ctx context.Context, d *drillRun) error { return handshakes(ctx, d, true) }},
	{Name: "signing key rotation", Doc: "`auth rotate-keys` under load: issued tokens keep validating, new ones carry the new key",
		Inject: func(ctx context.Context, d *drillRun) error { return d.env.RotateKeys(ctx) },
		Verify: newKeyValidates},
}

// cassandra signals the Cassandra JVM (stack.sh pid cassandra).
func cassandra(ctx context.Context, env *Env, sig syscall.Signal) error {
	out, err := env.Stack(ctx, "pid", "cassandra")
	if err != nil {
		return err
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &pid); err != nil {
		return fmt.Errorf("cassandra pid %q: %w", out, err)
	}
	return syscall.Kill(pid, sig)
}

// handshakes opens a new TLS connection to every public listener (pooled
// connections outlive a certificate: TLS checks validity only in the
// handshake). With want false every handshake must fail (the services'
// certificates have expired); with want true every one must succeed within
// 10 s (the services reloaded the re-issued files without a restart).
func handshakes(ctx context.Context, d *drillRun, want bool) error {
	base := d.pop.API.HTTP.Transport.(*http.Transport).TLSClientConfig
	e := d.pop.API.E
	var errs []error
	for _, u := range []string{e.Auth, e.Ledger, e.Analytics, e.Session} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: base.Clone(), DisableKeepAlives: true,
				ForceAttemptHTTP2: true}} // base offers h2 in ALPN
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/healthz", nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			ok := err == nil && resp.StatusCode == http.StatusOK
			if !want { // an expired certificate must be refused at once, and for that reason
				switch {
				case ok:
					errs = append(errs, fmt.Errorf("%s: a new handshake succeeded after the certificates expired", u))
				case err == nil || !strings.Contains(err.Error(), "expired"):
					errs = append(errs, fmt.Errorf("%s: refused, but not for an expired certificate: %v", u, err))
				}
				break
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				errs = append(errs, fmt.Errorf("%s: no successful handshake 10 s after re-issue: %v", u, err))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return errors.Join(errs...)
}

// newKeyValidates signs a user in after the rotation has been picked up
// (auth re-reads its keys every 5 s) and uses the token at the ledger: the
// ledger must fetch the new key from the JWKS by its kid.
func newKeyValidates(ctx context.Context, d *drillRun) error {
	u := d.pop.Users[0]
	old := kid(u.Tokens.AccessToken)
	deadline := time.Now().Add(30 * time.Second)
	for {
		fresh, err := d.pop.API.Login(ctx, u.Name, d.o.Password)
		if err == nil && kid(fresh.Tokens.AccessToken) != old {
			k := kid(fresh.Tokens.AccessToken)
			_, err := d.pop.API.GetAccount(ctx, fresh, u.Account.ID)
			if err != nil {
				return fmt.Errorf("token signed with the new key %s: %w", k, err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tokens still signed with %s 30 s after the rotation (last login error: %v)", old, err)
		}
		time.Sleep(time.Second)
	}
}

// Options configure a chaos run.
type Options struct {
	API      *strata.API
	Env      *Env
	Password string // of admin and the load users
	Users    int
	Rate     float64       // steady arrivals per second
	Warm     time.Duration // clean traffic before the fault
	Hold     time.Duration // how long a fault lasts
	After    time.Duration // traffic after the fault is cleared (the recovery window)
	// ExpiryTTL is the lifetime of the short-lived SVIDs of the expiry drill.
	ExpiryTTL time.Duration
	Bound     time.Duration // eventual-consistency bound for analytics
	Only      []string      // drill names to run (substring match); all when empty
	// Drills to choose from [Drills]; HADrills on the HA topology.
	Drills []Drill
	Out    io.Writer // progress and the table
	Live   bool      // print one line per second
}

// Result is one drill's row.
type Result struct {
	Drill string
	// DuringFault: requests offered between injection and clearing.
	DuringFault int64
	// Errors: requests that failed (5xx, transport error, dropped) from the
	// injection to the end of the run; Shed: 429s in the same span.
	Errors, Shed int64
	// ErrorSeconds: seconds from the injection on with at least one error
	// (for a failover, the pause clients saw).
	ErrorSeconds int
	// Lost: acknowledged transfers missing, unresolved in doubt, accounts
	// whose balance disagrees, transfers absent from analytics.
	Lost      int
	Recovered bool
	Recovery  time.Duration // from clearing to the first clean second
	Checks    []report.Check
	Err       error // the fault could not be injected or cleared, or Verify failed
}

// Violation reports whether the drill failed: data lost, an invariant
// broken, no recovery, or the drill itself did not work.
func (r Result) Violation() bool {
	if r.Lost > 0 || !r.Recovered || r.Err != nil {
		return true
	}
	for _, c := range r.Checks {
		if !c.OK {
			return true
		}
	}
	return false
}

// Run prepares the users once, then runs each drill in turn and returns
// the rows. Later drills still run when one fails.
func Run(ctx context.Context, o Options) ([]Result, error) {
	logf := func(f string, a ...any) { fmt.Fprintf(o.Out, f+"\n", a...) }
	pop, err := scenario.Prepare(ctx, o.API, o.Password, o.Users, logf)
	if err != nil {
		return nil, err
	}
	// One ledger of acknowledged transfers for the whole run: each check
	// covers everything written so far, so damage found later still counts.
	acked := &scenario.Acked{}
	var out []Result
	drills := o.Drills
	if drills == nil {
		drills = Drills
	}
	for _, d := range drills {
		if !selected(d.Name, o.Only) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		// Fresh tokens per drill: a long run outlives the 10-minute access
		// tokens, and after a key rotation they carry the new key.
		if err := relogin(ctx, pop, o.Password); err != nil {
			return out, fmt.Errorf("before %s: %w", d.Name, err)
		}
		logf("\n=== drill: %s: %s", d.Name, d.Doc)
		r := runDrill(ctx, d, &drillRun{env: o.Env, pop: pop, o: o}, acked)
		out = append(out, r)
		logf("%s", r.line())
	}
	return out, nil
}

func selected(name string, only []string) bool {
	named := false
	for _, o := range only {
		if o = strings.TrimSpace(o); o != "" {
			named = true
			if strings.Contains(name, o) {
				return true
			}
		}
	}
	return !named
}

// relogin signs everyone in again; accounts stay.
func relogin(ctx context.Context, p *scenario.Population, password string) error {
	users := append([]*strata.User{p.Admin}, p.Users...)
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 8)
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// auth may still answer 503 while its breaker probes a
			// database that just came back: retry as a client would.
			deadline := time.Now().Add(60 * time.Second)
			for {
				fresh, err := p.API.Login(ctx, u.Name, password)
				if err == nil {
					u.Tokens = fresh.Tokens
					return
				}
				if time.Now().After(deadline) || ctx.Err() != nil {
					errs <- err
					return
				}
				sleep(ctx, time.Second)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func runDrill(ctx context.Context, d Drill, dr *drillRun, acked *scenario.Acked) Result {
	o := dr.o
	hold := o.Hold
	if d.Hold != nil {
		hold = d.Hold(o)
	}
	res := Result{Drill: d.Name}
	var (
		mu              sync.Mutex
		injected, clear time.Duration // since the run started
		faultErr        []error
	)
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sleep(ctx, o.Warm)
		mu.Lock()
		injected = time.Since(start)
		mu.Unlock()
		fmt.Fprintf(o.Out, ">>> %s: inject\n", d.Name)
		if err := d.Inject(ctx, dr); err != nil {
			mu.Lock()
			faultErr = append(faultErr, fmt.Errorf("inject: %w", err))
			mu.Unlock()
		}
		sleep(ctx, max(0, o.Warm+hold-time.Since(start)))
		if d.Probe != nil {
			if err := d.Probe(ctx, dr); err != nil {
				mu.Lock()
				faultErr = append(faultErr, fmt.Errorf("probe: %w", err))
				mu.Unlock()
			}
		}
		if d.Clear != nil {
			if err := d.Clear(context.WithoutCancel(ctx), dr); err != nil {
				mu.Lock()
				faultErr = append(faultErr, fmt.Errorf("clear: %w", err))
				mu.Unlock()
			}
		}
		mu.Lock()
		clear = time.Since(start)
		mu.Unlock()
		fmt.Fprintf(o.Out, "<<< %s: cleared after %s\n", d.Name, (clear - injected).Round(100*time.Millisecond))
		if d.Verify != nil {
			if err := d.Verify(ctx, dr); err != nil {
				mu.Lock()
				faultErr = append(faultErr, fmt.Errorf("verify: %w", err))
				mu.Unlock()
			}
		}
	}()
	// The schedule is fixed: warm-up, the hold, the recovery window. A
	// slow clear (a database taking long to start) eats into the window.
	total := o.Warm + hold + o.After
	sum := engine.Run(ctx, engine.Config{
		Steps:      []engine.Step{{Rate: o.Rate, Duration: total, Label: "chaos"}},
		Target:     dr.pop.Target(scenario.DefaultMix, acked),
		RetryOn429: true,
		OnSecond: func(s engine.Second) {
			if o.Live {
				fmt.Fprintln(o.Out, scenario.Live(s))
			}
		},
	})
	<-done
	res.Err = errors.Join(faultErr...)
	res.DuringFault, res.Errors, res.Shed, res.Recovered, res.Recovery = measure(sum.Seconds, injected, clear)
	res.ErrorSeconds = errorSeconds(sum.Seconds, injected)

	res.Checks = scenario.Check(context.WithoutCancel(ctx), dr.pop, acked, o.Bound)
	res.Lost = lost(res.Checks)
	if d.Restore != nil {
		fmt.Fprintf(o.Out, "=== %s: restore\n", d.Name)
		if err := d.Restore(context.WithoutCancel(ctx), dr); err != nil {
			res.Err = errors.Join(res.Err, fmt.Errorf("restore: %w", err))
		}
	}
	// What the clients saw, not only how many: the first few failures.
	sum.WriteFailures(o.Out, "  ", 5)
	for _, c := range res.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(o.Out, "  %s %s: %s\n", mark, c.Name, c.Detail)
	}
	return res
}

// measure reads the per-second record: offered load while the fault was
// on, errors and 429s from the injection on, and the first clean second
// (no errors, served >= 95% of offered) at or after the clearing.
func measure(secs []engine.Second, injected, cleared time.Duration) (during, errs, shed int64, recovered bool, recovery time.Duration) {
	from := int(injected / time.Second)
	to := int(cleared / time.Second) // the second in which the fault was cleared
	for _, s := range secs {
		if s.T >= from && s.T <= to {
			during += s.Offered
		}
		if s.T >= from {
			errs += s.Failed + s.Unavailable + s.Dropped
			shed += s.Shed
		}
		if !recovered && s.T >= to && s.Offered > 0 && s.Failed+s.Unavailable+s.Dropped == 0 &&
			float64(s.Served) >= 0.95*float64(s.Offered) {
			recovered = true
			recovery = max(0, time.Duration(s.T)*time.Second-cleared)
		}
	}
	return during, errs, shed, recovered, recovery
}

// errorSeconds counts the seconds at or after the injection in which a
// request failed.
func errorSeconds(secs []engine.Second, injected time.Duration) int {
	n := 0
	for _, s := range secs {
		if s.T >= int(injected/time.Second) && s.Failed+s.Unavailable+s.Dropped > 0 {
			n++
		}
	}
	return n
}

// lost reads the counts of lost data out of the invariant checks' details
// (scenario.Check's wording): unresolved in-doubt transfers, missing
// transfers, accounts off balance, transfers absent from analytics. A
// failed check whose detail cannot be read counts as one.
func lost(checks []report.Check) int {
	n := 0
	for _, c := range checks {
		var a, b, x, y int
		var ok bool
		switch {
		case strings.HasPrefix(c.Name, "in-doubt"):
			_, err := fmt.Sscanf(c.Detail, "%d in doubt: %d had committed or committed now, %d refused, %d still unresolved", &a, &b, &x, &y)
			n, ok = n+y, err == nil
		case strings.HasPrefix(c.Name, "every acknowledged"):
			_, err := fmt.Sscanf(c.Detail, "%d acknowledged, %d missing", &a, &b)
			n, ok = n+b, err == nil
		case strings.HasPrefix(c.Name, "balances"):
			_, err := fmt.Sscanf(c.Detail, "%d accounts: %d differ", &a, &b)
			n, ok = n+b, err == nil
		case strings.HasPrefix(c.Name, "analytics"):
			_, err := fmt.Sscanf(c.Detail, "%d of %d transfers absent", &a, &b)
			n, ok = n+a, err == nil
		default:
			ok = true
		}
		if !ok && !c.OK {
			n++
		}
	}
	return n
}

func (r Result) line() string {
	return fmt.Sprintf("--- %s: %d requests during the fault, %d errors in %d s, %d shed, %d lost, %s%s",
		r.Drill, r.DuringFault, r.Errors, r.ErrorSeconds, r.Shed, r.Lost, r.recovery(), map[bool]string{true: " VIOLATION", false: ""}[r.Violation()])
}

func (r Result) recovery() string {
	if !r.Recovered {
		return "not recovered"
	}
	return fmt.Sprintf("recovered in %.1f s", r.Recovery.Seconds())
}

// Table writes the results as a Markdown table (docs/chaos.md quotes it).
func Table(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| fault | requests during fault | errors seen by clients | seconds with errors | 429s | data lost | time to recover | invariants |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		inv := "pass"
		for _, c := range r.Checks {
			if !c.OK {
				inv = "FAIL: " + c.Name
			}
		}
		if r.Err != nil {
			inv += "; drill error: " + r.Err.Error()
		}
		rec := "not recovered"
		if r.Recovered {
			rec = fmt.Sprintf("%.1f s", r.Recovery.Seconds())
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %s | %s |\n", r.Drill, r.DuringFault, r.Errors, r.ErrorSeconds, r.Shed, r.Lost, rec, inv)
	}
}

// Violations counts the failed drills.
func Violations(rs []Result) int {
	n := 0
	for _, r := range rs {
		if r.Violation() {
			n++
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// kid reads a JWT's key id (no verification: only to tell keys apart).
func kid(token string) string {
	head, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return ""
	}
	var h struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(raw, &h)
	return h.Kid
}

// CertsCommand returns an Env.Certs that runs the certs command (bin) on
// dir: every leaf re-issued, or only the named ones, with ttl as the
// workload lifetime when it is set.
func CertsCommand(bin, dir string) func(ctx context.Context, ttl time.Duration, only ...string) error {
	return func(ctx context.Context, ttl time.Duration, only ...string) error {
		args := []string{"-dir", dir}
		if ttl > 0 {
			args = append(args, "-workload-ttl", ttl.String())
		}
		if len(only) > 0 {
			args = append(args, "-only", strings.Join(only, ","))
		}
		if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("certs: %v: %s", err, out)
		}
		return nil
	}
}
