package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped Kubernetes manifest mounts the KEK Secret with defaultMode
// 0400, which the kubelet turns into 0440 for the pod's fsGroup (its own
// runAsGroup): auth must start on that, and still refuse a key file any
// other user can read.
func TestLoadKEKFileModes(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o440, true}, {0o644, false}, {0o604, false}, {0o660, false}} {
		path := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadKEK(path, false)
		if (err == nil) != tt.ok {
			t.Errorf("mode %04o: err = %v, want ok=%v", tt.mode, err, tt.ok)
		}
	}
}
