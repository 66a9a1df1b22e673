// Command strata-load drives Strata from outside, as its users do, and
// shows how it degrades.
//
//	strata-load probe        readiness of every service over TLS and mTLS
//	strata-load list         the scenarios
//	strata-load SCENARIO     baseline | ramp | overload | flood | breaker | cache | retry-storm | hot-account
//	strata-load chaos        fault drills on the real processes under load (docs/chaos.md)
//	strata-load smoke        one end-to-end pass: sign-in, transfer and replay, activity, revoke, 429s, trace, metrics
//
// A scenario signs users in through the OIDC code + PKCE flow (users seeded
// with `auth seed -users N`), measures the system's capacity unless
// -capacity is given, runs its schedule of arrival rates with a live line
// per second, checks the invariants (no transfer lost or duplicated, money
// conserved, analytics caught up) and writes an HTML report under -out.
// It exits non-zero when an invariant or a scenario's goal fails.
package main

import (
	"context"
	"crypto/tls"

	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/libs/resilience"
	"github.com/strata-ref/strata/loadtest/internal/scenario"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

func main() {
	ctx, stop := signalContext()
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-load:", err)
		os.Exit(1)
	}
}

type options struct {
	certs, out, password, stackScript string
	only                              string
	users                             int
	duration, bound                   time.Duration
	capacity, maxRate                 float64
	connsPerHost, maxInFlight         int
	throttle                          bool
	endpoints                         strata.Endpoints
	services                          []scenario.Service
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("strata-load", flag.ContinueOnError)
	var o options
	root := strata.RepoRoot()
	def := os.Getenv("STRATA_CERTS_DIR")
	if def == "" {
		def = filepath.Join(root, ".stack", "certs")
	}
	fs.StringVar(&o.certs, "certs", def, "directory with ca.pem and loadtest.pem/loadtest-key.pem")
	fs.StringVar(&o.out, "out", filepath.Join(root, "out"), "directory for HTML reports")
	fs.StringVar(&o.password, "password", strata.EnvOr("STRATA_DEMO_PASSWORD", "strata-demo"), "password of the admin and load users")
	fs.StringVar(&o.stackScript, "stack", filepath.Join(root, "deploy/native/stack.sh"), "the native stack script (faults)")
	fs.StringVar(&o.only, "only", "", "send the scenario's traffic to one service: ledger, analytics or session (capacity measured for it alone)")
	fs.IntVar(&o.users, "users", 20, "load users (seeded as load-000001...)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "length of the scenario's schedule")
	fs.DurationVar(&o.bound, "bound", 60*time.Second, "eventual-consistency bound for analytics (the relay backs off up to 30 s)")
	fs.Float64Var(&o.capacity, "capacity", 0, "requests/s the system serves cleanly (0: measure it first)")
	fs.Float64Var(&o.maxRate, "max-rate", 3000, "ceiling of the capacity search")
	fs.IntVar(&o.connsPerHost, "conns-per-host", 8, "the generator's connections to each service (HTTP/2, up to the services' 100 streams each)")
	fs.BoolVar(&o.throttle, "throttle", false, "clients throttle themselves adaptively per service while it sheds (K=2, as the services' outbound clients); refusals are counted as local, apart from 429s")
	fs.IntVar(&o.maxInFlight, "max-inflight", 4096, "the generator's requests in flight; arrivals past it are counted as dropped")
	o.endpoints = strata.Native
	// Defaults: the ports of make run, or of every replica when
	// STRATA_SERVICE_REPLICAS and STRATA_SERVICE_PORT_BASE are set (ha.env).
	fs.StringVar(&o.endpoints.Auth, "auth", o.endpoints.Auth, "auth public URL (the issuer)")
	fs.StringVar(&o.endpoints.Ledger, "ledger", o.endpoints.Ledger, "ledger public URL, or its replicas' comma-separated")
	fs.StringVar(&o.endpoints.Analytics, "analytics", o.endpoints.Analytics, "analytics public URL, or its replicas' comma-separated")
	fs.StringVar(&o.endpoints.Session, "session", o.endpoints.Session, "session public URL, or its replicas' comma-separated")
	internal := fs.String("internal", "", "internal listeners as name=url,... (a name repeated for each replica; default: native ports)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	name, rest := fs.Arg(0), fs.Args()[min(1, fs.NArg()):]
	switch name {
	case "chaos", "smoke": // their own flags follow the command
	default:
		// Flags may follow the command too (strata-load ramp -duration 30s):
		// flag stops at the first argument, so parse what follows it.
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments after %s: %q", name, fs.Args())
		}
	}
	o.services = scenario.NativeServices
	if *internal != "" {
		o.services = nil
		for _, kv := range strings.Split(*internal, ",") {
			svc, url, _ := strings.Cut(kv, "=")
			o.services = append(o.services, scenario.Service{Name: svc, Internal: url})
		}
		o.services = scenario.NameReplicas(o.services)
	}
	if name == "list" || name == "" { // needs no certificates: works before make certs
		names := make([]string, 0, len(scenario.Specs))
		for n := range scenario.Specs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "%-12s %s\n", n, scenario.Specs[n].Doc)
		}
		return nil
	}
	spec, isScenario := scenario.Specs[name]
	if !isScenario && name != "probe" && name != "chaos" && name != "smoke" {
		return fmt.Errorf("unknown scenario %q (strata-load list)", name)
	}
	src, err := mtls.NewSource(mtls.Files{CA: filepath.Join(o.certs, "ca.pem"),
		Cert: filepath.Join(o.certs, "loadtest.pem"), Key: filepath.Join(o.certs, "loadtest-key.pem")})
	if err != nil {
		return fmt.Errorf("%w (make certs creates them)", err)
	}
	switch name {
	case "probe":
		return probe(ctx, src, o, stdout)
	case "chaos":
		return runChaos(ctx, rest, src, o, stdout)
	case "smoke":
		return runSmoke(ctx, rest, src, o, stdout)
	}
	if o.only != "" {
		if spec, err = scenario.Only(spec, o.only); err != nil {
			return err
		}
	}
	return runScenario(ctx, spec, src, o, stdout)
}

