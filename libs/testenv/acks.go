package testenv

import (
	"testing"
	"time"
)

// Ack is one acknowledged write of a failover test: its key and when the
// acknowledgement arrived.
type Ack struct {
	ID int64
	At time.Time
}

// LongestPause is the longest time between two consecutive
// acknowledgements: what a writer saw of a failover.
func LongestPause(acked []Ack) time.Duration {
	var pause time.Duration
	for i := 1; i < len(acked); i++ {
		pause = max(pause, acked[i].At.Sub(acked[i-1].At))
	}
	return pause
}

// FirstAfter is the time of the first acknowledgement after t0 (now when
// there is none yet).
func FirstAfter(acked []Ack, t0 time.Time) time.Time {
	for _, a := range acked {
		if a.At.After(t0) {
			return a.At
		}
	}
	return time.Now()
}

// WaitFor polls cond every 100 ms until it holds, and fails the test when
// timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
