package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/strata-ref/strata/libs/problem"
)

// Faults are teaching toggles: inject latency or errors into a named
// dependency call so a student can watch a breaker open without killing a
// process. They exist only when STRATA_ENV=dev (NewFaults returns nil
// otherwise) and are set over the internal mTLS listener.
type Faults struct {
	mu  sync.RWMutex
	set map[string]Fault
}

// Fault is what to inject into every call to one dependency.
type Fault struct {
	Latency   time.Duration `json:"latency"`    // added before the call
	ErrorRate float64       `json:"error_rate"` // 0..1: fraction of calls failed with ErrInjected
}

// ErrInjected is the error a fault produces.
var ErrInjected = errors.New("fault injected")

// NewFaults returns the toggles for env; nil (no faults possible) unless dev.
func NewFaults(env string) *Faults {
	if env != "dev" {
		return nil
	}
	return &Faults{set: map[string]Fault{}}
}

// Inject applies the dependency's fault, if any: it sleeps the latency (or
// until ctx ends) and fails a share of calls. Nil-safe, so call sites need
// no check.
func (f *Faults) Inject(ctx context.Context, dependency string) error {
	if f == nil {
		return nil
	}
	f.mu.RLock()
	fault, ok := f.set[dependency]
	f.mu.RUnlock()
	if !ok {
		return nil
	}
	if fault.Latency > 0 {
		t := time.NewTimer(fault.Latency)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if fault.ErrorRate > 0 && rand.Float64() < fault.ErrorRate {
		return ErrInjected
	}
	return nil
}

// Set replaces the fault for dependency (a zero Fault clears it).
func (f *Faults) Set(dependency string, fault Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fault == (Fault{}) {
		delete(f.set, dependency)
		return
	}
	f.set[dependency] = fault
}

type faultTransport struct {
	f    *Faults
	dep  string
	next http.RoundTripper
}

func (t faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.f.Inject(req.Context(), t.dep); err != nil {
		return nil, err
	}
	return t.next.RoundTrip(req)
}

func (f *Faults) wrap(dep string, next http.RoundTripper) http.RoundTripper {
	return faultTransport{f: f, dep: dep, next: next}
}

// FaultsPath is where the toggles are read (GET) and, below it, set (PUT
// FaultsPath/{dependency}).
const FaultsPath = "/internal/faults"

// Handler serves GET /internal/faults (every toggle set) and PUT
// /internal/faults/{dependency} (set one; a zero Fault clears it). The
// caller mounts it on the internal listener and adds the peer check. With
// faults disabled (f is nil: not dev) both answer 403.
func (f *Faults) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+FaultsPath, func(w http.ResponseWriter, r *http.Request) {
		if f == nil {
			disabled(w, r)
			return
		}
		f.mu.RLock()
		defer f.mu.RUnlock()
		writeJSON(w, f.set)
	})
	mux.HandleFunc("PUT "+FaultsPath+"/{dependency}", func(w http.ResponseWriter, r *http.Request) {
		if f == nil {
			disabled(w, r)
			return
		}
		var fault Fault
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fault); err != nil || fault.ErrorRate < 0 || fault.ErrorRate > 1 || fault.Latency < 0 || fault.Latency > time.Minute {
			problem.New(http.StatusBadRequest, `body must be {"latency": nanoseconds up to 1 min, "error_rate": 0..1}`).Send(w, r)
			return
		}
		f.Set(r.PathValue("dependency"), fault)
		writeJSON(w, fault)
	})
	return mux
}

func disabled(w http.ResponseWriter, r *http.Request) {
	problem.New(http.StatusForbidden, "fault injection is available only when STRATA_ENV=dev").Send(w, r)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}
