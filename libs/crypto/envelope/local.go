package envelope

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/strata-ref/strata/libs/crypto/keyfile"
)

// LocalKMS is the development KMS: a Tink AES-256-GCM keyset in a JSON file
// (mode 0600). It stands in for a cloud KMS or Vault, whose keys never
// leave the service; here they sit on disk in clear, which is why
// production refuses to create one (see Options.Create).
//
// The file is re-read when its modification time changes (checked at most
// once a second), so `rotate` by another process takes effect in a running
// service without a restart.
type LocalKMS struct {
	path string

	mu      sync.RWMutex
	aead    tink.AEAD
	primary uint32
	stamp   time.Time
	checked time.Time
}

var _ KMS = (*LocalKMS)(nil)

// OpenLocal loads the keyset at path; create makes a fresh one-key keyset
// when the file does not exist (development only).
func OpenLocal(path string, create bool) (*LocalKMS, error) {
	k := &LocalKMS{path: path}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("kms keyset %s does not exist and may not be created here", path)
		}
		h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
		if err != nil {
			return nil, fmt.Errorf("kms: new keyset: %w", err)
		}
		if err := writeKeyset(path, h); err != nil {
			return nil, err
		}
	}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *LocalKMS) load() error {
	fi, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("kms keyset: %w", err)
	}
	// The keyset is cleartext key material: a copy readable by other users
	// is a leaked key-encryption key, so it is refused, not used.
	if err := keyfile.CheckPrivate(k.path); err != nil {
		return fmt.Errorf("kms keyset: %w", err)
	}
	raw, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("kms keyset: %w", err)
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(raw)))
	if err != nil {
		return fmt.Errorf("kms keyset %s: %w", k.path, err)
	}
	a, err := aead.New(h)
	if err != nil {
		return fmt.Errorf("kms keyset %s: %w", k.path, err)
	}
	k.mu.Lock()
	k.aead, k.primary, k.stamp, k.checked = a, h.KeysetInfo().GetPrimaryKeyId(), fi.ModTime(), time.Now()
	k.mu.Unlock()
	return nil
}

func (k *LocalKMS) current() (tink.AEAD, uint32, error) {
	k.mu.RLock()
	due := time.Since(k.checked) >= time.Second
	stamp := k.stamp
	k.mu.RUnlock()
	if due {
		fi, err := os.Stat(k.path)
		k.mu.Lock()
		k.checked = time.Now()
		k.mu.Unlock()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: keyset: %v", ErrUnavailable, err)
		}
		if !fi.ModTime().Equal(stamp) {
			if err := k.load(); err != nil {
				return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
		}
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.aead, k.primary, nil
}

// Wrap implements KMS.
func (k *LocalKMS) Wrap(_ context.Context, dek, aad []byte) ([]byte, string, error) {
	a, primary, err := k.current()
	if err != nil {
		return nil, "", err
	}
	ct, err := a.Encrypt(dek, aad)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return ct, keyID(primary), nil
}

// Unwrap implements KMS.
func (k *LocalKMS) Unwrap(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	a, _, err := k.current()
	if err != nil {
		return nil, err
	}
	dek, err := a.Decrypt(wrapped, aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return dek, nil
}

// PrimaryID implements KMS.
func (k *LocalKMS) PrimaryID(context.Context) (string, error) {
	_, primary, err := k.current()
	if err != nil {
		return "", err
	}
	return keyID(primary), nil
}

// WrappedKEKID reads the KEK id from a Tink ciphertext's 5-byte prefix
// (version byte, then the big-endian key id).
func WrappedKEKID(wrapped []byte) string {
	if len(wrapped) < 5 {
		return ""
	}
	return keyID(binary.BigEndian.Uint32(wrapped[1:5]))
}

func keyID(id uint32) string { return strconv.FormatUint(uint64(id), 10) }

// RotateLocal adds a fresh AES-256-GCM key to the keyset file and makes it
// primary. Old keys stay, so records wrapped with them still open; run the
// service's rewrap command to move them to the new key. It returns the new
// primary's id.
func RotateLocal(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("kms keyset: %w", err)
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(raw)))
	if err != nil {
		return "", fmt.Errorf("kms keyset %s: %w", path, err)
	}
	m := keyset.NewManagerFromHandle(h)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return "", err
	}
	if err := m.SetPrimary(id); err != nil {
		return "", err
	}
	nh, err := m.Handle()
	if err != nil {
		return "", err
	}
	if err := writeKeyset(path, nh); err != nil {
		return "", err
	}
	return keyID(id), nil
}

// writeKeyset replaces path atomically with mode 0600.
func writeKeyset(path string, h *keyset.Handle) error {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return fmt.Errorf("kms: encode keyset: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("kms keyset: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keyset-*")
	if err != nil {
		return fmt.Errorf("kms keyset: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
