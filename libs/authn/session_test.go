package authn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/strata-ref/strata/libs/authn"
)

// baseDoer sends requests with a relative URL to base, as the resilience
// client does with its configured base URL.
type baseDoer struct {
	base *url.URL
	c    *http.Client
}

func (d baseDoer) Do(r *http.Request) (*http.Response, error) {
	r.URL = d.base.ResolveReference(r.URL)
	return d.c.Do(r)
}

func TestSessionCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/internal/sessions/alive":
			w.WriteHeader(http.StatusOK)
		case "/internal/sessions/broken":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	check := authn.NewSessionCheck(baseDoer{base, srv.Client()})
	ctx := context.Background()
	for _, tt := range []struct {
		sid  string
		want error
	}{
		{"alive", nil},
		{"ended", authn.ErrSessionEnded},
		{"", authn.ErrSessionEnded}, // a user's token without a session
		{"broken", authn.ErrSessionUnknown},
		{"../../admin", authn.ErrSessionEnded}, // escaped: one path segment
	} {
		if err := check.Alive(ctx, tt.sid); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("Alive(%q) = %v, want %v", tt.sid, err, tt.want)
		}
	}
	srv.Close()
	if err := check.Alive(ctx, "alive"); !errors.Is(err, authn.ErrSessionUnknown) {
		t.Errorf("session service down: %v, want ErrSessionUnknown (fail closed)", err)
	}
}