func runScenario(ctx context.Context, spec scenario.Spec, src *mtls.Source, o options, w io.Writer) error {
	env := &scenario.Env{Stack: func(ctx context.Context, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "bash", append([]string{o.stackScript}, args...)...).Output()
		return string(out), err
	}}
	out, err := scenario.Execute(ctx, spec, scenario.Options{Endpoints: o.endpoints, Services: o.services, TLS: src, Env: env,
		Password: o.password, Users: o.users, Duration: o.duration, Capacity: o.capacity, MaxRate: o.maxRate,
		Bound: o.bound, ReportDir: o.out, Out: w, ConnsPerHost: o.connsPerHost, MaxInFlight: o.maxInFlight, Throttle: o.throttle})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nreport: %s\n", out.Report)
	if n := out.Failed(); n > 0 {
		return fmt.Errorf("%d invariant(s) or goal(s) failed", n)
	}
	return nil
}

func probe(ctx context.Context, src *mtls.Source, o options, stdout io.Writer) error {
	public := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: src.Roots()}}}
	urls := map[string]string{"auth": o.endpoints.Auth, "ledger": o.endpoints.Ledger, "analytics": o.endpoints.Analytics, "session": o.endpoints.Session}
	failed := 0
	for _, s := range o.services {
		internal := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: src.ClientConfig(mtls.ID(s.Name))}}
		// A replica's public URL: its place in the service's list.
		list := resilience.SplitURLs(urls[s.Name])
		i := 0
		if s.Replica != "" {
			i = int(s.Replica[0] - 'a')
		}
		pubURL := publicOf(s.Internal) // auth lists only the issuer (replica a)
		if i < len(list) {
			pubURL = list[i]
		}
		pub := check(ctx, public, pubURL+"/readyz")
		in := check(ctx, internal, s.Internal+"/readyz")
		if !strings.HasPrefix(pub, "ready") || !strings.HasPrefix(in, "ready") {
			failed++
		}
		fmt.Fprintf(stdout, "%-12s public %-26s %-16s internal (mTLS as loadtest) %-24s %s\n", s.Label(), pubURL, pub, s.Internal, in)
	}
	if failed > 0 {
		return fmt.Errorf("%d service(s) not ready", failed)
	}
	return nil
}

// publicOf is the public listener beside an internal one (port - 1000).
func publicOf(internal string) string {
	u, err := url.Parse(internal)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return ""
	}
	return "https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(port-1000))
}

func check(ctx context.Context, c *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "bad URL"
	}
	resp, err := c.Do(req)
	if err != nil {
		return "unreachable"
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("not ready (%d)", resp.StatusCode)
	}
	if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		return "ready, not TLS 1.3"
	}
	return "ready, TLS 1.3"
}
