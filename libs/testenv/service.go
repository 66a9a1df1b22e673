package testenv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// RunFunc is the signature of every service's run function.
type RunFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Service is a service booted in-process by StartService.
type Service struct {
	Public   string // host:port of the public listener
	Internal string // host:port of the internal listener
	logs     *syncBuffer
	stop     func() error
}

// Logs returns everything the service logged so far.
func (s *Service) Logs() string { return s.logs.String() }

// Stop cancels the service's context and waits for run to return.
func (s *Service) Stop() error { return s.stop() }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartService boots run with env (nothing from the process environment) and
// returns once its "listening" log line names both addresses. The service is
// stopped when the test ends.
func StartService(t testing.TB, run RunFunc, env map[string]string) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	svc := &Service{logs: &syncBuffer{}}
	listening := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			svc.logs.Write([]byte(line + "\n"))
			if strings.Contains(line, `"msg":"listening"`) {
				var m struct{ Public, Internal string }
				if json.Unmarshal([]byte(line), &m) == nil {
					listening <- [2]string{m.Public, m.Internal}
				}
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, pw)
		pw.Close()
	}()
	var once sync.Once
	var stopErr error
	svc.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = context.DeadlineExceeded
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Errorf("service stopped with error: %v", err)
		}
	})
	select {
	case a := <-listening:
		svc.Public, svc.Internal = a[0], a[1]
		return svc
	case err := <-done:
		done <- err
		t.Fatalf("service exited before listening: %v\n%s", err, svc.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("service did not listen within 60s\n%s", svc.Logs())
	}
	return nil
}
