package strata

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/strata-ref/strata/libs/resilience"
)

// replicaSet is one service's replicas as the load generator sees them:
// the services' own balancer (resilience.Rotation: round-robin over the
// replicas not ejected) where only a refused connection ejects a replica,
// for 1 s doubling to 10 s, reset by a success. A load generator must not
// hide the system's errors behind a breaker or a retry budget, so this one
// only routes around a replica that is gone.
type replicaSet struct{ rot *resilience.Rotation }

func newReplicaSet(urls []string) (*replicaSet, error) {
	rot, err := resilience.NewRotation(urls, resilience.EjectionConfig{MaxEjection: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	return &replicaSet{rot: rot}, nil
}

// do sends path to one replica after another until one answers. A dial
// error means the request never left: any request moves on to the next
// replica. Any other transport error (the replica died mid-request) moves
// on only when safe is set (GET, PUT, DELETE, or an Idempotency-Key):
// the request may have been applied. Responses, 5xx included, are
// returned as they are.
func (s *replicaSet) do(ctx context.Context, path string, safe bool, send func(url string) (*http.Response, error)) (*http.Response, error) {
	tried := make([]bool, s.rot.Len())
	var errs []error
	for {
		r := s.rot.Pick(tried)
		if tried[r] {
			return nil, errors.Join(errs...)
		}
		tried[r] = true
		resp, err := send(s.rot.URL(r) + path)
		if err == nil {
			s.rot.Succeeded(r)
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, err)
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			s.rot.Failed(r, true, err)
			continue
		}
		if !safe {
			return nil, err
		}
	}
}
