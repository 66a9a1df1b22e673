// Package keys manages the auth service's token-signing keys: ES256 (P-256)
// keys kept in Postgres with the private half sealed by a key-encryption
// key (AES-256-GCM, the key id as associated data, so a sealed key copied
// onto another row does not open), and their life cycle:
//
//	next     published in JWKS, not yet signing
//	current  signing (exactly one)
//	retired  published until every token it signed has expired
//	removed  gone from JWKS; private half erased
//
// Rotation (Rotate, `auth rotate-keys`) moves next->current,
// current->retired and creates a new next, so every key is in JWKS for at
// least one rotation before it signs: validators that cached JWKS already
// know it, and the one that has not refreshes on the unknown kid.
package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/strata-ref/strata/libs/crypto/keyfile"
)

// Algorithm is the JWS algorithm of every key.
const Algorithm = jose.ES256

// State is a key's place in its life cycle.
type State string

const (
	Next    State = "next"
	Current State = "current"
	Retired State = "retired"
	Removed State = "removed"
)

// Record is a key as stored.
type Record struct {
	ID           string
	State        State
	PublicJWK    []byte // JSON
	Sealed       []byte // nonce || AES-GCM(private PKCS#8), AAD = ID
	CreatedAt    time.Time
	PublishUntil *time.Time // for retired keys
}

// Store persists keys. Rotate runs fn in one transaction over the
// non-removed keys, writing back what fn returns.
type Store interface {
	SigningKeys(ctx context.Context) ([]Record, error)
	RotateKeys(ctx context.Context, fn func(keys []Record) ([]Record, error)) error
}

// KEK is the key-encryption key.
type KEK struct{ aead cipher.AEAD }

// LoadKEK reads a 32-byte key (64 hex characters) from path. In dev, a
// missing file is created with mode 0600; in production that is refused:
// an operator must provision it (from a KMS or secret store).
func LoadKEK(path string, create bool) (*KEK, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		if err := createKEK(path); err != nil {
			return nil, fmt.Errorf("key-encryption key: %w", err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	if err := keyfile.CheckPrivate(path); err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	raw, err := hex.DecodeString(string(trimSpace(b)))
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("key-encryption key %s: want 64 hex characters", path)
	}
	return NewKEK(raw)
}

// createKEK writes a fresh key with mode 0600; if another process won the
// race to create it, its key is kept.
func createKEK(path string) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.WriteString(hex.EncodeToString(raw) + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// NewKEK wraps a 32-byte key.
func NewKEK(raw []byte) (*KEK, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &KEK{aead: aead}, nil
}

func (k *KEK) seal(kid string, plaintext []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return k.aead.Seal(nonce, nonce, plaintext, []byte(kid)), nil
}

func (k *KEK) open(kid string, sealed []byte) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed key too short")
	}
	return k.aead.Open(nil, sealed[:n], sealed[n:], []byte(kid))
}

// newRecord generates a P-256 key in state s.
func (k *KEK) newRecord(s State, now time.Time) (Record, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Record{}, err
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return Record{}, err
	}
	kid := now.UTC().Format("20060102") + "-" + hex.EncodeToString(id)
	pub, err := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: string(Algorithm), Use: "sig"}.MarshalJSON()
	if err != nil {
		return Record{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Record{}, err
	}
	sealed, err := k.seal(kid, der)
	if err != nil {
		return Record{}, err
	}
	return Record{ID: kid, State: s, PublicJWK: pub, Sealed: sealed, CreatedAt: now}, nil
}

// Config tunes the Manager.
type Config struct {
	// MaxTokenLifetime is the longest lifetime of anything a key signs
	// (access and ID tokens), plus leeway: how long a retired key stays
	// published.
	MaxTokenLifetime time.Duration
	// Reload is how often the Manager re-reads the keys, so a rotation done
	// by `auth rotate-keys` in another process is picked up [5s].
	Reload time.Duration
	Now    func() time.Time
}

// Manager serves the signing key and the published set from memory,
// refreshed from the Store.
type Manager struct {
	store Store
	kek   *KEK
	cfg   Config

	mu      sync.RWMutex
	signing jose.JSONWebKey // private, current
	public  []jose.JSONWebKey
	byID    map[string]jose.JSONWebKey
	loaded  time.Time
}

