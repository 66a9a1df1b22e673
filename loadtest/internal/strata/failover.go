package strata

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// replicaSet is one service's replicas as the load generator sees them:
// round-robin over the ones not ejected, and a replica that refused a
// connection ejected for a back-off (1 s, doubling to 10 s, reset by a
// success). The services' own client does the same with more policy
// (libs/resilience); a load generator must not hide the system's errors
// behind a breaker or a retry budget, so this one only routes around a
// replica that is gone.
type replicaSet struct {
	urls []string
	next atomic.Uint64
	mu   sync.Mutex
	out  []time.Time // ejected until
	fail []int       // consecutive ejections
}

func newReplicaSet(urls []string) *replicaSet {
	return &replicaSet{urls: urls, out: make([]time.Time, len(urls)), fail: make([]int, len(urls))}
}

// pick returns the next replica not ejected and not in tried; if every
// untried one is ejected, the untried one back soonest; -1 when all were tried.
func (s *replicaSet) pick(tried []bool, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.urls)
	start := int(s.next.Add(1) % uint64(n))
	best := -1
	for i := range n {
		r := (start + i) % n
		if tried[r] {
			continue
		}
		if !now.Before(s.out[r]) {
			return r
		}
		if best < 0 || s.out[r].Before(s.out[best]) {
			best = r
		}
	}
	return best
}

func (s *replicaSet) eject(r int, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.out[r]) {
		return
	}
	s.fail[r]++
	s.out[r] = now.Add(min(time.Second<<min(s.fail[r]-1, 4), 10*time.Second))
}

func (s *replicaSet) ok(r int) {
	s.mu.Lock()
	s.fail[r], s.out[r] = 0, time.Time{}
	s.mu.Unlock()
}

// do sends path to one replica after another until one answers. A dial
// error means the request never left: any request moves on to the next
// replica. Any other transport error (the replica died mid-request) moves
// on only when safe is set (GET, PUT, DELETE, or an Idempotency-Key):
// the request may have been applied. Responses, 5xx included, are
// returned as they are.
func (s *replicaSet) do(ctx context.Context, path string, safe bool, send func(url string) (*http.Response, error)) (*http.Response, error) {
	tried := make([]bool, len(s.urls))
	var errs []error
	for {
		r := s.pick(tried, time.Now())
		if r < 0 {
			return nil, errors.Join(errs...)
		}
		tried[r] = true
		resp, err := send(s.urls[r] + path)
		if err == nil {
			s.ok(r)
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			s.eject(r, time.Now())
			continue
		}
		if !safe {
			return nil, err
		}
	}
}
