package tradeoffs

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Stale is the cache's stale-read window after a revoke, over many revokes.
type Stale struct {
	Revokes, Readers int
	Watch            time.Duration
	// Windows holds, per revoke, the time from the revoke's 204 to the last
	// 200 any reader received for that session (0 when none came after).
	Windows []time.Duration
	// StartedAfter counts 200s to reads sent after the 204 had arrived: the
	// truly stale reads (a 200 sent before is a read in flight, which any
	// store answers with the state it read).
	StartedAfter int
	// Unending counts revokes whose session was still read as alive at the
	// end of the watch: the window is at least Watch.
	Unending int
}

// StaleWindow is the session issue's consistency probe. For each sid it
// warms the cache with one read, starts readers goroutines reading the
// session in a tight loop, revokes it, keeps reading for watch after the
// revoke's 204, and records when the last 200 arrived. get returns a read's
// HTTP status (0 on a transport error); revoke reports a 204.
func StaleWindow(ctx context.Context, sids []string, readers int, watch time.Duration,
	get func(ctx context.Context, sid string) int, revoke func(ctx context.Context, sid string) bool) (Stale, error) {
	st := Stale{Revokes: len(sids), Readers: readers, Watch: watch}
	for _, sid := range sids {
		if s := get(ctx, sid); s != http.StatusOK {
			return st, fmt.Errorf("stale probe: warming read of a live session answered %d", s)
		}
		type read struct {
			sent, done time.Time
			status     int
		}
		var (
			mu    sync.Mutex
			reads []read
			wg    sync.WaitGroup
		)
		rctx, stop := context.WithCancel(ctx)
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for rctx.Err() == nil {
					sent := time.Now()
					s := get(rctx, sid)
					if rctx.Err() != nil {
						return
					}
					mu.Lock()
					reads = append(reads, read{sent, time.Now(), s})
					mu.Unlock()
				}
			}()
		}
		time.Sleep(20 * time.Millisecond) // readers hitting the cache
		ok := revoke(ctx, sid)
		revoked := time.Now()
		if !ok {
			stop()
			wg.Wait()
			return st, fmt.Errorf("stale probe: revoke did not answer 204")
		}
		time.Sleep(watch)
		stop()
		wg.Wait()
		var window time.Duration
		var last read
		for _, r := range reads {
			if r.done.After(last.done) {
				last = r
			}
			if r.status != http.StatusOK {
				continue
			}
			window = max(window, r.done.Sub(revoked))
			if r.sent.After(revoked) {
				st.StartedAfter++
			}
		}
		if last.status == http.StatusOK {
			st.Unending++
		}
		st.Windows = append(st.Windows, window)
	}
	return st, nil
}

// Max and P99 summarize the windows.
func (s Stale) Max() time.Duration {
	if len(s.Windows) == 0 {
		return 0
	}
	return slices.Max(s.Windows)
}

// P99 is the 99th percentile window (nearest rank).
func (s Stale) P99() time.Duration {
	w := slices.Clone(s.Windows)
	slices.Sort(w)
	return quantile(w, 99)
}

// Probe renders the result as a table cell.
func (s Stale) Probe() Probe {
	res := fmt.Sprintf("max %s, p99 %s over %d revokes, %d readers; %d read(s) sent after the 204 saw the session alive",
		ms(s.Max()), ms(s.P99()), s.Revokes, s.Readers, s.StartedAfter)
	if s.Unending > 0 {
		res += fmt.Sprintf("; %d still alive after %s", s.Unending, s.Watch)
	}
	return Probe{Name: "stale-read window after revoke (204 to last 200)", Result: res, Rate: -1, Max: s.Max(), P99: s.P99()}
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
