package envelope

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

var (
	// ErrUnavailable: the KMS cannot be reached or refused the call; retry
	// later. Nothing may be written in clear instead.
	ErrUnavailable = errors.New("kms unavailable")
	// ErrDecrypt: a ciphertext or wrapped key does not authenticate: wrong
	// row, wrong column, tampered, or wrapped by a KEK the KMS no longer has.
	ErrDecrypt = errors.New("ciphertext does not authenticate")
)

// KMS wraps and unwraps data keys with a key-encryption key it never
// reveals. aad binds a wrapped key to its record.
type KMS interface {
	// Wrap encrypts dek with the current primary KEK and names that KEK.
	Wrap(ctx context.Context, dek, aad []byte) (wrapped []byte, kekID string, err error)
	// Unwrap decrypts a wrapped DEK with whichever KEK wrapped it.
	Unwrap(ctx context.Context, wrapped, aad []byte) (dek []byte, err error)
	// PrimaryID names the KEK that Wrap uses now.
	PrimaryID(ctx context.Context) (string, error)
}

// Envelope seals and opens records' fields through a KMS.
type Envelope struct{ kms KMS }

// New returns an Envelope over kms.
func New(kms KMS) *Envelope { return &Envelope{kms: kms} }

// DataKey is one record's unwrapped DEK, bound to its table and row.
type DataKey struct {
	table, rowID string
	aead         cipher.AEAD
	// Wrapped is the DEK encrypted by the KEK named KEKID: store both.
	Wrapped []byte
	KEKID   string
}

func keyAAD(table, rowID string) []byte { return []byte(table + "|" + rowID) }

// NewDataKey makes a fresh DEK for one record and wraps it with the KMS.
func (e *Envelope) NewDataKey(ctx context.Context, table, rowID string) (*DataKey, error) {
	dek := make([]byte, 32)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	wrapped, kekID, err := e.kms.Wrap(ctx, dek, keyAAD(table, rowID))
	if err != nil {
		return nil, fmt.Errorf("wrap data key for %s %s: %w", table, rowID, err)
	}
	return newDataKey(table, rowID, dek, wrapped, kekID)
}

// OpenDataKey unwraps a record's stored DEK.
func (e *Envelope) OpenDataKey(ctx context.Context, table, rowID string, wrapped []byte, kekID string) (*DataKey, error) {
	dek, err := e.kms.Unwrap(ctx, wrapped, keyAAD(table, rowID))
	if err != nil {
		return nil, fmt.Errorf("unwrap data key for %s %s: %w", table, rowID, err)
	}
	return newDataKey(table, rowID, dek, wrapped, kekID)
}

// Rewrap re-encrypts a record's DEK under the KMS's primary KEK. The field
// ciphertexts are unchanged: only the small wrapped key is rewritten.
func (e *Envelope) Rewrap(ctx context.Context, table, rowID string, wrapped []byte) (newWrapped []byte, kekID string, err error) {
	aad := keyAAD(table, rowID)
	dek, err := e.kms.Unwrap(ctx, wrapped, aad)
	if err != nil {
		return nil, "", fmt.Errorf("rewrap %s %s: %w", table, rowID, err)
	}
	defer clear(dek)
	return e.kms.Wrap(ctx, dek, aad)
}

// PrimaryID names the KEK new records are wrapped with.
func (e *Envelope) PrimaryID(ctx context.Context) (string, error) { return e.kms.PrimaryID(ctx) }

func newDataKey(table, rowID string, dek, wrapped []byte, kekID string) (*DataKey, error) {
	defer clear(dek)
	if len(dek) != 32 {
		return nil, fmt.Errorf("data key of %d bytes: %w", len(dek), ErrDecrypt)
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &DataKey{table: table, rowID: rowID, aead: aead, Wrapped: wrapped, KEKID: kekID}, nil
}

func (k *DataKey) fieldAAD(column string) []byte {
	return []byte(k.table + "|" + column + "|" + k.rowID)
}

// Seal encrypts one field: a random 96-bit nonce followed by the GCM
// ciphertext and tag.
func (k *DataKey) Seal(column string, plaintext []byte) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return k.aead.Seal(nonce, nonce, plaintext, k.fieldAAD(column))
}

// Open decrypts one field sealed by Seal for the same table, column and row.
func (k *DataKey) Open(column string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, fmt.Errorf("open %s.%s %s: %w", k.table, column, k.rowID, ErrDecrypt)
	}
	pt, err := k.aead.Open(nil, sealed[:n], sealed[n:], k.fieldAAD(column))
	if err != nil {
		return nil, fmt.Errorf("open %s.%s %s: %w", k.table, column, k.rowID, ErrDecrypt)
	}
	return pt, nil
}
