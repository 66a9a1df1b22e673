package scenario

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/strata-ref/strata/libs/mtls"
	"github.com/strata-ref/strata/loadtest/internal/strata"
)

// Service is one service's internal (mTLS) listener, for metrics.
type Service struct {
	Name     string
	Internal string // "https://127.0.0.1:9442"
	// Replica is "a", "b", ... when the service runs several replicas, ""
	// when it runs one.
	Replica string
}

// Label names the service, or the replica ("ledger-b").
func (s Service) Label() string {
	if s.Replica == "" {
		return s.Name
	}
	return s.Name + "-" + s.Replica
}

// NativeServices are the internal listeners of `make run`, or of every
// replica when STRATA_SERVICE_REPLICAS and STRATA_SERVICE_PORT_BASE are set
// (deploy/native/ha.env).
var NativeServices = Topology(strata.EnvInt("STRATA_SERVICE_REPLICAS", 1), strata.EnvInt("STRATA_SERVICE_PORT_BASE", 8441))

// Topology lists the internal listeners of replicas replicas per service
// laid out from public port base as deploy/native/services.sh does.
func Topology(replicas, base int) []Service {
	var out []Service
	for i, name := range []string{"auth", "ledger", "analytics", "session"} {
		for r := range max(replicas, 1) {
			svc := Service{Name: name, Internal: "https://127.0.0.1:" + strconv.Itoa(base+1000+i+10*r)}
			if replicas > 1 {
				svc.Replica = string(rune('a' + r))
			}
			out = append(out, svc)
		}
	}
	return out
}

// NameReplicas sets Replica on services listed more than once under one
// name (a, b, ... in order), as the -internal flag lists them.
func NameReplicas(services []Service) []Service {
	count := map[string]int{}
	for _, s := range services {
		count[s.Name]++
	}
	seen := map[string]int{}
	for i, s := range services {
		if count[s.Name] > 1 {
			services[i].Replica = string(rune('a' + seen[s.Name]))
			seen[s.Name]++
		}
	}
	return services
}

// Sampler reads breaker states and limiter limits from every service's
// /metrics, as the loadtest workload (one of the two identities allowed).
type Sampler struct {
	services []Service
	clients  map[string]*http.Client
}

// NewSampler builds mTLS clients pinned to each service's SPIFFE ID.
func NewSampler(src *mtls.Source, services []Service) *Sampler {
	s := &Sampler{services: services, clients: map[string]*http.Client{}}
	for _, svc := range services {
		s.clients[svc.Name] = &http.Client{Timeout: 800 * time.Millisecond,
			Transport: &http.Transport{TLSClientConfig: src.ClientConfig(mtls.ID(svc.Name))}}
	}
	return s
}

// Sample returns gauges named "<service> breaker <dependency>",
// "<service> limit", "<service> inflight", "<service> queued" (the public
// listener's limiter), "<service> rss" (resident memory, MiB) and
// "<service> goroutines" (the service's Label: "ledger-b" for a replica).
func (s *Sampler) Sample(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, svc := range s.services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := s.scrape(ctx, svc)
			if err != nil {
				return // a down service simply has no sample this second
			}
			mu.Lock()
			for k, v := range g {
				out[svc.Label()+" "+k] = v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// Gauge scrapes the value of one series from a service: the family name
// and, in pairs, labels it must carry ("listener", "public"); one replica
// by its label ("ledger-b"), or by the service's name the first replica
// that answers.
func (s *Sampler) Gauge(ctx context.Context, service, name string, labels ...string) (float64, error) {
	var errs []error
	for _, exact := range []bool{true, false} {
		for _, svc := range s.services {
			if (exact && svc.Label() == service) || (!exact && svc.Name == service) {
				g, err := s.series(ctx, svc, name, labels...)
				if err == nil || exact {
					return g, err
				}
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return 0, errors.Join(errs...)
	}
	return 0, fmt.Errorf("no service %s", service)
}

// families reads svc's /metrics, parsed by Prometheus's own text-format
// parser (prometheus/common/expfmt) into metric families by name.
func (s *Sampler) families(ctx context.Context, svc Service) (map[string]*dto.MetricFamily, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, svc.Internal+"/metrics", nil)
	resp, err := s.clients[svc.Name].Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s /metrics: %s", svc.Label(), resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// hasLabels reports whether m carries every name/value pair of labels.
func hasLabels(m *dto.Metric, labels ...string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == labels[i] && l.GetValue() == labels[i+1] }) {
			return false
		}
	}
	return true
}

// label returns m's value of label name.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// sampleOf is the value of a gauge, counter or untyped sample.
func sampleOf(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

// find is the value of the first series of family name that carries labels.
func find(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	for _, m := range fams[name].GetMetric() {
		if hasLabels(m, labels...) {
			return sampleOf(m), true
		}
	}
	return 0, false
}

func (s *Sampler) scrape(ctx context.Context, svc Service) (map[string]float64, error) {
	fams, err := s.families(ctx, svc)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range fams["strata_breaker_state"].GetMetric() {
		out["breaker "+label(m, "dependency")] = sampleOf(m)
	}
	if v, ok := find(fams, "process_resident_memory_bytes"); ok {
		out["rss"] = v / (1 << 20) // MiB
	}
	if v, ok := find(fams, "go_goroutines"); ok {
		out["goroutines"] = v
	}
	for _, g := range []string{"limit", "inflight", "queued"} {
		if v, ok := find(fams, "strata_limiter_"+g, "listener", "public"); ok {
			out[g] = v
		}
	}
	return out, nil
}

func (s *Sampler) series(ctx context.Context, svc Service, name string, labels ...string) (float64, error) {
	fams, err := s.families(ctx, svc)
	if err != nil {
		return 0, err
	}
	v, ok := find(fams, name, labels...)
	if !ok {
		return 0, fmt.Errorf("%s: no series %s%v", svc.Name, name, labels)
	}
	return v, nil
}
