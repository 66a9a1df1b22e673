// Package authn authenticates requests to Strata's services: it validates
// the OAuth 2.0 access tokens that the auth service issues (JWTs, RFC 9068)
// following RFC 8725's best current practice, and puts the resulting
// Principal in the request context.
//
// What is checked, in order, and why:
//   - size: a token over MaxTokenBytes is refused before any parsing, so a
//     1 MB header costs nothing;
//   - alg: only ES256 and EdDSA are accepted (no "none", no HMAC, so a
//     public key can never be used as an HMAC secret);
//   - typ: must be "at+jwt", so an ID token cannot be replayed as an access
//     token;
//   - kid: must name a key from the issuer's JWKS; keys embedded in the
//     token (jwk, jku, x5u, x5c) are never trusted; an unknown kid triggers
//     at most one JWKS refresh per interval;
//   - signature, then iss (exact), aud (must include this service), exp
//     (required), nbf and iat with at most 60 s leeway.
//
// Claims is the token format itself, shared with the auth service that
// signs it, so issuer and validators cannot drift apart.
package authn
