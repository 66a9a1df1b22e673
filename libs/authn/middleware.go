package authn

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/strata-ref/strata/libs/problem"
)

// BearerToken extracts the token from an Authorization header value
// ("Bearer <token>", scheme case-insensitive, RFC 6750).
func BearerToken(header string) (string, error) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errors.New("authorization header is not a Bearer token")
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsAny(token, " \t,") {
		return "", errors.New("malformed Bearer token")
	}
	return token, nil
}

// Middleware authenticates every request or answers 401 with a
// WWW-Authenticate challenge. Why a token was refused goes to the log
// (without the token); the client learns only that it was.
func (v *Validator) Middleware(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		headers := c.Request.Header.Values("Authorization")
		if len(headers) != 1 {
			unauthorized(c, "")
			return
		}
		raw, err := BearerToken(headers[0])
		if err != nil {
			log.InfoContext(ctx, "request refused", "reason", err.Error())
			unauthorized(c, "invalid_request")
			return
		}
		p, err := v.Validate(ctx, raw)
		if err != nil {
			log.InfoContext(ctx, "token refused", "reason", err.Error())
			unauthorized(c, "invalid_token")
			return
		}
		c.Request = c.Request.WithContext(WithPrincipal(ctx, p))
		c.Next()
	}
}

func unauthorized(c *gin.Context, code string) {
	challenge := `Bearer realm="strata"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	c.Header("WWW-Authenticate", challenge)
	problem.Abort(c, problem.New(http.StatusUnauthorized, "a valid access token is required"))
}
