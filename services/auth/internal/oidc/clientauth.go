package oidc

import (
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/strata-ref/strata/libs/mtls"
)

// clientAuth authenticates service clients at the token endpoint before
// the op sees the request, for the two methods the op does not know for
// these grants:
//
//   - tls_client_auth (RFC 8705): on the internal listener the client
//     certificate was verified in the handshake; its SPIFFE ID is put in
//     the context, and the storage accepts the client only if it is the
//     client's registered identity. A client may omit client_id: its
//     certificate names it.
//   - private_key_jwt (RFC 7523): the assertion is verified here against
//     the client's registered keys, and the client it names is put in the
//     context.
//
// Either way the client id then reaches the op as a Basic credential with
// an empty secret, which is how the op's token-exchange parser learns it.
func (p *Provider) clientAuth(c *gin.Context) {
	r := c.Request
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		tokenError(c, oidc.ErrInvalidRequest().WithDescription("malformed form"))
		return
	}
	grant := r.PostForm.Get("grant_type")
	if grant == string(oidc.GrantTypeCode) || grant == string(oidc.GrantTypeRefreshToken) {
		// The storage checks PKCE before it spends the code, and picks
		// the token's audiences from the resource parameters (RFC 8707).
		ctx = withResources(withCodeVerifier(ctx, r.PostForm.Get("code_verifier")), r.PostForm["resource"])
		c.Request = r.WithContext(ctx)
		r = c.Request
	}
	if grant != grantClientCrd && grant != grantExchange {
		// The code and refresh grants: the op authenticates the client,
		// and a confidential web client (the console) does so with its
		// certificate, which the storage checks against the peer.
		if peer, ok := mtls.PeerID(r); ok {
			c.Request = r.WithContext(withPeer(ctx, peer.String()))
		}
		c.Next()
		return
	}
	clientID := r.PostForm.Get("client_id")
	if peer, ok := mtls.PeerID(r); ok {
		ctx = withPeer(ctx, peer.String())
		if clientID == "" {
			if cl, err := p.d.Identities.ClientBySPIFFEID(ctx, peer.String()); err == nil {
				clientID = cl.ID
			}
		}
	}
	if assertion := r.PostForm.Get("client_assertion"); assertion != "" {
		if r.PostForm.Get("client_assertion_type") != oidc.ClientAssertionTypeJWTAssertion {
			tokenError(c, oidc.ErrInvalidClient().WithDescription("unsupported client_assertion_type"))
			return
		}
		ictx := op.ContextWithIssuer(ctx, p.cfg.Issuer)
		req, err := op.VerifyJWTAssertion(ictx, assertion, p.op.JWTProfileVerifier(ictx))
		if err != nil || (clientID != "" && clientID != req.Issuer) {
			p.d.Log.InfoContext(ctx, "client assertion refused", "client_id", clientID)
			tokenError(c, oidc.ErrInvalidClient().WithDescription("client assertion invalid"))
			return
		}
		clientID = req.Issuer
		ctx = withAssertedClient(ctx, clientID)
	}
	if _, _, hasBasic := r.BasicAuth(); !hasBasic && clientID != "" {
		r.SetBasicAuth(clientID, "")
	}
	c.Request = r.WithContext(ctx)
	c.Next()
}

func tokenError(c *gin.Context, e *oidc.Error) {
	c.Header("Cache-Control", "no-store")
	c.AbortWithStatusJSON(http.StatusUnauthorized, e)
}
