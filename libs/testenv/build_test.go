package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestSweepBinDirs: the build directory of a process that has exited is
// removed; those of running processes (this one) and unrelated entries stay.
func TestSweepBinDirs(t *testing.T) {
	tmp := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := binDirName(gone.Process.Pid)
	mine := binDirName(os.Getpid())
	for _, d := range []string{dead, mine, "strata-bin-notapid", "other-dir"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, dead, "ledger"), []byte("x"), 0o700); err != nil {
		t.Fatal(err)
	}
	removed := SweepBinDirs(tmp)
	if !slices.Equal(removed, []string{dead}) {
		t.Fatalf("removed %v, want only %s", removed, dead)
	}
	for _, d := range []string{mine, "strata-bin-notapid", "other-dir"} {
		if _, err := os.Stat(filepath.Join(tmp, d)); err != nil {
			t.Errorf("%s: %v (a live or unrelated directory was removed)", d, err)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, dead)); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dead, err)
	}
}
