package engine

import (
	"runtime"
	"testing"
	"time"
)

func TestReadCPUSeesThisProcessWork(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/stat is Linux's")
	}
	before := readCPU()
	x := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		x++ // busy on one core
	}
	use := readCPU().since(before)
	if use.selfCores < 0.3 || use.selfCores > float64(runtime.NumCPU())+0.1 {
		t.Errorf("a loop busy on one core for 300 ms measured %.2f cores (x=%d)", use.selfCores, x)
	}
	if use.busy <= 0 || use.busy > 1 {
		t.Errorf("machine busy %.2f, want in (0, 1]", use.busy)
	}
}
