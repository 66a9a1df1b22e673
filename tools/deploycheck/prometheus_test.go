package deploycheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// promtool finds promtool (Debian's prometheus package ships it), installing
// the package when it is missing and this runs as root, as the native stack
// installs its servers.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Geteuid() != 0 {
		t.Fatal("promtool not found: apt-get install prometheus (Debian ships promtool in it)")
	}
	t.Log("promtool not found; installing Debian's prometheus package")
	install := exec.Command("bash", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("apt-get install prometheus: %v\n%s", err, out)
	}
	// The package starts its own Prometheus on :9090; this test only needs the tool.
	_ = exec.Command("bash", "-c", "systemctl disable --now prometheus 2>/dev/null || service prometheus stop 2>/dev/null || pkill -x prometheus; true").Run()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPromtoolCheckConfig runs `promtool check config` (which also checks the
// rule files) on deploy/prometheus, with the certificate paths pointing at a
// layout the certs job wrote, so the files it names must exist there.
func TestPromtoolCheckConfig(t *testing.T) {
	tool := promtool(t)
	r := root(t)
	certs := t.TempDir()
	if err := Lay(t.TempDir(), certs, LayoutOptions{WorkloadTTL: time.Hour, StoreTTL: time.Hour, CATTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"prometheus.yml", "rules.yml"} {
		b, err := os.ReadFile(filepath.Join(r, "deploy/prometheus", f))
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), CertsMount+"/", filepath.Join(certs, "prometheus")+"/")
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(tool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("promtool check config: %v", err)
	}
}

type scrapeConfig struct {
	JobName   string `json:"job_name"`
	Scheme    string `json:"scheme"`
	TLSConfig struct {
		CAFile     string `json:"ca_file"`
		CertFile   string `json:"cert_file"`
		KeyFile    string `json:"key_file"`
		ServerName string `json:"server_name"`
	} `json:"tls_config"`
	StaticConfigs []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	} `json:"static_configs"`
	DNSSDConfigs []struct {
		Names []string `json:"names"`
		Type  string   `json:"type"`
		Port  int      `json:"port"`
	} `json:"dns_sd_configs"`
	RelabelConfigs []relabelConfig `json:"relabel_configs"`
}

type relabelConfig struct {
	SourceLabels []string `json:"source_labels"`
	TargetLabel  string   `json:"target_label"`
	Replacement  string   `json:"replacement"`
	Action       string   `json:"action"`
}

type promConfig struct {
	ScrapeConfigs []scrapeConfig `json:"scrape_configs"`
}

// TestPrometheusScrapesEveryService: one job per service, on its internal
// port, over TLS, presenting the prometheus SVID, with every replica found
// by DNS under the alias <name>-replicas (TestComposeReplicaAliases) and
// labelled service=<name>.
func TestPrometheusScrapesEveryService(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c promConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, svc := range Services {
		i := slices.IndexFunc(c.ScrapeConfigs, func(j scrapeConfig) bool {
			return j.JobName == svc.Name
		})
		if i < 0 {
			t.Errorf("no scrape job %s", svc.Name)
			continue
		}
		j := c.ScrapeConfigs[i]
		if j.Scheme != "https" || len(j.StaticConfigs) != 0 || len(j.DNSSDConfigs) != 1 {
			t.Errorf("job %s: want https and one dns_sd_config, no static targets", svc.Name)
			continue
		}
		sd := j.DNSSDConfigs[0]
		if !slices.Equal(sd.Names, []string{replicasAlias(svc.Name)}) || sd.Type != "A" || sd.Port != svc.Port+1000 {
			t.Errorf("job %s: dns_sd %+v, want the A records of %s on port %d", svc.Name, sd, replicasAlias(svc.Name), svc.Port+1000)
		}
		labelled := slices.ContainsFunc(j.RelabelConfigs, func(r relabelConfig) bool {
			return r.TargetLabel == "service" && r.Replacement == svc.Name && len(r.SourceLabels) == 0 && (r.Action == "" || r.Action == "replace")
		})
		if !labelled {
			t.Errorf("job %s: no relabelling sets service=%s", svc.Name, svc.Name)
		}
		tc := j.TLSConfig
		if tc.CAFile != CertsMount+"/ca.pem" || tc.CertFile != CertsMount+"/prometheus.pem" || tc.KeyFile != CertsMount+"/prometheus-key.pem" || tc.ServerName != svc.Name {
			t.Errorf("job %s: tls_config %+v must present the prometheus SVID and verify %s", svc.Name, tc, svc.Name)
		}
	}
}

