package observe

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

type groupValuer struct{}

func (groupValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", "login_required"), slog.String("state", "st-123"))
}

func TestRedact(t *testing.T) {
	var buf bytes.Buffer
	log := NewLogger(&buf, "test", slog.LevelInfo)
	log.Info("x", "url", "http://127.0.0.1:8765/callback?code=c-123&state=st-123",
		"err", errors.New(`Post "https://auth:9441/oauth2/token?x=c-123": EOF`),
		"oidc_error", groupValuer{}, "password", "pw-123", "Authorization", "Bearer t-123", "path", "/v1/accounts")
	out := buf.String()
	for _, leak := range []string{"c-123", "st-123", "pw-123", "t-123"} {
		if strings.Contains(out, leak) {
			t.Errorf("logged %q: %s", leak, out)
		}
	}
	for _, keep := range []string{`"url":"http://127.0.0.1:8765/callback?[redacted]"`, `https://auth:9441/oauth2/token?[redacted]`, `"type":"login_required"`, `"path":"/v1/accounts"`} {
		if !strings.Contains(out, keep) {
			t.Errorf("want %s in %s", keep, out)
		}
	}
}

func TestQuietLogger(t *testing.T) {
	var buf bytes.Buffer
	log := NewQuietLogger(&buf, "test")
	log.Info("request", "path", "/v1/accounts")
	log.Warn("breaker open")
	log.Info("listening", "public", "127.0.0.1:1")
	log.ErrorContext(context.Background(), "request failed")
	out := buf.String()
	if strings.Contains(out, `"msg":"request"`) || strings.Contains(out, "breaker open") {
		t.Errorf("quiet logger wrote below error: %s", out)
	}
	if !strings.Contains(out, `"msg":"listening"`) || !strings.Contains(out, `"msg":"request failed"`) {
		t.Errorf("quiet logger dropped a lifecycle or error line: %s", out)
	}
}
