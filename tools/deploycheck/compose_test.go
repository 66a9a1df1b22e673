package deploycheck

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/strata-ref/strata/libs/pki"
)

// loadCompose loads docker-compose.yml exactly as `docker compose` does
// (interpolation, anchors and merges, normalization, validation against the
// compose specification), with every profile enabled and an empty
// environment so that defaults in ${VAR:-default} apply.
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	return loadComposeWith(t, nil)
}

// loadComposeHA loads it as the profile ha runs it: with the interpolation
// values of deploy/compose/ha.env.
func loadComposeHA(t testing.TB) *types.Project {
	t.Helper()
	return loadComposeWith(t, []string{filepath.Join(root(t), "deploy/compose/ha.env")})
}

func loadComposeWith(t testing.TB, envFiles []string) *types.Project {
	t.Helper()
	r := root(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(r, "docker-compose.yml")},
		cli.WithWorkingDirectory(r), cli.WithEnv([]string{}), cli.WithEnvFiles(envFiles...), cli.WithDotEnv,
		cli.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml (env files %v): %v", envFiles, err)
	}
	return p
}

// replicaOf is the service whose identity a replica of the profile ha
// shares (its label org.strata.replica-of), or the service's own name.
func replicaOf(p *types.Project, name string) string {
	if of := p.Services[name].Labels["org.strata.replica-of"]; of != "" {
		return of
	}
	return name
}

// haReplicas are the containers the profile ha adds: replicas of the stores
// and a second replica of every service.
var haReplicas = map[string]string{
	"postgres-replica": "postgres", "redis-replica": "redis",
	"sentinel-1": "redis", "sentinel-2": "redis", "sentinel-3": "redis",
	"cassandra2": "cassandra", "cassandra3": "cassandra",
	"session-b": "session", "auth-b": "auth", "analytics-b": "analytics", "ledger-b": "ledger",
}

// oneShot are the jobs that run to completion: they have no healthcheck;
// whoever waits for them waits for service_completed_successfully.
var oneShot = map[string]bool{"certs": true, "loadtest": true}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	want := []string{"certs", "postgres", "redis", "cassandra", "auth", "ledger", "analytics", "session",
		"otel-collector", "jaeger", "prometheus", "grafana", "loadtest"}
	if missing := diff(want, p.ServiceNames()); len(missing) > 0 {
		t.Errorf("docker-compose.yml lacks services %v", missing)
	}
	if s, err := p.GetService("loadtest"); err != nil || !slices.Contains(s.Profiles, "loadtest") {
		t.Errorf("loadtest must be in the loadtest profile (err %v)", err)
	}
	for name, of := range haReplicas {
		s, err := p.GetService(name)
		if err != nil {
			t.Errorf("profile ha lacks %s (a replica of %s)", name, of)
			continue
		}
		if !slices.Equal(s.Profiles, []string{"ha"}) {
			t.Errorf("%s must be in the ha profile only, got %v", name, s.Profiles)
		}
		if replicaOf(p, name) != of {
			t.Errorf("%s: label org.strata.replica-of = %q, want %q", name, replicaOf(p, name), of)
		}
		if name != "postgres-replica" && !slices.Contains(pki.Aliases[of], name) {
			t.Errorf("%s shares the %s certificate, whose leaf does not name it (libs/pki Aliases)", name, of)
		}
	}
	for name, s := range p.Services {
		if slices.Contains(s.Profiles, "ha") && haReplicas[name] == "" {
			t.Errorf("%s is in the ha profile but not a known replica", name)
		}
	}
}

