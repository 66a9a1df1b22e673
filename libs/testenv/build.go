package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// binPrefix names the directories test binaries build services into:
// binPrefix + the test process's pid, under the system's temporary directory.
const binPrefix = "strata-bin-"

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

// Build compiles the service in services/<name> once per test binary and
// returns the executable's path.
func Build(t testing.TB, st *Stack, name string) string {
	t.Helper()
	return BuildService(t, st.Root, name)
}

// BuildService compiles root/services/<name> once per test binary, as
// `go build` from the service's directory (the workspace resolves libs).
//
// The executables go to one directory per test process, named after its
// pid. A test binary has no hook that runs after its last test unless the
// package declares TestMain, and a timed-out one is killed, so each build
// first removes the directories of test processes that are gone: the
// binaries (about 50 MB each) never pile up in the temporary directory.
func BuildService(t testing.TB, root, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[name]; ok {
		return bin
	}
	if binDir == "" {
		SweepBinDirs(os.TempDir())
		binDir = filepath.Join(os.TempDir(), binDirName(os.Getpid()))
		if err := os.MkdirAll(binDir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, "services", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	built[name] = bin
	return bin
}

// SweepBinDirs removes the build directories in tmp whose process no longer
// runs, and returns their names.
func SweepBinDirs(tmp string) []string {
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), binPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pid, err := strconv.Atoi(rest)
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		if os.RemoveAll(filepath.Join(tmp, e.Name())) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// alive reports whether a process with this pid exists (signal 0 checks
// without sending; EPERM means it exists under another user).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// binDirName is the build directory a process with this pid uses.
func binDirName(pid int) string { return fmt.Sprintf("%s%d", binPrefix, pid) }
