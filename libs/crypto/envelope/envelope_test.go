package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-ref/strata/libs/crypto/envelope"
)

func TestSealOpenBindsRowAndColumn(t *testing.T) {
	ctx := context.Background()
	kms, err := envelope.OpenLocal(filepath.Join(t.TempDir(), "keyset.json"), true)
	if err != nil {
		t.Fatal(err)
	}
	env := envelope.New(kms)
	dk, err := env.NewDataKey(ctx, "accounts", "row-1")
	if err != nil {
		t.Fatal(err)
	}
	ct := dk.Seal("name", []byte("Alice's savings"))
	if bytes.Contains(ct, []byte("Alice")) {
		t.Fatal("plaintext visible in ciphertext")
	}
	back, err := env.OpenDataKey(ctx, "accounts", "row-1", dk.Wrapped, dk.KEKID)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := back.Open("name", ct); err != nil || string(pt) != "Alice's savings" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	if _, err := back.Open("memo", ct); !errors.Is(err, envelope.ErrDecrypt) {
		t.Fatalf("other column: %v", err)
	}
	if _, err := env.OpenDataKey(ctx, "accounts", "row-2", dk.Wrapped, dk.KEKID); !errors.Is(err, envelope.ErrDecrypt) {
		t.Fatalf("wrapped key moved to another row: %v", err)
	}
	other, _ := env.NewDataKey(ctx, "accounts", "row-2")
	if _, err := other.Open("name", ct); !errors.Is(err, envelope.ErrDecrypt) {
		t.Fatalf("ciphertext moved to another row: %v", err)
	}
}

func TestRotationKeepsOldRowsAndRewraps(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyset.json")
	kms, err := envelope.OpenLocal(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyset mode %v", fi.Mode().Perm())
	}
	env := envelope.New(kms)
	old, _ := env.NewDataKey(ctx, "t", "1")
	ct := old.Seal("c", []byte("secret"))

	newID, err := envelope.RotateLocal(path)
	if err != nil {
		t.Fatal(err)
	}
	if newID == old.KEKID {
		t.Fatal("rotation kept the primary")
	}
	kms2, err := envelope.OpenLocal(path, false) // a fresh process after rotation
	if err != nil {
		t.Fatal(err)
	}
	env2 := envelope.New(kms2)
	if p, _ := env2.PrimaryID(ctx); p != newID {
		t.Fatalf("primary %s, want %s", p, newID)
	}
	dk, err := env2.OpenDataKey(ctx, "t", "1", old.Wrapped, old.KEKID)
	if err != nil {
		t.Fatalf("old row after rotation: %v", err)
	}
	if pt, err := dk.Open("c", ct); err != nil || string(pt) != "secret" {
		t.Fatalf("open old row: %q %v", pt, err)
	}
	wrapped, kek, err := env2.Rewrap(ctx, "t", "1", old.Wrapped)
	if err != nil || kek != newID || envelope.WrappedKEKID(wrapped) != newID {
		t.Fatalf("rewrap: kek %s (prefix %s), %v", kek, envelope.WrappedKEKID(wrapped), err)
	}
	dk2, err := env2.OpenDataKey(ctx, "t", "1", wrapped, kek)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := dk2.Open("c", ct); err != nil || string(pt) != "secret" {
		t.Fatalf("open after rewrap: %q %v", pt, err)
	}
	if _, err := envelope.OpenLocal(filepath.Join(t.TempDir(), "missing.json"), false); err == nil {
		t.Fatal("a missing keyset was created without permission")
	}
}

// A cleartext keyset that other users can read is a leaked key-encryption
// key: the service refuses to start on it (the production keyset is
// supplied, never created, so its mode is the operator's).
func TestKeysetReadableByOthersIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyset.json")
	if _, err := envelope.OpenLocal(path, true); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := envelope.OpenLocal(path, false); err == nil {
			t.Fatalf("keyset with mode %04o was used", mode)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.OpenLocal(path, false); err != nil {
		t.Fatalf("mode 0400 (a Kubernetes Secret) refused: %v", err)
	}
}
