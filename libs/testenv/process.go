package testenv

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Process is a service running as its own OS process.
type Process struct {
	Service
	Cmd *exec.Cmd
}

// StartProcess runs another service's real binary with exactly env (plus
// PATH), waits for its "listening" line, and stops it with SIGTERM when the
// test ends. Use it when a test needs a second service next to the one it
// boots in-process, or when it must kill a service (SIGKILL) for real.
func StartProcess(t testing.TB, st *Stack, name string, env map[string]string) *Process {
	t.Helper()
	bin := Build(t, st, name)
	vars := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	return startBinary(t, name, bin, vars)
}

// Restart starts the same binary again with the same environment (so on
// the same ports), after stopping p if it still runs: what a supervisor does
// after a crash (Kill). The returned Process replaces p; p's logs stay with p.
func (p *Process) Restart(t testing.TB) *Process {
	t.Helper()
	_ = p.Stop()
	return startBinary(t, filepath.Base(p.Cmd.Path), p.Cmd.Path, p.Cmd.Env)
}

// startBinary runs bin with exactly env and waits for its "listening" line.
func startBinary(t testing.TB, name, bin string, env []string) *Process {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append([]string(nil), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{Service: Service{logs: &syncBuffer{}}, Cmd: cmd}
	listening := make(chan [2]string, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if strings.Contains(line, `"msg":"listening"`) {
				var m struct{ Public, Internal string }
				if json.Unmarshal([]byte(line), &m) == nil {
					select {
					case listening <- [2]string{m.Public, m.Internal}:
					default:
					}
				}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	p.stop = func() error {
		select {
		case <-exited:
			return nil
		default:
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return nil
	}
	t.Cleanup(func() { _ = p.Stop() })
	select {
	case a := <-listening:
		p.Public, p.Internal = a[0], a[1]
		return p
	case <-exited:
		t.Fatalf("%s exited before listening:\n%s", name, p.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not listen within 60s:\n%s", name, p.Logs())
	}
	return nil
}

// Kill sends SIGKILL: no graceful shutdown, as in a crash.
func (p *Process) Kill() {
	_ = p.Cmd.Process.Kill()
}
