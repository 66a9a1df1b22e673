package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
)

// Header names of the draft.
const (
	Header         = "Idempotency-Key"
	ReplayedHeader = "Idempotent-Replayed"
)

// MaxKeyLength bounds a key; a UUID is 36.
const MaxKeyLength = 255

var (
	// ErrMissingKey: the request has no Idempotency-Key (400).
	ErrMissingKey = errors.New("Idempotency-Key header is required")
	// ErrMalformedKey: the header is not one key of 1-255 visible ASCII
	// characters, optionally as a structured-field string ("...") (400).
	ErrMalformedKey = errors.New("Idempotency-Key must be one string of 1-255 visible ASCII characters")
	// ErrInFlight: a request with this key is being processed (409).
	ErrInFlight = errors.New("a request with this Idempotency-Key is still being processed")
	// ErrMismatch: the key was used for a different request (422).
	ErrMismatch = errors.New("this Idempotency-Key was used with a different request")
)

// ParseKey validates the Idempotency-Key header values of one request. The
// draft defines the field as a structured-field string ("abc"); the bare
// form (abc) is accepted as well, since most clients send that.
func ParseKey(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrMissingKey
	case 1:
	default:
		return "", ErrMalformedKey
	}
	k := values[0]
	if k == "" {
		return "", ErrMissingKey
	}
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" || len(k) > MaxKeyLength {
		return "", ErrMalformedKey
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == ',' {
			return "", ErrMalformedKey
		}
	}
	return k, nil
}

// Fingerprint identifies a request's content: SHA-256 over method, path and
// the canonical form of the body. A JSON body is canonicalised (keys sorted,
// insignificant whitespace dropped) so that a client re-serialising the
// same object is not told it sent a different request; any other body
// counts byte for byte.
func Fingerprint(method, path string, body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(strings.ToUpper(method)))
	h.Write([]byte{0})
	h.Write([]byte(path))
	h.Write([]byte{0})
	h.Write(canonical(body))
	return h.Sum(nil)
}

func canonical(body []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return body
	}
	out, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return body
	}
	return out
}

// Request is one keyed request as the middleware admitted it: who sent
// it, its key and its fingerprint. It is a fact about the request, never
// changed after the middleware made it.
type Request struct {
	Scope       string // the principal the key belongs to
	Key         string
	Fingerprint []byte
}

// Response is what is stored for a completed key and replayed.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Cipher seals stored response bodies, bound to their scope and key.
type Cipher interface {
	Seal(ctx context.Context, scope, key string, body []byte) ([]byte, error)
	Open(ctx context.Context, scope, key string, sealed []byte) ([]byte, error)
}

// Replay is returned by Claim when the key already completed with the same
// fingerprint: send Response with Idempotent-Replayed: true.
type Replay struct{ Response Response }

func (r *Replay) Error() string { return "idempotent replay" }
