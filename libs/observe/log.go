package observe

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a JSON logger whose records carry service, and trace_id
// and span_id whenever the context passed to the log call holds a span.
// Every attribute passes through Redact.
func NewLogger(w io.Writer, service string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: Redact})
	return slog.New(traceHandler{h}).With(slog.String("service", service))
}

// secretKeys are attribute names whose values are never written, whatever
// group they are in: the OAuth and OIDC parameters that are credentials or
// bind a flow (state, nonce, codes, PKCE), tokens, passwords and headers
// that carry them. Libraries log such fields (zitadel/oidc logs an error's
// state); our own code should not, and this is the net under both.
var secretKeys = map[string]bool{
	"password": true, "secret": true, "client_secret": true, "client_assertion": true,
	"token": true, "access_token": true, "refresh_token": true, "id_token": true, "id_token_hint": true,
	"subject_token": true, "actor_token": true, "authorization": true, "cookie": true, "set-cookie": true,
	"code": true, "code_verifier": true, "code_challenge": true, "state": true, "session_state": true, "nonce": true,
}

// urlQuery matches a URL's query string (codes and states travel there).
var urlQuery = regexp.MustCompile(`(\b[a-z][a-z0-9+.-]*://[^\s"?#]*|/[^\s"?#]*)\?[^\s"#]*`)

// Redact is the loggers' slog.HandlerOptions.ReplaceAttr: the value of a
// secret key becomes "[redacted]", and a query string inside any string or
// error value (a URL, or an http.Client error quoting one) becomes "?[redacted]".
func Redact(_ []string, a slog.Attr) slog.Attr {
	if secretKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, "[redacted]")
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "?") {
			return slog.String(a.Key, urlQuery.ReplaceAllString(s, "$1?[redacted]"))
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok && err != nil {
			if s := err.Error(); strings.Contains(s, "?") {
				return slog.String(a.Key, urlQuery.ReplaceAllString(s, "$1?[redacted]"))
			}
		}
	}
	return a
}

// Lifecycle are the messages a quiet logger still writes: the settings at
// start, the bound addresses (supervisors such as libs/testenv and `make
// run` wait for "listening") and the end of the drain.
var Lifecycle = []string{"config", "listening", "stopped"}

// NewQuietLogger is the logger of STRATA_TELEMETRY=off: errors only, plus
// the Lifecycle lines. Access log lines are dropped before they are
// encoded or written.
func NewQuietLogger(w io.Writer, service string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: Redact})
	keep := make(map[string]bool, len(Lifecycle))
	for _, m := range Lifecycle {
		keep[m] = true
	}
	return slog.New(quietHandler{traceHandler{h}, keep}).With(slog.String("service", service))
}

// quietHandler passes records at error level and above, and below that
// only the lifecycle messages. Enabled must admit info (a record's message
// is not known yet), so Handle does the filtering.
type quietHandler struct {
	slog.Handler
	keep map[string]bool
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError && !h.keep[r.Message] {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as), h.keep}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name), h.keep}
}

type traceHandler struct{ slog.Handler }

func (h traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h traceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return traceHandler{h.Handler.WithAttrs(as)}
}

func (h traceHandler) WithGroup(name string) slog.Handler {
	return traceHandler{h.Handler.WithGroup(name)}
}
