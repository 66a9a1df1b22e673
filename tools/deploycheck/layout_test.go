package deploycheck

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestLay: each container's directory holds the CA and its own key pair and
// nothing else; keys are 0600 and, when chowned, belong to the container's
// user; the CA key never leaves the job's private directory.
func TestLay(t *testing.T) {
	caDir, out := t.TempDir(), t.TempDir()
	chown := os.Geteuid() == 0
	if err := Lay(caDir, out, LayoutOptions{WorkloadTTL: time.Hour, StoreTTL: time.Hour, CATTL: time.Hour, Chown: chown}); err != nil {
		t.Fatal(err)
	}
	for _, c := range Consumers {
		dir := filepath.Join(out, c.Name)
		leaves := c.Leaves
		if len(leaves) == 0 {
			leaves = []string{c.Name}
		}
		want := map[string]os.FileMode{"ca.pem": 0o644}
		for _, l := range leaves {
			want[l+".pem"], want[l+"-key.pem"] = 0o644, 0o600
		}
		if c.Keystore {
			want["keystore.pem"] = 0o600
		}
		for _, p := range c.Passwords {
			want[p+".password"] = 0o600
		}
		if c.RedisACL {
			want["users.acl"] = 0o600
		}
		if c.CQLCredentials {
			want["cqlsh-credentials"] = 0o600
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(want) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: files %v, want exactly %v", c.Name, names, keys(want))
		}
		for f, mode := range want {
			fi, err := os.Stat(filepath.Join(dir, f))
			if err != nil {
				t.Errorf("%s: %v", c.Name, err)
				continue
			}
			if fi.Mode().Perm() != mode {
				t.Errorf("%s/%s: mode %v, want %v", c.Name, f, fi.Mode().Perm(), mode)
			}
			if chown && mode == 0o600 {
				if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != c.UID {
					t.Errorf("%s/%s: owner %d, want %d", c.Name, f, uid, c.UID)
				}
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, leaves[0]+".pem"))
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: certificate does not parse", c.Name)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		// The compose host name is the leaf's own name (or an alias of it,
		// for a replica serving as its primary), so TLS verifies it.
		if err := cert.VerifyHostname(c.Name); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(caDir, "ca-key.pem")); err != nil {
		t.Errorf("the CA key should stay in the job's directory: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(out, "*", "ca-key.pem"))
	if len(matches) > 0 {
		t.Errorf("CA key handed to containers: %v", matches)
	}
}