// TestComposeHAProfile: with ha.env, the services reach every replica of
// each dependency, and the stores run as replicated sets.
func TestComposeHAProfile(t *testing.T) {
	p := loadComposeHA(t)
	env := func(svc, k string) string {
		if v := p.Services[svc].Environment[k]; v != nil {
			return *v
		}
		return ""
	}
	for _, svc := range Services {
		for _, pair := range [][2]string{{svc.Name, svc.Name + "-b"}} {
			for _, n := range pair {
				if _, ok := p.Services[n]; !ok {
					t.Errorf("profile ha lacks %s", n)
				}
			}
		}
		// Both replicas run with the same settings (any replica serves any request).
		a, b := p.Services[svc.Name].Environment, p.Services[svc.Name+"-b"].Environment
		if !slices.Equal(slices.Sorted(maps.Keys(a)), slices.Sorted(maps.Keys(b))) {
			t.Errorf("%s and %s-b read different settings", svc.Name, svc.Name)
		}
		for k, v := range a {
			if w := b[k]; v == nil || w == nil || *v != *w {
				t.Errorf("%s-b: %s differs from %s", svc.Name, k, svc.Name)
			}
		}
	}
	for svc, k := range map[string]string{"ledger": "STRATA_SESSION_URL", "auth": "STRATA_SESSION_URL"} {
		if got := env(svc, k); got != "https://session:9444,https://session-b:9444" {
			t.Errorf("%s: %s = %q, want both session replicas", svc, k, got)
		}
	}
	if got := env("ledger", "STRATA_ANALYTICS_URL"); !strings.Contains(got, "analytics-b:9443") {
		t.Errorf("ledger: STRATA_ANALYTICS_URL = %q, want both analytics replicas", got)
	}
	for _, svc := range []string{"ledger", "analytics", "session"} {
		if got := env(svc, "STRATA_AUTH_JWKS_URL"); !strings.Contains(got, "auth-b:9441") {
			t.Errorf("%s: STRATA_AUTH_JWKS_URL = %q, want both auth replicas", svc, got)
		}
	}
	for _, svc := range []string{"auth", "ledger", "session"} {
		if got := env(svc, "STRATA_PG_URL"); !strings.Contains(got, "@postgres:5432,postgres-replica:5432/") || !strings.Contains(got, "target_session_attrs=read-write") {
			t.Errorf("%s: STRATA_PG_URL = %q, want both Postgres nodes and target_session_attrs=read-write", svc, got)
		}
	}
	if got := env("session", "STRATA_REDIS_SENTINELS"); got != "sentinel-1:26379,sentinel-2:26379,sentinel-3:26379" || env("session", "STRATA_REDIS_MASTER_NAME") == "" {
		t.Errorf("session: STRATA_REDIS_SENTINELS = %q, want the three Sentinels and a master name", got)
	}
	if got := env("analytics", "STRATA_CASSANDRA_HOSTS"); got != "cassandra,cassandra2,cassandra3" {
		t.Errorf("analytics: STRATA_CASSANDRA_HOSTS = %q, want the ring of three", got)
	}
	if got := env("analytics", "STRATA_CASSANDRA_REPLICATION"); !strings.Contains(got, "'replication_factor': 3") {
		t.Errorf("analytics: STRATA_CASSANDRA_REPLICATION = %q, want replication factor 3", got)
	}
	// Cassandra nodes join one at a time, seeded by the first.
	if _, ok := p.Services["cassandra3"].DependsOn["cassandra2"]; !ok {
		t.Errorf("cassandra3 must wait for cassandra2 (one node joins at a time)")
	}
	for _, n := range []string{"cassandra2", "cassandra3"} {
		if env(n, "CASSANDRA_SEEDS") != "cassandra" {
			t.Errorf("%s: CASSANDRA_SEEDS must be cassandra", n)
		}
	}
	redis := strings.Join(p.Services["redis-replica"].Command, " ")
	if !strings.Contains(redis, "--replicaof redis 6379") || !strings.Contains(redis, "--tls-replication yes") || !strings.Contains(redis, "--port 0") {
		t.Errorf("redis-replica must replicate redis over TLS only: %s", redis)
	}
	sentinel := readTree(t, filepath.Join(root(t), "deploy/compose/redis/sentinel.conf"))
	for _, want := range []string{"port 0", "tls-auth-clients yes", "tls-replication yes", "sentinel monitor strata redis 6379 2"} {
		if len(sentinel) != 1 || !strings.Contains(sentinel[0], want) {
			t.Errorf("sentinel.conf lacks %q", want)
		}
	}
	if got := env("session", "STRATA_REDIS_MASTER_NAME"); len(sentinel) == 1 && !strings.Contains(sentinel[0], "sentinel monitor "+got+" ") {
		t.Errorf("session asks for master %q, which the Sentinels do not monitor", got)
	}
	hba := readTree(t, filepath.Join(root(t), "deploy/compose/postgres/pg_hba.conf"))
	if len(hba) != 1 || !regexp.MustCompile(`(?m)^hostssl\s+replication\s+replicator\s+samenet\s+cert`).MatchString(hba[0]) {
		t.Errorf("pg_hba.conf must admit streaming replication for the replicator role by certificate only")
	}
	checkDials(t, p)
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if oneShot[name] {
			if s.Restart != "no" {
				t.Errorf("%s: a one-shot job must not restart (restart: %q)", name, s.Restart)
			}
			continue
		}
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2 {
			t.Errorf("%s: no healthcheck", name)
			continue
		}
		if s.HealthCheck.Interval == nil || s.HealthCheck.Timeout == nil || s.HealthCheck.Retries == nil {
			t.Errorf("%s: healthcheck needs interval, timeout and retries", name)
		}
		if slices.ContainsFunc([]string(s.HealthCheck.Test), func(a string) bool { return strings.Contains(a, "curl") }) {
			t.Errorf("%s: healthcheck uses curl", name)
		}
	}
	for _, svc := range Services {
		s := p.Services[svc.Name]
		want := []string{"CMD", "/usr/local/bin/" + svc.Name, "healthcheck"}
		if s.HealthCheck == nil || !slices.Equal([]string(s.HealthCheck.Test), want) {
			t.Errorf("%s: healthcheck must run the binary itself: want %q", svc.Name, want)
		}
	}
	// Everyone waits for what they need to be healthy, not merely started.
	for name, s := range p.Services {
		for dep, d := range s.DependsOn {
			want := types.ServiceConditionHealthy
			switch {
			case oneShot[dep]:
				want = types.ServiceConditionCompletedSuccessfully
			case dep == "otel-collector":
				// Spans are exported in the background and retried; the
				// collector's image cannot probe its own pipeline.
				want = types.ServiceConditionStarted
			}
			if d.Condition != want {
				t.Errorf("%s depends on %s with %q, want %q", name, dep, d.Condition, want)
			}
		}
	}
	for _, svc := range Services {
		if d, ok := p.Services[svc.Name].DependsOn["certs"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s must wait for the certs job", svc.Name)
		}
	}
}

