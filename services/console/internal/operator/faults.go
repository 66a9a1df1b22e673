package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/strata-ref/strata/libs/resilience"
)

// Faults sets the fault toggles (libs/resilience/faults.go) of every
// service: PUT /internal/faults/{dependency} on its internal listener,
// which admits the console's workload identity in dev only, and the
// console's own toggles in process. The console itself offers this only
// when STRATA_ENV=dev.
type Faults struct {
	remote map[string][]FaultTarget // service -> its replicas
	local  *resilience.Faults       // the console's own

	mu  sync.Mutex
	set map[[2]string]resilience.Fault // (service, dependency) -> what was set here
}

// FaultTarget is one replica's internal listener.
type FaultTarget struct {
	URL    string
	Client Doer
}

// NewFaults returns the toggles of the given services and of the console.
func NewFaults(remote map[string][]FaultTarget, local *resilience.Faults) *Faults {
	return &Faults{remote: remote, local: local, set: map[[2]string]resilience.Fault{}}
}

// Services are the services whose toggles can be set.
func (f *Faults) Services() []string {
	out := []string{"console"}
	for s := range f.remote {
		out = append(out, s)
	}
	sort.Strings(out[1:])
	return out
}

var dependencyName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Set sets (or, with a zero fault, clears) a service's toggle for one
// dependency, on every replica.
func (f *Faults) Set(ctx context.Context, service, dependency string, fault resilience.Fault) error {
	if !dependencyName.MatchString(dependency) {
		return fmt.Errorf("a dependency is a lower-case name such as session or redis")
	}
	if fault.ErrorRate < 0 || fault.ErrorRate > 1 || fault.Latency < 0 || fault.Latency > time.Minute {
		return fmt.Errorf("the error rate is 0..1 and the latency at most 1 minute")
	}
	if service == "console" {
		f.local.Set(dependency, fault)
	} else {
		targets, ok := f.remote[service]
		if !ok {
			return fmt.Errorf("no service %q", service)
		}
		body, _ := json.Marshal(fault)
		for _, t := range targets {
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, t.URL+"/internal/faults/"+url.PathEscape(dependency), bytes.NewReader(body))
			if err != nil {
				cancel()
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := t.Client.Do(req)
			cancel()
			if err != nil {
				return fmt.Errorf("%s: %w", t.URL, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s answered %d", t.URL, resp.StatusCode)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == (resilience.Fault{}) {
		delete(f.set, [2]string{service, dependency})
	} else {
		f.set[[2]string{service, dependency}] = fault
	}
	return nil
}

// Active is one toggle set from this console.
type Active struct {
	Service, Dependency string
	resilience.Fault
}

// Active lists the toggles set from this console.
func (f *Faults) Active() []Active {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Active, 0, len(f.set))
	for k, v := range f.set {
		out = append(out, Active{Service: k[0], Dependency: k[1], Fault: v})
	}
	slices.SortFunc(out, func(a, b Active) int { return strings.Compare(a.Service+"/"+a.Dependency, b.Service+"/"+b.Dependency) })
	return out
}
