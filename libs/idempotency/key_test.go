package idempotency_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/strata-ref/strata/libs/idempotency"
)

func TestParseKey(t *testing.T) {
	cases := []struct {
		in   []string
		want string
		err  error
	}{
		{nil, "", idempotency.ErrMissingKey},
		{[]string{""}, "", idempotency.ErrMissingKey},
		{[]string{"8e03978e-40d5-43e8-bc93-6894a57f9324"}, "8e03978e-40d5-43e8-bc93-6894a57f9324", nil},
		{[]string{`"8e03978e-40d5"`}, "8e03978e-40d5", nil}, // structured-field string
		{[]string{`""`}, "", idempotency.ErrMalformedKey},
		{[]string{"a b"}, "", idempotency.ErrMalformedKey},
		{[]string{"a,b"}, "", idempotency.ErrMalformedKey},
		{[]string{"ключ"}, "", idempotency.ErrMalformedKey},
		{[]string{strings.Repeat("k", 256)}, "", idempotency.ErrMalformedKey},
		{[]string{"a", "b"}, "", idempotency.ErrMalformedKey},
	}
	for _, tc := range cases {
		got, err := idempotency.ParseKey(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseKey(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a := idempotency.Fingerprint("POST", "/v1/transfers", []byte(`{"amount":1,"currency":"EUR"}`))
	same := idempotency.Fingerprint("post", "/v1/transfers", []byte("{ \"currency\": \"EUR\",\n \"amount\": 1 }"))
	if !bytes.Equal(a, same) {
		t.Fatal("the same JSON object serialised differently has another fingerprint")
	}
	for name, other := range map[string][]byte{
		"body":   idempotency.Fingerprint("POST", "/v1/transfers", []byte(`{"amount":2,"currency":"EUR"}`)),
		"path":   idempotency.Fingerprint("POST", "/v1/deposits", []byte(`{"amount":1,"currency":"EUR"}`)),
		"method": idempotency.Fingerprint("PUT", "/v1/transfers", []byte(`{"amount":1,"currency":"EUR"}`)),
		"number": idempotency.Fingerprint("POST", "/v1/transfers", []byte(`{"amount":1.0,"currency":"EUR"}`)),
	} {
		if bytes.Equal(a, other) {
			t.Errorf("a different %s has the same fingerprint", name)
		}
	}
}
