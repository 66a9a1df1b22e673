package resilience_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/strata-ref/strata/libs/resilience"
)

// A callee that can take 2 of the 10 requests a client makes per round:
// the client ends up refusing locally about what the formula says, and
// sends about K times what is accepted. Once the callee accepts everything
// again, the client sends everything again.
func TestThrottleFollowsTheFormula(t *testing.T) {
	const window = 500 * time.Millisecond
	th := resilience.NewThrottle(window, 20)
	sent, refused, accepted := 0, 0, 0
	for range 2000 {
		room := 2
		for range 10 {
			if !th.Allow() {
				refused++
				continue
			}
			sent++
			ok := room > 0
			if ok {
				room--
				accepted++
			}
			th.Record(ok)
		}
	}
	requests := sent + refused
	want := math.Max(0, float64(requests-resilience.K*accepted)/float64(requests+1))
	if got := float64(refused) / float64(requests); math.Abs(got-want) > 0.1 || refused == 0 {
		t.Fatalf("refused %.2f of requests; the formula gives %.2f (sent %d, accepted %d)", got, want, sent, accepted)
	}
	if ratio := float64(sent) / float64(accepted); ratio > 3 {
		t.Fatalf("sent %.1fx what was accepted; want about K=%d", ratio, resilience.K)
	}
	// The callee recovers: every request is accepted from now on, and once
	// the overload has left the window nothing is refused.
	time.Sleep(window + window/5)
	for range 100 {
		if th.Allow() {
			th.Record(true)
		}
	}
	if r := th.RejectionRate(); r > 0.01 {
		t.Fatalf("rejection rate %.2f after the callee recovered", r)
	}
}

// Below the threshold nothing is refused, whatever the answers.
func TestThrottleNeedsHistory(t *testing.T) {
	th := resilience.NewThrottle(time.Minute, 20)
	for range 19 {
		if !th.Allow() {
			t.Fatal("refused before 20 requests")
		}
		th.Record(false)
	}
}

// A callee that sheds every call: after the first ones, the outbound client
// refuses most calls itself (ErrThrottled, counted as throttled) and the
// callee sees only a fraction of them.
func TestClientThrottlesACalleeThatSheds(t *testing.T) {
	d := newDependency(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	c := client(t, d, resilience.ClientConfig{})
	throttled := 0
	const calls = 300
	for range calls {
		_, err := send(t, c, context.Background(), http.MethodPost, "") // not retried
		switch {
		case errors.Is(err, resilience.ErrThrottled):
			throttled++
		case err != nil:
			t.Fatal(err)
		}
	}
	if hits := d.hits.Load(); hits+int64(throttled) != calls || hits > calls/3 {
		t.Fatalf("the callee saw %d of %d calls, %d refused locally; want most refused locally", hits, calls, throttled)
	}
}
