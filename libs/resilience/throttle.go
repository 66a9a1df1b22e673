package resilience

import (
	"errors"
	"time"

	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
)

// ErrThrottled is returned, without sending, for a call the client refused
// itself because the callee has recently been refusing (429) most calls.
var ErrThrottled = errors.New("throttled locally: the callee is refusing most requests")

// K is the adaptive throttle's multiplier: a client sends up to K times as
// many requests as the callee recently accepted, and refuses the rest
// locally, each with probability max(0, (requests - K*accepts) / (requests
// + 1)) (Google's SRE book, "Handling Overload", client-side throttling).
// With K = 2 the callee still sees about twice what it can take, enough to
// notice at once when it can take more, while a refusal the client makes
// itself costs the callee nothing at all.
const K = 2

// Throttle is client-side adaptive throttling on failsafe-go's
// adaptivethrottler, whose rejection rate is the SRE book's formula with
// K = 1/(1 - failure rate threshold). Every request counts, those the
// client refused itself too: call Allow before sending and Record with
// the answer.
type Throttle struct {
	t adaptivethrottler.AdaptiveThrottler[any]
}

// NewThrottle keeps window of history; no request is refused before
// minRequests were made in it, so a few 429s on a quiet link change nothing.
func NewThrottle(window time.Duration, minRequests uint) *Throttle {
	return &Throttle{t: adaptivethrottler.NewBuilder[any]().
		WithFailureRateThreshold(1-1.0/K, minRequests, window).
		WithMaxRejectionRate(1).
		Build()}
}

// Allow reports whether to send a request. A refused one is counted as a
// request that was not accepted.
func (t *Throttle) Allow() bool {
	if t.t.TryAcquirePermit() {
		return true
	}
	t.t.RecordFailure()
	return false
}

// Record counts the answer to a request that was sent: accepted unless the
// callee shed it (429).
func (t *Throttle) Record(accepted bool) {
	if accepted {
		t.t.RecordSuccess()
	} else {
		t.t.RecordFailure()
	}
}

// RejectionRate is the probability with which the next request is refused.
func (t *Throttle) RejectionRate() float64 { return t.t.RejectionRate() }
