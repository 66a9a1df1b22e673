package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/strata-ref/strata/libs/crypto/envelope"
	"github.com/strata-ref/strata/libs/idempotency"
)

// ResponseCipher seals the responses stored with idempotency keys: they
// echo account names and memos, which must not sit in clear in the
// idempotency table either. Each stored response is its own record: a
// fresh data key, bound to the key's scope and name.
type ResponseCipher struct{ Envelope *envelope.Envelope }

var _ idempotency.Cipher = ResponseCipher{}

const responseTable = "idempotency_keys"

// Seal implements idempotency.Cipher: wrapped-key length (2 bytes), wrapped
// key, then the sealed body.
func (c ResponseCipher) Seal(ctx context.Context, scope, key string, body []byte) ([]byte, error) {
	dk, err := c.Envelope.NewDataKey(ctx, responseTable, scope+"|"+key)
	if err != nil {
		return nil, fmt.Errorf("seal response: %w", ErrUnavailable)
	}
	if len(dk.Wrapped) > math.MaxUint16 {
		return nil, fmt.Errorf("seal response: wrapped key of %d bytes", len(dk.Wrapped))
	}
	out := binary.BigEndian.AppendUint16(nil, uint16(len(dk.Wrapped)))
	out = append(out, dk.Wrapped...)
	return append(out, dk.Seal("body", body)...), nil
}

// Open implements idempotency.Cipher.
func (c ResponseCipher) Open(ctx context.Context, scope, key string, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 {
		return nil, ErrIntegrity
	}
	n := int(binary.BigEndian.Uint16(sealed))
	if len(sealed) < 2+n {
		return nil, ErrIntegrity
	}
	wrapped := sealed[2 : 2+n]
	dk, err := c.Envelope.OpenDataKey(ctx, responseTable, scope+"|"+key, wrapped, envelope.WrappedKEKID(wrapped))
	if errors.Is(err, envelope.ErrDecrypt) {
		return nil, fmt.Errorf("open response: %w", ErrIntegrity)
	} else if err != nil {
		return nil, fmt.Errorf("open response: %w", ErrUnavailable)
	}
	body, err := dk.Open("body", sealed[2+n:])
	if err != nil {
		return nil, fmt.Errorf("open response: %w", ErrIntegrity)
	}
	return body, nil
}
