package authn_test

import (
	"context"
	"strings"
	"testing"

	"github.com/strata-ref/strata/libs/authn"
	"github.com/strata-ref/strata/libs/authn/authntest"
)

func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer x", "Basic x", "Bearer", "Bearer  a b", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := authn.BearerToken(header)
		if err == nil && (tok == "" || strings.ContainsAny(tok, " \t,")) {
			t.Fatalf("accepted malformed token %q from %q", tok, header)
		}
	})
}

func FuzzValidate(f *testing.F) {
	iss := authntest.NewIssuer(f)
	v := iss.Validator(f, "ledger")
	valid := iss.Token(f, claims(nil))
	f.Add(valid)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(strings.Repeat("a.", 100))
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Validate(context.Background(), raw)
		if err == nil && (p.Subject != "alice" || p.Token != raw) {
			t.Fatalf("accepted a token with principal %+v", p)
		}
	})
}
