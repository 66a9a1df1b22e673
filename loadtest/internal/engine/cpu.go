package engine

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is what readCPU saw at one moment.
type cpuSample struct {
	at          time.Time
	self        time.Duration // this process's user + system time
	busy, total uint64        // /proc/stat's first line: non-idle and all jiffies
}

// cpuUse is the CPU spent between two samples.
type cpuUse struct {
	selfCores float64 // this process, in cores
	busy      float64 // share of the machine's CPUs busy, 0-1
}

// readCPU samples this process's CPU time and the machine's CPU counters
// (Linux's /proc/stat; zeros elsewhere).
func readCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return s
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		s.total += n
		if i != 3 && i != 4 { // idle and iowait
			s.busy += n
		}
	}
	return s
}

func (s cpuSample) since(before cpuSample) cpuUse {
	var u cpuUse
	if wall := s.at.Sub(before.at); wall > 0 {
		u.selfCores = float64(s.self-before.self) / float64(wall)
	}
	if dt := s.total - before.total; dt > 0 {
		u.busy = float64(s.busy-before.busy) / float64(dt)
	}
	return u
}
