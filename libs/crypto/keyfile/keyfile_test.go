package keyfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckPrivate(t *testing.T) {
	own := os.Getegid()
	other := own + 4242
	canChown := os.Geteuid() == 0
	tests := []struct {
		name string
		mode os.FileMode
		gid  int
		ok   bool
	}{
		{"owner only 0600", 0o600, own, true},
		{"owner read 0400", 0o400, own, true},
		{"own group read, as Kubernetes mounts a 0400 Secret under fsGroup", 0o440, own, true},
		{"another group may read", 0o640, other, false},
		{"group may write", 0o660, own, false},
		{"world readable 0644", 0o644, own, false},
		{"world only 0604", 0o604, own, false},
		{"0444", 0o444, own, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gid != own && !canChown {
				t.Skip("changing a file's group to one we are not in needs root")
			}
			path := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(path, []byte("k"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.gid != own {
				if err := os.Chown(path, -1, tt.gid); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckPrivate(path)
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && (err == nil || !strings.Contains(err.Error(), path)) {
				t.Fatalf("err = %v; want a refusal naming the file", err)
			}
		})
	}
	if err := CheckPrivate(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file passed")
	}
}
