// Package envelope is Strata's encryption at rest: envelope encryption of
// the sensitive fields of a record (docs/encryption-at-rest.md).
//
// Every record gets its own random 256-bit data key (DEK). The DEK encrypts
// the record's fields with AES-256-GCM, and each field's associated data is
// "table|column|row id": a ciphertext copied into another row or column no
// longer authenticates. The DEK itself is stored only wrapped (encrypted) by
// a key-encryption key (KEK) that never leaves the KMS; the wrap is bound to
// "table|row id" as well.
//
//	plaintext --AES-256-GCM(DEK, aad=table|column|id)--> field ciphertext
//	DEK       --KMS.Wrap(KEK, aad=table|id)----------> wrapped DEK (+ KEK id)
//
// KMS is the seam to a real key service (cloud KMS, Vault transit); LocalKMS
// is the development implementation on a Tink keyset file. Rotation adds a
// new primary KEK: new records are wrapped with it, old wrapped DEKs still
// unwrap with the old KEK (Tink's ciphertext prefix names it), and Rewrap
// moves a record to the primary KEK without touching its field ciphertexts.
//
// A KMS that cannot be reached returns ErrUnavailable; callers map it to 503
// and never fall back to writing plaintext. See docs/encryption-at-rest.md.
package envelope