// pinned: an exact release (1.2.3, optionally with a variant suffix) or a digest.
var pinned = regexp.MustCompile(`^[a-z0-9./_-]+(:v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$`)

func TestComposeImagesPinned(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if s.Build != nil {
			// Built here from deploy/docker; the tag names the local build.
			of := replicaOf(p, name)
			if want := "deploy/docker/" + of + ".Dockerfile"; s.Build.Dockerfile != want {
				t.Errorf("%s: built from %q, want %q", name, s.Build.Dockerfile, want)
			}
			if s.Image != "strata/"+of+":dev" {
				t.Errorf("%s: locally built image should be tagged strata/%s:dev, got %q", name, name, s.Image)
			}
			continue
		}
		if !pinned.MatchString(s.Image) {
			t.Errorf("%s: image %q is not pinned to an exact version", name, s.Image)
		}
	}
}

// TestComposeEnvMatchesConfigVars: every variable a service reads (its
// `config-vars`) is set in compose, and compose sets nothing the service
// does not read (a typo or a stale variable is silently ignored otherwise).
func TestComposeEnvMatchesConfigVars(t *testing.T) {
	p := loadCompose(t)
	for _, svc := range Services {
		t.Run(svc.Name, func(t *testing.T) {
			reads := configVars(t, svc.Name)
			set := keys(p.Services[svc.Name].Environment)
			if m := diff(reads, set); len(m) > 0 {
				t.Errorf("%s reads %v, not set in docker-compose.yml", svc.Name, m)
			}
			if m := diff(set, reads); len(m) > 0 {
				t.Errorf("docker-compose.yml sets %v for %s, which it does not read", m, svc.Name)
			}
		})
	}
}

