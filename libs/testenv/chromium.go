package testenv

import (
	"os"
	"os/exec"
	"sync"
	"testing"
)

var chromiumMu sync.Mutex

// Chromium returns Debian's headless-capable chromium, installing the
// package when it is missing: browser tests must run, never skip.
func Chromium(t testing.TB) string {
	t.Helper()
	const path = "/usr/bin/chromium"
	chromiumMu.Lock()
	defer chromiumMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	t.Log("installing Debian's chromium package")
	cmd := exec.Command("bash", "-c", "apt-get install -y chromium || (apt-get update && apt-get install -y chromium)")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install chromium: %v\n%s", err, out)
	}
	return path
}

// ChromiumFlags are the flags a sandboxed, offline machine needs: no
// background networking (its connections are refused here), no GPU.
func ChromiumFlags(userDataDir string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + userDataDir}
}
