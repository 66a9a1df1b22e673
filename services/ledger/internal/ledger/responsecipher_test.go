package ledger_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/strata-ref/strata/libs/crypto/envelope"
	"github.com/strata-ref/strata/services/ledger/internal/ledger"
)

func newCipher(t testing.TB) ledger.ResponseCipher {
	t.Helper()
	kms, err := envelope.OpenLocal(filepath.Join(t.TempDir(), "keyset.json"), true)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.ResponseCipher{Envelope: envelope.New(kms)}
}

// TestResponseCipherTruncated: a stored response cut short anywhere, its
// length prefix included, is ErrIntegrity, never a panic. The length check
// once read 2+hi<<8|lo as (2+hi<<8)|lo, which is 2 short whenever bit 1 of
// the low byte is set: the prefix {0x01, 0x02} announces a 258-byte wrapped
// key, so the record needs 260 bytes, but 258 passed the check and the
// slice that followed panicked.
func TestResponseCipherTruncated(t *testing.T) {
	ctx := context.Background()
	c := newCipher(t)
	sealed, err := c.Seal(ctx, "alice", "k1", []byte(`{"id":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	if body, err := c.Open(ctx, "alice", "k1", sealed); err != nil || string(body) != `{"id":"x"}` {
		t.Fatalf("round trip: %q, %v", body, err)
	}
	for n := 0; n < len(sealed); n++ {
		if _, err := c.Open(ctx, "alice", "k1", sealed[:n:n]); !errors.Is(err, ledger.ErrIntegrity) && !errors.Is(err, ledger.ErrUnavailable) {
			t.Fatalf("truncated to %d bytes: %v, want ErrIntegrity", n, err)
		}
	}
	// The precedence case exactly: a 258-byte key announced, 256 present.
	short := append([]byte{0x01, 0x02}, bytes.Repeat([]byte{0xAA}, 256)...)
	short = short[:len(short):len(short)] // no spare capacity to slice into
	if _, err := c.Open(ctx, "alice", "k1", short); !errors.Is(err, ledger.ErrIntegrity) {
		t.Fatalf("258-byte key announced, 256 present: %v, want ErrIntegrity", err)
	}
	if _, err := c.Open(ctx, "bob", "k1", sealed); !errors.Is(err, ledger.ErrIntegrity) {
		t.Fatalf("another scope's response opened: %v", err)
	}
}

// FuzzResponseCipherOpen: Open never panics on stored bytes, whatever
// they are, and answers either the body (only for what Seal produced for
// this scope and key) or ErrIntegrity / ErrUnavailable.
func FuzzResponseCipherOpen(f *testing.F) {
	ctx := context.Background()
	c := newCipher(f)
	sealed, err := c.Seal(ctx, "alice", "k1", []byte(`{"amount":100}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add([]byte{})
	f.Add([]byte{0x01})
	f.Add([]byte{0x01, 0x02})
	f.Add(append([]byte{0x01, 0x02}, bytes.Repeat([]byte{0}, 256)...))
	f.Add(sealed[:len(sealed)/2])
	f.Fuzz(func(t *testing.T, stored []byte) {
		stored = stored[:len(stored):len(stored)]
		body, err := c.Open(ctx, "alice", "k1", stored)
		switch {
		case err == nil && bytes.Equal(stored, sealed):
			if string(body) != `{"amount":100}` {
				t.Fatalf("round trip gave %q", body)
			}
		case err == nil:
			t.Fatalf("bytes never sealed opened to %q", body)
		case !errors.Is(err, ledger.ErrIntegrity) && !errors.Is(err, ledger.ErrUnavailable):
			t.Fatalf("error %v is neither ErrIntegrity nor ErrUnavailable", err)
		}
	})
}
