package testenv

import (
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Sessions stands in for the session service's liveness route, GET
// /internal/sessions/{sid} (200 alive, 404 gone), served over mTLS with the
// session workload's SVID, for a service test that must not boot the
// session service: every session is alive until End.
type Sessions struct {
	URL string // the base URL, for STRATA_SESSION_URL

	mu    sync.Mutex
	ended map[string]bool
}

// ServeSessions starts the stand-in; it stops in t's cleanup.
func ServeSessions(t testing.TB, st *Stack) *Sessions {
	t.Helper()
	s := &Sessions{ended: map[string]bool{}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", st.Source(t, "session").InternalServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid, ok := strings.CutPrefix(r.URL.Path, "/internal/sessions/")
		s.mu.Lock()
		gone := s.ended[sid]
		s.mu.Unlock()
		if r.Method != http.MethodGet || !ok || sid == "" || gone {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.URL = "https://" + ln.Addr().(*net.TCPAddr).String()
	return s
}

// End ends the session sid: from now on it answers 404.
func (s *Sessions) End(sid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended[sid] = true
}
