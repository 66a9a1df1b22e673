package deploycheck

import (
	"context"
	"fmt"
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
)

// loadCompose loads docker-compose.yml exactly as `docker compose` does
// (interpolation, anchors and merges, normalization, validation against the
// compose specification), with every profile enabled and an empty
// environment so that defaults in ${VAR:-default} apply.
func loadCompose(t testing.TB) *types.Project {
	t.Helper()
	r := root(t)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(r, "docker-compose.yml")},
		cli.WithWorkingDirectory(r), cli.WithEnv([]string{}), cli.WithProfiles([]string{"*"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
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
			if want := "deploy/docker/" + name + ".Dockerfile"; s.Build.Dockerfile != want {
				t.Errorf("%s: built from %q, want %q", name, s.Build.Dockerfile, want)
			}
			if s.Image != "strata/"+name+":dev" {
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
	m := map[string][]string{"postgres": {"5432"}, "redis": {"6379"}, "cassandra": {"9042"},
		"otel-collector": {"4317", "4318"}, "jaeger": {"4317", "16686"}, "prometheus": {"9090"}, "grafana": {"3000"}}
	for _, svc := range Services {
		m[svc.Name] = []string{strconv.Itoa(svc.Port), strconv.Itoa(svc.Port + 1000)}
	}
	return m
}

func TestComposePortsAndAddresses(t *testing.T) {
	p := loadCompose(t)
	ports := listening(t, p)
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
		// Every address a service dials names a compose service and a port it
		// listens on.
		for k, v := range s.Environment {
			if v == nil || *v == "" {
				continue
			}
			for _, hp := range addresses(*v) {
				host, port, _ := net.SplitHostPort(hp)
				if host == "0.0.0.0" || host == "localhost" {
					continue
				}
				if !slices.Contains(ports[host], port) {
					t.Errorf("%s: %s=%q dials %s, which no compose service listens on", svc.Name, k, *v, hp)
				}
			}
		}
		if pg := env("STRATA_PG_URL"); pg != "" {
			u, err := url.Parse(pg)
			if err != nil || u.User.Username() != svc.Name || strings.TrimPrefix(u.Path, "/") != svc.Name || u.Query().Get("sslmode") != "verify-full" {
				t.Errorf("%s: STRATA_PG_URL %q must be postgres://%s@postgres:5432/%s?sslmode=verify-full (role = certificate CN = database)", svc.Name, pg, svc.Name, svc.Name)
			}
			if _, pw := u.User.Password(); pw {
				t.Errorf("%s: STRATA_PG_URL carries a password", svc.Name)
			}
		}
	}
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

var hostPort = regexp.MustCompile(`^[a-z][a-z0-9-]*:\d+$`)

// addresses finds host:port pairs in a setting: a URL's host, or the value
// itself.
func addresses(v string) []string {
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
// in the directory it mounts, and that each container mounts only its own.
func TestComposeCertificatePaths(t *testing.T) {
	p := loadCompose(t)
	out := t.TempDir()
	if err := Lay(t.TempDir(), out, LayoutOptions{WorkloadTTL: time.Hour, StoreTTL: time.Hour, CATTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	certRef := regexp.MustCompile(regexp.QuoteMeta(CertsMount) + `/[A-Za-z0-9._-]+`)
	for name, s := range p.Services {
		var sub string
		for _, v := range s.Volumes {
			if v.Source != "certs" {
				continue
			}
			if name == "certs" {
				continue
			}
			if v.Target != CertsMount || !v.ReadOnly || v.Volume == nil || v.Volume.Subpath != name {
				t.Errorf("%s: mounts the certs volume as %+v; want its own subpath %q read-only at %s", name, v, name, CertsMount)
			}
			sub = v.Volume.Subpath
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
	var mem, memRes int64
	var cpu float64
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
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
	for _, store := range []string{"postgres", "redis", "cassandra"} {
		s := p.Services[store]
		if _, ok := s.Networks["stores"]; len(s.Ports) > 0 || len(s.Networks) != 1 || !ok {
			t.Errorf("%s: must be on the internal stores network only, unpublished (ports %v, networks %v)", store, s.Ports, keys(s.Networks))
		}
	}
	if n := p.Networks["stores"]; !n.Internal {
		t.Errorf("the stores network must be internal")
	}
}