// NewManager loads the keys, creating a current and a next key on first use.
func NewManager(ctx context.Context, store Store, kek *KEK, cfg Config) (*Manager, error) {
	if cfg.MaxTokenLifetime == 0 {
		cfg.MaxTokenLifetime = 15 * time.Minute
	}
	if cfg.Reload == 0 {
		cfg.Reload = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{store: store, kek: kek, cfg: cfg}
	err := store.RotateKeys(ctx, func(keys []Record) ([]Record, error) {
		return m.ensure(keys)
	})
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// ensure creates the missing current and next keys.
func (m *Manager) ensure(keys []Record) ([]Record, error) {
	var hasCurrent, hasNext bool
	for _, k := range keys {
		hasCurrent = hasCurrent || k.State == Current
		hasNext = hasNext || k.State == Next
	}
	now := m.cfg.Now()
	for _, need := range []struct {
		missing bool
		state   State
	}{{!hasCurrent, Current}, {!hasNext, Next}} {
		if need.missing {
			r, err := m.kek.newRecord(need.state, now)
			if err != nil {
				return nil, err
			}
			keys = append(keys, r)
		}
	}
	return keys, nil
}

// Rotate performs one rotation step: retire current, promote next, create
// a new next, and remove retired keys whose tokens have all expired.
func (m *Manager) Rotate(ctx context.Context) error {
	err := m.store.RotateKeys(ctx, func(keys []Record) ([]Record, error) {
		now := m.cfg.Now()
		until := now.Add(m.cfg.MaxTokenLifetime)
		for i := range keys {
			switch keys[i].State {
			case Current:
				keys[i].State, keys[i].PublishUntil = Retired, &until
			case Next:
				keys[i].State = Current
			case Retired:
				if keys[i].PublishUntil != nil && now.After(*keys[i].PublishUntil) {
					keys[i].State, keys[i].Sealed = Removed, nil
				}
			}
		}
		return m.ensure(keys)
	})
	if err != nil {
		return fmt.Errorf("rotate keys: %w", err)
	}
	return m.Reload(ctx)
}

// Reload re-reads the keys from the store.
func (m *Manager) Reload(ctx context.Context) error {
	recs, err := m.store.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	now := m.cfg.Now()
	var signing jose.JSONWebKey
	var public []jose.JSONWebKey
	byID := map[string]jose.JSONWebKey{}
	for _, r := range recs {
		if r.State == Removed || (r.State == Retired && r.PublishUntil != nil && now.After(*r.PublishUntil)) {
			continue
		}
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON(r.PublicJWK); err != nil {
			return fmt.Errorf("key %s: %w", r.ID, err)
		}
		public = append(public, pub)
		byID[r.ID] = pub
		if r.State == Current {
			der, err := m.kek.open(r.ID, r.Sealed)
			if err != nil {
				return fmt.Errorf("open key %s (wrong key-encryption key?): %w", r.ID, err)
			}
			priv, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				return fmt.Errorf("key %s: %w", r.ID, err)
			}
			signing = jose.JSONWebKey{Key: priv, KeyID: r.ID, Algorithm: string(Algorithm), Use: "sig"}
		}
	}
	if signing.Key == nil {
		return errors.New("signing keys: no current key")
	}
	m.mu.Lock()
	m.signing, m.public, m.byID, m.loaded = signing, public, byID, now
	m.mu.Unlock()
	return nil
}

func (m *Manager) maybeReload(ctx context.Context) {
	m.mu.RLock()
	stale := m.cfg.Now().Sub(m.loaded) > m.cfg.Reload
	m.mu.RUnlock()
	if stale {
		// A failed reload keeps the keys we have; signing must not stop
		// because the database blinked.
		_ = m.Reload(ctx)
	}
}

// Signing returns the current private key.
func (m *Manager) Signing(ctx context.Context) jose.JSONWebKey {
	m.maybeReload(ctx)
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.signing
}

// Published returns the public keys of JWKS: next, current and retired.
func (m *Manager) Published(ctx context.Context) []jose.JSONWebKey {
	m.maybeReload(ctx)
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.public
}

// ErrUnknownKey is returned by Key for a kid not published.
var ErrUnknownKey = errors.New("unknown key id")

// Key implements authn.KeySource over the published keys, so the service
// validates its own access tokens without fetching its own JWKS.
func (m *Manager) Key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	m.mu.RLock()
	k, ok := m.byID[kid]
	m.mu.RUnlock()
	if !ok {
		// An unknown kid may be a key rotated in by another process; look
		// again, at most once a second, so made-up kids cannot hammer the
		// database.
		m.mu.RLock()
		recent := m.cfg.Now().Sub(m.loaded) < time.Second
		m.mu.RUnlock()
		if !recent {
			_ = m.Reload(ctx)
		}
		m.mu.RLock()
		k, ok = m.byID[kid]
		m.mu.RUnlock()
		if !ok {
			return nil, ErrUnknownKey
		}
	}
	return &k, nil
}
