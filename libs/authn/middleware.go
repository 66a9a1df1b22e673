package authn

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

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
// (without the token); the client learns only that it was. The next
// handler gets the request with the Principal in its context
// (FromContext).
func (v *Validator) Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			headers := r.Header.Values("Authorization")
			if len(headers) != 1 {
				unauthorized(w, r, "")
				return
			}
			raw, err := BearerToken(headers[0])
			if err != nil {
				log.InfoContext(ctx, "request refused", "reason", err.Error())
				unauthorized(w, r, "invalid_request")
				return
			}
			p, err := v.Validate(ctx, raw)
			if err != nil {
				log.InfoContext(ctx, "token refused", "reason", err.Error())
				unauthorized(w, r, "invalid_token")
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(ctx, p)))
		})
	}
}

func unauthorized(w http.ResponseWriter, r *http.Request, code string) {
	refuse(w, r, code, "a valid access token is required")
}

// SessionEnded answers 401 for a valid token whose session has ended
// (ErrSessionEnded): the client must sign in again.
func SessionEnded(w http.ResponseWriter, r *http.Request) {
	refuse(w, r, "invalid_token", "the session of this token has ended")
}

// refuse answers 401 with an RFC 6750 challenge; code, when set, is its error.
func refuse(w http.ResponseWriter, r *http.Request, code, detail string) {
	challenge := `Bearer realm="strata"`
	if code != "" {
		challenge += `, error="` + code + `"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	problem.New(http.StatusUnauthorized, detail).Send(w, r)
}
