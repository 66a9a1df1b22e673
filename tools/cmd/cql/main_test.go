package main

import (
	"reflect"
	"testing"
)

func TestSplitStatements(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" ; ;\n", nil},
		{"SELECT 1", []string{"SELECT 1"}},
		{"A; B;", []string{"A", "B"}},
		{"INSERT INTO t (s) VALUES ('a;b'); C", []string{"INSERT INTO t (s) VALUES ('a;b')", "C"}},
		{"INSERT INTO t (s) VALUES ('it''s; ok');", []string{"INSERT INTO t (s) VALUES ('it''s; ok')"}},
		{`SELECT "we;ird" FROM t; D`, []string{`SELECT "we;ird" FROM t`, "D"}},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE java AS $$ return 1; $$; E",
			[]string{"CREATE FUNCTION f() RETURNS int LANGUAGE java AS $$ return 1; $$", "E"}},
		{"-- a comment; still a comment\nA; // another; one\nB /* x; y */ C;",
			[]string{"-- a comment; still a comment\nA", "// another; one\nB /* x; y */ C"}},
		{"A; -- trailing comment only", []string{"A"}},
		{"'unterminated; literal", []string{"'unterminated; literal"}},
	}
	for _, c := range cases {
		if got := SplitStatements(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("SplitStatements(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
