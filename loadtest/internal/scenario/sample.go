package scenario

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-ref/strata/libs/mtls"
)

// Service is one service's internal (mTLS) listener, for metrics.
type Service struct {
	Name     string
	Internal string // "https://127.0.0.1:9442"
}

// NativeServices are the internal listeners of `make run`.
var NativeServices = []Service{{"auth", "https://127.0.0.1:9441"}, {"ledger", "https://127.0.0.1:9442"},
	{"analytics", "https://127.0.0.1:9443"}, {"session", "https://127.0.0.1:9444"}}

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

// Sample returns gauges named "<service> breaker <dependency>" and
// "<service> limit".
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
				out[svc.Name+" "+k] = v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// Gauge scrapes one metric value (exact series text) from a service.
func (s *Sampler) Gauge(ctx context.Context, service, series string) (float64, error) {
	for _, svc := range s.services {
		if svc.Name == service {
			g, err := s.scrapeRaw(ctx, svc, series)
			return g, err
		}
	}
	return 0, fmt.Errorf("no service %s", service)
}

func (s *Sampler) scrape(ctx context.Context, svc Service) (map[string]float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, svc.Internal+"/metrics", nil)
	resp, err := s.clients[svc.Name].Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, `strata_breaker_state{dependency="`):
			dep := strings.TrimPrefix(line, `strata_breaker_state{dependency="`)
			name, rest, _ := strings.Cut(dep, `"}`)
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64); err == nil {
				out["breaker "+name] = v
			}
		case strings.HasPrefix(line, `strata_limiter_limit{listener="public"}`):
			if v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, `strata_limiter_limit{listener="public"}`)), 64); err == nil {
				out["limit"] = v
			}
		}
	}
	return out, sc.Err()
}

func (s *Sampler) scrapeRaw(ctx context.Context, svc Service, series string) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, svc.Internal+"/metrics", nil)
	resp, err := s.clients[svc.Name].Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	return 0, fmt.Errorf("%s: no series %s", svc.Name, series)
}