// listening is what each compose service listens on inside the network.
func listening(t testing.TB, p *types.Project) map[string][]string {
	m := map[string][]string{"postgres": {"5432"}, "redis": {"6379", "26379"}, "cassandra": {"9042"},
		"otel-collector": {"4317", "4318"}, "jaeger": {"4317", "16686"}, "prometheus": {"9090"}, "grafana": {"3000"}}
	for _, svc := range Services {
		m[svc.Name] = []string{strconv.Itoa(svc.Port), strconv.Itoa(svc.Port + 1000)}
	}
	return m
}

func TestComposePortsAndAddresses(t *testing.T) {
	p := loadCompose(t)
	for _, svc := range Services {
		s := p.Services[svc.Name]
		env := func(k string) string {
			if v := s.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		if got, want := env("STRATA_PUBLIC_ADDR"), fmt.Sprintf("0.0.0.0:%d", svc.Port); got != want {
			t.Errorf("%s: STRATA_PUBLIC_ADDR = %q, want %q", svc.Name, got, want)
		}
		if got, want := env("STRATA_INTERNAL_ADDR"), fmt.Sprintf("0.0.0.0:%d", svc.Port+1000); got != want {
			t.Errorf("%s: STRATA_INTERNAL_ADDR = %q, want %q", svc.Name, got, want)
		}
		// Only the public port is published, on loopback.
		if len(s.Ports) != 1 || s.Ports[0].Target != uint32(svc.Port) || s.Ports[0].Published != strconv.Itoa(svc.Port) || s.Ports[0].HostIP != "127.0.0.1" {
			t.Errorf("%s: ports = %+v, want only 127.0.0.1:%d:%d", svc.Name, s.Ports, svc.Port, svc.Port)
		}
		if pg := env("STRATA_PG_URL"); pg != "" {
			u, err := url.Parse(pg)
			if err == nil && u.Host != "postgres:5432" {
				err = fmt.Errorf("host %q", u.Host)
			}
			if err != nil || u.User.Username() != svc.Name || strings.TrimPrefix(u.Path, "/") != svc.Name || u.Query().Get("sslmode") != "verify-full" {
				t.Errorf("%s: STRATA_PG_URL %q must be postgres://%s@postgres:5432/%s?sslmode=verify-full (role = certificate CN = database)", svc.Name, pg, svc.Name, svc.Name)
			}
			if _, pw := u.User.Password(); pw {
				t.Errorf("%s: STRATA_PG_URL carries a password", svc.Name)
			}
		}
	}
	checkDials(t, p)
	if s := p.Services["analytics"]; s.Environment["STRATA_CASSANDRA_HOSTS"] == nil || *s.Environment["STRATA_CASSANDRA_HOSTS"] != "cassandra" ||
		s.Environment["STRATA_CASSANDRA_PORT"] == nil || *s.Environment["STRATA_CASSANDRA_PORT"] != "9042" {
		t.Errorf("analytics must reach cassandra:9042")
	}
	// The stores speak TLS only, on the ports the services dial.
	redis := strings.Join(p.Services["redis"].Command, " ")
	if !strings.Contains(redis, "--port 0") || !strings.Contains(redis, "--tls-port 6379") || !strings.Contains(redis, "--tls-auth-clients yes") {
		t.Errorf("redis must listen on TLS 6379 only with client certificates: %s", redis)
	}
	pg := strings.Join(p.Services["postgres"].Command, " ")
	for _, want := range []string{"ssl=on", "hba_file=/etc/strata/pg_hba.conf"} {
		if !strings.Contains(pg, want) {
			t.Errorf("postgres command lacks %s", want)
		}
	}
	// The OTLP endpoint is the collector's gRPC receiver.
	for _, svc := range Services {
		if v := p.Services[svc.Name].Environment["OTEL_EXPORTER_OTLP_ENDPOINT"]; v == nil || *v != "http://otel-collector:4317" {
			t.Errorf("%s: OTEL_EXPORTER_OTLP_ENDPOINT must be http://otel-collector:4317", svc.Name)
		}
	}
}

// checkDials: every address a service dials names a compose service and a
// port it listens on.
func checkDials(t *testing.T, p *types.Project) {
	t.Helper()
	ports := listening(t, p)
	for name, s := range p.Services {
		if _, ok := ports[replicaOf(p, name)]; !ok || replicaOf(p, name) == "postgres" {
			continue
		}
		for k, v := range s.Environment {
			if v == nil || *v == "" {
				continue
			}
			for _, hp := range addresses(*v) {
				host, port, _ := net.SplitHostPort(hp)
				if host == "0.0.0.0" || host == "localhost" {
					continue
				}
				if _, exists := p.Services[host]; !exists || !slices.Contains(ports[replicaOf(p, host)], port) {
					t.Errorf("%s: %s=%q dials %s, which no compose service listens on", name, k, *v, hp)
				}
			}
		}
	}
}

var hostPort = regexp.MustCompile(`^[a-z][a-z0-9-]*:\d+$`)

// addresses finds host:port pairs in a setting: a URL's host (each host of
// a multi-host Postgres URL), or the value itself; a comma-separated list
// is each of its items.
func addresses(v string) []string {
	if pg := regexp.MustCompile(`^postgres://[^@/]+@([^/]+)/`).FindStringSubmatch(v); pg != nil {
		return strings.Split(pg[1], ",")
	}
	if strings.Contains(v, ",") {
		var out []string
		for _, item := range strings.Split(v, ",") {
			out = append(out, addresses(item)...)
		}
		return out
	}
	if u, err := url.Parse(v); err == nil && u.Host != "" && u.Scheme != "" {
		h := u.Host
		if u.Port() == "" {
			return nil
		}
		return []string{h}
	}
	if hostPort.MatchString(v) {
		return []string{v}
	}
	return nil
}

// TestComposeCertificatePaths lays the certificates out as the certs job
// does and checks that every certificate path a container is given exists
// in the directory it mounts, and that each container mounts only its own
// volume, which the certs job fills.
func TestComposeCertificatePaths(t *testing.T) {
	p := loadCompose(t)
	out := t.TempDir()
	if err := Lay(t.TempDir(), out, LayoutOptions{WorkloadTTL: time.Hour, StoreTTL: time.Hour, CATTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	certRef := regexp.MustCompile(regexp.QuoteMeta(CertsMount) + `/[A-Za-z0-9._-]+`)
	// The certs job fills every consumer's volume, mounted at CertsMount/<name>.
	filled := map[string]bool{}
	for _, v := range p.Services["certs"].Volumes {
		if strings.HasPrefix(v.Source, "certs-") {
			own := strings.TrimPrefix(v.Source, "certs-")
			if v.Target != CertsMount+"/"+own || v.ReadOnly {
				t.Errorf("certs: mounts %s as %+v; want it writable at %s/%s", v.Source, v, CertsMount, own)
			}
			filled[own] = true
		}
	}
	for _, c := range Consumers {
		if !filled[c.Name] {
			t.Errorf("certs: does not fill the volume certs-%s of consumer %s", c.Name, c.Name)
		}
	}
	for name, s := range p.Services {
		var sub string
		for _, v := range s.Volumes {
			if !strings.HasPrefix(v.Source, "certs") || name == "certs" {
				continue
			}
			own := name
			if name != "postgres-replica" {
				own = replicaOf(p, name) // a replica shares its primary's identity
			}
			if v.Source != "certs-"+own || v.Target != CertsMount || !v.ReadOnly {
				t.Errorf("%s: mounts %s as %+v; want its own volume certs-%s read-only at %s", name, v.Source, v, own, CertsMount)
			}
			sub = strings.TrimPrefix(v.Source, "certs-")
		}
		// Everything that names a certificate file: environment, command,
		// healthcheck and the config files bind-mounted from the repository.
		var text []string
		for _, v := range s.Environment {
			if v != nil {
				text = append(text, *v)
			}
		}
		text = append(text, s.Command...)
		text = append(text, s.Entrypoint...)
		if s.HealthCheck != nil {
			text = append(text, s.HealthCheck.Test...)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				text = append(text, readTree(t, v.Source)...)
			}
		}
		for _, ref := range certRef.FindAllString(strings.Join(text, "\n"), -1) {
			if name == "certs" {
				continue
			}
			if sub == "" {
				t.Errorf("%s refers to %s but does not mount the certs volume", name, ref)
				continue
			}
			if _, err := os.Stat(filepath.Join(out, sub, filepath.Base(ref))); err != nil {
				t.Errorf("%s refers to %s, which the certs job does not write for %s", name, ref, sub)
			}
		}
	}
	for _, svc := range Services {
		env := p.Services[svc.Name].Environment
		for k, want := range map[string]string{"STRATA_TLS_CA": "ca.pem", "STRATA_TLS_CERT": svc.Name + ".pem", "STRATA_TLS_KEY": svc.Name + "-key.pem"} {
			if env[k] == nil || *env[k] != CertsMount+"/"+want {
				t.Errorf("%s: %s must be %s/%s", svc.Name, k, CertsMount, want)
			}
		}
	}
}

// readTree returns the text of a bind-mounted file, or of every file in a
// bind-mounted directory.
func readTree(t testing.TB, path string) []string {
	var out []string
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			out = append(out, string(b))
		}
		return nil
	})
	return out
}

