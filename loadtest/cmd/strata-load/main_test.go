package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCommandLine: list needs no certificates (it works before make
// certs), and flags after a scenario's name are parsed, not ignored.
func TestCommandLine(t *testing.T) {
	noCerts := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantOut string
	}{
		{"list before make certs", []string{"-certs", noCerts, "list"}, "", "ramp"},
		{"no command lists too", []string{"-certs", noCerts}, "", "overload"},
		{"a flag after the scenario is parsed (a bad value is refused)", []string{"-certs", noCerts, "ramp", "-duration", "soon"}, "invalid value", ""},
		{"a good one gets as far as the certificates", []string{"-certs", noCerts, "ramp", "-duration", "30s"}, "make certs", ""},
		{"stray arguments are refused, not ignored", []string{"-certs", noCerts, "ramp", "30s"}, "unexpected arguments", ""},
		{"an unknown scenario", []string{"-certs", noCerts, "rampage"}, "unknown scenario", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, &out)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case !strings.Contains(out.String(), tc.wantOut):
				t.Fatalf("output %q, want %q in it", out.String(), tc.wantOut)
			}
		})
	}
}
