package scenario

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

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

// Gauge scrapes one metric value (exact series text) from a service: one
// replica by its label ("ledger-b"), or by the service's name the first
// replica that answers.
func (s *Sampler) Gauge(ctx context.Context, service, series string) (float64, error) {
	var errs []error
	for _, exact := range []bool{true, false} {
		for _, svc := range s.services {
			if (exact && svc.Label() == service) || (!exact && svc.Name == service) {
				g, err := s.scrapeRaw(ctx, svc, series)
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

// metrics reads svc's /metrics and hands each line to each, until each
// returns false or the text ends.
func (s *Sampler) metrics(ctx context.Context, svc Service, each func(line string) bool) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, svc.Internal+"/metrics", nil)
	resp, err := s.clients[svc.Name].Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !each(sc.Text()) {
			return nil
		}
	}
	return sc.Err()
}

// value parses the sample of line if it starts with prefix (a series name
// and its labels, up to the space before the value).
func value(line, prefix string) (float64, bool) {
	rest, ok := strings.CutPrefix(line, prefix)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
	return v, err == nil
}

func (s *Sampler) scrape(ctx context.Context, svc Service) (map[string]float64, error) {
	out := map[string]float64{}
	err := s.metrics(ctx, svc, func(line string) bool {
		if dep, ok := strings.CutPrefix(line, `strata_breaker_state{dependency="`); ok {
			name, _, _ := strings.Cut(dep, `"}`)
			if v, ok := value(dep, name+`"}`); ok {
				out["breaker "+name] = v
			}
			return true
		}
		if v, ok := value(line, "process_resident_memory_bytes "); ok {
			out["rss"] = v / (1 << 20) // MiB
		}
		if v, ok := value(line, "go_goroutines "); ok {
			out["goroutines"] = v
		}
		for _, g := range []string{"limit", "inflight", "queued"} {
			if v, ok := value(line, `strata_limiter_`+g+`{listener="public"} `); ok {
				out[g] = v
			}
		}
		return true
	})
	return out, err
}

func (s *Sampler) scrapeRaw(ctx context.Context, svc Service, series string) (float64, error) {
	var v float64
	found := false
	err := s.metrics(ctx, svc, func(line string) bool {
		v, found = value(line, series+" ")
		return !found
	})
	if err == nil && !found {
		err = fmt.Errorf("%s: no series %s", svc.Name, series)
	}
	return v, err
}
