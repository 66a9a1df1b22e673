package resilience

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

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

// Register mounts GET and PUT /internal/faults/:dependency on r (the
// internal listener; the caller adds the peer check). With faults disabled
// (not dev) both answer 403.
func (f *Faults) Register(r gin.IRouter) {
	r.GET("/internal/faults", func(c *gin.Context) {
		if f == nil {
			problem.Abort(c, problem.New(http.StatusForbidden, "fault injection is available only when STRATA_ENV=dev"))
			return
		}
		f.mu.RLock()
		defer f.mu.RUnlock()
		c.JSON(http.StatusOK, f.set)
	})
	r.PUT("/internal/faults/:dependency", func(c *gin.Context) {
		if f == nil {
			problem.Abort(c, problem.New(http.StatusForbidden, "fault injection is available only when STRATA_ENV=dev"))
			return
		}
		var fault Fault
		dec := json.NewDecoder(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&fault); err != nil || fault.ErrorRate < 0 || fault.ErrorRate > 1 || fault.Latency < 0 || fault.Latency > time.Minute {
			problem.Abort(c, problem.New(http.StatusBadRequest, `body must be {"latency": nanoseconds up to 1 min, "error_rate": 0..1}`))
			return
		}
		f.Set(c.Param("dependency"), fault)
		c.JSON(http.StatusOK, fault)
	})
}