// replicasAlias is the network alias all of a service's replicas share.
func replicasAlias(service string) string { return service + "-replicas" }

// TestComposeReplicaAliases: in both topologies every replica of a service,
// and nothing else, answers to <name>-replicas on a network Prometheus is
// on, so its DNS discovery finds each replica and only them.
func TestComposeReplicaAliases(t *testing.T) {
	for topo, p := range map[string]*types.Project{"single": loadCompose(t), "ha": loadComposeHA(t)} {
		prom := p.Services["prometheus"]
		for _, svc := range Services {
			alias := replicasAlias(svc.Name)
			var holders []string
			for name, s := range p.Services {
				for net, cfg := range s.Networks {
					if cfg == nil || !slices.Contains(cfg.Aliases, alias) {
						continue
					}
					holders = append(holders, name)
					if _, shared := prom.Networks[net]; !shared {
						t.Errorf("%s: %s has %s on network %s, which prometheus is not on", topo, name, alias, net)
					}
				}
			}
			slices.Sort(holders)
			if want := []string{svc.Name, svc.Name + "-b"}; !slices.Equal(holders, want) {
				t.Errorf("%s: %s names %v, want %v", topo, alias, holders, want)
			}
		}
	}
}

// TestOtelCollectorConfig: the pipeline uses only defined components, takes
// OTLP/gRPC on the port the services export to, and exports to Jaeger.
func TestOtelCollectorConfig(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "deploy/otel/collector.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Receivers  map[string]map[string]any `json:"receivers"`
		Processors map[string]any            `json:"processors"`
		Exporters  map[string]map[string]any `json:"exporters"`
		Extensions map[string]any            `json:"extensions"`
		Service    struct {
			Extensions []string `json:"extensions"`
			Telemetry  any      `json:"telemetry"`
			Pipelines  map[string]struct {
				Receivers, Processors, Exporters []string
			} `json:"pipelines"`
		} `json:"service"`
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		t.Fatalf("collector.yaml: %v", err)
	}
	tr, ok := c.Service.Pipelines["traces"]
	if !ok {
		t.Fatal("no traces pipeline")
	}
	for _, n := range tr.Receivers {
		if _, ok := c.Receivers[n]; !ok {
			t.Errorf("traces pipeline uses undefined receiver %s", n)
		}
	}
	for _, n := range tr.Processors {
		if _, ok := c.Processors[n]; !ok {
			t.Errorf("traces pipeline uses undefined processor %s", n)
		}
	}
	if !slices.Contains(tr.Processors, "batch") || !slices.Contains(tr.Processors, "memory_limiter") || tr.Processors[0] != "memory_limiter" {
		t.Errorf("processors %v: want memory_limiter first, and batch", tr.Processors)
	}
	for _, n := range tr.Exporters {
		if _, ok := c.Exporters[n]; !ok {
			t.Errorf("traces pipeline uses undefined exporter %s", n)
		}
	}
	if ep, _ := c.Exporters["otlp/jaeger"]["endpoint"].(string); ep != "jaeger:4317" {
		t.Errorf("otlp/jaeger endpoint %q, want jaeger:4317", ep)
	}
	grpc, _ := c.Receivers["otlp"]["protocols"].(map[string]any)["grpc"].(map[string]any)
	if ep, _ := grpc["endpoint"].(string); ep != "0.0.0.0:4317" {
		t.Errorf("OTLP gRPC receiver on %q, want 0.0.0.0:4317 (services export to otel-collector:4317)", ep)
	}
	p := loadCompose(t)
	if s := p.Services["jaeger"]; s.Environment["COLLECTOR_OTLP_ENABLED"] == nil || *s.Environment["COLLECTOR_OTLP_ENABLED"] != "true" {
		t.Errorf("jaeger must accept OTLP")
	}
}