// TestComposeFootprint: every container has limits, and the sum fits a
// 4 CPU / 8 GB laptop with room for the OS and Docker itself.
func TestComposeFootprint(t *testing.T) {
	p := loadCompose(t)
	const maxMemory = 6 << 30
	var mem, memRes, memHA int64
	var cpu float64
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if slices.Contains(s.Profiles, "ha") {
			if l := s.Deploy; l != nil && l.Resources.Limits != nil {
				memHA += int64(l.Resources.Limits.MemoryBytes)
			}
			continue
		}
		if s.Deploy == nil || s.Deploy.Resources.Limits == nil || s.Deploy.Resources.Limits.MemoryBytes == 0 || s.Deploy.Resources.Limits.NanoCPUs == 0 {
			t.Errorf("%s: no cpu and memory limits", name)
			continue
		}
		l := s.Deploy.Resources.Limits
		if l.NanoCPUs > 2 {
			t.Errorf("%s: cpus limit %.2f is more than half the laptop", name, l.NanoCPUs)
		}
		mem += int64(l.MemoryBytes)
		cpu += float64(l.NanoCPUs)
		if r := s.Deploy.Resources.Reservations; r != nil {
			memRes += int64(r.MemoryBytes)
		}
		t.Logf("%-15s cpus %-5.2f memory %5d MiB", name, l.NanoCPUs, int64(l.MemoryBytes)>>20)
	}
	t.Logf("sum of limits: cpus %.2f, memory %d MiB; reservations: memory %d MiB", cpu, mem>>20, memRes>>20)
	if mem > maxMemory {
		t.Errorf("memory limits add up to %d MiB, more than %d MiB", mem>>20, maxMemory>>20)
	}
	// The profile ha doubles the services and triples Cassandra: a bigger
	// machine, stated in docs/high-availability.md.
	const maxMemoryHA = 12 << 30
	t.Logf("profile ha adds memory %d MiB: %d MiB in all", memHA>>20, (mem+memHA)>>20)
	if mem+memHA > maxMemoryHA {
		t.Errorf("with the profile ha, memory limits add up to %d MiB, more than %d MiB", (mem+memHA)>>20, maxMemoryHA>>20)
	}
}

func TestComposeHardening(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if s.Privileged {
			t.Errorf("%s is privileged", name)
		}
		if s.Build == nil {
			continue
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") || !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: want read_only, cap_drop ALL and no-new-privileges", name)
		}
	}
	for _, store := range []string{"postgres", "redis", "cassandra", "postgres-replica", "redis-replica", "sentinel-1", "sentinel-2", "sentinel-3", "cassandra2", "cassandra3"} {
		s := p.Services[store]
		if _, ok := s.Networks["stores"]; len(s.Ports) > 0 || len(s.Networks) != 1 || !ok {
			t.Errorf("%s: must be on the internal stores network only, unpublished (ports %v, networks %v)", store, s.Ports, keys(s.Networks))
		}
	}
	if n := p.Networks["stores"]; !n.Internal {
		t.Errorf("the stores network must be internal")
	}
}
