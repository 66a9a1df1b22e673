package operator

import (
	"strings"
	"testing"
	"time"
)

// TestLoadRunnerOneAtATime runs a real child process in place of
// strata-load (a shell that prints its scenario and waits): a second start
// is refused while it runs, its output is kept, and Stop interrupts it.
func TestLoadRunnerOneAtATime(t *testing.T) {
	l := &LoadRunner{Bin: "/bin/sh", Args: []string{"-c", `echo "run $1"; sleep 30`, "sh"}}
	if err := l.Start("no-such-scenario"); err == nil {
		t.Fatal("an unknown scenario started")
	}
	if err := l.Start("ramp"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	if err := l.Start("baseline"); err == nil || !strings.Contains(err.Error(), "already going") {
		t.Fatalf("second start: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		run, lines, changed := l.State()
		if len(lines) > 0 {
			if lines[0] != "run ramp" || !run.Running || run.Scenario != "ramp" {
				t.Fatalf("run %+v, lines %q", run, lines)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no output")
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		}
	}
	start := time.Now()
	if err := l.Stop(); err != nil {
		t.Fatal(err)
	}
	for {
		run, _, changed := l.State()
		if !run.Running {
			if !strings.Contains(run.Result, "terminated") {
				t.Fatalf("result %q", run.Result)
			}
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("Stop did not end the run")
		}
		select {
		case <-changed:
		case <-time.After(time.Second):
		}
	}
	if err := l.Start("baseline"); err != nil {
		t.Fatalf("a new run after the last one ended: %v", err)
	}
}
