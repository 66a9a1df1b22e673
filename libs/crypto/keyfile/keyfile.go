// Package keyfile checks that a file holding key material (auth's
// key-encryption key, the ledger's local KMS keyset) is private to the
// process that reads it, before the key is used.
//
// The owner may read it (0400 or 0600). Nobody else may, with one
// exception Kubernetes forces: a Secret volume in a pod with an fsGroup
// gets group read for that group whatever defaultMode says
// (kubernetes/kubernetes#57923), so a file whose group is the process's own
// group (the pod's runAsGroup = fsGroup, which no other workload shares)
// may carry group read. Any write bit for others, group read for any other
// group, or any world bit is refused.
package keyfile

import (
	"fmt"
	"os"
	"syscall"
)

// CheckPrivate returns an error naming the file and its mode when the file
// at path is readable or writable by anyone but its owner (and, read-only,
// the process's own group).
func CheckPrivate(path string) error {
	fi, err := os.Stat(path) // follows the symlinks a Secret volume uses
	if err != nil {
		return err
	}
	return checkMode(path, fi, os.Getegid())
}

func checkMode(path string, fi os.FileInfo, egid int) error {
	perm := fi.Mode().Perm()
	refuse := func(why string) error {
		return fmt.Errorf("%s is %s (mode %04o); chmod 600 (or mount it with defaultMode 0400)", path, why, perm)
	}
	if perm&0o007 != 0 {
		return refuse("accessible to every user")
	}
	if perm&0o030 != 0 {
		return refuse("writable or executable by its group")
	}
	if perm&0o040 != 0 {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || int(st.Gid) != egid {
			return refuse("readable by another group")
		}
	}
	return nil
}
