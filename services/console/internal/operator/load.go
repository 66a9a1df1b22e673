package operator

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Scenarios are strata-load's named scenarios the console may start.
var Scenarios = []string{"baseline", "ramp", "overload", "flood", "breaker", "cache", "retry-storm", "hot-account"}

// LoadRunner runs the load tool (strata-load) as a child process, one run
// at a time, and keeps its output lines (one per second while it runs).
type LoadRunner struct {
	Bin  string   // the strata-load binary
	Args []string // before the scenario: -certs, -out, -users, -duration

	mu      sync.Mutex
	cmd     *exec.Cmd
	run     LoadRun
	lines   []string
	changed chan struct{}
}

// LoadRun describes the current or last run.
type LoadRun struct {
	Scenario string
	Started  time.Time
	Running  bool
	Result   string // how the last run ended
}

// maxLines bounds the kept output.
const maxLines = 400

// Start starts scenario; it refuses while a run is going.
func (l *LoadRunner) Start(scenario string) error {
	if !slices.Contains(Scenarios, scenario) {
		return fmt.Errorf("no scenario %q", scenario)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.run.Running {
		return errors.New("a load run is already going; stop it first")
	}
	cmd := exec.Command(l.Bin, append(slices.Clone(l.Args), scenario)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", l.Bin, err)
	}
	l.cmd, l.lines = cmd, nil
	l.run = LoadRun{Scenario: scenario, Started: time.Now(), Running: true}
	l.notify()
	go l.follow(cmd, out)
	return nil
}

func (l *LoadRunner) follow(cmd *exec.Cmd, out io.Reader) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		if len(l.lines) > maxLines {
			l.lines = l.lines[len(l.lines)-maxLines:]
		}
		l.notify()
		l.mu.Unlock()
	}
	err := cmd.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.run.Running = false
	l.run.Result = "finished"
	if err != nil {
		l.run.Result = "ended: " + err.Error()
	}
	l.notify()
}

// Stop ends the run with SIGTERM, which strata-load handles as Ctrl-C (it
// stops and reports); SIGKILL follows after 10 s. Not SIGINT: a process
// started in the background by a non-interactive shell (a CI job, a
// service manager) inherits SIGINT ignored, and the run would go on.
func (l *LoadRunner) Stop() error {
	l.mu.Lock()
	cmd, running := l.cmd, l.run.Running
	l.mu.Unlock()
	if !running {
		return errors.New("no load run is going")
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	go func() {
		time.Sleep(10 * time.Second)
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.cmd == cmd && l.run.Running {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
	return nil
}

// Close kills a run when the console shuts down: the child must not
// outlive it.
func (l *LoadRunner) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.run.Running {
		_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// State returns the run and its last lines, and a channel closed at the
// next change.
func (l *LoadRunner) State() (LoadRun, []string, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed == nil {
		l.changed = make(chan struct{})
	}
	return l.run, slices.Clone(l.lines), l.changed
}

func (l *LoadRunner) notify() {
	if l.changed != nil {
		close(l.changed)
	}
	l.changed = make(chan struct{})
}
